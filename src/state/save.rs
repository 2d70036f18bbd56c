//! Writing a checkpoint: per shard, the records of what changed since the
//! previous one (and tombstones for what was dropped), so a checkpoint
//! costs what changed, not the size of the state.

use serde::{Deserialize, Serialize};

use super::codec::{encode, encode_batch};
use super::keys::Key;
use crate::alert::{AlertState, Clock, KpiDropState, SentBlock};
use crate::engine::{Engine, Merge, Progress};
use crate::features::TraderState;
use crate::metrics::KpiSample;
use crate::model::Scored;
use crate::pipeline::Stats;

/// Records stay well under Kafka's default message size limit (1 MB):
/// waiting events, de-duplication ids and table rows are written in parts.
const EVENTS_PER_RECORD: usize = 2_000;
const IDS_PER_RECORD: usize = 32_768;
const ROWS_PER_RECORD: usize = 4_096;

/// Where an input of a shard stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputMeta {
    /// Kafka topic (empty for a file).
    pub topic: String,
    pub partition: i32,
    /// The next offset to read.
    pub next_offset: i64,
    /// Latest event time read (the input's watermark before disorder).
    pub max_ts: Option<i64>,
}

/// The progress of one shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub shard: u32,
    pub released: Option<i64>,
    pub clock: Clock,
    /// Per snapshot interval, the next boundary to capture.
    pub captures: Vec<(i64, Option<i64>)>,
    /// Per pipeline name.
    pub progress: Vec<(String, Progress)>,
    pub inputs: Vec<InputMeta>,
    /// Traders interned (records `t/0..names`).
    pub names: u32,
    pub checkpoints: u64,
    /// Wall-clock time of the checkpoint (information only).
    pub written_at_ms: i64,
}

/// Where a scale-out merge stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeMeta {
    pub sources: u32,
    /// Per source shard.
    pub released: Vec<Option<i64>>,
    pub last: Vec<bool>,
    /// Per pipeline name, per source shard.
    pub progress: Vec<(String, Vec<Progress>)>,
    /// The series of its KPI drop rules.
    pub kpi_drop: KpiDropState,
    /// The KPI series of its pipelines on `/metrics`.
    pub metrics: Vec<KpiSample>,
}

/// One trader's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraderRecord {
    pub name: String,
    pub state: Option<TraderState>,
    pub alert: Option<AlertState>,
    pub scored: Option<Scored>,
}

/// What an instance keeps once for all its shards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Global {
    pub stats: Stats,
    pub kpi_drop: KpiDropState,
    pub kpi_sent: Vec<SentBlock>,
    /// KPI counters and gauges on `/metrics`.
    pub metrics: Vec<KpiSample>,
}

/// The records of one shard: (key, value), a `None` value removes the key.
#[derive(Debug, Default)]
pub struct ShardDelta {
    pub shard: u32,
    pub records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// A trader was erased: copies of the shard's state kept elsewhere
    /// (the local cache) must drop what the tombstones replace.
    pub erased: bool,
}

impl ShardDelta {
    fn put(&mut self, key: Key, value: Vec<u8>) {
        self.records.push((key.to_bytes(), Some(value)));
    }
    fn remove(&mut self, key: Key) {
        self.records.push((key.to_bytes(), None));
    }

    /// Bytes of keys and values.
    pub fn bytes(&self) -> usize {
        self.records
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum()
    }
}

/// Collects the changes of every shard since the previous checkpoint.
/// `input_name` names an engine input (topic and partition); `global` is
/// written to the lowest shard. Call it after [`Engine::settle`] and after
/// taking the engine's outputs: captured snapshots are not saved.
pub fn checkpoint(
    engine: &mut Engine,
    input_name: &dyn Fn(usize) -> (String, i32),
    global: Global,
) -> Vec<ShardDelta> {
    let shards = engine.shard_numbers();
    checkpoint_shards(engine, &shards, input_name, global)
}

/// As [`checkpoint`], for the given shards only (a shard revoked and
/// committed, waiting to learn whether it stays, is not saved again).
pub fn checkpoint_shards(
    engine: &mut Engine,
    shards: &[u32],
    input_name: &dyn Fn(usize) -> (String, i32),
    global: Global,
) -> Vec<ShardDelta> {
    debug_assert!(
        engine.kpis.captures.is_empty(),
        "settle the engine before a checkpoint"
    );
    let mut out = Vec::with_capacity(shards.len());
    let now = chrono::Utc::now().timestamp_millis();
    let global = encode(&global);
    for (n, &s) in shards.iter().enumerate() {
        if engine.shards.get(s as usize).is_none_or(Option::is_none) {
            continue;
        }
        let mut d = ShardDelta {
            shard: s,
            records: Vec::new(),
            erased: false,
        };
        save_shard(engine, s, &mut d, input_name, now);
        if let Some(sh) = engine.shards[s as usize].as_mut() {
            if n == 0 {
                // Written when it changed (the instance-wide counters move
                // with every event, the rest rarely).
                if sh.last_global.as_deref() != Some(global.as_slice()) {
                    d.put(Key::Global, global.clone());
                    sh.last_global = Some(global.clone());
                }
            } else if std::mem::take(&mut sh.stale_global) {
                d.remove(Key::Global);
            }
        }
        out.push(d);
    }
    out
}

