//! Where events come from: NDJSON files (replay) and Kafka (run); the
//! built-in simulator lives in `sim`.

mod kafka;
mod ndjson;

pub use kafka::{KafkaRun, RunReport, SourceError, run_kafka};
pub use ndjson::{Line, LineReader};
