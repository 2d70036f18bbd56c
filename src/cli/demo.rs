//! `pulse demo`: the simulator feeding the pipeline in-process, paced to the
//! wall clock, with the HTTP endpoints served.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use veloc_pulse::alert::AlertRules;
use veloc_pulse::driver::{self, Control, Core, SimSource, Sinks, Source};
use veloc_pulse::event::time::DAY_MS;
use veloc_pulse::http::{Access, AppState, serve};
use veloc_pulse::metrics::Metrics;
use veloc_pulse::sim::SimConfig;

use super::risk::{ModelSource, RiskArgs, alerts_file, attach_risk};
use super::{EngineArgs, duration_arg};

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
    // The demo has no configuration file: a token comes from PULSE_HTTP_TOKEN.
    let access = Access::resolve(None, false).map_err(anyhow::Error::msg)?;
    let state = AppState::new(Metrics::new("simulator")).with_access(access);
    engine.attach_metrics(state.metrics.clone())?;
    let model = match a.risk.model.clone() {
        Some(path) => ModelSource::File {
            path,
            reload: Some(Duration::from_secs(2)),
        },
        None => ModelSource::Bundled,
    };
    attach_risk(&mut engine, AlertRules::default(), model)?;
    if let Some(s) = &engine.risk.scorer
        && let Ok(m) = state.metrics.lock()
    {
        m.risk.model(&s.model.name, &s.model.version, false);
    }
    let mut sinks = Sinks {
        board: Some(state.board.clone()),
        metrics: Some(state.metrics.clone()),
        ..Sinks::default()
    };
    sinks.alerts.file = alerts_file(a.risk.alerts_out.as_deref())?;
    sinks.alerts.recent = Some(state.alerts.clone());
    sinks.alerts.metrics = engine.risk.metrics.clone();
    let mut core = Core::new(engine, sinks);
    core.status = Some(state.clone());
    core.reload_model = true;
    // Simulated time runs ahead of the wall clock; the future check uses a
    // clock ten years ahead so that it never refuses simulated events.
    core.clock_ahead_ms = 3650 * DAY_MS;
    if let Ok(mut s) = state.status.lock() {
        s.source = "simulator";
    }
    runtime.block_on(async_main(a, core, state))
}

async fn async_main(a: Args, core: Core, state: AppState) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is the port in use? --listen 127.0.0.1:0 picks a free one)",
                a.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let pipeline = {
        let stop = stop.clone();
        let config = SimConfig {
            seed: a.seed,
            traders: a.traders,
            // Simulated time runs ahead of the wall clock from a fixed past start.
            start_ms: 1_577_836_800_000, // 2020-01-01
            days: 2_000,
            ..SimConfig::default()
        };
        let rate = a.rate;
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                let core = Arc::new(Mutex::new(core));
                let mut source = Source::Simulator(Box::new(SimSource::new(config, rate)));
                driver::run(
                    &mut source,
                    &core,
                    &Control {
                        stop: &stop,
                        exit_when_idle: None,
                        progress: None,
                    },
                )
                .map(|_| ())
            })
            .context("cannot start the pipeline thread")?
    };
    state.ready.store(true, Ordering::Relaxed);
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
        .map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))?
        .context("the pipeline failed")?;
    println!("demo stopped");
    Ok(())
}
