//! The KPI side of the engine: closed rows per shard, and the SQL
//! pipelines run over them.
//!
//! Every shard (input partition) keeps its own progress per pipeline, so a
//! shard's state can move to another instance and continue there. Shards
//! that stand at the same progress (always, unless one was just restored
//! from another instance's checkpoint) run as one group in one query, so a
//! window's rows cover all of them; a shard that lags runs alone until it
//! catches up, and its rows are its share of windows already emitted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use crate::event::Interner;
use crate::features::{Traders, traders_batch};
use crate::metrics::Metrics;
use crate::pipeline::{Input, KpiRow, Planned, rows_from_batches, slices_schema};
use crate::window::{ClosedStore, WindowSpec, floor_to};

/// A pipeline's progress in one shard (part of the checkpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Tumbling and hopping windows: the shard's rows before this were
    /// consumed (emitted, or aggregated into slices).
    pub done: Option<i64>,
    /// Hopping windows: end of the latest window that included the shard.
    pub last_end: Option<i64>,
}

/// Partial rows of one slide of a hopping window (one of possibly several
/// batches of that slide: `part`).
#[derive(Debug, Clone)]
pub struct Slice {
    pub start: i64,
    pub part: u32,
    pub batch: RecordBatch,
    /// Written to the checkpoint already.
    pub saved: bool,
}

/// One planned pipeline and its state.
pub struct PipelineState {
    pub p: Planned,
    /// Per shard.
    pub progress: Vec<Progress>,
    /// Hopping windows, per shard: partial rows per slice start.
    pub slices: Vec<Vec<Slice>>,
    /// Per shard, saved slices dropped since the last checkpoint.
    pub forgotten: Vec<Vec<(i64, u32)>>,
    /// Time spent running this pipeline (for `pulse bench`).
    pub spent: std::time::Duration,
}

/// A closed store per shard and table, the pipelines, the captured
/// snapshots of trader state waiting for their queries.
pub struct Kpis {
    pub pipelines: Vec<PipelineState>,
    /// `[shard][table]`.
    pub stores: Vec<Vec<ClosedStore>>,
    /// Snapshot intervals of the snapshot pipelines, and per interval and
    /// shard the next boundary to capture (`None` before the shard's first
    /// event).
    pub next_capture: BTreeMap<i64, Vec<Option<i64>>>,
    /// Captured `traders` tables: (interval, as_of) -> per shard.
    pub captures: BTreeMap<(i64, i64), Vec<(u32, RecordBatch)>>,
    rt: tokio::runtime::Runtime,
    /// Smallest step of any pipeline.
    pub base_step: i64,
    pub metrics: Option<Arc<Mutex<Metrics>>>,
    /// Time spent building `traders` snapshots (for `pulse bench`).
    pub capture_spent: std::time::Duration,
}

/// `t` rounded up to a multiple of `step`.
pub fn ceil_to(t: i64, step: i64) -> i64 {
    let f = floor_to(t, step);
    if f == t { t } else { f + step }
}

/// Shards grouped by a key, in key order.
fn groups<K: Ord + Copy>(shards: impl Iterator<Item = (u32, K)>) -> Vec<(K, Vec<u32>)> {
    let mut m: BTreeMap<K, Vec<u32>> = BTreeMap::new();
    for (s, k) in shards {
        m.entry(k).or_default().push(s);
    }
    m.into_iter().collect()
}

impl Kpis {
    pub fn new(planned: Vec<Planned>, rt: tokio::runtime::Runtime) -> Self {
        let base_step = planned
            .iter()
            .map(|p| p.def.window.step_ms())
            .min()
            .unwrap_or(60_000);
        let next_capture = planned
            .iter()
            .filter_map(|p| match p.def.window {
                WindowSpec::Snapshot { every_ms } => Some((every_ms, Vec::new())),
                _ => None,
            })
            .collect();
        Self {
            pipelines: planned
                .into_iter()
                .map(|p| PipelineState {
                    p,
                    progress: Vec::new(),
                    slices: Vec::new(),
                    forgotten: Vec::new(),
                    spent: std::time::Duration::ZERO,
                })
                .collect(),
            stores: Vec::new(),
            next_capture,
            captures: BTreeMap::new(),
            rt,
            base_step,
            metrics: None,
            capture_spent: std::time::Duration::ZERO,
        }
    }

