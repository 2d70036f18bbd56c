//! Where events come from: NDJSON files (replay) and the built-in simulator
//! (demo, bench). Kafka joins here with the Kafka issue.

mod ndjson;

pub use ndjson::{Line, LineReader};
