//! The first contact with the brokers, made before any consumer, producer or
//! transaction exists. Wrong credentials or a certificate the client cannot
//! verify never heal by retrying, and librdkafka would retry them forever in
//! the background (a retry storm against the broker, a service that looks
//! alive and does nothing). So `pulse run` asks for metadata once with the
//! configured security settings and stops at once, with one message that
//! names the settings at fault, when the broker refuses the credentials or
//! the TLS handshake fails. An unreachable broker is only warned about: it
//! may come back, and the clients wait for it.
//!
//! No secret reaches a message: values of secret settings are masked in
//! whatever librdkafka reports.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::client_config;

/// Why the brokers cannot be used with the configured security settings.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "Kafka at {brokers} refused the credentials of user {user:?} (security.protocol={protocol}, \
         sasl.mechanism={mechanism}): {reason}. Check kafka.properties sasl.username and \
         sasl.password (or PULSE_KAFKA_USERNAME / PULSE_KAFKA_PASSWORD) and sasl.mechanism \
         (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, as the broker's listener accepts)"
    )]
    Credentials {
        brokers: String,
        user: String,
        protocol: String,
        mechanism: String,
        reason: String,
    },
    #[error(
        "the TLS handshake with Kafka at {brokers} failed (security.protocol={protocol}): {reason}. \
         Check kafka.properties ssl.ca.location (the PEM file of the CA that signed the broker's \
         certificate) and that the address is the broker's SSL or SASL_SSL listener"
    )]
    Tls {
        brokers: String,
        protocol: String,
        reason: String,
    },
    #[error("cannot create a Kafka client for {brokers}: {source}")]
    Client { brokers: String, source: KafkaError },
}

/// The settings whose values are secrets: never shown in a message.
pub fn is_secret_setting(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.ends_with(".key.pem")
        || k.ends_with("jaas.config")
        || k.contains("token")
}

/// `text` with every secret value of `properties` masked.
pub fn mask_secrets(text: &str, properties: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (k, v) in properties {
        if is_secret_setting(k) && v.len() >= 3 {
            out = out.replace(v.as_str(), "***");
        }
    }
    out
}

/// The first error of a kind that retrying cannot heal, as librdkafka
/// reported it.
#[derive(Default)]
struct FirstFatal(Mutex<Option<(RDKafkaErrorCode, String)>>);

impl ClientContext for FirstFatal {
    fn error(&self, error: KafkaError, reason: &str) {
        let mut code = error.rdkafka_error_code();
        // A failed certificate check comes as an SSL error or, as often, as
        // a transport failure "in state SSL_HANDSHAKE": the same refusal,
        // which must stop the check at its first occurrence.
        if code == Some(RDKafkaErrorCode::BrokerTransportFailure)
            && (reason.contains("SSL_HANDSHAKE") || reason.contains("SSL routines"))
        {
            code = Some(RDKafkaErrorCode::SSL);
        }
        let fatal = matches!(
            code,
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)
        );
        if let (true, Some(code), Ok(mut first)) = (fatal, code, self.0.lock()) {
            first.get_or_insert((code, reason.to_owned()));
        } else {
            tracing::debug!(error = %error, "Kafka client while checking the connection");
        }
    }
}

impl ProducerContext for FirstFatal {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Asks the brokers for metadata with the configured settings for up to
/// `timeout`; refused credentials and failed TLS handshakes are errors,
/// anything else (an unreachable broker) only a warning. Gives the
/// partition count of every topic (none when no broker answered).
pub fn check_connection(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<BTreeMap<String, usize>, ConnectError> {
    let mut config = client_config(brokers, properties);
    // Heard once: no reconnect storm while this check waits.
    config
        .set("reconnect.backoff.ms", "500")
        .set("reconnect.backoff.max.ms", "2000");
    // A producer client: its poll hands librdkafka's errors to the context
    // with their reason text.
    let client: BaseProducer<FirstFatal> = config
        .create_with_context(FirstFatal::default())
        .map_err(|source| ConnectError::Client {
            brokers: brokers.to_owned(),
            source,
        })?;
    let deadline = Instant::now() + timeout;
    let setting = |key: &str, default: &str| {
        properties
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    };
    loop {
        let answered = client
            .client()
            .fetch_metadata(None, Duration::from_millis(500))
            .ok()
            .map(|md| {
                md.topics()
                    .iter()
                    .map(|t| (t.name().to_owned(), t.partitions().len()))
                    .collect::<BTreeMap<String, usize>>()
            });
        client.poll(Duration::ZERO);
        let fatal = client.context().0.lock().ok().and_then(|mut f| f.take());
        if let Some((code, reason)) = fatal {
            let reason = mask_secrets(&reason, properties);
            let protocol = setting("security.protocol", "plaintext");
            return Err(if code == RDKafkaErrorCode::Authentication {
                ConnectError::Credentials {
                    brokers: brokers.to_owned(),
                    user: setting("sasl.username", ""),
                    protocol,
                    mechanism: setting("sasl.mechanism", "GSSAPI"),
                    reason,
                }
            } else {
                ConnectError::Tls {
                    brokers: brokers.to_owned(),
                    protocol,
                    reason,
                }
            });
        }
        if let Some(topics) = answered {
            return Ok(topics);
        }
        if Instant::now() >= deadline {
            tracing::warn!(%brokers, waited = ?timeout, "no Kafka broker answered yet; going on, the clients wait for it");
            return Ok(BTreeMap::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_masked_and_others_kept() {
        let props: BTreeMap<String, String> = [
            ("sasl.username", "pulse"),
            ("sasl.password", "hunter22"),
            ("ssl.key.password", "k3y-pass"),
            ("security.protocol", "SASL_SSL"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let text = "user pulse with hunter22 over SASL_SSL, key k3y-pass";
        assert_eq!(
            mask_secrets(text, &props),
            "user pulse with *** over SASL_SSL, key ***"
        );
        assert!(is_secret_setting("sasl.oauthbearer.client.secret"));
        assert!(!is_secret_setting("sasl.username"));
    }
}
