//! `pulse replay`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use veloc_pulse::alert::{AlertKind, AlertRules};
use veloc_pulse::config::Config;
use veloc_pulse::driver::{self, Control, Core, FileSource, RecordSink, Sinks, Source};
use veloc_pulse::event::time::DAY_MS;
use veloc_pulse::pipeline::KpiSink;

use super::risk::{ModelSource, RiskArgs, alerts_file, attach_risk};
use super::{EngineArgs, progress};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// NDJSON events file.
    #[arg(long)]
    events: PathBuf,
    /// Dead-letter NDJSON file [default: NAME.dlq.ndjson beside the input].
    #[arg(long)]
    dlq: Option<PathBuf>,
    /// Late-event NDJSON file [default: NAME.late.ndjson beside the input, made only when needed].
    #[arg(long)]
    late: Option<PathBuf>,
    /// Write every KPI row here as NDJSON.
    #[arg(long)]
    kpi_out: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    risk: RiskArgs,
    /// Configuration file whose `[alerts]` rules (and `[model]` path, when
    /// --model is absent) apply [default: the default rules].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Beside the input: `NAME.<suffix>.ndjson`.
fn beside(events: &std::path::Path, suffix: &str) -> PathBuf {
    let stem = events
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("events");
    events.with_file_name(format!("{stem}.{suffix}.ndjson"))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut engine = a.engine.build(false)?;
    let config = match &a.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let rules: AlertRules = config
        .alerts
        .resolve()
        .map_err(|p| anyhow::anyhow!("alert rules: {}", p.join("; ")))?;
    let model = match a.risk.model.clone().or(config.model.path.clone()) {
        Some(path) => ModelSource::File { path, reload: None },
        None => ModelSource::None,
    };
    attach_risk(&mut engine, rules, model)?;
    let mut sinks = Sinks::default();
    sinks.alerts.file = alerts_file(a.risk.alerts_out.as_deref())?;
    if let Some(path) = &a.kpi_out {
        sinks.kpi_file = Some(
            KpiSink::create(path)
                .with_context(|| format!("cannot create KPI file {}", path.display()))?,
        );
    }
    let limit = engine.ingest.decoder.config.max_line_bytes;
    let mut source = Source::File(
        FileSource::open(&a.events, limit)
            .with_context(|| format!("cannot open events file {}", a.events.display()))?,
    );
    let dlq = a.dlq.clone().unwrap_or_else(|| beside(&a.events, "dlq"));
    let late_path = a.late.clone().unwrap_or_else(|| beside(&a.events, "late"));
    sinks.dead = RecordSink::file_now(&dlq)
        .with_context(|| format!("cannot create dead-letter file {}", dlq.display()))?;
    sinks.late = RecordSink::file_later(&late_path);
    let core = Arc::new(Mutex::new(Core::new(engine, sinks)));
    let stop = AtomicBool::new(false);
    let size = std::fs::metadata(&a.events).map_or(0, |m| m.len());
    let bar = progress::bytes("replay", size);
    let report = driver::run(
        &mut source,
        &core,
        &Control {
            stop: &stop,
            exit_when_idle: None,
            progress: Some(&|messages, bytes| {
                bar.set_position(bytes);
                progress::events(&bar, messages);
            }),
        },
    )
    .with_context(|| format!("replay of {} failed", a.events.display()))?;
    bar.finish_and_clear();
    let bytes = match &source {
        Source::File(f) => f.bytes,
        _ => 0,
    };
    let mut core = core.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((what, e)) = core.sinks.error.take() {
        return Err(e).context(format!("cannot write the {what}"));
    }
    let (engine, sinks) = (&core.engine, &core.sinks);
    let stats = &engine.ingest.stats;
    let s = stats.summary();
    let secs = report.seconds.max(1e-9);
    let traders = engine.names().len();
    // Alerts per 1,000 traders per day of event time, by kind.
    let days = engine
        .event_time_span()
        .map_or(1.0, |(lo, hi)| ((hi - lo) as f64 / DAY_MS as f64).max(1.0));
    let per_k = |n: u64| n as f64 * 1000.0 / (traders.max(1) as f64) / days;
    let sent = |k: AlertKind| sinks.alerts.count(k);
    let total_alerts: u64 = sinks.alerts.sent.iter().sum();
    let late_written = sinks.late.written() > 0;
    let pipelines = engine.pipeline_names();
    if a.json {
        let alerts: serde_json::Map<String, serde_json::Value> = AlertKind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), sent(*k).into()))
            .collect();
        let rates: serde_json::Map<String, serde_json::Value> = AlertKind::ALL
            .iter()
            .map(|k| {
                let r = (per_k(sent(*k)) * 1000.0).round() / 1000.0;
                (k.as_str().to_string(), r.into())
            })
            .collect();
        let out = serde_json::json!({
            "summary": s,
            "traders": traders,
            "dead_letters": sinks.dead.written(),
            "dead_letter_file": dlq,
            "late_file": if late_written { Some(&late_path) } else { None },
            "kpi_rows": sinks.kpi_rows,
            "pipelines": pipelines,
            "seconds": secs,
            "events_per_s": s.read as f64 / secs,
            "peak_rss_bytes": peak_rss_bytes(),
            "alerts": alerts,
            "alerts_per_1000_traders_per_day": rates,
            "alert_duplicates_dropped": engine.risk.duplicates.iter().sum::<u64>(),
            "model": engine.risk.scorer.as_ref().map(|s| s.model.version.clone()),
            "scored": engine.risk.scorer.as_ref().map_or(0, |s| s.scored),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("replayed {}", a.events.display());
    println!("  read       {:>10}", s.read);
    println!("  valid      {:>10}", s.valid);
    for (t, n) in &s.valid_by_type {
        println!("    {t:<12}{n:>10}");
    }
    println!("  invalid    {:>10}  -> {}", s.invalid, dlq.display());
    for (r, n) in &s.invalid_by_reason {
        println!("    {r:<18}{n:>4}");
    }
    println!("  duplicate  {:>10}", s.duplicate);
    if s.late > 0 {
        println!(
            "  late       {:>10}  -> {} (applied to trader state, not to windows)",
            s.late,
            late_path.display()
        );
    }
    println!(
        "  read = valid + invalid + duplicate + late: {}",
        if stats.balanced() { "yes" } else { "NO" }
    );
    println!("  traders    {:>10}", traders);
    println!(
        "  KPI rows   {:>10}  from {} pipelines",
        sinks.kpi_rows,
        pipelines.len()
    );
    println!(
        "  alerts     {:>10}  ({} per 1,000 traders per day over {days:.0} days{})",
        total_alerts,
        (per_k(total_alerts) * 100.0).round() / 100.0,
        match &engine.risk.scorer {
            Some(s) => format!("; model {}", s.model.version),
            None => "; no churn model".into(),
        }
    );
    for k in AlertKind::ALL {
        let n = sent(*k);
        if n > 0 {
            println!("    {:<18}{n:>8}  {:>8.3} /1k/day", k.as_str(), per_k(n));
        }
    }
    println!(
        "  {:.2}s, {:.0} events/s, {:.1} MB/s{}",
        secs,
        s.read as f64 / secs,
        bytes as f64 / secs / 1e6,
        peak_rss_bytes().map_or(String::new(), |b| format!(
            ", peak RSS {:.0} MiB",
            b as f64 / (1 << 20) as f64
        ))
    );
    Ok(())
}

/// The process's peak resident set, bytes.
fn peak_rss_bytes() -> Option<u64> {
    veloc_pulse::bench::proc_status_bytes("VmHWM")
}
