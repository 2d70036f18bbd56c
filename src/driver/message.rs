//! One message as a source hands it to the driver.

use crate::event::EventType;
use crate::pipeline::Origin;

/// Where a message was read, cheap to carry until it is needed (a dead
/// letter or a late event).
#[derive(Debug, Clone, Copy)]
pub enum From<'a> {
    /// A line of an NDJSON file (1-based).
    File { line: u64 },
    /// A Kafka message.
    Kafka {
        topic: &'a str,
        partition: i32,
        offset: i64,
    },
    /// The built-in simulator (sequence number).
    Simulator { seq: u64 },
}

impl From<'_> {
    /// The owned form written with dead letters and late events.
    pub fn origin(&self) -> Origin {
        match *self {
            From::File { line } => Origin::File { line },
            From::Kafka {
                topic,
                partition,
                offset,
            } => Origin::Kafka {
                topic: topic.to_owned(),
                partition,
                offset,
            },
            From::Simulator { seq } => Origin::Simulator { seq },
        }
    }
}

/// One message.
#[derive(Debug)]
pub struct Message<'a> {
    /// The bytes (for a line over the length limit, its first bytes).
    pub bytes: &'a [u8],
    /// A line over the length limit: its full length.
    pub too_long: Option<usize>,
    /// The engine input it belongs to (a file, a topic-partition).
    pub input: usize,
    pub offset: i64,
    /// The event type when the message has none (a topic per type).
    pub fallback_type: Option<EventType>,
    pub from: From<'a>,
    /// Kafka: the message key and headers, kept on dead letters.
    pub key: &'a [u8],
    pub headers: Headers<'a>,
}

/// A message's own headers, read only when they are kept (a dead letter or
/// a late event): asking librdkafka for them on every message cost a few
/// percent of `pulse run`'s engine thread.
#[derive(Debug, Clone, Copy, Default)]
pub enum Headers<'a> {
    #[default]
    None,
    Kafka(&'a rdkafka::message::BorrowedMessage<'a>),
}

impl<'a> Headers<'a> {
    /// Each header: key and value (empty when it has none).
    pub fn read(&self) -> Vec<(&'a str, &'a [u8])> {
        match self {
            Headers::None => Vec::new(),
            Headers::Kafka(m) => crate::source::KafkaSource::headers(m),
        }
    }
}
