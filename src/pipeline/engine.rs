//! The engine every command runs: ingest, then event-time windows, then the
//! SQL pipelines, then the KPI outputs.
//!
//! Time comes from the events: the frontier (watermark − grace) closes
//! rows, and a cycle runs each pipeline over every window that closed since
//! its last run, in one query (the window start is a grouping key).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use super::catalog::{Planned, load, plan_all, slices_schema};
use super::ingest::{Ingest, IngestConfig, Outcome};
use super::kpi::{KpiRow, KpiSink, SharedBoard, rows_from_batches};
use super::runner::Input;
use super::spec::PipelineError;
use crate::alert::Risk;
use crate::event::time::format_rfc3339_ms;
use crate::event::{EventType, Invalid};
use crate::features::{Segment, traders_batch};
use crate::metrics::Metrics;
use crate::window::{
    ClosedStore, EventTables, OpenRow, Watermarks, WindowConfig, WindowSpec, floor_to,
};

/// Failures that stop the engine from starting.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{} pipeline problem(s):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Pipelines(Vec<PipelineError>),
    #[error("cannot start the query runtime: {0}")]
    Runtime(std::io::Error),
}

/// Settings of the engine.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub ingest: IngestConfig,
    pub windows: WindowConfig,
    /// Live mode: idle partitions leave the watermark after a timeout.
    pub live: bool,
}

/// What became of one message.
#[derive(Debug)]
pub enum Processed {
    /// A new event, in its window.
    Valid,
    /// A new event behind the frontier: counted and applied to trader state,
    /// but its window already closed.
    Late {
        ts: i64,
        frontier: i64,
    },
    Invalid(Invalid),
    Duplicate,
}

/// Where KPI rows go.
#[derive(Default)]
pub struct KpiOutputs {
    pub sink: Option<KpiSink>,
    pub board: Option<SharedBoard>,
    pub metrics: Option<Arc<Mutex<Metrics>>>,
    /// KPI topic (key = pipeline).
    pub topic: Option<(crate::sink::KafkaSink, String)>,
    /// Keeps every row in memory (tests).
    pub keep: Option<Vec<KpiRow>>,
    pub rows: u64,
    /// First sink failure, reported when the run ends.
    pub sink_error: Option<std::io::Error>,
}

struct PipelineState {
    p: Planned,
    /// Every step window ending at or before this was processed.
    done_until: Option<i64>,
    /// Hopping windows: partial rows per slice start.
    slices: Vec<(i64, RecordBatch)>,
    /// Hopping windows: end of the latest window emitted.
    last_window_end: Option<i64>,
}

/// Ingest + windows + pipelines.
pub struct Engine {
    pub ingest: Ingest,
    config: WindowConfig,
    watermarks: Watermarks,
    tables: EventTables,
    stores: Vec<ClosedStore>,
    frontier: Option<i64>,
    last_cycle: Option<i64>,
    pipelines: Vec<PipelineState>,
    rt: tokio::runtime::Runtime,
    /// Smallest step of any pipeline: the frontier moves in these.
    base_step: i64,
    /// Per partition, the offset after the last message processed.
    next_offset: Vec<i64>,
    pub outputs: KpiOutputs,
    /// Churn scoring and alert rules.
    pub risk: Risk,
    /// Earliest event time of a valid event.
    min_event_ts: i64,
    /// Cycles run so far.
    pub cycles: u64,
}

fn runtime() -> Result<tokio::runtime::Runtime, EngineError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EngineError::Runtime)
}

