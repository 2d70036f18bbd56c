//! The inputs of the one driver loop: an NDJSON file (replay), the
//! built-in simulator paced to the wall clock (demo), a Kafka consumer
//! group (run).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::message::{From, Headers, Message};
use crate::sim::{SimConfig, SimEvent, Simulator};
use crate::source::{KafkaSource, Line, LineReader};

/// An NDJSON file, one message per line, all in input 0.
pub struct FileSource {
    pub path: PathBuf,
    reader: LineReader<BufReader<File>>,
    /// Bytes read, line ends included.
    pub bytes: u64,
}

impl FileSource {
    pub fn open(path: &Path, max_line: usize) -> std::io::Result<Self> {
        let file = File::open(path)?;
        Ok(Self {
            path: path.to_owned(),
            reader: LineReader::new(BufReader::with_capacity(1 << 20, file), max_line),
            bytes: 0,
        })
    }
}

/// The simulator, paced to `rate` events per second of wall clock.
pub struct SimSource {
    sim: Simulator,
    rate: f64,
    day: Vec<SimEvent>,
    next: usize,
    line: Vec<u8>,
    seq: u64,
    started: Instant,
}

impl SimSource {
    pub fn new(config: SimConfig, rate: f64) -> Self {
        Self {
            sim: Simulator::new(config),
            rate: rate.max(1e-3),
            day: Vec::new(),
            next: 0,
            line: Vec::with_capacity(512),
            seq: 0,
            started: Instant::now(),
        }
    }
}

/// Where messages come from.
pub enum Source {
    File(FileSource),
    Simulator(Box<SimSource>),
    Kafka(Box<KafkaSource>),
}

/// A message of the Kafka source, still borrowed from the consumer.
pub struct KafkaMessage<'a> {
    message: rdkafka::message::BorrowedMessage<'a>,
    input: usize,
    offset: i64,
    fallback_type: Option<crate::event::EventType>,
}

impl<'a> KafkaMessage<'a> {
    /// A message just polled from `k`.
    pub fn new(k: &KafkaSource, message: rdkafka::message::BorrowedMessage<'a>) -> Self {
        use rdkafka::message::Message as _;
        Self {
            input: k.input(message.topic(), message.partition()),
            offset: message.offset(),
            fallback_type: k.fallback_type(message.topic()),
            message,
        }
    }

    /// The driver's view of it.
    pub fn as_message(&self) -> Message<'_> {
        use rdkafka::message::Message as _;
        let m = &self.message;
        Message {
            bytes: m.payload().unwrap_or_default(),
            too_long: None,
            input: self.input,
            offset: self.offset,
            fallback_type: self.fallback_type,
            from: From::Kafka {
                topic: m.topic(),
                partition: m.partition(),
                offset: self.offset,
            },
            key: m.key().unwrap_or_default(),
            headers: Headers::Kafka(m),
        }
    }
}

/// What one poll gave.
pub enum Polled<'a> {
    Message(Message<'a>),
    Kafka(KafkaMessage<'a>),
    /// Nothing right now.
    Quiet,
    /// The input ended (a file read to its end).
    End,
}

/// A failure reading the input.
#[derive(Debug, thiserror::Error)]
#[error("cannot read events file {path}: {source}")]
pub struct ReadError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl Source {
    /// Live sources (the simulator, Kafka) tick on the wall clock and
    /// their inputs may go idle; a file is read at full speed.
    pub fn live(&self) -> bool {
        !matches!(self, Source::File(_))
    }

    /// The next message, waiting at most `timeout` (Kafka) or pacing to
    /// the rate (the simulator).
    pub fn poll(&mut self, timeout: Duration) -> Result<Polled<'_>, ReadError> {
        match self {
            Source::File(f) => {
                let next = f.reader.next_line().map_err(|source| ReadError {
                    path: f.path.clone(),
                    source,
                })?;
                let Some((line, l)) = next else {
                    return Ok(Polled::End);
                };
                let (bytes, too_long) = match l {
                    Line::Text(t) => {
                        f.bytes += t.len() as u64 + 1;
                        (t, None)
                    }
                    Line::TooLong { prefix, len } => {
                        f.bytes += len as u64 + 1;
                        (prefix, Some(len))
                    }
                };
                Ok(Polled::Message(Message {
                    bytes,
                    too_long,
                    input: 0,
                    offset: line as i64,
                    fallback_type: None,
                    from: From::File { line },
                    key: &[],
                    headers: Headers::None,
                }))
            }
            Source::Simulator(s) => {
                if s.next >= s.day.len() {
                    s.day.clear();
                    s.next = 0;
                    // A simulated day may bring no arrivals at all.
                    if !s.sim.next_day(&mut s.day) || s.day.is_empty() {
                        if s.day.is_empty() {
                            std::thread::sleep(timeout.min(Duration::from_millis(100)));
                        }
                        return Ok(Polled::Quiet);
                    }
                }
                let due = s.started + Duration::from_secs_f64(s.seq as f64 / s.rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait.min(timeout));
                    if Instant::now() < due {
                        return Ok(Polled::Quiet);
                    }
                }
                let e = s.day[s.next].clone();
                s.next += 1;
                s.seq += 1;
                s.line.clear();
                s.sim.write_json(&e, &mut s.line);
                let bytes = s.line.strip_suffix(b"\n").unwrap_or(&s.line);
                Ok(Polled::Message(Message {
                    bytes,
                    too_long: None,
                    input: 0,
                    offset: s.seq as i64,
                    fallback_type: None,
                    from: From::Simulator { seq: s.seq },
                    key: &[],
                    headers: Headers::None,
                }))
            }
            Source::Kafka(k) => Ok(match k.poll(timeout) {
                Some(m) => Polled::Kafka(KafkaMessage::new(k, m)),
                None => Polled::Quiet,
            }),
        }
    }
}