fn save_shard(
    engine: &mut Engine,
    s: u32,
    d: &mut ShardDelta,
    input_name: &dyn Fn(usize) -> (String, i32),
    now: i64,
) {
    let Some(sh) = engine.shards[s as usize].as_mut() else {
        return;
    };
    sh.checkpoints += 1;
    let checkpoint_no = sh.checkpoints;
    // Symbols: the whole table when it grew (small: at most a few thousand).
    let symbols = &engine.ingest.decoder.symbols;
    if symbols.len() > sh.saved_symbols {
        let names: Vec<&str> = (0..symbols.len() as u32).map(|i| symbols.name(i)).collect();
        d.put(Key::Symbols, encode(&names));
        sh.saved_symbols = symbols.len();
    }
    // Traders: new names and changed state.
    let names = engine.ingest.decoder.traders.shard(s);
    let interned = names.map_or(0, |n| n.len() as u32);
    let mut changed: Vec<u32> = engine.traders.rows.take_changed(s);
    changed.extend(engine.risk.rules.states.take_changed(s));
    if let Some(sc) = &mut engine.risk.scorer {
        changed.extend(sc.traders.take_changed(s));
    }
    changed.extend(sh.saved_names..interned);
    changed.sort_unstable();
    changed.dedup();
    // Erased traders: a tombstone, so compaction removes every earlier
    // record of them from the changelog.
    let erased = std::mem::take(&mut sh.erased);
    d.erased |= !erased.is_empty();
    changed.retain(|l| !erased.contains(l));
    for &local in &erased {
        d.remove(Key::Trader(local));
    }
    for local in changed {
        let id = crate::event::trader_id(s, local);
        let Some(name) = names.map(|n| n.name(local)) else {
            continue;
        };
        let record = TraderRecord {
            name: name.to_owned(),
            state: engine.traders.get(id).copied(),
            alert: engine.risk.rules.states.get(id).cloned(),
            scored: engine
                .risk
                .scorer
                .as_ref()
                .and_then(|sc| sc.traders.get(id).copied()),
        };
        d.put(Key::Trader(local), encode(&record));
    }
    sh.saved_names = interned;
    // Events waiting for the frontier, in parts of bounded size.
    let (block, new, done) = sh.pending.take_changes();
    if !new.is_empty() {
        let mut parts = 0;
        for (p, chunk) in new.chunks(EVENTS_PER_RECORD).enumerate() {
            d.put(Key::Pending(block, p as u32), encode(&chunk));
            parts += 1;
        }
        sh.pending_parts.insert(block, parts);
    }
    for b in done {
        for p in 0..sh.pending_parts.remove(&b).unwrap_or(0) {
            d.remove(Key::Pending(b, p));
        }
    }
    // De-duplication ids, in parts of bounded size.
    let (new, forgotten) = sh.dedup.take_changes();
    for (bucket, ids) in new {
        for (p, chunk) in ids.chunks(IDS_PER_RECORD).enumerate() {
            let block = (checkpoint_no << 16) | p as u64;
            d.put(Key::Dedup(bucket, block), encode(&chunk));
            sh.dedup.saved_blocks.entry(bucket).or_default().push(block);
        }
    }
    for bucket in forgotten {
        for block in sh.dedup.saved_blocks.remove(&bucket).unwrap_or_default() {
            d.remove(Key::Dedup(bucket, block));
        }
    }
    // Alert ids sent.
    let (new, forgotten) = engine.risk.sent(s).take_changes();
    for b in new {
        let no = b.no;
        d.put(Key::Sent(no), encode(&b));
    }
    for no in forgotten {
        d.remove(Key::Sent(no));
    }
    // Closed rows and hop slices.
    let kpis = &mut engine.kpis;
    kpis.ensure_shard(s);
    for (table, store) in kpis.stores[s as usize].iter_mut().enumerate() {
        let (new, forgotten) = store.take_changes(ROWS_PER_RECORD);
        for (lo, hi, part, batch) in new {
            d.put(Key::Rows(table as u8, lo, hi, part), encode_batch(&batch));
        }
        for (lo, hi, first, count) in forgotten {
            for part in first..first + count {
                d.remove(Key::Rows(table as u8, lo, hi, part));
            }
        }
    }
    for p in &mut kpis.pipelines {
        let name = p.p.name.to_string();
        for x in p.slices[s as usize].iter_mut().filter(|x| !x.saved) {
            x.saved = true;
            d.put(
                Key::Slice(name.clone(), x.start, x.part),
                encode_batch(&x.batch),
            );
        }
        for (start, part) in std::mem::take(&mut p.forgotten[s as usize]) {
            d.remove(Key::Slice(name.clone(), start, part));
        }
    }
    if let Some(m) = engine.merges.get_mut(&s) {
        save_merge(m, d);
    }
    // Progress, last: it names everything above.
    let inputs = engine
        .inputs
        .iter()
        .enumerate()
        .filter_map(|(i, inp)| inp.filter(|x| x.shard == s).map(|x| (i, x)))
        .map(|(i, x)| {
            let (topic, partition) = input_name(i);
            InputMeta {
                topic,
                partition,
                next_offset: x.next_offset,
                max_ts: engine.watermarks.max_of(i),
            }
        })
        .collect();
    let meta = Meta {
        checkpoints: 0,
        written_at_ms: 0,
        shard: s,
        released: engine.shards[s as usize].as_ref().and_then(|x| x.released),
        clock: *engine.risk.clock(s),
        captures: kpis
            .next_capture
            .iter()
            .map(|(every, v)| (*every, v.get(s as usize).copied().flatten()))
            .collect(),
        progress: kpis
            .pipelines
            .iter()
            .map(|p| (p.p.name.to_string(), p.progress[s as usize]))
            .collect(),
        inputs,
        names: interned,
    };
    // The progress is written when it moved (or with anything else).
    let bytes = encode(&meta);
    let sh = engine.shards[s as usize].as_mut();
    let moved = sh
        .as_ref()
        .is_none_or(|x| x.last_meta.as_deref() != Some(&bytes[..]));
    if moved || !d.records.is_empty() {
        let stamped = Meta {
            checkpoints: checkpoint_no,
            written_at_ms: now,
            ..meta
        };
        d.put(Key::Meta, encode(&stamped));
    }
    if let Some(sh) = sh {
        sh.last_meta = Some(bytes);
    }
}

