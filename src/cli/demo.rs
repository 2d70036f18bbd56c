//! `pulse demo`: the simulator feeding the pipeline in-process, paced to the
//! wall clock, with the HTTP endpoints served.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use veloc_pulse::event::time::{DAY_MS, format_rfc3339_ms};
use veloc_pulse::http::{AppState, serve};
use veloc_pulse::metrics::Metrics;
use veloc_pulse::pipeline::Engine;
use veloc_pulse::sim::{SimConfig, Simulator};

use super::risk::{ModelSource, RiskArgs, attach_risk, publish_risk};
use super::{EngineArgs, duration_arg};
use veloc_pulse::alert::AlertRules;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to serve HTTP on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9464")]
    listen: SocketAddr,
    /// Simulated events per second of wall clock.
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
    /// Stop after this long (e.g. 20s, 5m); runs until Ctrl-C when absent.
    #[arg(long = "for", value_parser = duration_arg)]
    run_for: Option<i64>,
    /// Traders in the simulated brokerage.
    #[arg(long, default_value_t = 5_000)]
    traders: u32,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    risk: RiskArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(a.rate > 0.0, "--rate must be positive, got {}", a.rate);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The engine runs its queries on a runtime of its own, in the pipeline
    // thread; it is built before entering the HTTP runtime.
    let mut engine = a.engine.build(true)?;
    let model = match a.risk.model.clone() {
        Some(path) => ModelSource::File {
            path,
            reload: Some(Duration::from_secs(2)),
        },
        None => ModelSource::Bundled,
    };
    attach_risk(
        &mut engine,
        AlertRules::default(),
        model,
        a.risk.alerts_out.as_deref(),
    )?;
    runtime.block_on(async_main(a, engine))
}

async fn async_main(a: Args, mut engine: Engine) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is the port in use? --listen 127.0.0.1:0 picks a free one)",
                a.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let state = AppState::new(Metrics::new("simulator"));
    engine.attach_metrics(state.metrics.clone());
    engine.outputs.board = Some(state.board.clone());
    engine.risk.outputs.recent = Some(state.alerts.clone());
    if let Some(s) = &engine.risk.scorer
        && let Ok(m) = state.metrics.lock()
    {
        m.risk.model(&s.model.name, &s.model.version, false);
    }
    if let Ok(mut s) = state.status.lock() {
        s.source = "simulator";
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pipeline = {
        let (state, stop) = (state.clone(), stop.clone());
        let config = SimConfig {
            seed: a.seed,
            traders: a.traders,
            // Simulated time runs ahead of the wall clock from a fixed past start.
            start_ms: 1_577_836_800_000, // 2020-01-01
            days: 2_000,
            ..SimConfig::default()
        };
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || feed(config, a.rate, engine, &state, &stop))
            .context("cannot start the pipeline thread")?
    };
    println!(
        "Veloc Pulse demo on http://{addr}/  (metrics: http://{addr}/metrics, health: /healthz, /readyz)"
    );
    println!(
        "simulating {} traders at {} events/s; Ctrl-C stops",
        a.traders, a.rate
    );
    let run_for = a.run_for;
    let shutdown = async move {
        match run_for {
            Some(ms) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms.max(0) as u64)) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    let stop_http = stop.clone();
    serve(listener, state, async move {
        shutdown.await;
        stop_http.store(true, Ordering::Relaxed);
    })
    .await
    .context("HTTP server failed")?;
    stop.store(true, Ordering::Relaxed);
    pipeline
        .join()
        .map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))?;
    println!("demo stopped");
    Ok(())
}

/// Simulates, serialises and processes events at `rate` per second until
/// `stop`, closing windows as simulated time moves.
fn feed(config: SimConfig, rate: f64, mut engine: Engine, state: &AppState, stop: &AtomicBool) {
    let mut sim = Simulator::new(config);
    let mut day = Vec::new();
    let mut line = Vec::with_capacity(512);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut last_tick = Instant::now();
    let mut last_read = 0u64;
    state.ready.store(true, Ordering::Relaxed);
    while !stop.load(Ordering::Relaxed) {
        if day.is_empty() && !sim.next_day(&mut day) {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        // Drain in small slices so that pacing and stopping stay responsive.
        let take = day.len().min(256);
        // Simulated time runs ahead of the wall clock; the future check uses
        // a clock ten years ahead so that it never refuses simulated events.
        let now = chrono::Utc::now().timestamp_millis() + 3650 * DAY_MS;
        for e in day.drain(..take) {
            line.clear();
            sim.write_json(&e, &mut line);
            engine.process(line.strip_suffix(b"\n").unwrap_or(&line), 0, now);
            sent += 1;
        }
        if last_tick.elapsed() >= Duration::from_millis(250) {
            engine.tick();
            let secs = last_tick.elapsed().as_secs_f64();
            publish(
                state,
                &engine,
                (engine.ingest.stats.read - last_read) as f64 / secs,
            );
            publish_risk(state, &engine);
            last_read = engine.ingest.stats.read;
            last_tick = Instant::now();
        }
        let due = started + Duration::from_secs_f64(sent as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait.min(Duration::from_millis(200)));
        }
    }
    publish(state, &engine, 0.0);
    publish_risk(state, &engine);
    engine.risk.outputs.flush();
}

/// Moves the engine's counters into the metrics and the status.
pub fn publish(state: &AppState, engine: &Engine, events_per_s: f64) {
    let ingest = &engine.ingest;
    let bytes = ingest.state_bytes() + engine.window_bytes();
    if let Ok(mut m) = state.metrics.lock() {
        m.publish(&ingest.stats);
        m.traders.set(ingest.traders.len() as i64);
        m.state_bytes.set(bytes as i64);
    }
    if let Ok(mut s) = state.status.lock() {
        s.events = Some(ingest.stats.summary());
        s.events_per_s = events_per_s;
        s.traders = ingest.traders.len();
        s.state_bytes = bytes;
        let wm = engine.watermark();
        s.watermark = wm.map(format_rfc3339_ms);
        s.watermark_lag_s = wm.map(|w| (chrono::Utc::now().timestamp_millis() - w) as f64 / 1000.0);
        s.dead_letters = ingest.stats.invalid_total();
    }
}
