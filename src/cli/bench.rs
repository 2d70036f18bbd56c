//! `pulse bench`.

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events to simulate and push through the pipeline.
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Traders in the simulated brokerage.
    #[arg(long, default_value_t = 20_000)]
    traders: u32,
    /// Measurement rounds; the best round counts.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Engine stages to measure (comma-separated); the others report 0.
    /// One stage alone is what `perf record` should see.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["kpi", "rules", "full", "doubled", "flood"])]
    stages: Vec<veloc_pulse::bench::Stage>,
    /// Distinct new traders of the `flood` stage (state per tracked trader).
    #[arg(long, default_value_t = 1_000_000)]
    flood_traders: u32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let r = veloc_pulse::bench::run(a.events, a.traders, a.rounds, &a.stages, a.flood_traders);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "pulse bench: {} events ({:.0} bytes/event), {} traders, one core",
        r.events,
        r.bytes as f64 / r.events as f64,
        r.traders
    );
    println!(
        "  simulate (to memory)               {:>12.0} events/s",
        r.simulate_events_per_s
    );
    println!(
        "  bare serde_json decode (baseline)  {:>12.0} events/s",
        r.bare_decode_events_per_s
    );
    println!(
        "  pipeline: decode+validate+dedup+state {:>9.0} events/s",
        r.pipeline_events_per_s
    );
    println!("  ratio pipeline / bare decode       {:>12.2}", r.ratio);
    println!(
        "  full KPI path ({} pipelines, {} rows) {:>10.0} events/s",
        r.pipelines, r.kpi_rows, r.kpi_events_per_s
    );
    println!("  ratio KPI path / bare decode       {:>12.2}", r.kpi_ratio);
    // A stage left out with --stages measures 0: say so rather than 0.
    let rate = |v: f64| {
        if v > 0.0 {
            format!("{v:>12.0} events/s")
        } else {
            format!("{:>12}", "not run")
        }
    };
    println!(
        "  + alert rules (no model)           {}",
        rate(r.rules_events_per_s)
    );
    println!(
        "  + churn model (full pipeline)      {}  ({} alerts)",
        rate(r.full_events_per_s),
        r.alerts
    );
    println!(
        "  ratio full pipeline / bare decode  {:>12.2}",
        r.full_ratio
    );
    if r.scoring_us > 0.0 {
        println!(
            "  scoring: {} traders scored, {:.2} us each ({:.2} us per event)",
            r.scored,
            r.scoring_us,
            r.scoring_us * r.scored as f64 / r.events.max(1) as f64
        );
    } else {
        println!(
            "  scoring: {} traders scored (time per scoring needs the rules and full stages)",
            r.scored
        );
    }
    println!(
        "  KPI path, catalogue twice ({} pipelines) {}",
        2 * r.pipelines,
        rate(r.doubled_events_per_s)
    );
    if r.doubled_cost > 0.0 {
        println!(
            "  cost of doubling the pipelines     {:>12.2}x",
            r.doubled_cost
        );
    }
    if r.flood_traders > 0 {
        println!(
            "  state per tracked trader ({} new traders, full pipeline) {:>8.0} bytes",
            r.flood_traders, r.flood_bytes_per_trader
        );
        let parts: Vec<String> = r
            .flood_accounted
            .iter()
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect();
        println!("    accounted by the engine: {}", parts.join(", "));
    } else {
        println!("  state per tracked trader           {:>12}", "not run");
    }
    let total: f64 = r.pipeline_seconds.iter().map(|(_, s)| s).sum();
    println!("  pipeline queries: {total:.3} s in the fastest engine run");
    for (name, s) in &r.pipeline_seconds {
        println!("    {name:<20} {s:>8.3} s");
    }
    println!(
        "  traders snapshots (captures the snapshot pipelines read): {:.3} s",
        r.capture_seconds
    );
    Ok(())
}
