//! One idempotent Kafka producer (`acks=all`) shared by every topic sink.
//!
//! Nothing is dropped silently: librdkafka retries delivery without a time
//! limit (`message.timeout.ms=0`) while the broker is away; a full local
//! queue is retried here with backoff and counted; a delivery that fails for
//! good is counted in `pulse_sink_errors_total{sink}` and logged. Everything
//! pending is flushed on shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::metrics::Metrics;

/// The largest message the producer sends (and the changelog accepts).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

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
    #[error("cannot send to {topic}: {source}")]
    Send { topic: String, source: KafkaError },
    #[error("Kafka transaction {step} failed: {source}")]
    Transaction {
        step: &'static str,
        source: KafkaError,
    },
}

impl SinkError {
    /// The transaction must be aborted (and the state rewound), after
    /// which work can go on.
    pub fn requires_abort(&self) -> bool {
        matches!(self, SinkError::Transaction { source, .. } if source_requires_abort(source))
    }

    /// The group refused the offsets: it no longer knows this member or
    /// generation (the consumer lost its session and has to rejoin).
    pub fn is_stale_member(&self) -> bool {
        let text = self.to_string();
        [
            "Unknown member",
            "Illegal generation",
            "rebalance in progress",
        ]
        .iter()
        .any(|m| text.contains(m))
    }

    /// The producer failed for good (fenced, or its transaction ended by
    /// the coordinator): only a new producer can go on.
    pub fn is_fatal(&self) -> bool {
        match self {
            SinkError::Transaction {
                source: KafkaError::Transaction(e),
                ..
            } => e.is_fatal(),
            // A send after the producer failed for good.
            SinkError::Send { source, .. } => {
                source.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal)
            }
            _ => false,
        }
    }

    /// Trying the same step again may work (the broker is away).
    pub fn is_retriable(&self) -> bool {
        match self {
            SinkError::Transaction {
                source: KafkaError::Transaction(e),
                ..
            } => e.is_retriable(),
            // Undelivered messages stay queued: flushing again may finish.
            SinkError::Flush(_) => true,
            // A commit flushes first: when the messages have not all gone
            // out in time (a slow or throttled broker), they are still
            // queued, and committing again goes on where it stopped.
            SinkError::Transaction {
                source: KafkaError::Flush(_),
                ..
            } => true,
            _ => false,
        }
    }
}

fn source_requires_abort(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.txn_requires_abort())
}

/// Counts delivery outcomes per sink name (carried as the message opaque).
struct Ctx {
    errors: Arc<AtomicU64>,
    metrics: Option<Arc<Mutex<Metrics>>>,
    /// Per partition, the offset after the last delivered message of the
    /// "state" sink (the changelog): where a local cache stands.
    state_ends: Arc<Mutex<std::collections::HashMap<i32, i64>>>,
    global_errors: super::ErrorLog,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        self.global_errors.report("producer", &error, reason);
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<&'static str>;