    /// Makes room for `shard` in every per-shard vector.
    pub fn ensure_shard(&mut self, shard: u32) {
        let n = shard as usize + 1;
        // Every per-shard vector grows here only, all at once.
        if self.stores.len() >= n {
            return;
        }
        if self.stores.len() < n {
            self.stores
                .resize_with(n, || vec![ClosedStore::default(); 6]);
        }
        for s in &mut self.pipelines {
            if s.progress.len() < n {
                s.progress.resize(n, Progress::default());
                s.slices.resize_with(n, Vec::new);
                s.forgotten.resize_with(n, Vec::new);
            }
        }
        for v in self.next_capture.values_mut() {
            if v.len() < n {
                v.resize(n, None);
            }
        }
    }

    /// Drops a shard's KPI state.
    pub fn clear_shard(&mut self, shard: u32) {
        self.ensure_shard(shard);
        let s = shard as usize;
        self.stores[s] = vec![ClosedStore::default(); 6];
        for p in &mut self.pipelines {
            p.progress[s] = Progress::default();
            p.slices[s].clear();
            p.forgotten[s].clear();
        }
        for v in self.next_capture.values_mut() {
            v[s] = None;
        }
        for c in self.captures.values_mut() {
            c.retain(|(x, _)| *x != shard);
        }
    }

    /// Adds the rows of `shard` released between `lo` and `hi`.
    pub fn push_closed(&mut self, shard: u32, lo: i64, hi: i64, batches: Vec<RecordBatch>) {
        self.ensure_shard(shard);
        for (store, batch) in self.stores[shard as usize].iter_mut().zip(batches) {
            store.push(lo, hi, batch);
        }
    }

    /// Captures the `traders` table of `shard` at every snapshot boundary
    /// up to `upto` (its state holds exactly the events before each).
    pub fn capture(&mut self, shard: u32, upto: i64, traders: &Traders, symbols: &Interner) {
        if self.next_capture.is_empty() {
            return;
        }
        self.ensure_shard(shard);
        let s = shard as usize;
        let has_traders = !traders.rows.shard(shard).is_empty();
        for (&every, next) in &mut self.next_capture {
            let Some(mut b) = next[s] else {
                next[s] = Some(floor_to(upto, every) + every);
                continue;
            };
            while b <= upto {
                if has_traders {
                    let started = Instant::now();
                    let batch = traders_batch(traders, symbols, b, shard);
                    self.capture_spent += started.elapsed();
                    self.captures
                        .entry((every, b))
                        .or_default()
                        .push((shard, batch));
                }
                b += every;
            }
            next[s] = Some(b);
        }
    }

    /// End of input: captures every shard's state at the end of the
    /// partial interval holding `frontier`.
    pub fn capture_last(
        &mut self,
        shard: u32,
        frontier: i64,
        traders: &Traders,
        symbols: &Interner,
    ) {
        self.capture(shard, frontier, traders, symbols);
        if traders.rows.shard(shard).is_empty() {
            return;
        }
        let s = shard as usize;
        for (&every, next) in &mut self.next_capture {
            let b = ceil_to(frontier, every);
            if next[s].is_some_and(|n| n <= b) {
                let batch = traders_batch(traders, symbols, b, shard);
                self.captures
                    .entry((every, b))
                    .or_default()
                    .push((shard, batch));
                next[s] = Some(b + every);
            }
        }
    }

    /// Runs every pipeline over what closed: `released` gives each shard
    /// and the event time it has been released up to. With `last`, the
    /// partial windows holding the latest events are closed too. Returns
    /// the rows of each pipeline that produced any.
    pub fn run(&mut self, released: &[(u32, i64)], last: bool) -> Vec<(usize, Vec<KpiRow>)> {
        self.run_selected(released, last, false)
    }

    /// Runs the snapshot pipelines over the captures taken so far, and
    /// only them. Each capture is queried on its own anyway, so nothing is
    /// amortised by waiting; a replay that waited a week of event time
    /// held seven captures of every trader at once.
    pub fn run_snapshots(&mut self) -> Vec<(usize, Vec<KpiRow>)> {
        self.run_selected(&[], false, true)
    }

