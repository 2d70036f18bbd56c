//! The Kafka source: a consumer in a consumer group feeding the engine.
//!
//! At-least-once: offsets are committed only up to the first message whose
//! effects are not applied yet (the lowest offset still in an open window),
//! after each emission cycle and when partitions are revoked. A restart
//! re-reads from there, so nothing is lost; what may be counted twice is
//! bounded by what was emitted after the last commit (see the README).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::event::EventType;
use crate::event::time::format_rfc3339_ms;
use crate::metrics::Metrics;
use crate::pipeline::{Engine, Processed};
use crate::sink::{KafkaSink, client_config};
use crate::window::tables::table_name;

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
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunReport {
    pub messages: u64,
    pub seconds: f64,
    /// From the first message to the last one (excludes group join and
    /// the idle wait).
    pub busy_seconds: f64,
    /// `idle` (caught up and quiet for --exit-when-idle) or `signal`.
    pub stopped_by: &'static str,
}

/// Offsets safe to commit with their progress metadata, shared with the
/// rebalance callback.
type Committable = Arc<Mutex<HashMap<(String, i32), (i64, String)>>>;

/// Assignment changes for the consume loop.
#[derive(Debug)]
enum Change {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

struct Ctx {
    committable: Committable,
    changes: Arc<Mutex<Vec<Change>>>,
    metrics: Option<Arc<Mutex<Metrics>>>,
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for Ctx {
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
            // Commit what is safe for the partitions leaving us.
            let revoked = partitions(tpl);
            let mut list = TopicPartitionList::new();
            if let Ok(c) = self.committable.lock() {
                for key in &revoked {
                    if let Some((off, progress)) = c.get(key)
                        && list
                            .add_partition_offset(&key.0, key.1, Offset::Offset(*off))
                            .is_ok()
                        && let Some(mut e) = list.find_partition(&key.0, key.1)
                    {
                        e.set_metadata(progress);
                    }
                }
            }
            if list.count() > 0
                && let Err(e) = consumer.commit(&list, CommitMode::Sync)
            {
                tracing::warn!(error = %e, "commit on revoke failed");
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

/// How the source runs.
pub struct KafkaRun<'a> {
    pub config: &'a KafkaConfig,
    /// Stop once caught up and quiet this long (tests, backfills).
    pub exit_when_idle: Option<Duration>,
    pub stop: &'a AtomicBool,
    pub metrics: Option<Arc<Mutex<Metrics>>>,
    /// Producer for dead letters and late events.
    pub sink: &'a KafkaSink,
    /// Called after each emission cycle (status, metrics).
    pub on_tick: &'a mut dyn FnMut(&Engine, bool),
}

/// The event type a topic is named after (`...signups`, `...deposits`).
fn type_of_topic(topic: &str) -> Option<EventType> {
    EventType::ALL
        .iter()
        .copied()
        .find(|t| topic.ends_with(table_name(*t)))
}

/// Consumes until stopped (signal) or idle, feeding `engine`.
pub fn run_kafka(engine: &mut Engine, run: KafkaRun<'_>) -> Result<RunReport, SourceError> {
    let started = Instant::now();
    let cfg = run.config;
    let committable: Committable = Arc::new(Mutex::new(HashMap::new()));
    let changes = Arc::new(Mutex::new(Vec::new()));
    let ctx = Ctx {
        committable: committable.clone(),
        changes: changes.clone(),
        metrics: run.metrics.clone(),
    };
    let mut cc = client_config(&cfg.brokers, &cfg.properties);
    cc.set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
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
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| SourceError::Subscribe {
            topics: cfg.topics.clone(),
            source,
        })?;

    let mut index: HashMap<(String, i32), usize> = HashMap::new();
    let mut keys: Vec<(String, i32)> = Vec::new();
    let mut assigned: Vec<(String, i32)> = Vec::new();
    let fallback: HashMap<String, Option<EventType>> = cfg
        .topics
        .iter()
        .map(|t| {
            (
                t.clone(),
                if cfg.type_from_topic {
                    type_of_topic(t)
                } else {
                    None
                },
            )
        })
        .collect();
    let mut report = RunReport::default();
    let mut last_message = Instant::now();
    let mut first_message: Option<Instant> = None;
    let mut last_tick = Instant::now();
    let mut last_committed: HashMap<(String, i32), i64> = HashMap::new();
    let mut restored: std::collections::HashSet<(String, i32)> = std::collections::HashSet::new();
    loop {
        if run.stop.load(Ordering::Relaxed) {
            report.stopped_by = "signal";
            break;
        }
        for change in changes
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
        {
            match change {
                Change::Assigned(ps) => {
                    restore(&consumer, engine, &ps, &mut restored);
                    for key in ps {
                        let i = *index.entry(key.clone()).or_insert_with(|| {
                            keys.push(key.clone());
                            keys.len() - 1
                        });
                        engine.assign_partition(i);
                        if !assigned.contains(&key) {
                            assigned.push(key);
                        }
                    }
                }
                Change::Revoked(ps) => {
                    for key in ps {
                        if let Some(i) = index.get(&key) {
                            engine.forget_partition(*i);
                        }
                        assigned.retain(|k| *k != key);
                    }
                }
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                last_message = Instant::now();
                first_message.get_or_insert(last_message);
                report.messages += 1;
                let key = (msg.topic().to_owned(), msg.partition());
                if !restored.contains(&key) {
                    restore(&consumer, engine, std::slice::from_ref(&key), &mut restored);
                }
                let i = *index.entry(key.clone()).or_insert_with(|| {
                    keys.push(key.clone());
                    keys.len() - 1
                });
                let payload = msg.payload().unwrap_or_default();
                let now = chrono::Utc::now().timestamp_millis();
                let fb = fallback.get(msg.topic()).copied().flatten();
                let outcome = engine.process_at(payload, i, msg.offset(), now, fb);
                let (sink, topic, headers): (&'static str, &str, Vec<(&str, String)>) =
                    match &outcome {
                        Processed::Valid | Processed::Duplicate => ("", "", Vec::new()),
                        Processed::Invalid(inv) => (
                            "dead_letters",
                            &cfg.dead_letter_topic,
                            vec![
                                ("pulse.reason", inv.reason.as_str().to_owned()),
                                ("pulse.field", inv.field.unwrap_or_default().to_owned()),
                                ("pulse.message", inv.message.clone()),
                            ],
                        ),
                        Processed::Late { ts, frontier } => (
                            "late",
                            &cfg.late_topic,
                            vec![
                                ("pulse.reason", "late".to_owned()),
                                ("pulse.event_time", format_rfc3339_ms(*ts)),
                                ("pulse.frontier", format_rfc3339_ms(*frontier)),
                            ],
                        ),
                    };
                if !sink.is_empty() {
                    let mut all: Vec<(&str, Vec<u8>)> = headers
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    all.push(("pulse.source.topic", msg.topic().as_bytes().to_vec()));
                    all.push((
                        "pulse.source.partition",
                        msg.partition().to_string().into_bytes(),
                    ));
                    all.push(("pulse.source.offset", msg.offset().to_string().into_bytes()));
                    if let Some(h) = msg.headers() {
                        for hdr in h.iter() {
                            all.push((hdr.key, hdr.value.unwrap_or_default().to_vec()));
                        }
                    }
                    let refs: Vec<(&str, &[u8])> =
                        all.iter().map(|(k, v)| (*k, v.as_slice())).collect();
                    run.sink
                        .send(sink, topic, msg.key().unwrap_or_default(), payload, &refs);
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Kafka consumer error; retrying");
            }
            None => {}
        }
        if last_tick.elapsed() >= Duration::from_millis(250) {
            engine.tick();
            commit(
                &consumer,
                engine,
                &keys,
                &committable,
                &mut last_committed,
                Commit::Cycle,
            );
            (run.on_tick)(engine, !assigned.is_empty());
            last_tick = Instant::now();
        }
        if let Some(idle) = run.exit_when_idle
            && last_message.elapsed() >= idle
            && !assigned.is_empty()
            && caught_up(&consumer, engine, &assigned, &index)
        {
            report.stopped_by = "idle";
            break;
        }
    }
    if report.stopped_by == "idle" {
        // Caught up: close every window, emit, and commit everything read.
        engine.finish();
        commit(
            &consumer,
            engine,
            &keys,
            &committable,
            &mut last_committed,
            Commit::CaughtUp,
        );
    } else {
        // Stopped mid-stream: open windows are not emitted; a restart
        // re-reads them from the committed offsets.
        commit(
            &consumer,
            engine,
            &keys,
            &committable,
            &mut last_committed,
            Commit::Stop,
        );
    }
    (run.on_tick)(engine, false);
    report.seconds = started.elapsed().as_secs_f64();
    report.busy_seconds =
        first_message.map_or(0.0, |f| last_message.duration_since(f).as_secs_f64());
    Ok(report)
}

/// When offsets are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// After an emission cycle: what is safe, asynchronously.
    Cycle,
    /// Stopped mid-stream: what is safe, synchronously.
    Stop,
    /// Caught up and every window emitted: everything read, synchronously.
    CaughtUp,
}

/// Commits what is safe: the lowest offset whose effects are not all
/// applied, per partition (everything read once caught up).
fn commit(
    consumer: &BaseConsumer<Ctx>,
    engine: &Engine,
    keys: &[(String, i32)],
    shared: &Committable,
    last: &mut HashMap<(String, i32), i64>,
    kind: Commit,
) {
    let (all, sync) = (kind == Commit::CaughtUp, kind != Commit::Cycle);
    let offsets = if all {
        engine.next_offsets().to_vec()
    } else {
        engine.committable()
    };
    let progress = engine.progress();
    let progress_key = (String::new(), i32::MIN);
    let progress_hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        progress.hash(&mut h);
        h.finish() as i64
    };
    let progress_moved = last.get(&progress_key) != Some(&progress_hash);
    last.insert(progress_key, progress_hash);
    tracing::debug!(?offsets, next = ?engine.next_offsets(), sync, "commit");
    let mut list = TopicPartitionList::new();
    for (i, off) in offsets.iter().enumerate() {
        let Some(key) = keys.get(i) else { continue };
        // Unchanged offsets are committed again when the progress moved.
        if *off <= 0 || (last.get(key) == Some(off) && !progress_moved) {
            continue;
        }
        if let Ok(()) = list.add_partition_offset(&key.0, key.1, Offset::Offset(*off))
            && let Some(mut e) = list.find_partition(&key.0, key.1)
        {
            e.set_metadata(progress.as_str());
        }
        last.insert(key.clone(), *off);
        if let Ok(mut s) = shared.lock() {
            s.insert(key.clone(), (*off, progress.clone()));
        }
    }
    if list.count() == 0 {
        return;
    }
    let mode = if sync {
        CommitMode::Sync
    } else {
        CommitMode::Async
    };
    if let Err(e) = consumer.commit(&list, mode) {
        tracing::warn!(error = %e, "offset commit failed; will retry with the next cycle");
        last.clear();
    }
}

/// Restores the pipelines' progress from the metadata committed with the
/// offsets of newly assigned partitions.
/// Only before the first emission cycle: later, lowering a pipeline's
/// progress would emit its windows twice.
fn restore(
    consumer: &BaseConsumer<Ctx>,
    engine: &mut Engine,
    partitions: &[(String, i32)],
    restored: &mut std::collections::HashSet<(String, i32)>,
) {
    let mut list = TopicPartitionList::new();
    for key in partitions {
        if restored.insert(key.clone()) && engine.cycles == 0 {
            list.add_partition(&key.0, key.1);
        }
    }
    if list.count() == 0 {
        return;
    }
    match consumer.committed_offsets(list, Duration::from_secs(10)) {
        Ok(committed) => {
            for e in committed.elements() {
                tracing::debug!(topic = e.topic(), partition = e.partition(), offset = ?e.offset(), metadata = e.metadata(), "restoring progress");
                if !e.metadata().is_empty() {
                    engine.restore_progress(e.metadata());
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read committed progress; windows may be emitted twice")
        }
    }
}

/// True when every assigned partition has been read to its end.
fn caught_up(
    consumer: &BaseConsumer<Ctx>,
    engine: &Engine,
    assigned: &[(String, i32)],
    index: &HashMap<(String, i32), usize>,
) -> bool {
    let committed = consumer.committed(Duration::from_secs(5)).ok();
    assigned.iter().all(|(topic, p)| {
        let Ok((low, high)) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(5)) else {
            return false;
        };
        let read = index
            .get(&(topic.clone(), *p))
            .and_then(|i| engine.next_offsets().get(*i).copied());
        let from_commit = committed.as_ref().and_then(|c| {
            match c.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            }
        });
        let position = read.or(from_commit).unwrap_or(low);
        position >= high
    })
}
