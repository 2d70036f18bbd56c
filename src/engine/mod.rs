//! The engine every command runs: decode and validate, de-duplicate,
//! hold events until the event-time frontier passes them, then apply them
//! in event-time order to trader state, the alert rules and the window
//! tables, and run the SQL pipelines over what closed.
//!
//! Time comes from the events alone. Each input (a file, a Kafka
//! partition) has a watermark; the frontier (the slowest watermark minus
//! the grace period) releases events. Per shard (input partition: a trader
//! lives in one), every tick of the alert rules and every snapshot of
//! trader state fires when the released events pass its boundary, seeing
//! exactly the events before it. So outputs depend on which events were
//! read, never on how fast or in what interleaving.

mod emitted;
mod erasure;
mod heap;
mod kpis;
mod merge;
mod partial;
mod scale;
#[cfg(test)]
mod scale_tests;
mod shard;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use emitted::Emitted;
pub use erasure::{ErasureAudit, ErasureRequest};
pub use heap::trim_held_back;
pub use kpis::{Kpis, PipelineState, Progress, Slice, ceil_to};
pub use merge::{Merge, MergeError, Waiting};
pub use partial::{Partial, ROWS_PER_PART, ScaleOut};
pub use scale::Delays;
pub use shard::Shard;

use crate::alert::{Alert, Ctx, Risk};
use crate::event::{Event, EventType, Interner, Invalid, ShardedNames};
use crate::features::{Segment, Traders};
use crate::metrics::Metrics;
use crate::pipeline::{Ingest, IngestConfig, Planned, check_pipelines, runtime};
use crate::window::{TableBuilders, Watermarks, WindowConfig, floor_to};

pub use crate::pipeline::EngineError;

/// Events whose traders' state is read ahead at a time (see
/// `Engine::warm_ahead`).
const AHEAD: usize = 16;

/// Settings of the engine.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub ingest: IngestConfig,
    pub windows: WindowConfig,
    /// Live mode: idle inputs leave the watermark after a timeout, and the
    /// pipelines run as soon as windows close.
    pub live: bool,
}

/// What became of one message.
#[derive(Debug)]
pub enum Processed {
    /// A new event, waiting for the frontier.
    Valid,
    /// A new event behind the frontier: counted and applied to trader state,
    /// but its window already closed.
    Late {
        ts: i64,
        frontier: i64,
    },
    Invalid(Invalid),
    Duplicate,
    /// A message at an offset the state has taken in already (read again
    /// after a rebalance): nothing to do.
    Seen,
}

/// What an input carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Events,
    /// Erasure requests: no watermark of its own.
    Erasure,
    /// Scale-out partials for the merge of its partition: no watermark.
    Partials,
}

/// One input: a file, or a Kafka topic-partition.
#[derive(Debug, Clone, Copy)]
pub struct InputState {
    /// The shard its traders belong to (for partials: the merge).
    pub shard: u32,
    /// The offset after the last message processed.
    pub next_offset: i64,
    pub kind: InputKind,
}

/// Ingest, release, trader state, risk, pipelines.
pub struct Engine {
    pub ingest: Ingest,
    pub config: WindowConfig,
    live: bool,
    pub watermarks: Watermarks,
    /// Per input index.
    pub inputs: Vec<Option<InputState>>,
    /// Per shard.
    pub shards: Vec<Option<Shard>>,
    pub traders: Traders,
    pub risk: Risk,
    pub kpis: Kpis,
    tables: TableBuilders,
    /// What was produced since the last [`Engine::take_emitted`].
    pub out: Emitted,
    /// Earliest event time of a valid event.
    min_event_ts: i64,
    /// Replay: the frontier of the last pipeline run.
    last_run: Option<i64>,
    /// Pipeline runs so far.
    pub cycles: u64,
    metrics: Option<Arc<Mutex<Metrics>>>,
    /// Scale-out: shards send their closed rows to the partials topic, and
    /// the merges of the partials partitions held run the pipelines.
    pub scale_out: Option<ScaleOut>,
    /// Per partials partition held.
    pub merges: BTreeMap<u32, Merge>,
    /// Scale-out: the shards' input ended and their last partials went out.
    pub sources_finished: bool,
    /// Scale-out: partials read, and the delays the merge step added.
    pub partials_read: u64,
    pub merge_delays: Delays,
}

impl Engine {
    /// An engine over the pipelines of `dir` (built-in when `None`).
    pub fn new(config: EngineConfig, dir: Option<&Path>) -> Result<Self, EngineError> {
        let planned = check_pipelines(dir)?;
        Self::with_pipelines(config, planned)
    }