/// Loads and plans the pipelines of `dir` (the built-in catalogue when
/// `None`), reporting every problem of every file.
pub fn check_pipelines(dir: Option<&Path>) -> Result<Vec<Planned>, EngineError> {
    let (defs, mut errors) = load(dir);
    match runtime()?.block_on(plan_all(defs)) {
        Ok(planned) if errors.is_empty() => Ok(planned),
        Ok(_) => Err(EngineError::Pipelines(errors)),
        Err(plan_errors) => {
            errors.extend(plan_errors);
            errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            Err(EngineError::Pipelines(errors))
        }
    }
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
        let base_step = planned
            .iter()
            .map(|p| p.def.window.step_ms())
            .min()
            .unwrap_or(60_000);
        let idle = config.live.then(|| {
            std::time::Duration::from_millis(config.windows.idle_timeout_ms.max(0) as u64)
        });
        Ok(Self {
            ingest: Ingest::new(config.ingest),
            watermarks: Watermarks::new(config.windows.disorder_ms, idle),
            config: config.windows,
            tables: EventTables::new(),
            stores: vec![ClosedStore::default(); 6],
            frontier: None,
            last_cycle: None,
            pipelines: planned
                .into_iter()
                .map(|p| PipelineState {
                    p,
                    done_until: None,
                    slices: Vec::new(),
                    last_window_end: None,
                })
                .collect(),
            rt: runtime()?,
            base_step,
            next_offset: Vec::new(),
            outputs: KpiOutputs::default(),
            risk: Risk::default(),
            min_event_ts: i64::MAX,
            cycles: 0,
        })
    }

    /// Registers the KPI metrics of every pipeline and keeps the handle.
    pub fn attach_metrics(&mut self, metrics: Arc<Mutex<Metrics>>) {
        if let Ok(mut m) = metrics.lock() {
            for s in &self.pipelines {
                m.register_pipeline(&s.p);
            }
            self.risk.outputs.metrics = Some(m.risk.clone());
        }
        self.outputs.metrics = Some(metrics);
    }

    /// Names of the planned pipelines.
    pub fn pipeline_names(&self) -> Vec<String> {
        self.pipelines
            .iter()
            .map(|s| s.p.name.to_string())
            .collect()
    }

    /// The closed frontier: rows before it are in closed windows.
    pub fn frontier(&self) -> Option<i64> {
        self.frontier
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

    /// Partition `p` was assigned: until it delivers, it holds the
    /// watermark back (in live mode, until the idle timeout).
    pub fn assign_partition(&mut self, p: usize) {
        self.watermarks.assign(p);
    }

    /// Partition `p` was revoked: it no longer holds the watermark back.
    pub fn forget_partition(&mut self, p: usize) {
        self.watermarks.remove(p);
    }

    /// Per partition, the offset from which a restart must re-read so that
    /// nothing is lost: the lowest offset of a row still open or closed but
    /// not yet read by every windowed pipeline, else the next offset to
    /// read. Everything before it has had its effects applied (its tumbling
    /// windows emitted, its hop slices aggregated).
    pub fn committable(&self) -> Vec<i64> {
        let n = self.next_offset.len();
        let (open, closed) = (
            self.tables.min_open_offsets(n),
            self.tables.min_closed_offsets(n),
        );
        (0..n)
            .map(|p| self.next_offset[p].min(open[p]).min(closed[p]))
            .collect()
    }

    /// Up to where each tumbling pipeline has emitted its windows, as text
    /// (`name=epoch_ms;...`): committed with the offsets so that a restart
    /// re-reading uncommitted events does not emit those windows twice.
    pub fn progress(&self) -> String {
        self.pipelines
            .iter()
            .filter(|s| matches!(s.p.def.window, WindowSpec::Tumble { .. }))
            .filter_map(|s| s.done_until.map(|d| format!("{}={d}", s.p.name)))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Restores [`Engine::progress`]: each tumbling pipeline skips windows
    /// it emitted before the restart.
    pub fn restore_progress(&mut self, text: &str) {
        for item in text.split(';') {
            let Some((name, ms)) = item.split_once('=') else {
                continue;
            };
            let Ok(ms) = ms.parse::<i64>() else { continue };
            for s in &mut self.pipelines {
                if &*s.p.name == name && matches!(s.p.def.window, WindowSpec::Tumble { .. }) {
                    s.done_until = Some(s.done_until.map_or(ms, |d| d.min(ms)));
                }
            }
        }
    }

    /// Per partition, the next offset to read.
    pub fn next_offsets(&self) -> &[i64] {
        &self.next_offset
    }

    /// Processes one message from source partition `partition`.
    #[inline]
    pub fn process(&mut self, bytes: &[u8], partition: usize, now_ms: i64) -> Processed {
        let offset = self.next_offset.get(partition).copied().unwrap_or(0);
        self.process_at(bytes, partition, offset, now_ms, None)
    }

    /// Processes the message at `offset` of `partition`; `fallback_type` is
    /// the event type when the message has none (a topic per type).
    pub fn process_at(
        &mut self,
        bytes: &[u8],
        partition: usize,
        offset: i64,
        now_ms: i64,
        fallback_type: Option<EventType>,
    ) -> Processed {
        if partition >= self.next_offset.len() {
            self.next_offset.resize(partition + 1, 0);
        }
        self.next_offset[partition] = offset + 1;
        let event = match self.ingest.ingest_typed(bytes, now_ms, fallback_type) {
            Outcome::Valid(e) => e,
            Outcome::Invalid(i) => return Processed::Invalid(i),
            Outcome::Duplicate => return Processed::Duplicate,
        };
        self.watermarks.observe(partition, event.ts);
        self.min_event_ts = self.min_event_ts.min(event.ts);
        self.risk.on_event(&event, &self.ingest);
        if let Some(wm) = self.watermarks.watermark()
            && wm >= self.risk.due()
        {
            self.risk.advance(wm, &self.ingest);
        }
        // Late: behind the point up to which windows may close, whether or
        // not a cycle has closed them yet, so that lateness depends on the
        // order of events only, never on when cycles run.
        let bound = self.target_frontier().map_or(self.frontier, |t| {
            Some(self.frontier.map_or(t, |f| f.max(t)))
        });
        if let Some(f) = bound
            && event.ts < f
        {
            // Late is its own category: read = valid + invalid + duplicate + late.
            let t = event.event_type().index();
            self.ingest.stats.valid[t] -= 1;
            self.ingest.stats.late[t] += 1;
            return Processed::Late {
                ts: event.ts,
                frontier: f,
            };
        }
        let segment = self
            .ingest
            .traders
            .get(event.trader)
            .map_or(Segment::New, |s| self.ingest.traders.segment(s));
        self.tables
            .push(OpenRow::new(&event, segment, partition as u32, offset));
        Processed::Valid
    }

    /// Replay: runs a cycle when the frontier moved `emit_every` since the
    /// last one. Call it every few thousand events.
    pub fn maybe_emit(&mut self) {
        let Some(target) = self.target_frontier() else {
            return;
        };
        match self.last_cycle {
            None => self.last_cycle = Some(target),
            Some(last) if target - last >= self.config.emit_every_ms => self.cycle(target, false),
            _ => {}
        }
    }

    /// Live mode: runs a cycle whenever the frontier moved at all, and
    /// reloads the model file when it changed.
    pub fn tick(&mut self) {
        self.risk.maybe_reload(&mut self.ingest);
        if let Some(target) = self.target_frontier()
            && self.frontier.is_none_or(|f| target > f)
        {
            self.cycle(target, false);
        }
    }

    /// End of input: closes every window, including the partial last ones.
    pub fn finish(&mut self) {
        if let Some(max) = self.watermarks.max_event_time() {
            self.cycle(max + 1, true);
            self.risk.advance(max, &self.ingest);
        }
        self.risk.outputs.flush();
        if let Some(sink) = &mut self.outputs.sink
            && let Err(e) = sink.flush()
        {
            self.outputs.sink_error.get_or_insert(e);
        }
    }

    fn target_frontier(&self) -> Option<i64> {
        let wm = self.watermarks.watermark()?;
        Some(floor_to(
            wm.saturating_sub(self.config.grace_ms),
            self.base_step,
        ))
    }

    /// Closes rows before `frontier` and runs every pipeline over its newly
    /// closed windows. `last`: close everything up to the partial windows
    /// that hold the latest events.
    fn cycle(&mut self, frontier: i64, last: bool) {
        let started = Instant::now();
        let frontier = self.frontier.map_or(frontier, |f| f.max(frontier));
        let lo = self.frontier.unwrap_or(i64::MIN);
        let closed =
            self.tables
                .close_before(frontier, &self.ingest.decoder.symbols, &self.ingest.traders);
        for (store, batch) in self.stores.iter_mut().zip(closed) {
            store.push(lo, frontier, batch);
        }
        self.frontier = Some(frontier);
        self.last_cycle = Some(frontier);
        self.cycles += 1;

        let mut traders: Option<RecordBatch> = None;
        let mut all_rows: Vec<(usize, Vec<KpiRow>)> = Vec::new();
        for i in 0..self.pipelines.len() {
            let window = self.pipelines[i].p.def.window;
            let step = window.step_ms();
            let hi = if last {
                ceil_to(frontier, step)
            } else {
                floor_to(frontier, step)
            };
            let query_started = Instant::now();
            let rows = match window {
                WindowSpec::Tumble { size_ms } => self.run_tumble(i, hi, size_ms),
                WindowSpec::Hop { size_ms, slide_ms } => self.run_hop(i, hi, size_ms, slide_ms),
                WindowSpec::Snapshot { every_ms } => {
                    let s = &self.pipelines[i];
                    if s.done_until.is_some_and(|d| d >= hi) {
                        Ok(Vec::new())
                    } else {
                        let batch = traders
                            .get_or_insert_with(|| {
                                traders_batch(
                                    &self.ingest.traders,
                                    &self.ingest.decoder.symbols,
                                    hi,
                                )
                            })
                            .clone();
                        self.run_snapshot(i, hi, every_ms, batch)
                    }
                }
            };
            let name = self.pipelines[i].p.name.clone();
            match rows {
                Ok(rows) => {
                    if let Some(m) = &self.outputs.metrics
                        && let Ok(mut m) = m.lock()
                    {
                        m.observe_query(&name, query_started.elapsed().as_secs_f64());
                    }
                    all_rows.push((i, rows));
                }
                Err(e) => {
                    tracing::error!(pipeline = %name, error = %e, "pipeline run failed; its windows are skipped");
                    if let Some(m) = &self.outputs.metrics
                        && let Ok(mut m) = m.lock()
                    {
                        m.pipeline_error(&name);
                    }
                }
            }
        }
        // Raw rows are kept until every pipeline has read past them.
        let keep_from = self
            .pipelines
            .iter()
            .filter(|s| !matches!(s.p.def.window, WindowSpec::Snapshot { .. }))
            .map(|s| s.done_until.unwrap_or(i64::MIN))
            .min()
            .unwrap_or(frontier);
        for store in &mut self.stores {
            store.forget_before(keep_from);
        }
        self.tables.forget_closed_before(keep_from);
        self.deliver(all_rows, frontier, started);
    }

    /// Runs pipeline `i`'s first query over the closed rows with event time
    /// in `[lo, hi)`, in tumbling windows of `size` (the snapshot, when read,
    /// is `traders`).
    fn run_stage(
        &self,
        i: usize,
        lo: i64,
        hi: i64,
        size: i64,
        traders: Option<&RecordBatch>,
    ) -> datafusion::error::Result<Vec<RecordBatch>> {
        let stores = &self.stores;
        self.rt.block_on(self.pipelines[i].p.stage.run(|input| {
            match input {
                Input::Event(t) => stores[t]
                    .rows_in(lo, hi)
                    .iter()
                    .map(|b| with_windows(b, size))
                    .collect(),
                Input::Traders => traders.cloned().into_iter().collect(),
                Input::Slices => Vec::new(),
            }
        }))
    }

    fn run_tumble(
        &mut self,
        i: usize,
        hi: i64,
        size: i64,
    ) -> datafusion::error::Result<Vec<KpiRow>> {
        let lo = self.pipelines[i].done_until.unwrap_or(i64::MIN);
        if hi <= lo {
            return Ok(Vec::new());
        }
        let batches = self.run_stage(i, lo, hi, size, None)?;
        let s = &mut self.pipelines[i];
        s.done_until = Some(hi);
        Ok(rows_from_batches(
            &s.p.name,
            &batches,
            &s.p.labels,
            &s.p.values,
            lo,
            size,
        ))
    }

    fn run_hop(
        &mut self,
        i: usize,
        hi: i64,
        size: i64,
        slide: i64,
    ) -> datafusion::error::Result<Vec<KpiRow>> {
        let lo = self.pipelines[i].done_until.unwrap_or(i64::MIN);
        if hi <= lo {
            return Ok(Vec::new());
        }
        let partials = self.run_stage(i, lo, hi, slide, None)?;
        let s = &mut self.pipelines[i];
        s.done_until = Some(hi);
        for b in partials {
            let starts = b
                .column_by_name("window_start")
                .expect("checked at planning");
            let starts = datafusion::arrow::compute::cast(
                starts,
                &datafusion::arrow::datatypes::DataType::Int64,
            )?;
            let starts = starts.as_any().downcast_ref::<Int64Array>().expect("Int64");
            // Split by slice start so that retention can drop whole slices.
            let mut distinct: Vec<i64> = starts.iter().flatten().collect();
            distinct.sort_unstable();
            distinct.dedup();
            for start in distinct {
                let mask: datafusion::arrow::array::BooleanArray =
                    starts.iter().map(|v| Some(v == Some(start))).collect();
                s.slices.push((
                    start,
                    datafusion::arrow::compute::filter_record_batch(&b, &mask)?,
                ));
            }
        }
        let Some(first_slice) = s.slices.iter().map(|(st, _)| *st).min() else {
            return Ok(Vec::new());
        };
        let mut end = s.last_window_end.map_or(first_slice + slide, |e| e + slide);
        let schema = slices_schema(&s.p.stage.output);
        let mut input = Vec::new();
        while end <= hi {
            for (start, batch) in &s.slices {
                if *start >= end - size && *start < end {
                    input.push(as_slice_rows(batch, &schema, end - size, end)?);
                }
            }
            s.last_window_end = Some(end);
            end += slide;
        }
        s.slices.retain(|(start, _)| *start >= hi + slide - size);
        if input.is_empty() {
            return Ok(Vec::new());
        }
        let combine =
            s.p.combine
                .as_ref()
                .expect("hop pipelines have a combine stage");
        let batches = self.rt.block_on(combine.run(|_| input.clone()))?;
        Ok(rows_from_batches(
            &s.p.name,
            &batches,
            &s.p.labels,
            &s.p.values,
            hi - size,
            size,
        ))
    }

    fn run_snapshot(
        &mut self,
        i: usize,
        as_of: i64,
        every: i64,
        traders: RecordBatch,
    ) -> datafusion::error::Result<Vec<KpiRow>> {
        let batches = self.run_stage(i, as_of - every, as_of, every, Some(&traders))?;
        let s = &mut self.pipelines[i];
        s.done_until = Some(as_of);
        Ok(rows_from_batches(
            &s.p.name,
            &batches,
            &s.p.labels,
            &s.p.values,
            as_of - every,
            every,
        ))
    }

    fn deliver(&mut self, all_rows: Vec<(usize, Vec<KpiRow>)>, frontier: i64, started: Instant) {
        let out = &mut self.outputs;
        for (i, rows) in &all_rows {
            let name = &self.pipelines[*i].p.name;
            if rows.is_empty() {
                continue;
            }
            out.rows += rows.len() as u64;
            if let Some(sink) = &mut out.sink
                && let Err(e) = sink.write(rows)
            {
                out.sink_error.get_or_insert(e);
            }
            if let Some((sink, topic)) = &out.topic {
                for r in rows {
                    let payload = r.to_json().to_string();
                    sink.send("kpis", topic, name.as_bytes(), payload.as_bytes(), &[]);
                }
            }
            if let Some(board) = &out.board
                && let Ok(mut b) = board.lock()
            {
                b.update(name, rows);
            }
            if let Some(m) = &out.metrics
                && let Ok(mut m) = m.lock()
            {
                m.record_kpis(&self.pipelines[*i].p, rows);
            }
        }
        for (_, rows) in &all_rows {
            self.risk.on_kpi_rows(rows);
        }
        if let Some(keep) = &mut out.keep {
            keep.extend(all_rows.into_iter().flat_map(|(_, r)| r));
        }
        if let Some(board) = &out.board
            && let Ok(mut b) = board.lock()
        {
            b.as_of = Some(format_rfc3339_ms(
                frontier.min(self.watermarks.max_event_time().unwrap_or(frontier) + 1),
            ));
        }
        if let Some(m) = &out.metrics
            && let Ok(mut m) = m.lock()
        {
            m.observe_cycle(started.elapsed().as_secs_f64(), frontier);
        }
    }

    /// Approximate bytes held by open rows, closed rows and slices.
    pub fn window_bytes(&self) -> usize {
        self.tables.open_bytes()
            + self.stores.iter().map(ClosedStore::bytes).sum::<usize>()
            + self
                .pipelines
                .iter()
                .flat_map(|s| s.slices.iter().map(|(_, b)| b.get_array_memory_size()))
                .sum::<usize>()
    }
}

/// `t` rounded up to a multiple of `step`.
fn ceil_to(t: i64, step: i64) -> i64 {
    let f = floor_to(t, step);
    if f == t { t } else { f + step }
}

/// Adds `window_start` and `window_end` of tumbling windows of `size`.
fn with_windows(batch: &RecordBatch, size: i64) -> RecordBatch {
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
    fields.push(Field::new(
        "window_start",
        datafusion::arrow::datatypes::DataType::Int64,
        false,
    ));
    fields.push(Field::new(
        "window_end",
        datafusion::arrow::datatypes::DataType::Int64,
        false,
    ));
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
            cols.push(datafusion::arrow::compute::cast(
                col,
                &datafusion::arrow::datatypes::DataType::Int64,
            )?);
        } else {
            cols.push(col.clone());
        }
    }
    cols.push(Arc::new(Int64Array::from(vec![start; n])));
    cols.push(Arc::new(Int64Array::from(vec![end; n])));
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}
