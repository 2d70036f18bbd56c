//! The Prometheus registry and the product's own metrics. Names follow
//! DESIGN.md: `pulse_<area>_<name>_<unit>`, `_total` on counters, labels from
//! small closed sets only.
//!
//! The hot path counts in plain integers ([`Stats`]); [`Metrics::publish`]
//! moves the increments into Prometheus counters in batches.

use std::collections::{HashMap, HashSet};

use prometheus::{
    CounterVec, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::event::{EventType, Reason};
use crate::pipeline::{KpiRow, Planned, Stats, ValueKind, latest_window};

/// Label sets kept per KPI pipeline; more would be a cardinality bug.
pub const MAX_SERIES_PER_PIPELINE: usize = 2_000;

/// One KPI series value on `/metrics`: what a checkpoint keeps, so a
/// restarted instance continues its KPI counters and shows its gauges.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KpiSample {
    /// Metric name (`pulse_kpi_<pipeline>_<value>`).
    pub metric: String,
    /// Label values in the pipeline's label order.
    pub labels: Vec<String>,
    pub value: f64,
    /// A counter's exact total in units of 1e-9 ([`exact_units`]), so that
    /// it continues exactly after a restore.
    pub exact: Option<i128>,
}

/// KPI counters add window values exactly: each value in units of 1e-9
/// (a deterministic rounding of that value alone), summed as integers, so
/// a counter's total never depends on the order windows or partitions
/// came in (exact money); only its export to f64 rounds, once.
pub fn exact_units(v: f64) -> i128 {
    (v * 1e9).round() as i128
}

fn from_exact_units(units: i128) -> f64 {
    units as f64 / 1e9
}

/// The Prometheus metric behind one KPI value.
enum KpiMetric {
    Counter(CounterVec),
    Gauge(GaugeVec),
}

/// KPI metrics of one pipeline.
struct KpiFamily {
    values: Vec<KpiMetric>,
    /// Value names, in the order of `values`.
    names: Vec<String>,
    /// Label names, in the pipeline's order (the order of label values in
    /// `series` and in [`KpiSample::labels`]).
    labels: Vec<String>,
    series: HashSet<Vec<String>>,
    /// Exact counter totals by label values, one per value (in the order
    /// of `values`; gauges stay 0).
    exact: HashMap<Vec<String>, Vec<i128>>,
}

impl KpiFamily {
    /// Adds `units` to a counter's exact total and shows the new total.
    fn add_exact(&mut self, i: usize, labels: &[String], units: i128) {
        let KpiMetric::Counter(c) = &self.values[i] else {
            return;
        };
        // Looked up by the borrowed labels: no copy once the series exists.
        if !self.exact.contains_key(labels) {
            self.exact
                .insert(labels.to_vec(), vec![0; self.values.len()]);
        }
        let Some(total) = self.exact.get_mut(labels).and_then(|t| t.get_mut(i)) else {
            return;
        };
        *total += units;
        let values: Vec<&str> = labels.iter().map(String::as_str).collect();
        if let Ok(c) = c.get_metric_with_label_values(&values) {
            // Under the metrics lock, as every scrape is: no scrape sees
            // the reset.
            c.reset();
            c.inc_by(from_exact_units(*total));
        }
    }
}

/// The metric a pipeline's value is exported as.
pub fn kpi_metric_name(pipeline: &str, value: &str) -> String {
    format!("pulse_kpi_{pipeline}_{value}")
}

/// A KPI metric that cannot be registered.
#[derive(Debug, Clone, thiserror::Error)]
#[error("value `{value}` would be exported as `{name}`, which Prometheus refuses: {reason}")]
pub struct MetricNameError {
    pub value: String,
    pub name: String,
    pub reason: String,
}

