//! `pulse replay`.

use std::path::PathBuf;

use anyhow::Context;

use veloc_pulse::alert::{AlertKind, AlertRules};
use veloc_pulse::config::Config;
use veloc_pulse::event::time::DAY_MS;
use veloc_pulse::pipeline::{Engine, KpiSink, default_dlq_path, replay_file};

use super::EngineArgs;
use super::risk::{ModelSource, RiskArgs, attach_risk};

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

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut engine: Engine = a.engine.build(false)?;
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
    attach_risk(&mut engine, rules, model, a.risk.alerts_out.as_deref())?;
    if let Some(path) = &a.kpi_out {
        engine.outputs.sink = Some(
            KpiSink::create(path)
                .with_context(|| format!("cannot create KPI file {}", path.display()))?,
        );
    }
    let dlq = a.dlq.clone().unwrap_or_else(|| default_dlq_path(&a.events));
    let report = replay_file(&a.events, &dlq, a.late.as_deref(), &mut engine)
        .with_context(|| format!("replay of {} failed", a.events.display()))?;
    if let Some(e) = engine.outputs.sink_error.take() {
        return Err(e).context("cannot write the KPI file");
    }
    if let Some(e) = engine.risk.outputs.error.take() {
        return Err(e).context("cannot write the alerts file");
    }
    let s = report.stats.summary();
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    // Alerts per 1,000 traders per day of event time, by kind.
    let days = engine
        .event_time_span()
        .map_or(1.0, |(lo, hi)| ((hi - lo) as f64 / DAY_MS as f64).max(1.0));
    let per_k = |n: u64| n as f64 * 1000.0 / (report.traders.max(1) as f64) / days;
    let alerts: serde_json::Map<String, serde_json::Value> = AlertKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), engine.risk.outputs.count(*k).into()))
        .collect();
    let rates: serde_json::Map<String, serde_json::Value> = AlertKind::ALL
        .iter()
        .map(|k| {
            let r = (per_k(engine.risk.outputs.count(*k)) * 1000.0).round() / 1000.0;
            (k.as_str().to_string(), r.into())
        })
        .collect();
    if a.json {
        let out = serde_json::json!({
            "summary": s,
            "traders": report.traders,
            "dead_letters": report.dead_letters,
            "dead_letter_file": report.dead_letter_path,
            "late_file": if s.late > 0 { Some(&report.late_path) } else { None },
            "kpi_rows": report.kpi_rows,
            "pipelines": engine.pipeline_names(),
            "seconds": secs,
            "events_per_s": s.read as f64 / secs,
            "alerts": alerts,
            "alerts_per_1000_traders_per_day": rates,
            "alert_duplicates_dropped": engine.risk.outputs.duplicates,
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
    println!(
        "  invalid    {:>10}  -> {}",
        s.invalid,
        report.dead_letter_path.display()
    );
    for (r, n) in &s.invalid_by_reason {
        println!("    {r:<18}{n:>4}");
    }
    println!("  duplicate  {:>10}", s.duplicate);
    if s.late > 0 {
        println!(
            "  late       {:>10}  -> {} (applied to trader state, not to windows)",
            s.late,
            report.late_path.display()
        );
    }
    println!(
        "  read = valid + invalid + duplicate + late: {}",
        if report.stats.balanced() { "yes" } else { "NO" }
    );
    println!("  traders    {:>10}", report.traders);
    println!(
        "  KPI rows   {:>10}  from {} pipelines",
        report.kpi_rows,
        engine.pipeline_names().len()
    );
    println!(
        "  alerts     {:>10}  ({} per 1,000 traders per day over {days:.0} days{})",
        engine.risk.outputs.sent.iter().sum::<u64>(),
        ((per_k(engine.risk.outputs.sent.iter().sum::<u64>())) * 100.0).round() / 100.0,
        match &engine.risk.scorer {
            Some(s) => format!("; model {}", s.model.version),
            None => "; no churn model".into(),
        }
    );
    for k in AlertKind::ALL {
        let n = engine.risk.outputs.count(*k);
        if n > 0 {
            println!("    {:<18}{n:>8}  {:>8.3} /1k/day", k.as_str(), per_k(n));
        }
    }
    println!(
        "  {:.2}s, {:.0} events/s, {:.1} MB/s",
        secs,
        s.read as f64 / secs,
        report.bytes as f64 / secs / 1e6
    );
    Ok(())
}
