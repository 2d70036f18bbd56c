//! librdkafka reports client-wide errors (all brokers down, a transport
//! failure) on every reconnect attempt, several a second per client while
//! a broker is away. Each kind is logged when it first occurs, then at
//! most every [`EVERY`] with how many were held back, so an outage reads
//! as a few lines, not thousands.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;

/// Quiet period per kind of error.
pub const EVERY: Duration = Duration::from_secs(30);

/// When each kind of error was last logged, and how many since.
#[derive(Default)]
pub struct ErrorLog {
    kinds: Mutex<HashMap<String, (Instant, u64)>>,
}

impl ErrorLog {
    /// Logs `error` of `client` unless its kind was logged within
    /// [`EVERY`]; true when it was logged.
    pub fn report(&self, client: &'static str, error: &KafkaError, reason: &str) -> bool {
        let kind = format!("{:?}", error.rdkafka_error_code());
        let Ok(mut kinds) = self.kinds.lock() else {
            return false;
        };
        let now = Instant::now();
        let held = match kinds.get_mut(&kind) {
            Some((last, held)) if now.duration_since(*last) < EVERY => {
                *held += 1;
                return false;
            }
            Some((last, held)) => {
                *last = now;
                std::mem::take(held)
            }
            None => {
                kinds.insert(kind, (now, 0));
                0
            }
        };
        tracing::warn!(client, %error, %reason, held_back = held, "Kafka client error (librdkafka retries)");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn each_kind_is_logged_once_per_period() {
        let log = ErrorLog::default();
        let down = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        let transport = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(log.report("consumer", &down, "1/1 brokers are down"));
        for _ in 0..100 {
            assert!(!log.report("consumer", &down, "1/1 brokers are down"));
        }
        assert!(log.report("consumer", &transport, "connect failed"));
    }
}
