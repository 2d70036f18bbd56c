//! The driver's side of Kafka: the changelog topic that holds each shard's
//! state, restores when partitions are assigned, and commits.
//!
//! Exactly-once: one transaction per commit cycle holds every output sent
//! since the previous one (KPI rows, alerts, dead letters, late events),
//! the changelog records of what changed, and the consumer offsets with the
//! group metadata (so a zombie instance is fenced). A revoked partition is
//! committed inside the revocation callback, before it leaves. A commit
//! that must be aborted rewinds the state to the last committed one.
//!
//! At-least-once: outputs are sent as produced, the changelog written and
//! flushed, then offsets committed through the group; state restores to
//! the offsets its checkpoint names, so only outputs may repeat.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use super::core::Core;
use crate::sink::{KafkaSink, SinkError, client_config};
use crate::source::{Change, KafkaSource, TopicPartition};
use crate::state::{
    Cached, Global, InputMeta, LocalCache, Record, RestoreError, checkpoint_shards, restore_shard,
};

/// Failures of the Kafka side that stop the service.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error("cannot read the changelog {topic} partition {partition}: {message}")]
    Changelog {
        topic: String,
        partition: i32,
        message: String,
    },
    #[error("cannot create topic {topic}: {message}")]
    CreateTopic { topic: String, message: String },
    #[error("topic {topic} has {has} partition(s) and the input {want}: {why}")]
    PartitionCount {
        topic: String,
        has: usize,
        want: usize,
        why: &'static str,
    },
    #[error(
        "input partition {partition} of {topic} is beyond the {max} partitions one instance can hold"
    )]
    TooManyPartitions {
        topic: String,
        partition: i32,
        max: u32,
    },
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(
        "cannot read the committed offset of {topic} partition {partition} to rewind to; stopping rather than skip the events of the aborted transaction"
    )]
    CommittedUnknown { topic: String, partition: i32 },
}

/// The delivery guarantee of `pulse run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    ExactlyOnce,
    AtLeastOnce,
}

/// Where state lives and how commits go.
#[derive(Debug, Clone)]
pub struct StateSettings {
    pub brokers: String,
    pub properties: BTreeMap<String, String>,
    /// The compacted changelog topic (`<group>.state`).
    pub topic: String,
    /// Replication factor when the topic is created.
    pub replication: i32,
    pub delivery: Delivery,
    /// Wall-clock time between commits.
    pub commit_every: Duration,
    /// How long a commit step may wait for the broker.
    pub timeout: Duration,
    /// `[state] dir`: the local cache of the changelog.
    pub cache_dir: Option<std::path::PathBuf>,
}

/// Kafka state of the core: shared with the revocation callback.
pub struct KafkaDurability {
    pub settings: StateSettings,
    /// The producer of every output (transactional under exactly-once).
    pub producer: KafkaSink,
    /// The local cache of the changelog, when `[state] dir` is set.
    cache: Option<LocalCache>,
    /// Bytes of state read from the local cache on restores.
    pub cached_bytes: u64,
    /// Topic-partition of each engine input.
    pub names: Vec<Option<TopicPartition>>,
    /// Shards whose state this instance holds.
    owned: BTreeSet<u32>,
    /// Shards revoked and committed, kept until the next assignment says
    /// whether they stay; with where their inputs stood.
    parked: BTreeSet<u32>,
    parked_inputs: BTreeMap<usize, (i64, Option<i64>)>,
    /// A commit failed and was aborted: restore every shard.
    rewind: bool,
    /// A commit was refused because the group no longer knows this
    /// member (it lost its session, e.g. in a broker outage): periodic
    /// commits wait until the group assigns partitions again (or a
    /// session timeout passes), so the consumer can rejoin instead of
    /// the loop aborting commit after commit.
    hold_commits_until: Option<Instant>,
    /// When the producer was made anew after fatal errors (recent ones).
    renewals: Vec<Instant>,
    /// Restoring: not ready.
    pub restoring: bool,
    /// A commit is waiting for the broker (retrying): not ready.
    pub failing: bool,
    last_commit: Instant,
    /// Figures of the last restore and commit, for metrics and the report.
    pub restore_seconds: f64,
    pub restored_bytes: u64,
    pub checkpoint_bytes: u64,
    pub commits: u64,
    pub longest_commit: Duration,
    pub corrupt_records: u64,
    /// The final commit was made: nothing more to commit.
    closed: bool,
    /// Messages sent and offsets at the last commit (to skip empty ones).
    sent_at_commit: u64,
    offsets_at_commit: Vec<(TopicPartition, i64)>,
}

impl KafkaDurability {
    /// Sets up the producer (and, under exactly-once, registers its
    /// transactional id, fencing an older instance with the same id) and
    /// creates the changelog topic when missing.
    pub fn new(
        settings: StateSettings,
        producer: KafkaSink,
        partitions: usize,
    ) -> Result<Self, KafkaError> {
        create_changelog(&settings, partitions)?;
        let cache =
            match &settings.cache_dir {
                Some(dir) => Some(LocalCache::open(dir, &settings.topic).map_err(|e| {
                    KafkaError::Changelog {
                        topic: settings.topic.clone(),
                        partition: -1,
                        message: format!(
                            "cannot use the state cache folder {}: {e}",
                            dir.display()
                        ),
                    }
                })?),
                None => None,
            };
        if settings.delivery == Delivery::ExactlyOnce {
            producer.init_transactions(settings.timeout)?;
            producer.begin()?;
        }
        Ok(Self {
            settings,
            producer,
            cache,
            cached_bytes: 0,
            names: Vec::new(),
            owned: BTreeSet::new(),
            parked: BTreeSet::new(),
            parked_inputs: BTreeMap::new(),
            rewind: false,
            hold_commits_until: None,
            renewals: Vec::new(),
            restoring: false,
            failing: false,
            last_commit: Instant::now(),
            restore_seconds: 0.0,
            restored_bytes: 0,
            checkpoint_bytes: 0,
            commits: 0,
            longest_commit: Duration::ZERO,
            corrupt_records: 0,
            closed: false,
            sent_at_commit: 0,
            offsets_at_commit: Vec::new(),
        })
    }