/// Problems of the metric names the pipelines would export, found by
/// registering them next to the built-in metrics as the service does:
/// collisions with a built-in metric or between pipelines.
pub fn metric_name_problems(planned: &[Planned]) -> Vec<crate::pipeline::PipelineError> {
    let mut trial = Metrics::new("check");
    let mut owners: HashMap<String, (String, String)> = HashMap::new();
    let mut problems = Vec::new();
    for p in planned {
        if let Err(e) = trial.register_pipeline(p) {
            let message = match owners.get(&e.name) {
                Some((pipeline, value)) => format!(
                    "value `{}` would be exported as `{}`, the metric of value `{value}` of pipeline `{pipeline}`; rename one of them",
                    e.value, e.name
                ),
                None if e.reason.contains("Duplicate") || e.reason.contains("fully-qualified") => {
                    format!(
                        "value `{}` would be exported as `{}`, the name of a built-in metric; rename the value",
                        e.value, e.name
                    )
                }
                None => e.to_string(),
            };
            problems.push(crate::pipeline::PipelineError {
                file: p.def.file.clone(),
                line: p.def.values_line,
                message,
            });
        }
        for v in &p.values {
            owners
                .entry(kpi_metric_name(&p.name, v))
                .or_insert_with(|| (p.name.to_string(), v.to_string()));
        }
    }
    problems
}

/// Metrics of one running pipeline.
pub struct Metrics {
    pub registry: Registry,
    read: IntCounterVec,
    valid: IntCounterVec,
    invalid: IntCounterVec,
    duplicate: IntCounterVec,
    late: IntCounterVec,
    pub traders: IntGauge,
    pub state_bytes: IntGauge,
    published: Stats,
    source: &'static str,
    kpis: HashMap<String, KpiFamily>,
    kpi_rows: IntCounterVec,
    kpi_dropped: IntCounterVec,
    pipeline_errors: IntCounterVec,
    query_seconds: HistogramVec,
    cycle_seconds: Histogram,
    merge_delay: Histogram,
    event_time: Gauge,
    watermark_lag: Gauge,
    sink_errors: IntCounterVec,
    sink_retries: IntCounterVec,
    erasures: IntCounterVec,
    revoked: IntCounter,
    consumer_lag: IntGaugeVec,
    exported: IntGaugeVec,
    scale_out: IntGauge,
    restore_seconds: Gauge,
    restore_lag: IntGauge,
    restored_bytes: IntCounter,
    cached_bytes: IntCounter,
    checkpoint_bytes: IntCounter,
    commit_seconds: Histogram,
    /// Churn model and alert metrics.
    pub risk: crate::alert::RiskMetrics,
}

/// A metric registered into `registry` (names and help are constants).
#[expect(
    clippy::expect_used,
    reason = "metric names, help and labels are constants registered once into a fresh registry: a failure is a programming error that every test building the metrics would hit"
)]
pub(crate) fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let m = metric.expect("valid metric definition");
    registry
        .register(Box::new(m.clone()))
        .expect("metric registered once");
    m
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

fn plain_counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help))
}

