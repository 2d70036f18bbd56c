//! The Kafka source: one consumer of a consumer group. It hands messages
//! to the driver, reports partitions assigned and revoked, and commits
//! offsets when the driver asks (at-least-once); under exactly-once the
//! driver commits them in its transaction with this consumer's group
//! metadata. A hook runs inside the revocation callback, before the
//! partitions leave, so the driver can commit what it did with them.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::event::EventType;
use crate::metrics::Metrics;
use crate::sink::client_config;
use crate::window::table_name;

/// Failures that stop the source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot create the Kafka consumer for {brokers}: {source}")]
    Create {
        brokers: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot commit offsets: {0}")]
    Commit(rdkafka::error::KafkaError),
}

/// A topic-partition.
pub type TopicPartition = (String, i32);

/// Assignment changes for the driver.
#[derive(Debug, Clone)]
pub enum Change {
    Assigned(Vec<TopicPartition>),
    Revoked(Vec<TopicPartition>),
}

/// Runs inside the revocation callback with the partitions leaving and the
/// group metadata that is still valid then.
pub type RevokeHook = Box<dyn Fn(&[TopicPartition], Option<ConsumerGroupMetadata>) + Send + Sync>;

struct Ctx {
    /// Set while a waiting commit has the consumer polled on another
    /// thread: a revocation heard then must not run the hook (the commit
    /// holds the state it would commit).
    keeping_alive: Arc<AtomicBool>,
    changes: Arc<Mutex<Vec<Change>>>,
    on_revoke: Arc<Mutex<Option<RevokeHook>>>,
    metrics: Option<Arc<Mutex<Metrics>>>,
    global_errors: crate::sink::ErrorLog,
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for Ctx {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.global_errors.report("consumer", &error, reason);
    }

