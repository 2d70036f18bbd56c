//! `pulse run`: the service, from Kafka.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use veloc_pulse::config::Config;
use veloc_pulse::http::{AppState, serve};
use veloc_pulse::metrics::Metrics;
use veloc_pulse::pipeline::{Engine, EngineConfig, KpiSink};
use veloc_pulse::sink::KafkaSink;
use veloc_pulse::source::{KafkaRun, run_kafka};

use super::demo::publish;
use super::risk::{ModelSource, attach_risk, publish_risk};
use super::{duration_arg, pipelines_dir};
use veloc_pulse::event::time::parse_duration_ms;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (every setting is documented in pulse.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Bootstrap servers (overrides the file and PULSE_KAFKA_BROKERS).
    #[arg(long)]
    brokers: Option<String>,
    /// Topic to consume (repeatable; overrides the file).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Consumer group (overrides the file).
    #[arg(long)]
    group: Option<String>,
    /// Write every KPI row here as NDJSON.
    #[arg(long)]
    kpi_out: Option<PathBuf>,
    /// Write alerts here as JSONL.
    #[arg(long)]
    alerts_out: Option<PathBuf>,
    /// Churn model artifact (overrides the file's `[model] path`); the
    /// file is re-read when it changes.
    #[arg(long)]
    model: Option<PathBuf>,
    /// HTTP address (port 0 picks a free one).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Folder of `*.sql` pipelines (overrides the file).
    #[arg(long)]
    pipelines: Option<PathBuf>,
    /// Stop cleanly once caught up and nothing new arrived for this long.
    #[arg(long, value_parser = duration_arg)]
    exit_when_idle: Option<i64>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut config = match &a.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    config.apply_env();
    if let Some(b) = a.brokers {
        config.kafka.brokers = b;
    }
    if !a.topics.is_empty() {
        config.kafka.topics = a.topics;
    }
    if let Some(g) = a.group {
        config.kafka.group = g;
    }
    if let Some(l) = a.listen {
        config.http.listen = l.to_string();
    }
    if a.pipelines.is_some() {
        config.pipelines.dir = a.pipelines;
    }
    config.outputs.kpi_out = a.kpi_out.or(config.outputs.kpi_out);
    config.outputs.alerts_out = a.alerts_out.or(config.outputs.alerts_out);
    if a.model.is_some() {
        config.model.path = a.model;
    }
    config.validate().map_err(|p| {
        anyhow::anyhow!(
            "configuration has {} problem(s):\n  {}",
            p.len(),
            p.join("\n  ")
        )
    })?;

    let engine_config = EngineConfig {
        windows: config.window_config(),
        live: true,
        ..EngineConfig::default()
    };
    let dir = pipelines_dir(config.pipelines.dir.clone());
    let mut engine =
        Engine::new(engine_config, dir.as_deref()).context("cannot start the pipelines")?;
    let state = AppState::new(Metrics::new("kafka"));
    engine.attach_metrics(state.metrics.clone());
    engine.outputs.board = Some(state.board.clone());
    if let Some(path) = &config.outputs.kpi_out {
        engine.outputs.sink = Some(
            KpiSink::create(path)
                .with_context(|| format!("cannot create KPI file {}", path.display()))?,
        );
    }
    let rules = config
        .alerts
        .resolve()
        .map_err(|p| anyhow::anyhow!("alert rules: {}", p.join("; ")))?;
    let model = match &config.model.path {
        Some(path) => ModelSource::File {
            path: path.clone(),
            reload: Some(Duration::from_millis(
                parse_duration_ms(&config.model.reload_every)
                    .unwrap_or(5_000)
                    .max(100) as u64,
            )),
        },
        None => ModelSource::None,
    };
    attach_risk(
        &mut engine,
        rules,
        model,
        config.outputs.alerts_out.as_deref(),
    )?;
    engine.risk.outputs.recent = Some(state.alerts.clone());
    // Live events: latency is measured from the alert's event time.
    engine.risk.outputs.latency_from_event_time = true;
    engine.risk.outputs.dedup_capacity = config.alerts.dedup_ids;
    let sink = KafkaSink::new(
        &config.kafka.brokers,
        &config.kafka.properties,
        Some(state.metrics.clone()),
    )?;
    if let Some(topic) = &config.kafka.kpi_topic {
        engine.outputs.topic = Some((sink.clone(), topic.clone()));
    }
    engine.risk.outputs.topic = Some((sink.clone(), config.kafka.alert_topic.clone()));
    if let Ok(mut s) = state.status.lock() {
        s.source = "kafka";
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let listen: SocketAddr = config.http.listen.parse().context("http.listen")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let http_stop = Arc::new(tokio::sync::Notify::new());
    let server = {
        let (state, stop, http_stop) = (state.clone(), stop.clone(), http_stop.clone());
        runtime.spawn(async move {
            let signals = async move {
                #[cfg(unix)]
                {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .expect("SIGTERM handler");
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                        _ = http_stop.notified() => {}
                    }
                }
                #[cfg(not(unix))]
                {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = http_stop.notified() => {}
                    }
                }
                stop.store(true, Ordering::Relaxed);
            };
            serve(listener, state, signals).await
        })
    };
    println!(
        "Veloc Pulse on http://{addr}/ consuming {:?} from {} as group {}",
        config.kafka.topics, config.kafka.brokers, config.kafka.group
    );
    let mut last = Instant::now();
    let mut last_read = 0u64;
    let mut on_tick = |engine: &Engine, assigned: bool| {
        state.ready.store(assigned, Ordering::Relaxed);
        let secs = last.elapsed().as_secs_f64().max(1e-3);
        publish(
            &state,
            engine,
            (engine.ingest.stats.read - last_read) as f64 / secs,
        );
        publish_risk(&state, engine);
        last_read = engine.ingest.stats.read;
        last = Instant::now();
    };
    let report = run_kafka(
        &mut engine,
        KafkaRun {
            config: &config.kafka,
            exit_when_idle: a
                .exit_when_idle
                .map(|ms| Duration::from_millis(ms.max(0) as u64)),
            stop: &stop,
            metrics: Some(state.metrics.clone()),
            sink: &sink,
            on_tick: &mut on_tick,
        },
    )?;
    if let Some(s) = &mut engine.outputs.sink {
        s.flush().context("cannot write the KPI file")?;
    }
    if let Some(e) = engine.outputs.sink_error.take() {
        return Err(e).context("cannot write the KPI file");
    }
    engine.risk.outputs.flush();
    if let Some(e) = engine.risk.outputs.error.take() {
        return Err(e).context("cannot write the alerts file");
    }
    sink.flush(Duration::from_secs(60))?;
    http_stop.notify_one();
    let _ = runtime.block_on(server);
    let s = engine.ingest.stats.summary();
    println!(
        "stopped ({}): read {} valid {} invalid {} duplicate {} late {} in {:.2}s, consuming for {:.2}s ({:.0} events/s), {} KPI rows, {} alerts",
        report.stopped_by,
        s.read,
        s.valid,
        s.invalid,
        s.duplicate,
        s.late,
        report.seconds,
        report.busy_seconds,
        s.read as f64 / report.busy_seconds.max(1e-9),
        engine.outputs.rows,
        engine.risk.outputs.sent.iter().sum::<u64>()
    );
    Ok(())
}
