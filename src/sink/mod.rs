//! Where results leave the service besides files: Kafka topics for dead
//! letters, late events, KPI rows, alerts and the state changelog.

mod kafka;

pub use kafka::{KafkaSink, MAX_MESSAGE_BYTES, SinkError, client_config};