    fn name(&self, input: usize) -> (String, i32) {
        self.names.get(input).cloned().flatten().unwrap_or_default()
    }
}

fn lock(core: &Mutex<Core>) -> std::sync::MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates the compacted changelog topic unless it exists.
fn create_changelog(s: &StateSettings, partitions: usize) -> Result<(), KafkaError> {
    let max_bytes = crate::sink::MAX_MESSAGE_BYTES.to_string();
    let admin = Admin {
        brokers: &s.brokers,
        properties: &s.properties,
        replication: s.replication,
        timeout: s.timeout,
    };
    create_topic(
        &admin,
        &s.topic,
        (partitions, Need::AtLeast(CHANGELOG_TOO_SMALL)),
        &[
            ("cleanup.policy", "compact"),
            ("max.message.bytes", &max_bytes),
            ("min.compaction.lag.ms", "0"),
            ("segment.ms", "600000"),
            ("max.compaction.lag.ms", "3600000"),
        ],
    )
}

/// Creates the erasure topic unless it exists, co-partitioned with the
/// inputs (request copies go to every partition; each reaches the shard
/// of its number).
pub fn create_erasure_topic(
    admin: &Admin<'_>,
    topic: &str,
    partitions: usize,
) -> Result<(), KafkaError> {
    create_topic(
        admin,
        topic,
        (partitions, Need::EqualOrWarn(ERASURE_MISMATCH)),
        &[],
    )
}

/// Creates the partials topic of scale-out unless it exists,
/// co-partitioned with the inputs. Partials are read once merged and
/// checkpointed, so a week's retention is ample.
pub fn create_partials_topic(
    admin: &Admin<'_>,
    topic: &str,
    partitions: usize,
) -> Result<(), KafkaError> {
    let max_bytes = crate::sink::MAX_MESSAGE_BYTES.to_string();
    create_topic(
        admin,
        topic,
        (partitions, Need::Equal(PARTIALS_MISMATCH)),
        &[
            ("retention.ms", "604800000"),
            ("max.message.bytes", &max_bytes),
        ],
    )
}

/// How to reach the brokers to create topics.
pub struct Admin<'a> {
    pub brokers: &'a str,
    pub properties: &'a BTreeMap<String, String>,
    pub replication: i32,
    pub timeout: Duration,
}

