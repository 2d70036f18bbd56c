//! Restoring one shard from its records (the latest value of each key, as
//! a compacted changelog or a checkpoint file holds them).

use std::collections::BTreeMap;

use super::codec::{CodecError, decode, decode_batch};
use super::keys::Key;
use super::save::{Global, InputMeta, MergeMeta, Meta, TraderRecord};
use crate::alert::{AlertState, SentBlock, SentIds};
use crate::engine::{Engine, Slice, Waiting};
use crate::event::{Event, Interner, Sym};
use crate::features::TraderState;
use crate::model::Scored;

/// A restore that cannot go on: the state would be half-loaded.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("shard {shard}: {source}")]
    Version { shard: u32, source: CodecError },
}

/// A record that could not be read, with where it was.
#[derive(Debug, Clone)]
pub struct Corrupt {
    pub shard: u32,
    /// Offset in the changelog partition (or the file), when known.
    pub offset: Option<i64>,
    pub key: String,
    pub error: String,
}

/// What a restore gives besides the state it loaded into the engine.
#[derive(Debug, Default)]
pub struct Restored {
    pub inputs: Vec<InputMeta>,
    pub global: Option<Global>,
    pub corrupt: Vec<Corrupt>,
    pub traders: usize,
    pub bytes: usize,
    pub released: Option<i64>,
}

/// One record as read: key, value, where.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub offset: Option<i64>,
}

