//! Where events come from: NDJSON files read line by line (replay) and a
//! Kafka consumer group (run); the built-in simulator lives in `sim`. The
//! driver polls them.

mod kafka;
mod ndjson;

pub use kafka::{Change, KafkaSource, RevokeHook, SourceError, TopicPartition};
pub use ndjson::{Line, LineReader};