    pub fn with_pipelines(
        config: EngineConfig,
        planned: Vec<Planned>,
    ) -> Result<Self, EngineError> {
        let idle = config.live.then(|| {
            std::time::Duration::from_millis(config.windows.idle_timeout_ms.max(0) as u64)
        });
        Ok(Self {
            ingest: Ingest::new(config.ingest),
            watermarks: Watermarks::new(config.windows.disorder_ms, idle),
            config: config.windows,
            live: config.live,
            inputs: Vec::new(),
            shards: Vec::new(),
            traders: Traders::default(),
            risk: Risk::default(),
            kpis: Kpis::new(planned, runtime()?),
            tables: TableBuilders::new(),
            out: Emitted::default(),
            min_event_ts: i64::MAX,
            last_run: None,
            cycles: 0,
            metrics: None,
            scale_out: None,
            merges: BTreeMap::new(),
            sources_finished: false,
            partials_read: 0,
            merge_delays: Delays::default(),
        })
    }

    /// Scale-out over `partitions` input partitions: KPIs come from the
    /// merges of the partials partitions this engine is given.
    pub fn enable_scale_out(&mut self, partitions: u32) {
        let pipelines = self.kpis.pipelines.iter().map(|p| &p.p);
        self.scale_out = Some(ScaleOut::new(pipelines, partitions));
        if let Some(m) = &self.metrics
            && let Ok(m) = m.lock()
        {
            m.set_scale_out(partitions.max(1));
        }
    }