/// Loads the records of `shard` into `engine` (whose state of that shard
/// must be empty). Unreadable records are skipped and reported; a record
/// of another format version stops the restore before anything is loaded.
pub fn restore_shard(
    engine: &mut Engine,
    shard: u32,
    records: Vec<Record>,
) -> Result<Restored, RestoreError> {
    let mut out = Restored::default();
    // Check every header first: never half-load.
    for r in &records {
        if let Err(e @ CodecError::Version { .. }) = super::codec::body(&r.value) {
            return Err(RestoreError::Version { shard, source: e });
        }
    }
    let mut by_key: BTreeMap<Key, Record> = BTreeMap::new();
    let mut sizes: BTreeMap<u8, (usize, usize)> = BTreeMap::new();
    for r in records {
        out.bytes += r.key.len() + r.value.len();
        let kind = sizes
            .entry(r.key.first().copied().unwrap_or(0))
            .or_default();
        kind.0 += 1;
        kind.1 += r.value.len();
        match Key::from_bytes(&r.key) {
            Some(k) => {
                by_key.insert(k, r);
            }
            None => out.corrupt.push(Corrupt {
                shard,
                offset: r.offset,
                key: format!("{:?}", String::from_utf8_lossy(&r.key)),
                error: "unknown key".into(),
            }),
        }
    }
    tracing::debug!(
        shard,
        sizes = ?sizes.iter().map(|(k, v)| (*k as char, *v)).collect::<Vec<_>>(),
        "records by kind (count, bytes)"
    );
    let mut corrupt = |k: &Key, r: &Record, e: CodecError| {
        out.corrupt.push(Corrupt {
            shard,
            offset: r.offset,
            key: format!("{k:?}"),
            error: e.to_string(),
        });
    };
    // Symbols: the writer's numbering to ours.
    let mut sym_map: Vec<Sym> = Vec::new();
    if let Some(r) = by_key.get(&Key::Symbols) {
        match decode::<Vec<String>>(&r.value) {
            Ok(names) => {
                let symbols = &mut engine.ingest.decoder.symbols;
                sym_map = names.iter().map(|n| symbols.intern(n)).collect();
            }
            Err(e) => corrupt(&Key::Symbols, r, e),
        }
    }
    let map = |s: Sym| -> Sym {
        if s == u32::MAX {
            s
        } else {
            sym_map.get(s as usize).copied().unwrap_or(u32::MAX)
        }
    };
    let meta = match by_key
        .get(&Key::Meta)
        .map(|r| (r, decode::<Meta>(&r.value)))
    {
        Some((_, Ok(m))) => Some(m),
        Some((r, Err(e))) => {
            corrupt(&Key::Meta, r, e);
            None
        }
        None => None,
    };
    engine.drop_shard(shard);
    engine.shard_mut(shard);
    // Traders, in id order; a missing record keeps its id with a
    // placeholder name, so the ids after it stay right.
    let names_count = meta.as_ref().map_or(0, |m| m.names);
    let mut names = Interner::new();
    let mut states: Vec<TraderState> = Vec::new();
    let mut alerts: Vec<AlertState> = Vec::new();
    let mut scored: Vec<Scored> = Vec::new();
    let traders: Vec<(u32, &Record)> = by_key
        .iter()
        .filter_map(|(k, r)| match k {
            Key::Trader(i) => Some((*i, r)),
            _ => None,
        })
        .collect();
    let top = traders.last().map_or(0, |(i, _)| i + 1).max(names_count);
    let mut it = traders.into_iter().peekable();
    let (mut any_state, mut any_alert, mut any_scored) = (0, 0, 0);
    for local in 0..top {
        let rec = match it.peek() {
            Some((i, _)) if *i == local => it.next().map(|(_, r)| r),
            _ => None,
        };
        let record = rec.and_then(|r| match decode::<TraderRecord>(&r.value) {
            Ok(x) => Some(x),
            Err(e) => {
                corrupt(&Key::Trader(local), r, e);
                None
            }
        });
        let Some(mut t) = record else {
            names.push_vacant(&crate::event::placeholder_name(shard, local));
            states.push(TraderState::default());
            alerts.push(AlertState::default());
            scored.push(Scored::default());
            continue;
        };
        let placeholder = crate::event::placeholder_name(shard, local);
        if t.name == placeholder {
            // An erased trader whose slot changed since (no name kept).
            names.push_vacant(&placeholder);
        } else {
            names.intern(&t.name);
        }
        if let Some(s) = &mut t.state {
            s.channel = map(s.channel);
            any_state = any_state.max(local + 1);
        }
        if let Some(a) = &mut t.alert {
            a.countries = a.countries.map(map);
            any_alert = local + 1;
        }
        if t.scored.is_some() {
            any_scored = local + 1;
        }
        states.push(t.state.unwrap_or_default());
        alerts.push(t.alert.unwrap_or_default());
        scored.push(t.scored.unwrap_or_default());
    }
    out.traders = top as usize;
    // Only traders with state hold rows (as in a run that never stopped).
    states.truncate(any_state as usize);
    alerts.truncate(any_alert as usize);
    scored.truncate(any_scored as usize);
    engine.ingest.decoder.traders.set_shard(shard, names);
    engine.traders.rows.set_shard(shard, states);
    engine.risk.rules.set_shard(shard, alerts);
    if let Some(sc) = &mut engine.risk.scorer {
        sc.set_shard(shard, scored);
    }
    // Events waiting, de-duplication ids, alert ids sent.
    let released = meta.as_ref().and_then(|m| m.released);
    let mut pending: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
    let mut pending_parts: BTreeMap<u64, u32> = BTreeMap::new();
    let mut sent: Vec<SentBlock> = Vec::new();
    let mut dedup: Vec<(i64, u64, Vec<u64>)> = Vec::new();
    for (k, r) in &by_key {
        match k {
            Key::Pending(b, part) => {
                let parts = pending_parts.entry(*b).or_default();
                *parts = (*parts).max(part + 1);
                match decode::<Vec<Event>>(&r.value) {
                    Ok(mut events) => {
                        events.iter_mut().for_each(|e| e.map_syms(map));
                        pending.entry(*b).or_default().extend(events);
                    }
                    Err(e) => corrupt(k, r, e),
                }
            }
            Key::Dedup(bucket, block) => match decode::<Vec<u64>>(&r.value) {
                Ok(ids) => dedup.push((*bucket, *block, ids)),
                Err(e) => corrupt(k, r, e),
            },
            Key::Sent(_) => match decode::<SentBlock>(&r.value) {
                Ok(b) => sent.push(b),
                Err(e) => corrupt(k, r, e),
            },
            _ => {}
        }
    }
    let cap = engine.risk.dedup_capacity;
    *engine.risk.sent(shard) = SentIds::restore(cap, sent);
    let sh = engine.shard_mut(shard);
    let (buffer, _) = crate::window::ReleaseBuffer::restore(
        pending.into_iter().collect(),
        released.unwrap_or(i64::MIN),
    );
    sh.pending = buffer;
    sh.pending_parts = pending_parts;
    for (bucket, block, ids) in dedup {
        sh.dedup.restore(bucket, &ids);
        sh.dedup.saved_blocks.entry(bucket).or_default().push(block);
    }
    sh.released = released;
    sh.saved_names = names_count.max(top);
    sh.saved_symbols = 0;
    sh.checkpoints = meta.as_ref().map_or(0, |m| m.checkpoints);
    sh.stale_global = by_key.contains_key(&Key::Global);
    // Closed rows and hop slices.
    let kpis = &mut engine.kpis;
    kpis.ensure_shard(shard);
    for (k, r) in &by_key {
        match k {
            Key::Rows(table, lo, hi, part) => match decode_batch(&r.value) {
                Ok(b) if (*table as usize) < 6 => {
                    kpis.stores[shard as usize][*table as usize].restore(*lo, *hi, *part, b)
                }
                Ok(_) => corrupt(k, r, CodecError::Body("no such table".into())),
                Err(e) => corrupt(k, r, e),
            },
            Key::Slice(name, start, part) => {
                let Some(p) = kpis.pipelines.iter_mut().find(|p| &*p.p.name == name) else {
                    continue;
                };
                match decode_batch(&r.value) {
                    Ok(batch) => p.slices[shard as usize].push(Slice {
                        start: *start,
                        part: *part,
                        batch,
                        saved: true,
                    }),
                    Err(e) => corrupt(k, r, e),
                }
            }
            _ => {}
        }
    }
    // A scale-out merge of the partials partition of this number.
    let merge_meta = match by_key.get(&Key::MergeMeta) {
        Some(r) => match decode::<MergeMeta>(&r.value) {
            Ok(m) => Some(m),
            Err(e) => {
                corrupt(&Key::MergeMeta, r, e);
                None
            }
        },
        None => None,
    };
    if let Some(mm) = merge_meta {
        restore_merge(engine, shard, mm, &by_key, &mut corrupt);
    }
    // Progress.
    if let Some(m) = meta {
        *engine.risk.clock(shard) = m.clock;
        for (every, next) in m.captures {
            if let Some(v) = engine.kpis.next_capture.get_mut(&every) {
                v[shard as usize] = next;
            }
        }
        for (name, progress) in m.progress {
            if let Some(p) = engine.kpis.pipelines.iter_mut().find(|p| *p.p.name == name) {
                p.progress[shard as usize] = progress;
            }
        }
        out.inputs = m.inputs;
        out.released = m.released;
    }
    if let Some(r) = by_key.get(&Key::Global) {
        match decode::<Global>(&r.value) {
            Ok(g) => out.global = Some(g),
            Err(e) => corrupt(&Key::Global, r, e),
        }
    }
    Ok(out)
}