/// A merge's records: what each source shard sent and the queries have not
/// consumed yet, and its progress.
fn save_merge(m: &mut Merge, d: &mut ShardDelta) {
    let merged = |src: usize, k: Key| Key::Merged(src as u32, Box::new(k));
    for (src, stores) in m.kpis.stores.iter_mut().enumerate() {
        for (table, store) in stores.iter_mut().enumerate() {
            let (new, forgotten) = store.take_changes(ROWS_PER_RECORD);
            for (lo, hi, part, batch) in new {
                d.put(
                    merged(src, Key::Rows(table as u8, lo, hi, part)),
                    encode_batch(&batch),
                );
            }
            for (lo, hi, first, count) in forgotten {
                for part in first..first + count {
                    d.remove(merged(src, Key::Rows(table as u8, lo, hi, part)));
                }
            }
        }
    }
    for p in &mut m.kpis.pipelines {
        let name = p.p.name.to_string();
        for (src, slices) in p.slices.iter_mut().enumerate() {
            for x in slices.iter_mut().filter(|x| !x.saved) {
                x.saved = true;
                d.put(
                    merged(src, Key::Slice(name.clone(), x.start, x.part)),
                    encode_batch(&x.batch),
                );
            }
        }
        for (src, forgotten) in p.forgotten.iter_mut().enumerate() {
            for (start, part) in std::mem::take(forgotten) {
                d.remove(merged(src, Key::Slice(name.clone(), start, part)));
            }
        }
    }
    for (&(every, as_of), v) in &mut m.waiting {
        for w in v.iter_mut().filter(|w| !w.saved) {
            w.saved = true;
            d.put(
                merged(w.source as usize, Key::Capture(every, as_of, w.part)),
                encode_batch(&w.batch),
            );
        }
    }
    for (src, every, as_of, part) in std::mem::take(&mut m.forgotten) {
        d.remove(merged(src as usize, Key::Capture(every, as_of, part)));
    }
    let meta = encode(&MergeMeta {
        sources: m.sources,
        released: m.released.clone(),
        last: m.last.clone(),
        progress: m
            .kpis
            .pipelines
            .iter()
            .map(|p| (p.p.name.to_string(), p.progress.clone()))
            .collect(),
        kpi_drop: m.kpi.state(),
        metrics: m.kpi_samples(),
    });
    if m.last_meta.as_deref() != Some(meta.as_slice()) {
        d.put(Key::MergeMeta, meta.clone());
        m.last_meta = Some(meta);
    }
}