impl Metrics {
    /// Registers every metric; `source` labels events read (`file`,
    /// `simulator`, `kafka`).
    pub fn new(source: &'static str) -> Self {
        let registry = Registry::new();
        let read = counter(
            &registry,
            "pulse_events_read_total",
            "Messages read, valid or not.",
            &["source"],
        );
        let valid = counter(
            &registry,
            "pulse_events_valid_total",
            "Valid new events in their windows, by type.",
            &["type"],
        );
        let invalid = counter(
            &registry,
            "pulse_events_invalid_total",
            "Messages refused and sent to the dead-letter sink, by reason.",
            &["reason"],
        );
        let duplicate = counter(
            &registry,
            "pulse_events_duplicate_total",
            "Events whose event_id was already seen, by type.",
            &["type"],
        );
        let late = counter(
            &registry,
            "pulse_events_late_total",
            "New well-formed events behind the closed frontier (watermark minus grace), by type; applied to trader state only.",
            &["type"],
        );
        // Zero-valued series exist from the start, so rate() works at once.
        read.with_label_values(&[source]);
        for t in EventType::ALL {
            valid.with_label_values(&[t.as_str()]);
            duplicate.with_label_values(&[t.as_str()]);
            late.with_label_values(&[t.as_str()]);
        }
        for r in Reason::ALL {
            invalid.with_label_values(&[r.as_str()]);
        }
        let traders = gauge(&registry, "pulse_state_traders", "Traders with state held.");
        let state_bytes = gauge(
            &registry,
            "pulse_state_bytes",
            "Approximate bytes of per-trader and de-duplication state.",
        );
        let build = register(
            &registry,
            IntGaugeVec::new(
                Opts::new("pulse_build_info", "Build of the running binary; always 1."),
                &["version"],
            ),
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let kpi_rows = counter(
            &registry,
            "pulse_kpi_rows_total",
            "KPI rows emitted, by pipeline.",
            &["pipeline"],
        );
        let kpi_dropped = counter(
            &registry,
            "pulse_kpi_series_dropped_total",
            "KPI rows not exported because their pipeline reached its series limit.",
            &["pipeline"],
        );
        let pipeline_errors = counter(
            &registry,
            "pulse_pipeline_errors_total",
            "Pipeline runs that failed, by pipeline.",
            &["pipeline"],
        );
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let query_seconds = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "pulse_pipeline_query_duration_seconds",
                    "Time of one pipeline run (all its closed windows).",
                )
                .buckets(buckets.clone()),
                &["pipeline"],
            ),
        );
        let cycle_seconds = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "pulse_window_emit_duration_seconds",
                    "Time of one emission cycle: closing rows and running every pipeline.",
                )
                .buckets(buckets),
            ),
        );
        let merge_delay = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "pulse_merge_delay_seconds",
                    "Scale-out: from the partial that completes a window being sent to the merge run that emits it (the delay the merge step adds to a KPI row).",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]),
            ),
        );
        let event_time = register(
            &registry,
            Gauge::new(
                "pulse_window_event_time_seconds",
                "Closed frontier of event time, epoch seconds.",
            ),
        );
        let watermark_lag = register(
            &registry,
            Gauge::new(
                "pulse_window_watermark_lag_seconds",
                "Wall clock minus the closed frontier of event time (negative when simulated time runs ahead).",
            ),
        );
        let sink_errors = counter(
            &registry,
            "pulse_sink_errors_total",
            "Messages a sink failed to deliver for good, by sink.",
            &["sink"],
        );
        let sink_retries = counter(
            &registry,
            "pulse_sink_retries_total",
            "Sends retried because the sink was full or away, by sink.",
            &["sink"],
        );
        let revoked = register(
            &registry,
            IntCounter::new(
                "pulse_partitions_revoked_total",
                "Partitions this instance gave up in rebalances (each committed on its way out).",
            ),
        );
        let erasures = counter(
            &registry,
            "pulse_erasures_total",
            "Erasure requests applied by a shard of this instance: erased (the shard held the trader) or not_held.",
            &["outcome"],
        );
        for outcome in ["erased", "not_held"] {
            erasures.with_label_values(&[outcome]);
        }
        for sink in ["dead_letters", "late", "kpis", "alerts"] {
            sink_errors.with_label_values(&[sink]);
            sink_retries.with_label_values(&[sink]);
        }
        let consumer_lag = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "pulse_kafka_consumer_lag_messages",
                    "Messages behind the end of each assigned partition.",
                ),
                &["topic", "partition"],
            ),
        );
        let exported = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "pulse_pipeline_exported",
                    "1 for each pipeline whose KPI series this instance exports (scale-out: one instance of the group per pipeline), 0 for the others.",
                ),
                &["pipeline"],
            ),
        );
        let scale_out = register(
            &registry,
            IntGauge::new(
                "pulse_scale_out_partitions",
                "Partials partitions of the scale-out merge (the inputs' partition count); 0 when the merge is off and each instance exports its own partitions' share of every KPI.",
            ),
        );
        let restore_seconds = register(
            &registry,
            Gauge::new(
                "pulse_state_restore_seconds",
                "Time the latest restore of assigned partitions took, from the changelog.",
            ),
        );
        let restore_lag = gauge(
            &registry,
            "pulse_state_restore_lag_records",
            "Changelog records a restore in progress has still to read (0 when none runs).",
        );
        let restored_bytes = plain_counter(
            &registry,
            "pulse_state_restored_bytes_total",
            "Bytes of checkpoint records read back on restores.",
        );
        let cached_bytes = plain_counter(
            &registry,
            "pulse_state_cache_read_bytes_total",
            "Bytes of state read from the local cache ([state] dir) on restores.",
        );
        let checkpoint_bytes = plain_counter(
            &registry,
            "pulse_state_checkpoint_bytes_total",
            "Bytes of checkpoint records written to the changelog.",
        );
        let commit_seconds = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "pulse_state_commit_duration_seconds",
                    "Time of one commit: checkpoint, outputs and offsets.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            ),
        );
        Self {
            restore_seconds,
            restore_lag,
            restored_bytes,
            cached_bytes,
            checkpoint_bytes,
            commit_seconds,
            risk: crate::alert::RiskMetrics::new(&registry),
            sink_errors,
            sink_retries,
            erasures,
            revoked,
            consumer_lag,
            exported,
            scale_out,
            kpis: HashMap::new(),
            kpi_rows,
            kpi_dropped,
            pipeline_errors,
            query_seconds,
            cycle_seconds,
            merge_delay,
            event_time,
            watermark_lag,
            registry,
            read,
            valid,
            invalid,
            duplicate,
            late,
            traders,
            state_bytes,
            published: Stats::default(),
            source,
        }
    }

    /// Adds what `stats` counted since the last call.
    pub fn publish(&mut self, stats: &Stats) {
        let p = &self.published;
        self.read
            .with_label_values(&[self.source])
            .inc_by(stats.read - p.read);
        for t in EventType::ALL {
            let i = t.index();
            let label = [t.as_str()];
            self.valid
                .with_label_values(&label)
                .inc_by(stats.valid[i] - p.valid[i]);
            self.duplicate
                .with_label_values(&label)
                .inc_by(stats.duplicate[i] - p.duplicate[i]);
            self.late
                .with_label_values(&label)
                .inc_by(stats.late[i] - p.late[i]);
        }
        for r in Reason::ALL {
            let i = r.index();
            self.invalid
                .with_label_values(&[r.as_str()])
                .inc_by(stats.invalid[i] - p.invalid[i]);
        }
        self.published = stats.clone();
    }

    /// Registers `pulse_kpi_<pipeline>_<value>` for every value of a pipeline.
    /// A name already taken (a built-in metric or another pipeline's value;
    /// `pulse check` refuses both) fails with the value and the reason.
    pub fn register_pipeline(&mut self, p: &Planned) -> Result<(), MetricNameError> {
        let labels: Vec<&str> = p.labels.iter().map(|l| &**l).collect();
        let help = if p.def.help.is_empty() {
            format!("KPI pipeline {}", p.name)
        } else {
            p.def.help.clone()
        };
        let mut values = Vec::with_capacity(p.values.len());
        for (v, kind) in p.values.iter().zip(&p.kinds) {
            let name = kpi_metric_name(&p.name, v);
            let opts = Opts::new(name.clone(), format!("{help} ({v})"));
            let refused = |e: prometheus::Error| MetricNameError {
                value: v.to_string(),
                name: name.clone(),
                reason: e.to_string(),
            };
            let metric = match kind {
                ValueKind::Counter => {
                    let c = CounterVec::new(opts, &labels).map_err(refused)?;
                    self.registry
                        .register(Box::new(c.clone()))
                        .map_err(refused)?;
                    KpiMetric::Counter(c)
                }
                ValueKind::Gauge => {
                    let g = GaugeVec::new(opts, &labels).map_err(refused)?;
                    self.registry
                        .register(Box::new(g.clone()))
                        .map_err(refused)?;
                    KpiMetric::Gauge(g)
                }
            };
            values.push(metric);
        }
        self.kpi_rows.with_label_values(&[&*p.name]);
        self.kpi_dropped.with_label_values(&[&*p.name]);
        self.pipeline_errors.with_label_values(&[&*p.name]);
        self.kpis.insert(
            p.name.to_string(),
            KpiFamily {
                values,
                names: p.values.iter().map(|v| v.to_string()).collect(),
                labels: p.labels.iter().map(|l| l.to_string()).collect(),
                series: HashSet::new(),
                exact: HashMap::new(),
            },
        );
        Ok(())
    }

    /// Exports a pipeline's rows: counters add every window, gauges show the
    /// latest window (series absent from it are cleared).
    pub fn record_kpis(&mut self, p: &Planned, rows: &[KpiRow]) {
        self.kpi_rows
            .with_label_values(&[&*p.name])
            .inc_by(rows.len() as u64);
        let Some(family) = self.kpis.get_mut(&*p.name) else {
            return;
        };
        let latest = latest_window(rows);
        for m in &family.values {
            if let KpiMetric::Gauge(g) = m {
                g.reset();
            }
        }
        let mut dropped = 0u64;
        for (row, is_latest) in rows
            .iter()
            .map(|r| (r, latest.iter().any(|l| std::ptr::eq(*l, r))))
        {
            let key: Vec<String> = row.labels.iter().map(|(_, v)| v.clone()).collect();
            if !family.series.contains(&key) {
                if family.series.len() >= MAX_SERIES_PER_PIPELINE {
                    dropped += 1;
                    continue;
                }
                family.series.insert(key.clone());
            }
            let label_values: Vec<&str> = key.iter().map(String::as_str).collect();
            for (i, (_, v)) in row.values.iter().enumerate().take(family.values.len()) {
                let Some(v) = v.filter(|v| v.is_finite()) else {
                    continue;
                };
                match &family.values[i] {
                    KpiMetric::Counter(_) if v >= 0.0 => family.add_exact(i, &key, exact_units(v)),
                    KpiMetric::Gauge(g) if is_latest => g.with_label_values(&label_values).set(v),
                    _ => {}
                }
            }
        }
        if dropped > 0 {
            self.kpi_dropped
                .with_label_values(&[&*p.name])
                .inc_by(dropped);
        }
    }

    /// The current KPI counters and gauges, labels in each pipeline's
    /// label order.
    #[allow(deprecated)]
    pub fn kpi_samples(&self) -> Vec<KpiSample> {
        // Metric name -> (family, value index).
        let mut families: HashMap<String, (&KpiFamily, usize)> = HashMap::new();
        for (pipeline, f) in &self.kpis {
            for (i, v) in f.names.iter().enumerate() {
                families.insert(kpi_metric_name(pipeline, v), (f, i));
            }
        }
        let mut out = Vec::new();
        for mf in self.registry.gather() {
            let name = mf.get_name();
            let Some(&(family, i)) = families.get(name) else {
                continue;
            };
            let counter = mf.get_field_type() == prometheus::proto::MetricType::COUNTER;
            for m in mf.get_metric() {
                // The exposition sorts labels by name.
                let by_name: HashMap<&str, &str> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.get_name(), l.get_value()))
                    .collect();
                let labels: Vec<String> = family
                    .labels
                    .iter()
                    .map(|l| by_name.get(l.as_str()).copied().unwrap_or("").to_owned())
                    .collect();
                let (value, exact) = if counter {
                    let exact = family.exact.get(&labels).and_then(|t| t.get(i)).copied();
                    (m.get_counter().get_value(), exact)
                } else {
                    (m.get_gauge().get_value(), None)
                };
                out.push(KpiSample {
                    metric: name.to_owned(),
                    labels,
                    value,
                    exact,
                });
            }
        }
        out
    }

    /// The KPI series of `pipeline` (scale-out: they move with its merge).
    pub fn kpi_samples_of(&self, pipeline: &str) -> Vec<KpiSample> {
        let prefix = format!("pulse_kpi_{pipeline}_");
        let Some(family) = self.kpis.get(pipeline) else {
            return Vec::new();
        };
        self.kpi_samples()
            .into_iter()
            .filter(|s| {
                s.metric
                    .strip_prefix(&prefix)
                    .is_some_and(|v| family.names.iter().any(|n| n == v))
            })
            .collect()
    }

    /// Drops every KPI series of `pipeline` (its export moved elsewhere:
    /// a dashboard must not see its last values twice).
    pub fn forget_pipeline(&mut self, pipeline: &str) {
        if let Some(family) = self.kpis.get_mut(pipeline) {
            for m in &family.values {
                match m {
                    KpiMetric::Counter(c) => c.reset(),
                    KpiMetric::Gauge(g) => g.reset(),
                }
            }
            family.series.clear();
            family.exact.clear();
        }
    }

    /// Continues from saved samples: counters add them, gauges take them.
    pub fn restore_kpis(&mut self, samples: &[KpiSample]) {
        for s in samples {
            for (pipeline, family) in &mut self.kpis {
                let Some(i) = family
                    .names
                    .iter()
                    .position(|v| format!("pulse_kpi_{pipeline}_{v}") == s.metric)
                else {
                    continue;
                };
                if !family.series.contains(&s.labels) {
                    if family.series.len() >= MAX_SERIES_PER_PIPELINE {
                        continue;
                    }
                    family.series.insert(s.labels.clone());
                }
                let labels: Vec<&str> = s.labels.iter().map(String::as_str).collect();
                match &family.values[i] {
                    KpiMetric::Counter(_) => {
                        let units = s.exact.unwrap_or_else(|| exact_units(s.value.max(0.0)));
                        family.add_exact(i, &s.labels, units);
                    }
                    KpiMetric::Gauge(g) => {
                        if let Ok(g) = g.get_metric_with_label_values(&labels) {
                            g.set(s.value);
                        }
                    }
                }
            }
        }
    }

    /// Records the duration of one pipeline run.
    pub fn observe_query(&mut self, pipeline: &str, seconds: f64) {
        self.query_seconds
            .with_label_values(&[pipeline])
            .observe(seconds);
    }

    /// Counts a failed pipeline run.
    pub fn pipeline_error(&mut self, pipeline: &str) {
        self.pipeline_errors.with_label_values(&[pipeline]).inc();
    }

    /// Records the delay one merge run added.
    pub fn observe_merge_delay(&self, seconds: f64) {
        self.merge_delay.observe(seconds);
    }

    /// Records one emission cycle and the frontier it reached.
    pub fn observe_cycle(&mut self, seconds: f64, frontier_ms: i64) {
        self.cycle_seconds.observe(seconds);
        self.event_time.set(frontier_ms as f64 / 1000.0);
        let now = chrono::Utc::now().timestamp_millis();
        self.watermark_lag.set((now - frontier_ms) as f64 / 1000.0);
    }

    /// Records a restore: how long it took, bytes read so far.
    /// Sets how many changelog records the running restore has still to read.
    pub fn set_restore_lag(&self, records: i64) {
        self.restore_lag.set(records);
    }

    pub fn state_restored(&self, seconds: f64, total_bytes: u64, cached_bytes: u64) {
        self.restore_seconds.set(seconds);
        let c = &self.restored_bytes;
        c.inc_by(total_bytes.saturating_sub(c.get()));
        let c = &self.cached_bytes;
        c.inc_by(cached_bytes.saturating_sub(c.get()));
    }

    /// Records a commit: checkpoint bytes written and its duration.
    pub fn state_committed(&self, bytes: u64, seconds: f64) {
        self.checkpoint_bytes.inc_by(bytes);
        self.commit_seconds.observe(seconds);
    }

    /// Counts a message a sink failed to deliver for good.
    pub fn sink_error(&self, sink: &str) {
        self.sink_errors.with_label_values(&[sink]).inc();
    }

    /// Counts an erasure request applied by one shard.
    pub fn partitions_revoked(&self, n: usize) {
        self.revoked.inc_by(n as u64);
    }

    pub fn erasure(&self, found: bool) {
        let outcome = if found { "erased" } else { "not_held" };
        self.erasures.with_label_values(&[outcome]).inc();
    }

    /// Counts a retried send.
    pub fn sink_retry(&self, sink: &str) {
        self.sink_retries.with_label_values(&[sink]).inc();
    }

    /// Sets the consumer lag of one partition.
    /// Which pipelines this instance exports.
    /// Scale-out: the partials partitions, 0 when the merge is off.
    pub fn set_scale_out(&self, partitions: u32) {
        self.scale_out.set(i64::from(partitions));
    }

    pub fn set_exported(&self, pipeline: &str, here: bool) {
        self.exported
            .with_label_values(&[pipeline])
            .set(i64::from(here));
    }

    pub fn set_consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[topic, &partition.to_string()])
            .set(lag);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