/// Loads a merge's records into the merge of partition `shard` (made
/// anew); without scale-out they are reported and skipped.
fn restore_merge(
    engine: &mut Engine,
    shard: u32,
    mm: MergeMeta,
    by_key: &BTreeMap<Key, Record>,
    corrupt: &mut dyn FnMut(&Key, &Record, CodecError),
) {
    let Some(m) = engine.merge_mut(shard) else {
        tracing::warn!(
            shard,
            "the checkpoint holds scale-out merge state but this run does not merge; it is not restored"
        );
        return;
    };
    let top = by_key
        .keys()
        .filter_map(|k| match k {
            Key::Merged(src, _) => Some(src + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    m.set_sources(mm.sources.max(top));
    m.kpi.restore(mm.kpi_drop);
    m.set_kpi_samples(Some(&mm.metrics));
    for (i, r) in mm.released.into_iter().enumerate() {
        m.released[i] = r;
    }
    for (i, l) in mm.last.into_iter().enumerate() {
        m.last[i] = l;
    }
    for (name, progress) in mm.progress {
        if let Some(p) = m.kpis.pipelines.iter_mut().find(|p| *p.p.name == name) {
            for (i, x) in progress.into_iter().enumerate().take(p.progress.len()) {
                p.progress[i] = x;
            }
        }
    }
    for (k, r) in by_key {
        let Key::Merged(src, inner) = k else {
            continue;
        };
        let src = *src as usize;
        let batch = match decode_batch(&r.value) {
            Ok(b) => b,
            Err(e) => {
                corrupt(k, r, e);
                continue;
            }
        };
        match &**inner {
            Key::Rows(table, lo, hi, part) if (*table as usize) < 6 => {
                m.kpis.stores[src][*table as usize].restore(*lo, *hi, *part, batch)
            }
            Key::Slice(name, start, part) => {
                if let Some(p) = m.kpis.pipelines.iter_mut().find(|p| &*p.p.name == name) {
                    p.slices[src].push(Slice {
                        start: *start,
                        part: *part,
                        batch,
                        saved: true,
                    });
                }
            }
            Key::Capture(every, as_of, part) => {
                m.waiting
                    .entry((*every, *as_of))
                    .or_default()
                    .push(Waiting {
                        source: src as u32,
                        part: *part,
                        batch,
                        saved: true,
                    });
            }
            _ => corrupt(k, r, CodecError::Body("not a merge record".into())),
        }
    }
    for v in m.waiting.values_mut() {
        v.sort_by_key(|w| w.part);
    }
}