    fn run_selected(
        &mut self,
        released: &[(u32, i64)],
        last: bool,
        snapshots_only: bool,
    ) -> Vec<(usize, Vec<KpiRow>)> {
        for &(s, _) in released {
            self.ensure_shard(s);
        }
        let mut out = Vec::new();
        for i in 0..self.pipelines.len() {
            let started = Instant::now();
            let window = self.pipelines[i].p.def.window;
            if snapshots_only && !matches!(window, WindowSpec::Snapshot { .. }) {
                continue;
            }
            let bound = |r: i64, step: i64| {
                if last {
                    ceil_to(r, step)
                } else {
                    floor_to(r, step)
                }
            };
            let result = match window {
                WindowSpec::Tumble { size_ms } => {
                    let targets: Vec<(u32, i64)> = released
                        .iter()
                        .map(|&(s, r)| (s, bound(r, size_ms)))
                        .collect();
                    self.run_tumble(i, &targets, size_ms)
                }
                WindowSpec::Hop { size_ms, slide_ms } => {
                    let targets: Vec<(u32, i64)> = released
                        .iter()
                        .map(|&(s, r)| (s, bound(r, slide_ms)))
                        .collect();
                    self.run_hop(i, &targets, size_ms, slide_ms)
                }
                WindowSpec::Snapshot { every_ms } => self.run_snapshot(i, every_ms),
            };
            let took = started.elapsed();
            self.pipelines[i].spent += took;
            let name = self.pipelines[i].p.name.clone();
            match result {
                Ok(rows) => {
                    if let Some(m) = &self.metrics
                        && let Ok(mut m) = m.lock()
                    {
                        m.observe_query(&name, took.as_secs_f64());
                    }
                    if !rows.is_empty() {
                        out.push((i, rows));
                    }
                }
                Err(e) => {
                    tracing::error!(pipeline = %name, error = %e, "pipeline run failed; its windows are skipped");
                    if let Some(m) = &self.metrics
                        && let Ok(mut m) = m.lock()
                    {
                        m.pipeline_error(&name);
                    }
                }
            }
        }
        // Every snapshot pipeline read the captures.
        let captured: usize = self
            .captures
            .values()
            .flatten()
            .map(|(_, b)| b.get_array_memory_size())
            .sum();
        self.captures.clear();
        if captured >= super::heap::TRIM_AFTER_BYTES {
            super::heap::give_back_free_heap();
        }
        self.forget_consumed();
        out
    }

    /// Drops closed rows every windowed pipeline has read past, per shard
    /// (with snapshot pipelines only, as a scale-out merge may have: rows
    /// before the latest snapshot queried).
    fn forget_consumed(&mut self) {
        let windowed = self
            .pipelines
            .iter()
            .any(|p| !matches!(p.p.def.window, WindowSpec::Snapshot { .. }));
        for (s, stores) in self.stores.iter_mut().enumerate() {
            let keep_from = self
                .pipelines
                .iter()
                .filter(|p| windowed != matches!(p.p.def.window, WindowSpec::Snapshot { .. }))
                .map(|p| p.progress.get(s).and_then(|x| x.done).unwrap_or(i64::MIN))
                .min();
            if let Some(t) = keep_from {
                for store in stores {
                    store.forget_before(t);
                }
            }
        }
    }

    /// Runs pipeline `i`'s first query over the rows of `shards` with event
    /// time in `[lo, hi)`, in tumbling windows of `size`; the snapshot, when
    /// read, is `traders`.
    fn run_stage(
        &self,
        i: usize,
        shards: &[u32],
        (lo, hi): (i64, i64),
        size: i64,
        traders: &[RecordBatch],
    ) -> datafusion::error::Result<Vec<RecordBatch>> {
        let stores = &self.stores;
        self.rt.block_on(self.pipelines[i].p.stage.run(|input| {
            match input {
                Input::Event(t) => shards
                    .iter()
                    .flat_map(|&s| stores[s as usize][t].rows_in(lo, hi))
                    .map(|b| with_windows(&b, size))
                    .collect(),
                Input::Traders => traders.to_vec(),
                Input::Slices => Vec::new(),
            }
        }))
    }

