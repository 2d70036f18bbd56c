//! One idempotent Kafka producer (`acks=all`) shared by every topic sink.
//!
//! Nothing is dropped silently: librdkafka retries delivery without a time
//! limit (`message.timeout.ms=0`) while the broker is away; a full local
//! queue is retried here with backoff and counted; a delivery that fails for
//! good is counted in `pulse_sink_errors_total{sink}` and logged. Everything
//! pending is flushed on shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::metrics::Metrics;

/// A Kafka client configuration with the given extra properties.
pub fn client_config(brokers: &str, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

/// Failures of the sink that stop a command.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot create the Kafka producer for {brokers}: {source}")]
    Create {
        brokers: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("messages still undelivered after flushing for {0:?}; the broker is unreachable")]
    Flush(Duration),
}

/// Counts delivery outcomes per sink name (carried as the message opaque).
struct Ctx {
    errors: Arc<AtomicU64>,
    metrics: Option<Arc<Mutex<Metrics>>>,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<&'static str>;

    fn delivery(&self, result: &DeliveryResult<'_>, sink: Self::DeliveryOpaque) {
        if let Err((e, _)) = result {
            self.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(sink = *sink, error = %e, "Kafka delivery failed");
            if let Some(m) = &self.metrics
                && let Ok(m) = m.lock()
            {
                m.sink_error(&sink);
            }
        }
    }
}

/// The shared producer.
#[derive(Clone)]
pub struct KafkaSink {
    producer: ThreadedProducer<Ctx>,
    errors: Arc<AtomicU64>,
    metrics: Option<Arc<Mutex<Metrics>>>,
}

impl KafkaSink {
    pub fn new(
        brokers: &str,
        properties: &BTreeMap<String, String>,
        metrics: Option<Arc<Mutex<Metrics>>>,
    ) -> Result<Self, SinkError> {
        let errors = Arc::new(AtomicU64::new(0));
        let mut config = client_config(brokers, properties);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000");
        let ctx = Ctx {
            errors: errors.clone(),
            metrics: metrics.clone(),
        };
        let producer = config
            .create_with_context(ctx)
            .map_err(|source| SinkError::Create {
                brokers: brokers.to_owned(),
                source,
            })?;
        Ok(Self {
            producer,
            errors,
            metrics,
        })
    }

    /// Sends one message; waits (with backoff, counted as retries) while
    /// the local queue is full.
    pub fn send(
        &self,
        sink: &'static str,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let mut h = OwnedHeaders::new_with_capacity(headers.len());
            for (k, v) in headers {
                h = h.insert(Header {
                    key: k,
                    value: Some(*v),
                });
            }
            let record = BaseRecord::with_opaque_to(topic, Box::new(sink))
                .key(key)
                .payload(payload)
                .headers(h);
            match self.producer.send(record) {
                Ok(()) => return,
                Err((e, _)) => {
                    if let Some(m) = &self.metrics
                        && let Ok(m) = m.lock()
                    {
                        m.sink_retry(sink);
                    }
                    tracing::debug!(sink, error = %e, "producer queue full; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Deliveries that failed for good.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Messages not yet delivered.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits until everything pending is delivered (or `limit` passes).
    pub fn flush(&self, limit: Duration) -> Result<(), SinkError> {
        self.producer
            .flush(limit)
            .map_err(|_| SinkError::Flush(limit))
    }
}
