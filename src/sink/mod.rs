//! Where results leave the service besides files: Kafka topics for dead
//! letters, late events, KPI rows, alerts and the state changelog.

mod connect;
mod kafka;
mod quiet;

pub use connect::{ConnectError, check_connection, is_secret_setting, mask_secrets};
pub use quiet::ErrorLog;

pub use kafka::{KafkaSink, MAX_MESSAGE_BYTES, SinkError, client_config};