/// What an existing topic's partition count must be, against the inputs',
/// and what to do when it is not.
#[derive(Debug, Clone, Copy)]
enum Need {
    AtLeast(&'static str),
    Equal(&'static str),
    /// Equal, or a warning: a topic several groups may share.
    EqualOrWarn(&'static str),
}

const CHANGELOG_TOO_SMALL: &str = "the state of input partition p lives in changelog partition p, so it needs at least as many; the inputs grew since the group was checkpointed, and Pulse cannot move state between partitions: start the group afresh (a new --group, or [state] topic) and replay the inputs";
const PARTIALS_MISMATCH: &str = "scale-out pairs partials partition k with input partition k, so the counts must be equal; the topic holds only partials in flight: stop every instance of the group, delete it (pulse run makes it anew), or name another with [kafka] partials_topic";
const ERASURE_MISMATCH: &str = "an erasure request reaches the state of its partition's number, so with several instances a request may miss the instance holding its trader; give this group an erasure topic of its own with [kafka] erasure_topic";

/// Creates `topic` with `partitions` and `configs` unless it exists; an
/// existing one must have the partition count `need` says, or the start
/// stops with what to do.
fn create_topic(
    s: &Admin<'_>,
    topic: &str,
    (partitions, need): (usize, Need),
    configs: &[(&str, &str)],
) -> Result<(), KafkaError> {
    let fail = |message: String| KafkaError::CreateTopic {
        topic: topic.to_owned(),
        message,
    };
    let admin: AdminClient<DefaultClientContext> = client_config(s.brokers, s.properties)
        .create()
        .map_err(|e| fail(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut new = NewTopic::new(
        topic,
        partitions.max(1) as i32,
        TopicReplication::Fixed(s.replication),
    );
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(s.timeout));
    let result = rt
        .block_on(admin.create_topics([&new], &opts))
        .map_err(|e| fail(e.to_string()))?;
    for r in result {
        match r {
            Ok(_) => tracing::info!(%topic, partitions, "topic created"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                let md = admin
                    .inner()
                    .fetch_metadata(Some(topic), s.timeout)
                    .map_err(|e| fail(e.to_string()))?;
                let has = md
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map_or(0, |t| t.partitions().len());
                let want = partitions.max(1);
                let (ok, why) = match need {
                    Need::AtLeast(why) => (has >= want, why),
                    Need::Equal(why) => (has == want, why),
                    Need::EqualOrWarn(why) => {
                        if has > 0 && has != want {
                            tracing::warn!(%topic, has, want, "{why}");
                        }
                        (true, why)
                    }
                };
                // 0: the broker has not said yet; the clients will.
                if has > 0 && !ok {
                    return Err(KafkaError::PartitionCount {
                        topic: topic.to_owned(),
                        has,
                        want,
                        why,
                    });
                }
            }
            Err((_, code)) => return Err(fail(code.to_string())),
        }
    }
    Ok(())
}

/// The restore consumer's context: the end of a partition is what a
/// restore waits for, not an error to log (librdkafka also reports it as a
/// global error).
struct RestoreContext;

impl rdkafka::ClientContext for RestoreContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(%reason, "changelog partition read to its end");
        } else {
            tracing::error!(error = %error, %reason, "changelog restore consumer");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for RestoreContext {}

/// What a restore read of one changelog partition gives: the latest value
/// of every key, and the offset the partition ended at.
struct ReadBack {
    records: Vec<Record>,
    end: i64,
    /// The local cache was used (its records, then the changelog after it).
    cached: Option<u64>,
}

/// Reads partitions of the changelog to their ends (committed records
/// only), all at once: the latest value of every key, per partition. A
/// partition with a usable local cache starts from the cache's records and
/// reads the changelog only after the cache's offset. `lag` hears how many
/// records are still to read as the restore goes on.
fn read_changelog(
    s: &StateSettings,
    partitions: &[u32],
    mut cached: BTreeMap<u32, Cached>,
    lag: &dyn Fn(i64),
) -> Result<BTreeMap<u32, ReadBack>, KafkaError> {
    let mut out: BTreeMap<u32, ReadBack> = BTreeMap::new();
    if partitions.is_empty() {
        return Ok(out);
    }
    let err = |partition: u32, message: String| KafkaError::Changelog {
        topic: s.topic.clone(),
        partition: partition as i32,
        message,
    };
    let first = partitions[0];
    let mut cc = client_config(&s.brokers, &s.properties);
    cc.set("group.id", format!("{}.restore", s.topic))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "104857600")
        .set("max.partition.fetch.bytes", "16777216")
        // The end of a partition is what a restore waits for: hear it at once.
        .set("fetch.wait.max.ms", "10")
        // As the group's consumer: a `max.poll.interval.ms` the user lowers
        // for it must stay valid here too (it may not be below this).
        .set("session.timeout.ms", "10000");
    let consumer: BaseConsumer<RestoreContext> = cc
        .create_with_context(RestoreContext)
        .map_err(|e| err(first, e.to_string()))?;
    // Where each partition ends and where the read stands, for the lag
    // (an estimate: the end counts transaction markers too; an end of
    // partition sets it to zero).
    let mut ends: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let end = consumer
            .fetch_watermarks(&s.topic, p as i32, s.timeout)
            .map(|(_, high)| high)
            .unwrap_or(0);
        // A cache ahead of the changelog belongs to another changelog
        // (the topic was made anew): it is not used.
        if cached.get(&p).is_some_and(|c| c.next_offset > end) {
            tracing::warn!(topic = %s.topic, partition = p, "local state cache is ahead of the changelog; reading the changelog from the beginning");
            cached.remove(&p);
        }
        let from = cached.get(&p).map_or(0, |c| c.next_offset);
        ends.insert(p, (end, from));
        let offset = if from > 0 {
            Offset::Offset(from)
        } else {
            Offset::Beginning
        };
        tpl.add_partition_offset(&s.topic, p as i32, offset)
            .map_err(|e| err(p, e.to_string()))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| err(first, e.to_string()))?;
    let remaining = |ends: &BTreeMap<u32, (i64, i64)>| -> i64 {
        ends.values().map(|(end, at)| (end - at).max(0)).sum()
    };
    let total = remaining(&ends);
    lag(total);
    let mut last_report = Instant::now();
    // The cached records first; the changelog after them overwrites.
    // (partition, key) -> (value, changelog offset; None: from the cache)
    type Latest = BTreeMap<(u32, Vec<u8>), (Vec<u8>, Option<i64>)>;
    let mut latest = Latest::new();
    let mut used: BTreeMap<u32, u64> = BTreeMap::new();
    for (p, c) in cached {
        used.insert(p, c.bytes);
        for (k, v) in c.records {
            latest.insert((p, k), (v, None));
        }
    }
    let mut open: BTreeSet<u32> = partitions.iter().copied().collect();
    let deadline = Instant::now() + s.timeout.max(Duration::from_secs(60));
    while !open.is_empty() {
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let left = remaining(&ends);
            lag(left);
            tracing::info!(
                topic = %s.topic,
                read = total - left,
                total,
                "restoring state from the changelog"
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                if let Some(e) = ends.get_mut(&(m.partition() as u32)) {
                    e.1 = m.offset() + 1;
                }
                let key = (m.partition() as u32, m.key().unwrap_or_default().to_vec());
                match m.payload() {
                    Some(v) => {
                        latest.insert(key, (v.to_vec(), Some(m.offset())));
                    }
                    None => {
                        latest.remove(&key);
                    }
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&(p as u32));
                if let Some(e) = ends.get_mut(&(p as u32)) {
                    e.1 = e.1.max(e.0);
                }
            }
            Some(Err(e)) => {
                if Instant::now() > deadline {
                    return Err(err(first, e.to_string()));
                }
                tracing::warn!(error = %e, "changelog read error; retrying");
            }
            None => {
                if Instant::now() > deadline {
                    return Err(err(
                        open.first().copied().unwrap_or(first),
                        "no end of partition in time".into(),
                    ));
                }
            }
        }
    }
    lag(0);
    for &p in partitions {
        out.insert(
            p,
            ReadBack {
                records: Vec::new(),
                end: ends.get(&p).map_or(0, |e| e.1),
                cached: used.get(&p).copied(),
            },
        );
    }
    for ((p, key), (value, offset)) in latest {
        if let Some(r) = out.get_mut(&p) {
            r.records.push(Record { key, value, offset });
        }
    }
    Ok(out)
}

/// Applies assignment changes: revoked partitions leave (their shards are
/// parked: committed and still in memory), assigned ones join, restored
/// from the changelog unless this instance holds their state already.
pub fn sync(k: &KafkaSource, core: &Arc<Mutex<Core>>) -> Result<(), KafkaError> {
    let changes = k.take_changes();
    let rewind = lock(core).kafka.as_ref().is_some_and(|d| d.rewind);
    if changes.is_empty() && !rewind {
        return Ok(());
    }
    let mut g = lock(core);
    let core = &mut *g;
    let Some(d) = core.kafka.as_mut() else {
        return Ok(());
    };
    if std::mem::take(&mut d.rewind) {
        // Everything since the last commit was aborted: start again from
        // the committed state of every shard held.
        let owned: Vec<u32> = d.owned.iter().copied().collect();
        d.owned.clear();
        d.parked.clear();
        d.parked_inputs.clear();
        let assigned: Vec<TopicPartition> = d.names.iter().flatten().cloned().collect();
        for s in owned {
            core.engine.drop_shard(s);
        }
        for (i, n) in d.names.iter_mut().enumerate() {
            if n.take().is_some() {
                core.engine.close_input(i);
            }
        }
        assign(k, core, &assigned, true)?;
    }
    for change in changes {
        match change {
            Change::Revoked(ps) => {
                let Some(d) = core.kafka.as_mut() else {
                    return Ok(());
                };
                for (topic, p) in &ps {
                    let input = k.input(topic, *p);
                    if let Some(Some(x)) = core.engine.inputs.get(input) {
                        let max = core.engine.watermarks.max_of(input);
                        d.parked_inputs.insert(input, (x.next_offset, max));
                    }
                    core.engine.close_input(input);
                    if let Some(n) = d.names.get_mut(input) {
                        *n = None;
                    }
                    d.parked.insert(*p as u32);
                    core.engine.park_shard(*p as u32, true);
                }
            }
            Change::Assigned(ps) => {
                if let Some(d) = core.kafka.as_mut() {
                    d.hold_commits_until = None;
                }
                assign(k, core, &ps, false)?
            }
        }
    }
    Ok(())
}

/// Takes in newly assigned partitions; with `rewind`, partitions held
/// already are read again from their committed offsets.
fn assign(
    k: &KafkaSource,
    core: &mut Core,
    ps: &[TopicPartition],
    rewind: bool,
) -> Result<(), KafkaError> {
    let started = Instant::now();
    let Some(d) = core.kafka.as_mut() else {
        return Ok(());
    };
    // Shards are the input partitions; the erasure topic's partitions
    // join the shard of their number (co-partitioned) but make none.
    let wanted: BTreeSet<u32> = ps
        .iter()
        .filter(|(t, _)| !k.is_erasure(t))
        .map(|(_, p)| *p as u32)
        .collect();
    if let Some((topic, p)) = ps
        .iter()
        .find(|(_, p)| *p < 0 || *p as u32 >= crate::event::MAX_SHARDS)
    {
        return Err(KafkaError::TooManyPartitions {
            topic: topic.clone(),
            partition: *p,
            max: crate::event::MAX_SHARDS,
        });
    }
    let mut parked = std::mem::take(&mut d.parked);
    let parked_inputs = std::mem::take(&mut d.parked_inputs);
    // Parked shards not assigned again now belong to another instance;
    // those another instance advanced meanwhile are stale: read again.
    let stale = advanced_elsewhere(k, &parked, &wanted, &parked_inputs);
    let leaving: Vec<u32> = parked.difference(&wanted).chain(&stale).copied().collect();
    for s in &stale {
        tracing::info!(
            shard = s,
            "a parked shard was advanced by another instance meanwhile; restoring it"
        );
        parked.remove(s);
    }
    let exactly_once = d.settings.delivery == Delivery::ExactlyOnce;
    let settings = d.settings.clone();
    for s in leaving {
        core.engine.drop_shard(s);
        if let Some(d) = core.kafka.as_mut() {
            d.owned.remove(&s);
        }
    }
    // Kept ones go on from where they were parked.
    for &s in &wanted {
        core.engine.park_shard(s, false);
    }
    let mut metas: BTreeMap<u32, Vec<InputMeta>> = BTreeMap::new();
    let to_restore: Vec<u32> = wanted
        .iter()
        .copied()
        .filter(|&s| {
            let held = core.kafka.as_ref().is_some_and(|d| d.owned.contains(&s));
            !(held
                && (parked.contains(&s)
                    || core
                        .engine
                        .shards
                        .get(s as usize)
                        .is_some_and(Option::is_some)))
        })
        .collect();
    if !to_restore.is_empty() {
        if let Some(d) = core.kafka.as_mut() {
            d.restoring = true;
        }
        core.publish(false);
    }
    let metrics = core.sinks.metrics.clone();
    let lag = |records: i64| {
        if let Some(m) = &metrics
            && let Ok(m) = m.lock()
        {
            m.set_restore_lag(records);
        }
    };
    let cache = core.kafka.as_ref().and_then(|d| d.cache.clone());
    let mut cached = BTreeMap::new();
    if let Some(c) = &cache {
        for &s in &to_restore {
            match c.load(s) {
                Ok(Some(x)) => {
                    cached.insert(s, x);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(partition = s, error = %e, "local state cache unreadable; reading the changelog")
                }
            }
        }
    }
    let mut read = read_changelog(&settings, &to_restore, cached, &lag)?;
    for s in to_restore {
        let ReadBack {
            records,
            end,
            cached,
        } = read.remove(&s).unwrap_or(ReadBack {
            records: Vec::new(),
            end: 0,
            cached: None,
        });
        if let Some(c) = &cache
            && let Err(e) = c.rewrite(
                s,
                records
                    .iter()
                    .map(|r| (r.key.as_slice(), r.value.as_slice())),
                end,
            )
        {
            tracing::warn!(partition = s, error = %e, "cannot write the local state cache");
        }
        let from_changelog: usize = records
            .iter()
            .filter(|r| r.offset.is_some())
            .map(|r| r.key.len() + r.value.len())
            .sum();
        let restored = restore_shard(&mut core.engine, s, records)?;
        for c in &restored.corrupt {
            tracing::error!(
                topic = %settings.topic,
                partition = c.shard,
                offset = ?c.offset,
                key = %c.key,
                error = %c.error,
                "corrupted changelog record skipped"
            );
        }
        if let Some(gl) = restored.global {
            merge_global(core, gl, rewind);
        }
        tracing::info!(
            shard = s,
            traders = restored.traders,
            bytes = restored.bytes,
            from_changelog,
            from_cache = ?cached,
            released = ?restored.released,
            "shard restored"
        );
        if let Some(d) = core.kafka.as_mut() {
            d.owned.insert(s);
            d.restored_bytes += from_changelog as u64;
            d.cached_bytes += cached.unwrap_or(0);
            d.corrupt_records += restored.corrupt.len() as u64;
        }
        metas.insert(s, restored.inputs);
    }
    for (topic, p) in ps {
        let input = k.input(topic, *p);
        let shard = *p as u32;
        let Some(d) = core.kafka.as_mut() else {
            return Ok(());
        };
        if input >= d.names.len() {
            d.names.resize(input + 1, None);
        }
        d.names[input] = Some((topic.clone(), *p));
        let meta = metas
            .get(&shard)
            .and_then(|m| m.iter().find(|x| &x.topic == topic && x.partition == *p))
            .map(|m| (m.next_offset, m.max_ts));
        // Where the input stands: as it was parked, else as restored.
        let kept = parked_inputs
            .get(&input)
            .copied()
            .filter(|_| !metas.contains_key(&shard));
        // Neither: a partition new to the state; it starts where the group
        // committed (or at the beginning).
        let (next, max_ts) = match kept.or(meta) {
            Some(x) => x,
            None if rewind => (committed_for_rewind(k, topic, *p)?, None),
            None => (k.committed(&[(topic.clone(), *p)])[0].unwrap_or(0), None),
        };
        if k.is_erasure(topic) {
            core.engine.open_erasure_input(input, shard, next);
        } else if k.is_partials(topic) {
            core.engine.open_partials_input(input, shard, next);
        } else {
            core.engine.open_input(input, shard, next);
            if let Some(ts) = max_ts {
                core.engine.watermarks.restore(input, ts);
            }
        }
        // Where the state stands (restored or parked) is where reading goes
        // on. Under exactly-once the committed offsets are the same (one
        // transaction) except after a rewind; at-least-once state may be
        // ahead of them (a revocation commit sends no offsets there). A
        // rewind seeks every partition, also one no commit has covered yet
        // (the first transaction aborted): the consumer read past `next`.
        if rewind || ((meta.is_some() || kept.is_some()) && !exactly_once) {
            k.seek(&(topic.clone(), *p), next);
        }
    }
    if let Some(d) = core.kafka.as_mut() {
        d.restoring = false;
        d.restore_seconds = started.elapsed().as_secs_f64();
    }
    if let Some(m) = &core.sinks.metrics
        && let Ok(m) = m.lock()
        && let Some(d) = core.kafka.as_ref()
    {
        m.state_restored(d.restore_seconds, d.restored_bytes, d.cached_bytes);
    }
    Ok(())
}

/// Where a rewind reads a partition again that no commit of the state
/// covers (the first transaction aborted): the group's committed offset, or
/// the beginning when there is none. Without an answer from the broker the
/// run stops (and restarts from the committed state) rather than skip the
/// aborted events.
fn committed_for_rewind(k: &KafkaSource, topic: &str, partition: i32) -> Result<i64, KafkaError> {
    let key = [(topic.to_string(), partition)];
    for attempt in 0..REWIND_LOOKUPS {
        if let Some(c) = k.committed_lookup(&key) {
            return Ok(c[0].unwrap_or(0));
        }
        tracing::warn!(
            topic,
            partition,
            attempt,
            "cannot read the committed offset to rewind to; retrying"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    Err(KafkaError::CommittedUnknown {
        topic: topic.to_string(),
        partition,
    })
}

/// Attempts at the committed offset of a partition a rewind reads again.
const REWIND_LOOKUPS: u32 = 10;

/// The parked shards assigned again that another instance has advanced
/// since they were parked: a partition's committed offset is past where
/// this instance left it (or cannot be read). An instance slow to rejoin
/// misses a generation of the group; the shards it held may have moved
/// and come back, and its copy in memory is then behind the changelog.
fn advanced_elsewhere(
    k: &KafkaSource,
    parked: &BTreeSet<u32>,
    wanted: &BTreeSet<u32>,
    parked_inputs: &BTreeMap<usize, (i64, Option<i64>)>,
) -> BTreeSet<u32> {
    let kept: Vec<(u32, TopicPartition, i64)> = parked_inputs
        .iter()
        .filter_map(|(&input, &(next, _))| {
            let key = k.key(input)?;
            let s = key.1 as u32;
            (parked.contains(&s) && wanted.contains(&s)).then_some((s, key, next))
        })
        .collect();
    if kept.is_empty() {
        return BTreeSet::new();
    }
    let keys: Vec<TopicPartition> = kept.iter().map(|(_, key, _)| key.clone()).collect();
    let committed = k.committed(&keys);
    kept.iter()
        .zip(committed)
        .filter(|((_, _, next), c)| c.is_none_or(|c| c > *next))
        .map(|((s, _, _), _)| *s)
        .collect()
}

/// Adds another instance's (or our own earlier) instance-wide state; with
/// `replace` (a rewind after an aborted commit) it takes its place.
fn merge_global(core: &mut Core, g: Global, replace: bool) {
    let e = &mut core.engine;
    if replace {
        e.ingest.stats = Default::default();
        e.risk.kpi_sent = crate::alert::SentIds::new(e.risk.dedup_capacity);
    }
    let s = &mut e.ingest.stats;
    s.read += g.stats.read;
    for (a, b) in s.valid.iter_mut().zip(g.stats.valid) {
        *a += b;
    }
    for (a, b) in s.invalid.iter_mut().zip(g.stats.invalid) {
        *a += b;
    }
    for (a, b) in s.duplicate.iter_mut().zip(g.stats.duplicate) {
        *a += b;
    }
    for (a, b) in s.late.iter_mut().zip(g.stats.late) {
        *a += b;
    }
    e.risk.kpi.restore(g.kpi_drop);
    let mut blocks = e.risk.kpi_sent.take_changes().0;
    blocks.extend(g.kpi_sent);
    for (i, b) in blocks.iter_mut().enumerate() {
        b.no = i as u64;
    }
    e.risk.kpi_sent = crate::alert::SentIds::restore(e.risk.dedup_capacity, blocks);
    // The KPI metrics on /metrics still hold what a rewind takes back:
    // they are not restored twice.
    if !replace
        && let Some(m) = &core.sinks.metrics
        && let Ok(mut m) = m.lock()
    {
        m.restore_kpis(&g.metrics);
    }
}

/// The instance-wide state for a checkpoint.
fn global(core: &mut Core) -> Global {
    let e = &mut core.engine;
    Global {
        stats: e.ingest.stats.clone(),
        kpi_drop: e.risk.kpi.state(),
        kpi_sent: e.risk.kpi_sent.all_blocks(),
        // Scale-out: each merge carries its own pipelines' series.
        metrics: match (&e.scale_out, &core.sinks.metrics) {
            (None, Some(m)) => m.lock().map(|m| m.kpi_samples()).unwrap_or_default(),
            _ => Vec::new(),
        },
    }
}

/// Commits when a commit interval has passed.
pub fn maybe_commit(k: &KafkaSource, core: &mut Core) -> Result<(), KafkaError> {
    let due = core.kafka.as_ref().is_some_and(|d| {
        d.last_commit.elapsed() >= d.settings.commit_every
            && d.hold_commits_until.is_none_or(|t| Instant::now() >= t)
    });
    if due { commit(k, core, false) } else { Ok(()) }
}

/// Commits now: the checkpoint, the outputs and the offsets. A commit that
/// waits for a slow or absent broker keeps the consumer polled, paused
/// (see [`KafkaSource::while_waiting`]).
pub fn commit(k: &KafkaSource, core: &mut Core, last: bool) -> Result<(), KafkaError> {
    k.while_waiting(|| commit_with(core, k.group_metadata().as_ref(), Some(k), last))
}

/// The commit itself; `k` is absent inside the revocation callback.
pub fn commit_with(
    core: &mut Core,
    group: Option<&ConsumerGroupMetadata>,
    k: Option<&KafkaSource>,
    last: bool,
) -> Result<(), KafkaError> {
    if core.kafka.as_ref().is_none_or(|d| d.restoring || d.closed) {
        return Ok(());
    }
    let started = Instant::now();
    let status_ready = core.status.as_ref().map(|s| s.ready.clone());
    core.engine.settle();
    core.deliver();
    let gl = global(core);
    let Some(d) = core.kafka.as_ref() else {
        return Ok(());
    };
    let names: Vec<Option<TopicPartition>> = d.names.clone();
    // The shards of the partitions held now (a revoked one was committed
    // when it left; it is not saved again while parked).
    let mut shards: Vec<u32> = names
        .iter()
        .flatten()
        .map(|(_, p)| *p as u32)
        .filter(|&s| {
            core.engine
                .shards
                .get(s as usize)
                .is_some_and(Option::is_some)
        })
        .collect();
    shards.sort_unstable();
    shards.dedup();
    let deltas = checkpoint_shards(
        &mut core.engine,
        &shards,
        &|i| names.get(i).cloned().flatten().unwrap_or_default(),
        gl,
    );
    let Some(d) = core.kafka.as_mut() else {
        return Ok(());
    };
    let mut bytes = 0u64;
    for delta in &deltas {
        bytes += delta.bytes() as u64;
        for (key, value) in &delta.records {
            // A changelog record that does not go out would lose state:
            // the commit fails rather than go on without it (a producer
            // failed for good is made anew and the state rewinds).
            let sent = d.producer.send_to(
                "state",
                &d.settings.topic,
                Some(delta.shard as i32),
                key,
                value.as_deref(),
                &[],
            );
            match sent {
                Ok(()) => {}
                Err(e) if e.is_fatal() => return renew_producer(d, e),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let offsets: Vec<(TopicPartition, i64)> = core
        .engine
        .inputs
        .iter()
        .enumerate()
        .filter_map(|(i, inp)| Some((d.name(i), inp.as_ref()?.next_offset)))
        .filter(|((t, _), _)| !t.is_empty())
        .collect();
    // Nothing new since the last commit (an idle stream): no transaction.
    let sent = d.producer.sent();
    if !last && bytes == 0 && sent == d.sent_at_commit && offsets == d.offsets_at_commit {
        d.last_commit = Instant::now();
        return Ok(());
    }
    let result = match d.settings.delivery {
        Delivery::ExactlyOnce => {
            // While the broker is away the commit retries; /readyz says so
            // at once (the loop publishes again when it succeeds).
            let ready = status_ready.clone();
            let on_fail = move || {
                if let Some(r) = &ready {
                    r.store(false, std::sync::atomic::Ordering::Relaxed);
                }
            };
            commit_transaction(d, &offsets, group, last, &on_fail)
        }
        Delivery::AtLeastOnce => {
            // Everything sent must be delivered before the offsets move on;
            // while the broker is away the flush waits (the messages stay
            // queued), not ready meanwhile, instead of stopping the run.
            let ready = status_ready.clone();
            let mut failed = false;
            let timeout = d.settings.timeout;
            let producer = d.producer.clone();
            let r = retry(|| producer.flush(timeout), &mut || {
                failed = true;
                if let Some(r) = &ready {
                    r.store(false, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .map_err(KafkaError::from);
            d.failing |= failed;
            match (r, k) {
                (Ok(()), Some(k)) => k.commit(&offsets, last).map_err(KafkaError::from),
                (r, _) => r,
            }
        }
    };
    let Some(d) = core.kafka.as_mut() else {
        return result;
    };
    match result {
        Ok(()) => {
            d.failing = false;
            if let Some(c) = &d.cache {
                // Every record of the commit is delivered by now: the
                // offset after the last one is where the cache stands.
                for delta in deltas.iter().filter(|x| !x.records.is_empty()) {
                    let Some(end) = d.producer.state_end(delta.shard as i32) else {
                        continue;
                    };
                    let done = c.append(delta.shard, &delta.records, end).and_then(|()| {
                        if delta.erased {
                            c.compact(delta.shard)
                        } else {
                            Ok(())
                        }
                    });
                    if let Err(e) = done {
                        tracing::warn!(partition = delta.shard, error = %e, "cannot update the local state cache");
                    }
                }
            }
            d.closed = last;
            d.sent_at_commit = d.producer.sent();
            d.offsets_at_commit = offsets;
            d.commits += 1;
            d.checkpoint_bytes += bytes;
            d.longest_commit = d.longest_commit.max(started.elapsed());
            d.last_commit = Instant::now();
            if let Some(m) = &core.sinks.metrics
                && let Ok(m) = m.lock()
            {
                m.state_committed(bytes, started.elapsed().as_secs_f64());
            }
            Ok(())
        }
        Err(KafkaError::Sink(e)) if e.requires_abort() => {
            tracing::warn!(error = %e, "commit aborted; the state rewinds to the last commit");
            // An abort that times out (the broker away) must be called again
            // until it completes: until then every other transaction call
            // fails with "conflicting abort in progress".
            let (timeout, producer) = (d.settings.timeout, d.producer.clone());
            let mut failed = false;
            let aborted = retry(|| producer.abort(timeout), &mut || {
                failed = true;
                if let Some(r) = &status_ready {
                    r.store(false, std::sync::atomic::Ordering::Relaxed);
                }
            });
            d.failing |= failed;
            match aborted {
                Ok(()) => d.producer.begin()?,
                Err(e) if e.is_fatal() => return renew_producer(d, e),
                Err(e) => return Err(e.into()),
            }
            d.rewind = true;
            if e.is_stale_member() {
                d.hold_commits_until = Some(Instant::now() + STALE_MEMBER_HOLD);
            }
            Ok(())
        }
        Err(KafkaError::Sink(e)) if e.is_fatal() => renew_producer(d, e),
        Err(e) => Err(e),
    }
}

/// A fatal transaction error: the coordinator ended the transaction (it
/// outlived `transaction_timeout` while the broker was away) or another
/// producer took the id. The first case heals with a new producer and a
/// rewind to the last commit (a fencing still in flight may take a second
/// one); more than [`RENEWALS`] within [`RENEWAL_WINDOW`] are taken for the
/// second case (two instances with one id would take it from each other
/// for ever) and stop the run.
fn renew_producer(d: &mut KafkaDurability, e: SinkError) -> Result<(), KafkaError> {
    d.renewals.retain(|t| t.elapsed() < RENEWAL_WINDOW);
    if d.renewals.len() >= RENEWALS {
        return Err(e.into());
    }
    tracing::warn!(error = %e, "the transactional producer failed for good; a new one takes over and the state rewinds to the last commit");
    d.producer.renew(d.settings.timeout)?;
    d.renewals.push(Instant::now());
    d.rewind = true;
    Ok(())
}

/// At most this many producer renewals within [`RENEWAL_WINDOW`].
const RENEWALS: usize = 3;
const RENEWAL_WINDOW: Duration = Duration::from_secs(120);

/// How long periodic commits wait for the group after the group refused a
/// commit from this member (the consumer's session timeout).
const STALE_MEMBER_HOLD: Duration = Duration::from_secs(10);

fn commit_transaction(
    d: &mut KafkaDurability,
    offsets: &[(TopicPartition, i64)],
    group: Option<&ConsumerGroupMetadata>,
    last: bool,
    on_fail: &dyn Fn(),
) -> Result<(), KafkaError> {
    let list = KafkaSource::offset_list(offsets);
    let timeout = d.settings.timeout;
    let mut failed = false;
    let mut note = || {
        failed = true;
        on_fail();
    };
    if let Some(group) = group
        && list.count() > 0
    {
        let r = retry(|| d.producer.send_offsets(&list, group, timeout), &mut note);
        r?;
    }
    let r = retry(|| d.producer.commit(timeout), &mut note);
    d.failing |= failed;
    r?;
    if !last {
        d.producer.begin()?;
    }
    Ok(())
}

/// Retries a transaction step (or a flush) while the broker is away.
/// `failed` hears each failure (the service is not ready meanwhile).
fn retry(
    mut step: impl FnMut() -> Result<(), SinkError>,
    failed: &mut dyn FnMut(),
) -> Result<(), SinkError> {
    let mut wait = Duration::from_millis(200);
    loop {
        match step() {
            Err(e) if e.is_retriable() => {
                failed();
                tracing::warn!(error = %e, "transaction step failed; retrying");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            r => return r,
        }
    }
}

/// Installs the revocation hook: partitions leaving are committed first.
pub fn install_hook(k: &KafkaSource, core: &Arc<Mutex<Core>>) {
    let core = core.clone();
    k.on_revoke(Box::new(move |revoked, group| {
        let mut g = lock(&core);
        tracing::info!(?revoked, "partitions revoked; committing them");
        if let Some(m) = &g.sinks.metrics
            && let Ok(m) = m.lock()
        {
            m.partitions_revoked(revoked.len());
        }
        if let Err(e) = commit_with(&mut g, group.as_ref(), None, false) {
            tracing::error!(error = %e, "commit on revocation failed; the state rewinds");
            if let Some(d) = g.kafka.as_mut() {
                d.rewind = true;
            }
        }
    }));
}

/// True when every assigned partition has been read to its end.
pub fn caught_up(k: &KafkaSource, core: &Core) -> bool {
    let Some(d) = core.kafka.as_ref() else {
        return false;
    };
    let assigned: Vec<(usize, TopicPartition)> = d
        .names
        .iter()
        .enumerate()
        .filter_map(|(i, n)| Some((i, n.clone()?)))
        .collect();
    if assigned.is_empty() || d.restoring {
        return false;
    }
    assigned.iter().all(|(i, key)| {
        let read = core
            .engine
            .inputs
            .get(*i)
            .and_then(|x| x.as_ref())
            .map(|x| x.next_offset);
        let position = k.position(key).or(read).unwrap_or(0);
        k.end_offset(key).is_some_and(|end| position >= end)
    })
}

/// Scale-out: which pipelines this instance exports (the merges it holds)
/// and, as the group describes its members, who exports the others.
pub fn refresh_exports(k: &KafkaSource, core: &mut Core) {
    let (Some(so), Some(topic)) = (&core.engine.scale_out, k.partials_topic.as_deref()) else {
        return;
    };
    let names = core.engine.pipeline_names();
    let name = |i: &usize| names.get(*i).cloned().unwrap_or_default();
    let pipelines_of = |p: u32| so.needs.get(p as usize).map(|n| n.pipelines.clone());
    let mut by_pipeline = std::collections::BTreeMap::new();
    for (member, partitions) in k.members(topic, Duration::from_secs(1)) {
        for p in partitions {
            for i in pipelines_of(p.max(0) as u32).unwrap_or_default() {
                by_pipeline.insert(name(&i), member.clone());
            }
        }
    }
    let mut here: Vec<usize> = core
        .engine
        .merges
        .keys()
        .filter_map(|&p| pipelines_of(p))
        .flatten()
        .collect();
    here.sort_unstable();
    for i in &here {
        by_pipeline.insert(name(i), k.instance.clone());
    }
    core.exports = Some(crate::pipeline::Exports {
        instance: k.instance.clone(),
        here: here.iter().map(name).collect(),
        by_pipeline,
    });
}

/// Ready: holding partitions, not restoring.
pub fn ready(core: &Core) -> bool {
    core.kafka
        .as_ref()
        .is_some_and(|d| !d.restoring && !d.failing && d.names.iter().any(Option::is_some))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_that_times_out_is_retried_until_it_delivers() {
        let mut attempts = 0;
        let mut failures = 0;
        let r = retry(
            || {
                attempts += 1;
                if attempts < 3 {
                    Err(SinkError::Flush(Duration::from_millis(1)))
                } else {
                    Ok(())
                }
            },
            &mut || failures += 1,
        );
        assert!(r.is_ok());
        assert_eq!((attempts, failures), (3, 2));
        // Errors that retrying cannot heal come back at once.
        let r = retry(
            || {
                Err(SinkError::Send {
                    topic: "t".into(),
                    source: rdkafka::error::KafkaError::Canceled,
                })
            },
            &mut || {},
        );
        assert!(r.is_err());
    }
}