    fn delivery(&self, result: &DeliveryResult<'_>, sink: Self::DeliveryOpaque) {
        if let Ok(m) = result
            && *sink == "state"
            && let Ok(mut ends) = self.state_ends.lock()
        {
            use rdkafka::message::Message as _;
            let end = ends.entry(m.partition()).or_insert(0);
            *end = (*end).max(m.offset() + 1);
        }
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

/// The shared producer. Every clone sends through the same one, which can
/// be replaced after a fatal transaction error ([`KafkaSink::renew`]).
#[derive(Clone)]
pub struct KafkaSink {
    producer: Arc<RwLock<ThreadedProducer<Ctx>>>,
    /// What the producer was made with, to make it again.
    config: Arc<ClientConfig>,
    brokers: Arc<str>,
    errors: Arc<AtomicU64>,
    /// Messages accepted for sending.
    sent: Arc<AtomicU64>,
    metrics: Option<Arc<Mutex<Metrics>>>,
    state_ends: Arc<Mutex<std::collections::HashMap<i32, i64>>>,
}

impl KafkaSink {
    pub fn new(
        brokers: &str,
        properties: &BTreeMap<String, String>,
        metrics: Option<Arc<Mutex<Metrics>>>,
    ) -> Result<Self, SinkError> {
        Self::create(brokers, properties, metrics, None)
    }

    /// A transactional producer: every send belongs to the open transaction.
    pub fn transactional(
        brokers: &str,
        properties: &BTreeMap<String, String>,
        metrics: Option<Arc<Mutex<Metrics>>>,
        transactional_id: &str,
        transaction_timeout: Duration,
    ) -> Result<Self, SinkError> {
        Self::create(
            brokers,
            properties,
            metrics,
            Some((transactional_id, transaction_timeout)),
        )
    }

    fn create(
        brokers: &str,
        properties: &BTreeMap<String, String>,
        metrics: Option<Arc<Mutex<Metrics>>>,
        transactional: Option<(&str, Duration)>,
    ) -> Result<Self, SinkError> {
        let errors = Arc::new(AtomicU64::new(0));
        let mut config = client_config(brokers, properties);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            // Checkpoint records stay under 1 MB; the room is for the odd
            // large one (the changelog topic accepts the same).
            .set("message.max.bytes", MAX_MESSAGE_BYTES.to_string());
        match transactional {
            None => {
                config.set("message.timeout.ms", "0");
            }
            Some((id, timeout)) => {
                config
                    .set("transactional.id", id)
                    .set("transaction.timeout.ms", timeout.as_millis().to_string())
                    // Within a transaction a message may wait for the
                    // broker at most as long as the transaction lives.
                    .set("message.timeout.ms", timeout.as_millis().to_string());
            }
        }
        let state_ends = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let producer = Self::make(&config, brokers, &errors, &metrics, &state_ends)?;
        Ok(Self {
            producer: Arc::new(RwLock::new(producer)),
            config: Arc::new(config),
            brokers: brokers.into(),
            errors,
            sent: Arc::new(AtomicU64::new(0)),
            metrics,
            state_ends,
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
        if let Err(e) = self.send_to(sink, topic, None, key, Some(payload), headers) {
            self.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(sink, error = %e, "message refused by the producer");
            if let Some(m) = &self.metrics
                && let Ok(m) = m.lock()
            {
                m.sink_error(sink);
            }
        }
    }

    /// Sends one message to a given partition (or by key when `None`); a
    /// `None` payload is a tombstone.
    pub fn send_to(
        &self,
        sink: &'static str,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        payload: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<(), SinkError> {
        let mut backoff = Duration::from_millis(10);
        loop {
            let mut h = OwnedHeaders::new_with_capacity(headers.len());
            for (k, v) in headers {
                h = h.insert(Header {
                    key: k,
                    value: Some(*v),
                });
            }
            let mut record = BaseRecord::with_opaque_to(topic, Box::new(sink))
                .key(key)
                .headers(h);
            if let Some(p) = payload {
                record = record.payload(p);
            }
            if let Some(p) = partition {
                record = record.partition(p);
            }
            match self.p().send(record) {
                Ok(()) => {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err((e, _)) if e.rdkafka_error_code() != Some(RDKafkaErrorCode::QueueFull) => {
                    return Err(SinkError::Send {
                        topic: topic.to_owned(),
                        source: e,
                    });
                }
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

    fn make(
        config: &ClientConfig,
        brokers: &str,
        errors: &Arc<AtomicU64>,
        metrics: &Option<Arc<Mutex<Metrics>>>,
        state_ends: &Arc<Mutex<std::collections::HashMap<i32, i64>>>,
    ) -> Result<ThreadedProducer<Ctx>, SinkError> {
        let ctx = Ctx {
            errors: errors.clone(),
            metrics: metrics.clone(),
            state_ends: state_ends.clone(),
            global_errors: Default::default(),
        };
        config
            .create_with_context(ctx)
            .map_err(|source| SinkError::Create {
                brokers: brokers.to_owned(),
                source,
            })
    }

    fn p(&self) -> std::sync::RwLockReadGuard<'_, ThreadedProducer<Ctx>> {
        self.producer.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces a transactional producer left in a fatal state (for
    /// example its transaction was timed out by the coordinator while the
    /// broker was away): a new one registers the same transactional id and
    /// opens a transaction. What the old one held is gone; the caller
    /// rewinds its state to the last commit.
    pub fn renew(&self, timeout: Duration) -> Result<(), SinkError> {
        let fresh = Self::make(
            &self.config,
            &self.brokers,
            &self.errors,
            &self.metrics,
            &self.state_ends,
        )?;
        let step = |step: &'static str| move |source| SinkError::Transaction { step, source };
        fresh.init_transactions(timeout).map_err(step("init"))?;
        fresh.begin_transaction().map_err(step("begin"))?;
        let old = std::mem::replace(
            &mut *self.producer.write().unwrap_or_else(|e| e.into_inner()),
            fresh,
        );
        drop(old);
        Ok(())
    }

    /// Registers the transactional id with the broker (fencing any older
    /// producer with the same id, whose open transaction is aborted).
    pub fn init_transactions(&self, timeout: Duration) -> Result<(), SinkError> {
        self.p()
            .init_transactions(timeout)
            .map_err(|source| SinkError::Transaction {
                step: "init",
                source,
            })
    }

    pub fn begin(&self) -> Result<(), SinkError> {
        self.p()
            .begin_transaction()
            .map_err(|source| SinkError::Transaction {
                step: "begin",
                source,
            })
    }

    /// Adds the consumer offsets to the open transaction.
    pub fn send_offsets(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<(), SinkError> {
        self.p()
            .send_offsets_to_transaction(offsets, group, timeout)
            .map_err(|source| SinkError::Transaction {
                step: "send offsets",
                source,
            })
    }

    pub fn commit(&self, timeout: Duration) -> Result<(), SinkError> {
        self.p()
            .commit_transaction(timeout)
            .map_err(|source| SinkError::Transaction {
                step: "commit",
                source,
            })
    }

    pub fn abort(&self, timeout: Duration) -> Result<(), SinkError> {
        self.p()
            .abort_transaction(timeout)
            .map_err(|source| SinkError::Transaction {
                step: "abort",
                source,
            })
    }

    /// Messages accepted for sending so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Deliveries that failed for good.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Messages not yet delivered.
    pub fn in_flight(&self) -> i32 {
        self.p().in_flight_count()
    }

    /// The offset after the last delivered changelog ("state") record of
    /// a partition, once everything sent is delivered (after a commit).
    pub fn state_end(&self, partition: i32) -> Option<i64> {
        self.state_ends.lock().ok()?.get(&partition).copied()
    }

    /// Waits until everything pending is delivered (or `limit` passes).
    pub fn flush(&self, limit: Duration) -> Result<(), SinkError> {
        self.p().flush(limit).map_err(|_| SinkError::Flush(limit))
    }
}
