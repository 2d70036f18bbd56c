//! Where results leave the service besides files: Kafka topics for dead
//! letters, late events, KPI rows and (with the churn model) alerts.

mod kafka;

pub use kafka::{KafkaSink, SinkError, client_config};
