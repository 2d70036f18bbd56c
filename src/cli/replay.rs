//! `pulse replay`.

use std::path::PathBuf;

use anyhow::Context;

use veloc_pulse::pipeline::{Engine, KpiSink, default_dlq_path, replay_file};

use super::EngineArgs;

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
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut engine: Engine = a.engine.build(false)?;
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
    let s = report.stats.summary();
    let secs = report.elapsed.as_secs_f64().max(1e-9);
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
        "  {:.2}s, {:.0} events/s, {:.1} MB/s",
        secs,
        s.read as f64 / secs,
        report.bytes as f64 / secs / 1e6
    );
    Ok(())
}