    /// The merge of partials partition `k`, made when missing (its
    /// pipelines planned again: each merge runs its own plans).
    pub fn merge_mut(&mut self, k: u32) -> Option<&mut Merge> {
        if !self.merges.contains_key(&k) {
            let so = self.scale_out.as_ref()?;
            let index = so.needs.get(k as usize)?.pipelines.clone();
            let defs = index
                .iter()
                .map(|&i| self.kpis.pipelines[i].p.def.clone())
                .collect();
            let planned = match crate::pipeline::plan_defs(defs) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(partition = k, error = %e, "cannot plan the pipelines of a partials partition");
                    return None;
                }
            };
            let mut kpis = Kpis::new(planned, runtime().ok()?);
            kpis.metrics = self.metrics.clone();
            let kpi = self.risk.kpi.fresh();
            self.merges.insert(k, Merge::new(kpis, index, kpi));
        }
        self.merges.get_mut(&k)
    }

    /// Registers the KPI metrics of every pipeline and keeps the handle.
    pub fn attach_metrics(
        &mut self,
        metrics: Arc<Mutex<Metrics>>,
    ) -> Result<(), crate::metrics::MetricNameError> {
        if let Ok(mut m) = metrics.lock() {
            for s in &self.kpis.pipelines {
                m.register_pipeline(&s.p)?;
            }
            self.risk.metrics = Some(m.risk.clone());
        }
        self.kpis.metrics = Some(metrics.clone());
        self.metrics = Some(metrics);
        Ok(())
    }

    /// Names of the planned pipelines.
    pub fn pipeline_names(&self) -> Vec<String> {
        self.kpis.names()
    }

    /// The planned pipeline `i`.
    pub fn planned(&self, i: usize) -> &Planned {
        &self.kpis.pipelines[i].p
    }

    /// The shard of `shard`, created when missing.
    pub fn shard_mut(&mut self, shard: u32) -> &mut Shard {
        let s = shard as usize;
        // Per event: a shard that exists has its KPI state too.
        if self.shards.get(s).is_some_and(Option::is_some) {
            let Some(Some(sh)) = self.shards.get_mut(s) else {
                unreachable!("checked just above")
            };
            return sh;
        }
        if s >= self.shards.len() {
            self.shards.resize_with(s + 1, || None);
        }
        let (window, max) = (
            self.ingest.config.dedup_window_ms,
            self.ingest.config.dedup_max_ids,
        );
        self.kpis.ensure_shard(shard);
        self.shards[s].get_or_insert_with(|| Shard::new(window, max))
    }

    /// Input `index` feeds `shard`; until it delivers, it holds the
    /// watermark back (in live mode, until the idle timeout).
    pub fn open_input(&mut self, index: usize, shard: u32, next_offset: i64) {
        self.set_input(index, shard, next_offset, InputKind::Events);
        self.watermarks.assign(index);
        self.shard_mut(shard);
    }

    /// Input `index` brings erasure requests for `shard`: it never holds
    /// the watermark back, and it does not make the shard exist (an erasure
    /// topic with more partitions than the inputs has partitions of no
    /// shard; their requests find nothing).
    pub fn open_erasure_input(&mut self, index: usize, shard: u32, next_offset: i64) {
        self.set_input(index, shard, next_offset, InputKind::Erasure);
    }

    /// Input `index` brings the partials of merge `shard` (scale-out): it
    /// never holds the watermark back; its offset is saved with the shard
    /// of its number, with the merge's state.
    pub fn open_partials_input(&mut self, index: usize, shard: u32, next_offset: i64) {
        self.set_input(index, shard, next_offset, InputKind::Partials);
        self.shard_mut(shard);
        self.merge_mut(shard);
    }

    fn set_input(&mut self, index: usize, shard: u32, next_offset: i64, kind: InputKind) {
        if index >= self.inputs.len() {
            self.inputs.resize(index + 1, None);
        }
        self.inputs[index] = Some(InputState {
            shard,
            next_offset,
            kind,
        });
    }

    /// Input `index` left: it no longer holds the watermark back.
    pub fn close_input(&mut self, index: usize) {
        if let Some(i) = self.inputs.get_mut(index) {
            *i = None;
        }
        self.watermarks.remove(index);
    }

    /// Drops every piece of state of `shard` (its partition left).
    pub fn drop_shard(&mut self, shard: u32) {
        if let Some(s) = self.shards.get_mut(shard as usize) {
            *s = None;
        }
        self.traders.rows.clear_shard(shard);
        self.risk.clear_shard(shard);
        self.kpis.clear_shard(shard);
        if let Some(m) = self.merges.remove(&shard) {
            m.set_kpi_samples(None);
        }
        self.ingest
            .decoder
            .traders
            .set_shard(shard, Interner::new());
    }

    /// The closed frontier: every shard has released the events before it.
    pub fn frontier(&self) -> Option<i64> {
        self.active_shards().filter_map(|(_, s)| s.released).min()
    }

    /// Earliest and latest event time seen (valid events).
    pub fn event_time_span(&self) -> Option<(i64, i64)> {
        let hi = self.watermarks.max_event_time()?;
        (self.min_event_ts <= hi).then_some((self.min_event_ts, hi))
    }

    /// The overall watermark.
    pub fn watermark(&self) -> Option<i64> {
        self.watermarks.watermark()
    }

    /// Events read but not yet released.
    pub fn pending(&self) -> usize {
        self.shards.iter().flatten().map(|s| s.pending.len()).sum()
    }

    /// Processes the message at `offset` of input `input`; `fallback_type`
    /// is the event type when the message has none (a topic per type).
    pub fn process(
        &mut self,
        bytes: &[u8],
        input: usize,
        offset: i64,
        now_ms: i64,
        fallback_type: Option<EventType>,
    ) -> Processed {
        if self.inputs.get(input).is_none_or(Option::is_none) {
            self.open_input(input, 0, offset);
        }
        let Some(inp) = self.inputs[input].as_mut() else {
            unreachable!("opened above")
        };
        // The state took in every message before `next_offset` already: a
        // partition kept across a rebalance is read again from the group's
        // committed offset, which at-least-once may leave behind.
        if offset < inp.next_offset {
            return Processed::Seen;
        }
        inp.next_offset = offset + 1;
        let shard = inp.shard;
        match inp.kind {
            InputKind::Events => {}
            InputKind::Erasure => return self.erase_request(bytes, shard),
            InputKind::Partials => return self.take_partial(bytes, shard),
        }
        let event = match self.ingest.decode(bytes, now_ms, fallback_type, shard) {
            Ok(e) => e,
            Err(i) => return Processed::Invalid(i),
        };
        let t = event.event_type().index();
        if self
            .shard_mut(shard)
            .dedup
            .is_duplicate(event.id_hash, event.ts)
        {
            self.ingest.stats.duplicate[t] += 1;
            return Processed::Duplicate;
        }
        self.watermarks.observe(input, event.ts);
        self.min_event_ts = self.min_event_ts.min(event.ts);
        // Late: behind the point up to which windows may close, whether or
        // not a release has happened yet, so that lateness depends on the
        // order of events only, never on when releases run.
        let target = self.target_frontier();
        let released = self.shard_mut(shard).released;
        let bound = match (released, target) {
            (Some(r), Some(t)) => Some(r.max(t)),
            (r, t) => r.or(t),
        };
        if let Some(f) = bound
            && event.ts < f
        {
            self.ingest.stats.late[t] += 1;
            let ts = event.ts;
            self.apply(shard, &event, false);
            return Processed::Late { ts, frontier: f };
        }
        self.ingest.stats.valid[t] += 1;
        self.shard_mut(shard).pending.push(event);
        Processed::Valid
    }

    /// Applies a released (or late) event: trader state, the event rules,
    /// and, unless late, its table row.
    fn apply(&mut self, shard: u32, e: &Event, row: bool) {
        self.traders.apply(e);
        let ctx = Ctx {
            traders: &self.traders,
            names: &self.ingest.decoder.traders,
            symbols: &self.ingest.decoder.symbols,
        };
        self.risk.on_event(shard, e, &ctx, &mut self.out.alerts);
        if row && let Some(state) = self.traders.get(e.trader) {
            let segment: Segment = self.traders.segment(state);
            self.tables
                .append(e, segment, &self.ingest.decoder.symbols, state);
        }
    }

    /// Reads the state of the traders of the next `AHEAD` events of
    /// `shard` before applying them: traders of consecutive events are
    /// scattered over the state, and these loads overlap where each
    /// event's own would wait for the one before.
    fn warm_ahead(&self, shard: u32) {
        let Some(Some(sh)) = self.shards.get(shard as usize) else {
            return;
        };
        let mut ids = [0; AHEAD];
        let mut n = 0;
        for e in sh.pending.upcoming().take(AHEAD) {
            ids[n] = e.trader;
            n += 1;
        }
        let ids = &ids[..n];
        std::hint::black_box(self.traders.warm(ids) ^ self.risk.warm(ids));
    }

    /// Fires the event-time boundaries of `shard` up to `upto`: alert
    /// ticks and snapshot captures.
    fn fire(&mut self, shard: u32, upto: i64) {
        let ctx = Ctx {
            traders: &self.traders,
            names: &self.ingest.decoder.traders,
            symbols: &self.ingest.decoder.symbols,
        };
        self.risk.advance(shard, upto, &ctx, &mut self.out.alerts);
        self.kpis
            .capture(shard, upto, &self.traders, &self.ingest.decoder.symbols);
    }

    /// Releases the events of `shard` before `frontier`, in event-time order.
    fn release_shard(&mut self, shard: u32, frontier: i64) {
        let lo = self.shard_mut(shard).released;
        if lo.is_some_and(|r| r >= frontier) {
            return;
        }
        let mut released = 0usize;
        while let Some(e) = self.shard_mut(shard).pending.pop_before(frontier) {
            if released % AHEAD == 0 {
                self.warm_ahead(shard);
            }
            released += 1;
            self.fire(shard, e.ts);
            self.apply(shard, &e, true);
        }
        self.fire(shard, frontier);
        let sh = self.shard_mut(shard);
        sh.released = Some(frontier);
        sh.dedup.forget_before(frontier);
        let batches = self.tables.finish();
        self.kpis
            .push_closed(shard, lo.unwrap_or(i64::MIN), frontier, batches);
    }

    /// Shard numbers with state, parked ones left out.
    pub fn shard_numbers(&self) -> Vec<u32> {
        self.active_shards().map(|(i, _)| i).collect()
    }

    /// The shards held and not parked, by number: the ones that move on.
    fn active_shards(&self) -> impl Iterator<Item = (u32, &Shard)> {
        self.shards
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i as u32, s.as_ref().filter(|s| !s.parked)?)))
    }

    /// Parks a shard (revoked: it stands still) or takes it back.
    pub fn park_shard(&mut self, shard: u32, parked: bool) {
        if let Some(Some(s)) = self.shards.get_mut(shard as usize) {
            s.parked = parked;
        }
    }

    /// True for a parked shard (see [`Shard::parked`]).
    pub fn is_parked(&self, shard: u32) -> bool {
        self.shards
            .get(shard as usize)
            .and_then(Option::as_ref)
            .is_some_and(|s| s.parked)
    }

    /// Releases what the frontier passed; in live mode (or, in replay,
    /// each `emit_every` of event time) runs the pipelines over it.
    /// Returns true when the pipelines ran.
    pub fn advance(&mut self) -> bool {
        if self.scale_out.is_some() {
            if let Some(target) = self.target_frontier() {
                for s in self.shard_numbers() {
                    self.release_shard(s, target);
                }
                self.publish_partials(false);
            }
            self.run_merges();
            return true;
        }
        let Some(target) = self.target_frontier() else {
            return false;
        };
        for s in self.shard_numbers() {
            self.release_shard(s, target);
        }
        let due = match self.last_run {
            None => {
                self.last_run = Some(target);
                self.live
            }
            Some(last) => self.live || target - last >= self.config.emit_every_ms,
        };
        if due {
            self.run_pipelines(false);
        } else if !self.kpis.captures.is_empty() {
            self.run_snapshots();
        }
        due
    }

    /// Runs the pipelines over snapshots captured but not yet queried (in
    /// replay they wait for the next run): a checkpoint saves no captures,
    /// so it must come after this and after the outputs were taken.
    pub fn settle(&mut self) {
        if self.scale_out.is_some() {
            // What closed goes out with the checkpoint that forgets it, and
            // the merges run over every partial they took in: a checkpoint
            // of a merge holds what it emitted, so the instance that holds
            // it next neither emits that again nor misses it.
            self.publish_partials(false);
            self.run_merges();
            return;
        }
        if !self.kpis.captures.is_empty() {
            self.run_pipelines(false);
        }
    }

    /// End of input: releases everything and closes every window,
    /// including the partial last ones.
    pub fn finish(&mut self) {
        if self.scale_out.is_some() {
            self.finish_sources();
            self.run_merges();
            return;
        }
        if self.release_to_end() {
            self.run_pipelines(true);
        }
    }

    /// End of input: releases every event and captures the last partial
    /// snapshot interval; false when no event was ever read.
    fn release_to_end(&mut self) -> bool {
        let Some(max) = self.watermarks.max_event_time() else {
            return false;
        };
        let end = max + 1;
        for s in self.shard_numbers() {
            self.release_shard(s, end);
            self.kpis
                .capture_last(s, end, &self.traders, &self.ingest.decoder.symbols);
        }
        true
    }

    /// Runs every pipeline over what the shards released.
    fn run_pipelines(&mut self, last: bool) {
        let started = Instant::now();
        let released: Vec<(u32, i64)> = self
            .active_shards()
            .filter_map(|(i, s)| Some((i, s.released?)))
            .collect();
        if released.is_empty() {
            return;
        }
        self.cycles += 1;
        let frontier = released.iter().map(|(_, r)| *r).min().unwrap_or(i64::MIN);
        self.last_run = Some(self.last_run.map_or(frontier, |l| l.max(frontier)));
        let rows = self.kpis.run(&released, last);
        self.emit_kpis(rows);
        self.out.frontier = Some(frontier);
        if let Some(m) = &self.metrics
            && let Ok(mut m) = m.lock()
        {
            m.observe_cycle(started.elapsed().as_secs_f64(), frontier);
        }
    }

    /// Runs the snapshot pipelines over the captures taken (replay, between
    /// runs of the windowed ones), so that captures do not pile up.
    fn run_snapshots(&mut self) {
        let rows = self.kpis.run_snapshots();
        self.emit_kpis(rows);
    }

    /// Puts pipeline rows out, through the KPI alert rules first.
    fn emit_kpis(&mut self, rows: Vec<(usize, Vec<crate::pipeline::KpiRow>)>) {
        for (_, r) in &rows {
            self.risk.on_kpi_rows(r, &mut self.out.alerts);
        }
        self.out.kpis.extend(rows);
    }

    /// What was produced since the last call.
    pub fn take_emitted(&mut self) -> Emitted {
        std::mem::take(&mut self.out)
    }

    /// Takes back the alerts' vector the sinks emptied, to fill again: a
    /// vector grown anew for every delivery had its pages faulted in
    /// anew each time (a tenth of a replay's page faults). Up to a bound,
    /// so that one burst of alerts does not stay resident.
    pub fn recycle_alerts(&mut self, mut spare: Vec<Alert>) {
        const KEEP_BYTES: usize = 16 << 20;
        spare.clear();
        if self.out.alerts.is_empty()
            && spare.capacity() > self.out.alerts.capacity()
            && spare.capacity() * std::mem::size_of::<Alert>() <= KEEP_BYTES
        {
            self.out.alerts = spare;
        }
    }

    /// The point before which events are late: the watermark minus the
    /// grace period, on the grid of the smallest pipeline step.
    fn target_frontier(&self) -> Option<i64> {
        let wm = self.watermarks.watermark()?;
        Some(floor_to(
            wm.saturating_sub(self.config.grace_ms),
            self.kpis.base_step,
        ))
    }

    /// Trader names of every shard.
    pub fn names(&self) -> &ShardedNames {
        &self.ingest.decoder.traders
    }

    /// Approximate bytes of trader, de-duplication and window state.
    pub fn state_bytes(&self) -> usize {
        self.ingest.state_bytes()
            + self.traders.heap_bytes()
            + self.risk.heap_bytes()
            + self.kpis.bytes()
            + self.merges.values().map(Merge::bytes).sum::<usize>()
            + self
                .shards
                .iter()
                .flatten()
                .map(Shard::heap_bytes)
                .sum::<usize>()
    }
}
