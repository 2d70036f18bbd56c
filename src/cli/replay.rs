//! `pulse replay`.

use std::path::PathBuf;

use anyhow::Context;

use veloc_pulse::pipeline::{IngestConfig, replay};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// NDJSON events file.
    #[arg(long)]
    events: PathBuf,
    /// Dead-letter NDJSON file [default: NAME.dlq.ndjson beside the input].
    #[arg(long)]
    dlq: Option<PathBuf>,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let report = replay(&a.events, a.dlq.as_deref(), IngestConfig::default())
        .with_context(|| format!("replay of {} failed", a.events.display()))?;
    let s = report.stats.summary();
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    if a.json {
        let out = serde_json::json!({
            "summary": s,
            "traders": report.traders,
            "dead_letters": report.dead_letters,
            "dead_letter_file": report.dead_letter_path,
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
    println!(
        "  read = valid + invalid + duplicate: {}",
        if report.stats.balanced() { "yes" } else { "NO" }
    );
    println!("  traders    {:>10}", report.traders);
    println!(
        "  {:.2}s, {:.0} events/s, {:.1} MB/s",
        secs,
        s.read as f64 / secs,
        report.bytes as f64 / secs / 1e6
    );
    Ok(())
}