    fn run_tumble(
        &mut self,
        i: usize,
        targets: &[(u32, i64)],
        size: i64,
    ) -> datafusion::error::Result<Vec<KpiRow>> {
        let progress = &self.pipelines[i].progress;
        let keyed = targets.iter().map(|&(s, hi)| {
            let lo = progress[s as usize].done.unwrap_or(i64::MIN);
            (s, (lo, hi))
        });
        let mut rows = Vec::new();
        for ((lo, hi), shards) in groups(keyed) {
            if hi <= lo {
                continue;
            }
            let batches = self.run_stage(i, &shards, (lo, hi), size, &[])?;
            let st = &mut self.pipelines[i];
            for &s in &shards {
                st.progress[s as usize].done = Some(hi);
            }
            rows.extend(rows_from_batches(
                &st.p.name,
                &batches,
                &st.p.labels,
                &st.p.values,
                lo,
                size,
            )?);
        }
        Ok(rows)
    }

    fn run_hop(
        &mut self,
        i: usize,
        targets: &[(u32, i64)],
        size: i64,
        slide: i64,
    ) -> datafusion::error::Result<Vec<KpiRow>> {
        // Slices: each shard's complete slides, pre-aggregated on their own.
        for &(s, hi) in targets {
            let lo = self.pipelines[i].progress[s as usize]
                .done
                .unwrap_or(i64::MIN);
            if hi <= lo {
                continue;
            }
            let partials = self.run_stage(i, &[s], (lo, hi), slide, &[])?;
            let st = &mut self.pipelines[i];
            st.progress[s as usize].done = Some(hi);
            for b in partials {
                split_slices(&b, &mut st.slices[s as usize])?;
            }
        }
        // Windows: shards at the same progress together.
        let st = &self.pipelines[i];
        let keyed = targets
            .iter()
            .map(|&(s, hi)| (s, (st.progress[s as usize].last_end, hi)));
        let mut rows = Vec::new();
        let groups = groups(keyed);
        if groups.len() > 1 {
            tracing::debug!(pipeline = %st.p.name, ?groups, "shards at different progress run apart");
        }
        for ((last_end, hi), shards) in groups {
            let st = &self.pipelines[i];
            let first_slice = shards
                .iter()
                .flat_map(|&s| st.slices[s as usize].iter().map(|x| x.start))
                .min();
            let mut end = match (last_end, first_slice) {
                (Some(e), _) => e + slide,
                (None, Some(f)) => f + slide,
                (None, None) => continue,
            };
            let schema = slices_schema(&st.p.stage.output);
            let mut input = Vec::new();
            let mut emitted = None;
            while end <= hi {
                for &s in &shards {
                    for x in &st.slices[s as usize] {
                        if x.start >= end - size && x.start < end {
                            input.push(as_slice_rows(&x.batch, &schema, end - size, end)?);
                        }
                    }
                }
                emitted = Some(end);
                end += slide;
            }
            let Some(emitted) = emitted else { continue };
            let st = &mut self.pipelines[i];
            let keep_from = emitted + slide - size;
            for &s in &shards {
                let s = s as usize;
                st.progress[s].last_end = Some(emitted);
                let forgotten = &mut st.forgotten[s];
                st.slices[s].retain(|x| {
                    let keep = x.start >= keep_from;
                    if !keep && x.saved {
                        forgotten.push((x.start, x.part));
                    }
                    keep
                });
            }
            if input.is_empty() {
                continue;
            }
            let combine = st.p.combine.as_ref().ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(format!(
                    "hopping pipeline {} has no combine stage",
                    st.p.name
                ))
            })?;
            let batches = self.rt.block_on(combine.run(|_| input.clone()))?;
            rows.extend(rows_from_batches(
                &st.p.name,
                &batches,
                &st.p.labels,
                &st.p.values,
                emitted - size,
                size,
            )?);
        }
        Ok(rows)
    }

    fn run_snapshot(&mut self, i: usize, every: i64) -> datafusion::error::Result<Vec<KpiRow>> {
        let mut rows = Vec::new();
        let due: Vec<(i64, Vec<u32>, Vec<RecordBatch>)> = self
            .captures
            .range((every, i64::MIN)..=(every, i64::MAX))
            .map(|((_, as_of), v)| {
                // A merge may hold a shard's capture in several batches.
                let mut shards: Vec<u32> = v.iter().map(|(s, _)| *s).collect();
                shards.dedup();
                (*as_of, shards, v.iter().map(|(_, b)| b.clone()).collect())
            })
            .collect();
        for (as_of, shards, traders) in due {
            let batches = self.run_stage(i, &shards, (as_of - every, as_of), every, &traders)?;
            let st = &mut self.pipelines[i];
            for &s in &shards {
                st.progress[s as usize].done = Some(as_of);
            }
            rows.extend(rows_from_batches(
                &st.p.name,
                &batches,
                &st.p.labels,
                &st.p.values,
                as_of - every,
                every,
            )?);
        }
        Ok(rows)
    }

    /// Names of the planned pipelines.
    pub fn names(&self) -> Vec<String> {
        self.pipelines
            .iter()
            .map(|s| s.p.name.to_string())
            .collect()
    }

    /// Approximate bytes held by closed rows, slices and captures.
    pub fn bytes(&self) -> usize {
        self.stores
            .iter()
            .flatten()
            .map(ClosedStore::bytes)
            .sum::<usize>()
            + self
                .pipelines
                .iter()
                .flat_map(|s| s.slices.iter().flatten())
                .map(|x| x.batch.get_array_memory_size())
                .sum::<usize>()
    }
}

