//! `pulse simulate`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use veloc_pulse::event::time::DAY_MS;
use veloc_pulse::sim::{SimConfig, Simulator};

use super::{duration_arg, instant_arg, progress};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seed of the simulation; the same seed and flags give the same bytes.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Traders signing up over the period.
    #[arg(long, default_value_t = 5_000)]
    traders: u32,
    /// Length of the period in days (or give --start and --end).
    #[arg(long, conflicts_with = "end")]
    days: Option<u32>,
    /// Start of the period: RFC 3339, a date, or epoch ms [default: 2026-01-01].
    #[arg(long, value_parser = instant_arg)]
    start: Option<i64>,
    /// End of the period (exclusive), whole days after --start.
    #[arg(long, value_parser = instant_arg, requires = "start")]
    end: Option<i64>,
    /// Output file, or `-` for standard output.
    #[arg(long, default_value = "-")]
    out: String,
    /// Events per second of wall clock (live use); full speed when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// How far events may arrive out of event-time order (e.g. 5s, 2m).
    #[arg(long, value_parser = duration_arg, default_value = "5s")]
    disorder: i64,
    /// Write the ground truth (segments, churn, true campaign lifts) as JSON here.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Produce to Kafka at these bootstrap servers instead of a file (key = trader_id).
    #[arg(long, requires = "topic")]
    to_kafka: Option<String>,
    /// Topic for --to-kafka.
    #[arg(long)]
    topic: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let defaults = SimConfig::default();
    let start_ms = a.start.unwrap_or(defaults.start_ms);
    let days = match (a.days, a.end) {
        (Some(d), _) => d,
        (None, Some(end)) => {
            if end <= start_ms {
                bail!("--end must be after --start");
            }
            u32::try_from((end - start_ms + DAY_MS - 1) / DAY_MS)
                .context("--end is too far after --start")?
        }
        (None, None) => defaults.days,
    };
    if a.traders == 0 {
        bail!("--traders must be at least 1");
    }
    if let Some(r) = a.rate {
        if r.is_nan() || r <= 0.0 {
            bail!("--rate must be a positive number of events per second, got {r}");
        }
    }
    let config = SimConfig {
        seed: a.seed,
        traders: a.traders,
        start_ms,
        days,
        disorder_ms: a.disorder,
    };
    if let (Some(brokers), Some(topic)) = (&a.to_kafka, &a.topic) {
        return to_kafka(config, brokers, topic, a.rate, a.truth.as_deref());
    }
    let out: Box<dyn Write> = if a.out == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            File::create(&a.out).with_context(|| format!("cannot create output file {}", a.out))?,
        )
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let started = Instant::now();
    let mut sim = Simulator::new(config);
    let mut day = Vec::new();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut written = 0u64;
    let bar = progress::steps("simulate", u64::from(days), "days");
    while sim.next_day(&mut day) {
        bar.inc(1);
        progress::events(&bar, written);
        for e in &day {
            sim.write_json(e, &mut buf);
            written += 1;
            if let Some(rate) = a.rate {
                // Pace to the wall clock: flush each event when it is due.
                let due = started + Duration::from_secs_f64(written as f64 / rate);
                out.write_all(&buf)?;
                buf.clear();
                out.flush()?;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            } else if buf.len() > (1 << 20) - 4096 {
                out.write_all(&buf).context("cannot write events")?;
                buf.clear();
            }
        }
        day.clear();
    }
    out.write_all(&buf).context("cannot write events")?;
    out.flush().context("cannot write events")?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    write_truth(&sim, a.truth.as_deref())?;
    eprintln!(
        "simulated {written} events for {} traders over {days} days in {secs:.2}s ({:.0} events/s)",
        a.traders,
        written as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn write_truth(sim: &Simulator, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    if let Some(path) = path {
        let f = File::create(path)
            .with_context(|| format!("cannot create truth file {}", path.display()))?;
        serde_json::to_writer_pretty(BufWriter::new(f), &sim.truth())
            .with_context(|| format!("cannot write truth file {}", path.display()))?;
    }
    Ok(())
}

/// Produces the simulation to a topic, keyed by trader id.
fn to_kafka(
    config: SimConfig,
    brokers: &str,
    topic: &str,
    rate: Option<f64>,
    truth: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let days = config.days;
    let sink = veloc_pulse::sink::KafkaSink::new(brokers, &Default::default(), None)?;
    let started = Instant::now();
    let mut sim = Simulator::new(config);
    let mut day = Vec::new();
    let mut line = Vec::with_capacity(512);
    let mut written = 0u64;
    let bar = progress::steps("produce", u64::from(days), "days");
    while sim.next_day(&mut day) {
        bar.inc(1);
        progress::events(&bar, written);
        for e in &day {
            line.clear();
            sim.write_json(e, &mut line);
            let key = sim.trader_id(e.trader).to_owned();
            sink.send(
                "events",
                topic,
                key.as_bytes(),
                line.strip_suffix(b"\n").unwrap_or(&line),
                &[],
            );
            written += 1;
            if let Some(rate) = rate {
                let due = started + Duration::from_secs_f64(written as f64 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
        day.clear();
    }
    bar.finish_and_clear();
    sink.flush(Duration::from_secs(120))?;
    anyhow::ensure!(
        sink.errors() == 0,
        "{} events could not be delivered to {topic}",
        sink.errors()
    );
    write_truth(&sim, truth)?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "produced {written} events to {topic} at {brokers} in {secs:.2}s ({:.0} events/s)",
        written as f64 / secs.max(1e-9)
    );
    Ok(())
}