    fn stats(&self, stats: Statistics) {
        let Some(m) = &self.metrics else { return };
        let Ok(m) = m.lock() else { return };
        for (topic, t) in &stats.topics {
            for (p, s) in &t.partitions {
                if *p >= 0 && s.consumer_lag >= 0 {
                    m.set_consumer_lag(topic, *p, s.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions(tpl);
            if self.keeping_alive.load(Ordering::Relaxed) {
                // The waiting commit cannot cover them any more (the group
                // has moved on): it is fenced and the state rewinds, or it
                // completed first; either way their next owner restores the
                // last commit.
                tracing::warn!(
                    ?revoked,
                    "partitions revoked while a commit waits for the broker"
                );
            } else if let Ok(hook) = self.on_revoke.lock()
                && let Some(hook) = hook.as_ref()
            {
                hook(&revoked, consumer.group_metadata());
            }
            if let Ok(mut ch) = self.changes.lock() {
                ch.push(Change::Revoked(revoked));
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance
            && let Ok(mut ch) = self.changes.lock()
        {
            ch.push(Change::Assigned(partitions(tpl)));
        }
    }
}

/// The event type a topic is named after (`...signups`, `...deposits`).
fn type_of_topic(topic: &str) -> Option<EventType> {
    EventType::ALL
        .iter()
        .copied()
        .find(|t| topic.ends_with(table_name(*t)))
}

/// How long a commit may take before the consumer is paused and polled
/// beside it (well under any `max.poll.interval.ms`, whose floor is the
/// 10 s session timeout).
pub const KEEP_ALIVE_AFTER: Duration = Duration::from_secs(2);

/// One consumer of the group.
pub struct KafkaSource {
    consumer: BaseConsumer<Ctx>,
    keeping_alive: Arc<AtomicBool>,
    changes: Arc<Mutex<Vec<Change>>>,
    on_revoke: Arc<Mutex<Option<RevokeHook>>>,
    /// Dense input index per topic-partition (stable for the process).
    index: RefCell<HashMap<String, Vec<Option<usize>>>>,
    keys: RefCell<Vec<TopicPartition>>,
    fallback: HashMap<String, Option<EventType>>,
    pub topics: Vec<String>,
    /// The topic of erasure requests (co-partitioned with the inputs).
    pub erasure_topic: Option<String>,
    /// Scale-out: the partials topic (co-partitioned with the inputs).
    pub partials_topic: Option<String>,
    /// This instance's name: its client id, so the group's member list
    /// names it.
    pub instance: String,
    group: String,
    last_error: RefCell<Option<std::time::Instant>>,
}

impl KafkaSource {
    /// Joins the group and subscribes; `read_committed` when the topics
    /// may hold transactional writes (they always may: it costs nothing).
    pub fn new(
        cfg: &KafkaConfig,
        metrics: Option<Arc<Mutex<Metrics>>>,
    ) -> Result<Self, SourceError> {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let on_revoke = Arc::new(Mutex::new(None));
        let keeping_alive = Arc::new(AtomicBool::new(false));
        let ctx = Ctx {
            keeping_alive: keeping_alive.clone(),
            changes: changes.clone(),
            on_revoke: on_revoke.clone(),
            metrics,
            global_errors: Default::default(),
        };
        let instance = cfg.instance_id.clone().unwrap_or_else(|| "pulse".into());
        let mut cc = client_config(&cfg.brokers, &cfg.properties);
        cc.set("client.id", &instance);
        cc.set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("statistics.interval.ms", "1000")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // Keep a deep local queue so the engine never waits on a fetch.
            .set("queued.min.messages", "500000")
            .set("fetch.wait.max.ms", "50");
        let consumer: BaseConsumer<Ctx> =
            cc.create_with_context(ctx)
                .map_err(|source| SourceError::Create {
                    brokers: cfg.brokers.clone(),
                    source,
                })?;
        let erasure_topic = Some(cfg.erasure_topic.clone()).filter(|t| !t.is_empty());
        let partials_topic = cfg.partials_topic.clone().filter(|t| !t.is_empty());
        let mut topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        topics.extend(erasure_topic.as_deref());
        topics.extend(partials_topic.as_deref());
        consumer
            .subscribe(&topics)
            .map_err(|source| SourceError::Subscribe {
                topics: cfg.topics.clone(),
                source,
            })?;
        let fallback = cfg
            .topics
            .iter()
            .map(|t| {
                let ty = if cfg.type_from_topic {
                    type_of_topic(t)
                } else {
                    None
                };
                (t.clone(), ty)
            })
            .collect();
        Ok(Self {
            consumer,
            keeping_alive,
            changes,
            on_revoke,
            index: RefCell::new(HashMap::new()),
            keys: RefCell::new(Vec::new()),
            fallback,
            topics: cfg.topics.clone(),
            erasure_topic,
            partials_topic,
            instance,
            group: cfg.group.clone(),
            last_error: RefCell::new(None),
        })
    }

    /// Sets the hook run when partitions are revoked.
    pub fn on_revoke(&self, hook: RevokeHook) {
        if let Ok(mut h) = self.on_revoke.lock() {
            *h = Some(hook);
        }
    }

    /// Assignment changes since the last call.
    pub fn take_changes(&self) -> Vec<Change> {
        self.changes
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    /// The dense input index of a topic-partition.
    pub fn input(&self, topic: &str, partition: i32) -> usize {
        let p = partition.max(0) as usize;
        let mut index = self.index.borrow_mut();
        if let Some(Some(i)) = index.get(topic).and_then(|v| v.get(p)) {
            return *i;
        }
        let mut keys = self.keys.borrow_mut();
        keys.push((topic.to_owned(), partition));
        let slots = index.entry(topic.to_owned()).or_default();
        if p >= slots.len() {
            slots.resize(p + 1, None);
        }
        slots[p] = Some(keys.len() - 1);
        keys.len() - 1
    }

    /// The topic-partition of an input index.
    pub fn key(&self, input: usize) -> Option<TopicPartition> {
        self.keys.borrow().get(input).cloned()
    }

    /// True for the topic of erasure requests.
    pub fn is_erasure(&self, topic: &str) -> bool {
        self.erasure_topic.as_deref() == Some(topic)
    }

    /// The group's members: client id and the partitions of `topic` each
    /// holds (empty when the group cannot be described in `timeout`).
    pub fn members(&self, topic: &str, timeout: Duration) -> Vec<(String, Vec<i32>)> {
        let Ok(list) = self.consumer.fetch_group_list(Some(&self.group), timeout) else {
            return Vec::new();
        };
        list.groups()
            .iter()
            .flat_map(|g| g.members())
            .map(|m| {
                let partitions = m
                    .assignment()
                    .and_then(parse_assignment)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(t, _)| t == topic)
                    .flat_map(|(_, ps)| ps)
                    .collect();
                (m.client_id().to_owned(), partitions)
            })
            .collect()
    }

    /// True for the partials topic of scale-out.
    pub fn is_partials(&self, topic: &str) -> bool {
        self.partials_topic.as_deref() == Some(topic)
    }

    /// The event type of messages without one on `topic`.
    pub fn fallback_type(&self, topic: &str) -> Option<EventType> {
        self.fallback.get(topic).copied().flatten()
    }

    /// The next message, waiting at most `timeout`. Errors (the broker
    /// away) are retried by librdkafka; they are logged at most every few
    /// seconds. Errors queued while the thread was busy elsewhere (a
    /// commit waiting out an outage queues hundreds) are drained at once,
    /// not one per call: the rebalance behind them must not wait.
    pub fn poll(&self, timeout: Duration) -> Option<BorrowedMessage<'_>> {
        // The usual case first, without reading the clock for a deadline
        // (two clock reads per message were a few percent of `pulse run`).
        match self.consumer.poll(timeout) {
            Some(Ok(m)) => return Some(m),
            None => return None,
            Some(Err(e)) => self.log_error(&e),
        }
        let until = std::time::Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.consumer.poll(left) {
                Some(Ok(m)) => return Some(m),
                Some(Err(e)) => {
                    self.log_error(&e);
                    if left.is_zero() {
                        return None;
                    }
                }
                None => return None,
            }
        }
    }

    /// Logs a consumer error, at most one every few seconds.
    fn log_error(&self, e: &rdkafka::error::KafkaError) {
        let mut last = self.last_error.borrow_mut();
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            tracing::warn!(error = %e, "Kafka consumer error; retrying");
            *last = Some(std::time::Instant::now());
        }
    }

    /// Runs `f` (a commit) on this thread. Should it take longer than
    /// [`KEEP_ALIVE_AFTER`] (a slow or absent broker), a second thread
    /// pauses every assigned partition and polls the consumer until `f`
    /// returns, so the group membership outlives the wait
    /// (`max.poll.interval.ms`) while nothing is consumed. A message
    /// delivered anyway (fetched before the pause) is not handed on: its
    /// partition is sought back to it when the partitions resume. Commits
    /// that finish in time never touch the consumer.
    pub fn while_waiting<R>(&self, f: impl FnOnce() -> R) -> R {
        let (consumer, flag) = (&self.consumer, &*self.keeping_alive);
        let done = (Mutex::new(false), Condvar::new());
        let unread: Mutex<BTreeMap<TopicPartition, i64>> = Mutex::new(BTreeMap::new());
        // What the keep-alive paused: resumed as such afterwards, whatever
        // the assignment is by then (librdkafka keeps a partition's pause
        // across a revocation and a new assignment).
        let paused: Mutex<Option<TopicPartitionList>> = Mutex::new(None);
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                let Ok(g) = done.0.lock() else { return };
                let Ok((g, _)) = done.1.wait_timeout_while(g, KEEP_ALIVE_AFTER, |d| !*d) else {
                    return;
                };
                if *g {
                    return;
                }
                drop(g);
                let list = consumer.assignment().unwrap_or_default();
                if let Err(e) = consumer.pause(&list) {
                    tracing::warn!(error = %e, "cannot pause the consumer while a commit waits");
                    return;
                }
                if let Ok(mut p) = paused.lock() {
                    *p = Some(list);
                }
                flag.store(true, Ordering::Relaxed);
                tracing::info!(
                    "a commit is waiting for the broker: consumer paused and polled to keep the group membership"
                );
                while !done.0.lock().map_or(true, |d| *d) {
                    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200))
                        && let Ok(mut u) = unread.lock()
                    {
                        let at = u
                            .entry((m.topic().to_owned(), m.partition()))
                            .or_insert(m.offset());
                        *at = (*at).min(m.offset());
                    }
                }
                flag.store(false, Ordering::Relaxed);
            });
            let r = f();
            if let Ok(mut d) = done.0.lock() {
                *d = true;
            }
            done.1.notify_all();
            r
        });
        if let Some(list) = paused.into_inner().ok().flatten() {
            if let Err(e) = self.consumer.resume(&list) {
                tracing::warn!(error = %e, "cannot resume the consumer after a commit wait");
            }
            for (key, offset) in unread.into_inner().unwrap_or_default() {
                self.seek(&key, offset);
            }
            tracing::info!("the commit is done: consumer resumed");
        }
        r
    }

    /// The key and headers of a message, as the dead-letter sink keeps them.
    pub fn headers<'m>(m: &'m BorrowedMessage<'_>) -> Vec<(&'m str, &'m [u8])> {
        m.headers()
            .map(|h| {
                h.iter()
                    .map(|x| (x.key, x.value.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The group metadata for a transaction's offsets.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// Offsets as a list for a commit.
    pub fn offset_list(offsets: &[(TopicPartition, i64)]) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for ((topic, p), off) in offsets {
            if list
                .add_partition_offset(topic, *p, Offset::Offset(*off))
                .is_err()
            {
                tracing::warn!(topic, partition = p, "cannot list an offset to commit");
            }
        }
        list
    }

    /// Commits offsets through the group (at-least-once).
    pub fn commit(&self, offsets: &[(TopicPartition, i64)], sync: bool) -> Result<(), SourceError> {
        let list = Self::offset_list(offsets);
        if list.count() == 0 {
            return Ok(());
        }
        let mode = if sync {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        self.consumer
            .commit(&list, mode)
            .map_err(SourceError::Commit)
    }

    /// Moves the read position of a partition (after a restore).
    pub fn seek(&self, key: &TopicPartition, offset: i64) {
        if let Err(e) = self.consumer.seek(
            &key.0,
            key.1,
            Offset::Offset(offset),
            Duration::from_secs(10),
        ) {
            tracing::warn!(topic = %key.0, partition = key.1, error = %e, "seek failed");
        }
    }

    /// The read position of a partition (past control records too).
    pub fn position(&self, key: &TopicPartition) -> Option<i64> {
        let pos = self.consumer.position().ok()?;
        match pos.find_partition(&key.0, key.1)?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    }

    /// The end offset of a partition (`None` when the broker does not say).
    pub fn end_offset(&self, key: &TopicPartition) -> Option<i64> {
        self.consumer
            .fetch_watermarks(&key.0, key.1, Duration::from_secs(5))
            .ok()
            .map(|(_, high)| high)
    }

    /// The committed offset of each of `keys` (`None` when none).
    pub fn committed(&self, keys: &[TopicPartition]) -> Vec<Option<i64>> {
        self.committed_lookup(keys)
            .unwrap_or_else(|| vec![None; keys.len()])
    }

    /// The group's committed offsets (`None` inside: nothing committed), or
    /// `None` when the broker did not answer.
    pub fn committed_lookup(&self, keys: &[TopicPartition]) -> Option<Vec<Option<i64>>> {
        let mut list = TopicPartitionList::new();
        for (t, p) in keys {
            list.add_partition(t, *p);
        }
        let got = self
            .consumer
            .committed_offsets(list, Duration::from_secs(10))
            .ok()?;
        Some(
            keys.iter()
                .map(|(t, p)| {
                    got.find_partition(t, *p).and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                })
                .collect(),
        )
    }

    /// The number of partitions of a topic.
    pub fn partition_count(&self, topic: &str) -> Option<usize> {
        let md = self
            .consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .ok()?;
        md.topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
            .filter(|n| *n > 0)
    }
}

/// The topic-partitions of a consumer protocol assignment (Kafka's
/// `ConsumerProtocolAssignment`: version, then per topic its name and
/// partitions; user data after them is not read).
fn parse_assignment(b: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut at = 2; // version
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = b.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let int32 = |s: &[u8]| i32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    let topics = int32(take(4)?);
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let name = String::from_utf8(take(len.max(0) as usize)?.to_vec()).ok()?;
        let n = int32(take(4)?);
        let mut ps = Vec::new();
        for _ in 0..n.max(0) {
            ps.push(int32(take(4)?));
        }
        out.push((name, ps));
    }
    Some(out)
}

#[cfg(test)]
mod assignment_tests {
    #[test]
    fn an_assignment_reads_back() {
        let mut b = vec![0, 1];
        b.extend(2_i32.to_be_bytes());
        for (t, ps) in [("in", vec![0_i32, 2]), ("g.partials", vec![0, 2])] {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1_i32).to_be_bytes());
        assert_eq!(
            super::parse_assignment(&b),
            Some(vec![
                ("in".into(), vec![0, 2]),
                ("g.partials".into(), vec![0, 2])
            ])
        );
        assert_eq!(super::parse_assignment(&b[..9]), None);
    }
}