/// Splits partial rows by slice start, so retention can drop whole slices.
fn split_slices(b: &RecordBatch, slices: &mut Vec<Slice>) -> datafusion::error::Result<()> {
    let Some(starts) = b.column_by_name("window_start") else {
        return Err(datafusion::error::DataFusionError::Execution(
            "the slice query lost `window_start`".into(),
        ));
    };
    let starts = datafusion::arrow::compute::cast(starts, &DataType::Int64)?;
    let Some(starts) = starts.as_any().downcast_ref::<Int64Array>() else {
        return Ok(());
    };
    let mut distinct: Vec<i64> = starts.iter().flatten().collect();
    distinct.sort_unstable();
    distinct.dedup();
    for start in distinct {
        let mask: datafusion::arrow::array::BooleanArray =
            starts.iter().map(|v| Some(v == Some(start))).collect();
        let part = slices.iter().filter(|x| x.start == start).count() as u32;
        slices.push(Slice {
            start,
            part,
            batch: datafusion::arrow::compute::filter_record_batch(b, &mask)?,
            saved: false,
        });
    }
    Ok(())
}

/// Adds `window_start` and `window_end` of tumbling windows of `size`.
#[expect(
    clippy::expect_used,
    reason = "two Int64 columns of the batch's length added to its own schema"
)]
fn with_windows(batch: &RecordBatch, size: i64) -> RecordBatch {
    #[expect(
        clippy::expect_used,
        reason = "the event tables' column 0 is `ts`, Int64, by construction (window::schema_of)"
    )]
    let ts = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("ts is Int64");
    let start: Int64Array = ts.unary(|t| floor_to(t, size));
    let end: Int64Array = start.unary(|s| s + size);
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("window_start", DataType::Int64, false));
    fields.push(Field::new("window_end", DataType::Int64, false));
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    cols.push(Arc::new(start));
    cols.push(Arc::new(end));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("window columns fit")
}

/// A slice's partial rows as rows of the hopping window `[start, end)`.
fn as_slice_rows(
    batch: &RecordBatch,
    schema: &Arc<Schema>,
    start: i64,
    end: i64,
) -> datafusion::error::Result<RecordBatch> {
    let n = batch.num_rows();
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (f, col) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.name() == "window_end" {
            continue;
        }
        if f.name() == "window_start" {
            cols.push(datafusion::arrow::compute::cast(col, &DataType::Int64)?);
        } else {
            cols.push(col.clone());
        }
    }
    cols.push(Arc::new(Int64Array::from(vec![start; n])));
    cols.push(Arc::new(Int64Array::from(vec![end; n])));
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}
