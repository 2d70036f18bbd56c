//! `pulse run`: the service, from Kafka.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use veloc_pulse::config::Config;
use veloc_pulse::driver::{
    self, Control, Core, Delivery, KafkaDurability, RecordSink, Sinks, Source, StateSettings,
    install_hook,
};
use veloc_pulse::engine::{Engine, EngineConfig};
use veloc_pulse::event::time::parse_duration_ms;
use veloc_pulse::http::{AppState, serve};
use veloc_pulse::metrics::Metrics;
use veloc_pulse::pipeline::KpiSink;
use veloc_pulse::sink::{KafkaSink, check_connection};
use veloc_pulse::source::KafkaSource;

use super::risk::{ModelSource, alerts_file, attach_risk};
use super::{duration_arg, pipelines_dir};

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
    /// This instance's name in the group (overrides `kafka.instance_id`).
    #[arg(long)]
    instance_id: Option<String>,
    /// Write every KPI row here as NDJSON (at-least-once: after a crash the
    /// rows since the last commit are written again).
    #[arg(long)]
    kpi_out: Option<PathBuf>,
    /// Write alerts here as JSONL (at-least-once, like --kpi-out).
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

fn load_config(a: &mut Args) -> anyhow::Result<Config> {
    let mut config = match &a.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    config.apply_env();
    if let Some(b) = a.brokers.take() {
        config.kafka.brokers = b;
    }
    if !a.topics.is_empty() {
        config.kafka.topics = std::mem::take(&mut a.topics);
    }
    if let Some(g) = a.group.take() {
        config.kafka.group = g;
    }
    if let Some(i) = a.instance_id.take() {
        config.kafka.instance_id = Some(i);
    }
    if let Some(l) = a.listen {
        config.http.listen = l.to_string();
    }
    if a.pipelines.is_some() {
        config.pipelines.dir = a.pipelines.take();
    }
    config.outputs.kpi_out = a.kpi_out.take().or(config.outputs.kpi_out);
    config.outputs.alerts_out = a.alerts_out.take().or(config.outputs.alerts_out);
    if a.model.is_some() {
        config.model.path = a.model.take();
    }
    config.validate().map_err(|p| {
        anyhow::anyhow!(
            "configuration has {} problem(s):\n  {}",
            p.len(),
            p.join("\n  ")
        )
    })?;
    Ok(config)
}

fn duration(text: &str, fallback_ms: i64) -> Duration {
    Duration::from_millis(parse_duration_ms(text).unwrap_or(fallback_ms).max(1) as u64)
}

pub fn run(mut a: Args) -> anyhow::Result<()> {
    let config = load_config(&mut a)?;
    // Every line this instance logs (from this thread, the driver's) names
    // it: the instances of a group usually log to one place.
    let _instance = tracing::info_span!("pulse", instance = %config.instance_name()).entered();
    let engine_config = EngineConfig {
        ingest: config.ingest_config(),
        windows: config.window_config(),
        live: true,
    };
    let dir = pipelines_dir(config.pipelines.dir.clone());
    let mut engine =
        Engine::new(engine_config, dir.as_deref()).context("cannot start the pipelines")?;
    let access = config.http.access().map_err(anyhow::Error::msg)?;
    let state = AppState::new(Metrics::new("kafka")).with_access(access);
    engine.attach_metrics(state.metrics.clone())?;
    let rules = config
        .alerts
        .resolve()
        .map_err(|p| anyhow::anyhow!("alert rules: {}", p.join("; ")))?;
    let model = match &config.model.path {
        Some(path) => ModelSource::File {
            path: path.clone(),
            reload: Some(
                duration(&config.model.reload_every, 5_000).max(Duration::from_millis(100)),
            ),
        },
        None => ModelSource::None,
    };
    attach_risk(&mut engine, rules, model)?;
    engine.risk.dedup_capacity = config.alerts.dedup_ids.max(1);
    let delivery = if config.kafka.guarantee == "at_least_once" {
        Delivery::AtLeastOnce
    } else {
        Delivery::ExactlyOnce
    };
    let timeout = duration(&config.state.transaction_timeout, 30_000);
    // Refused credentials or a failed TLS handshake stop here, once, before
    // any client starts retrying them in the background.
    let topics = input_topics(&config, timeout.min(Duration::from_secs(10)))?;
    // The producer is named like the consumer (the instance), so broker
    // logs, metrics and quotas can tell the instances apart.
    let mut producer_properties = config.kafka.properties.clone();
    producer_properties
        .entry("client.id".to_owned())
        .or_insert_with(|| config.instance_name());
    let producer = match delivery {
        Delivery::ExactlyOnce => KafkaSink::transactional(
            &config.kafka.brokers,
            &producer_properties,
            Some(state.metrics.clone()),
            &config.transactional_id(),
            timeout,
        )?,
        Delivery::AtLeastOnce => KafkaSink::new(
            &config.kafka.brokers,
            &producer_properties,
            Some(state.metrics.clone()),
        )?,
    };
    let mut sinks = Sinks {
        board: Some(state.board.clone()),
        metrics: Some(state.metrics.clone()),
        dead: RecordSink::Topic {
            sink: producer.clone(),
            topic: config.kafka.dead_letter_topic.clone(),
        },
        late: RecordSink::Topic {
            sink: producer.clone(),
            topic: config.kafka.late_topic.clone(),
        },
        ..Sinks::default()
    };
    if let Some(path) = &config.outputs.kpi_out {
        sinks.kpi_file = Some(
            KpiSink::create(path)
                .with_context(|| format!("cannot create KPI file {}", path.display()))?,
        );
    }
    if let Some(topic) = &config.kafka.kpi_topic {
        sinks.kpi_topic = Some((producer.clone(), topic.clone()));
    }
    sinks.alerts.file = alerts_file(config.outputs.alerts_out.as_deref())?;
    sinks.alerts.topic = Some((producer.clone(), config.kafka.alert_topic.clone()));
    sinks.alerts.recent = Some(state.alerts.clone());
    sinks.alerts.metrics = engine.risk.metrics.clone();
    // Live events: latency is measured from the alert's event time.
    sinks.alerts.latency_from_event_time = true;
    if let Ok(mut s) = state.status.lock() {
        s.source = "kafka";
    }

    let settings = StateSettings {
        brokers: config.kafka.brokers.clone(),
        properties: config.kafka.properties.clone(),
        topic: config.state_topic(),
        replication: config.state.replication,
        delivery,
        commit_every: duration(&config.state.commit_every, 1_000),
        timeout,
        cache_dir: config.state.dir.clone(),
    };
    let mut kafka = config.kafka.clone();
    // Topics co-partitioned with the inputs are made before subscribing: a
    // consumer hears of a topic made later only at its next metadata refresh.
    let input_partitions = config
        .kafka
        .topics
        .iter()
        .filter_map(|t| topics.get(t).copied())
        .max()
        .unwrap_or(1);
    let admin = driver::Admin {
        brokers: &settings.brokers,
        properties: &settings.properties,
        replication: settings.replication,
        timeout: settings.timeout,
    };
    if !kafka.erasure_topic.is_empty() {
        driver::create_erasure_topic(&admin, &kafka.erasure_topic, input_partitions)
            .context("cannot set up the erasure topic")?;
        sinks.audit = Some((producer.clone(), config.kafka.audit_topic.clone()));
    }
    // Scale-out: the partials topic, made like the erasure topic with the
    // inputs' partition count (co-partitioned: partials partition k goes
    // with input partition k).
    kafka.partials_topic = config.partials_topic();
    if let Some(topic) = kafka.partials_topic.clone() {
        driver::create_partials_topic(&admin, &topic, input_partitions)
            .context("cannot set up the partials topic")?;
        engine.enable_scale_out(input_partitions as u32);
        sinks.partials = Some((producer.clone(), topic));
    } else {
        kafka.partials_topic = Some(String::new());
    }
    kafka.instance_id = Some(config.instance_name());
    let source = KafkaSource::new(&kafka, Some(state.metrics.clone()))?;
    let partitions = config
        .kafka
        .topics
        .iter()
        .filter_map(|t| source.partition_count(t))
        .fold(input_partitions, usize::max);
    let durability = KafkaDurability::new(settings, producer.clone(), partitions)
        .context("cannot set up the state changelog")?;
    let mut core = Core::new(engine, sinks);
    core.status = Some(state.clone());
    core.reload_model = true;
    core.kafka = Some(durability);
    let core = Arc::new(Mutex::new(core));
    install_hook(&source, &core);

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
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(mut term) => {
                            tokio::select! {
                                _ = tokio::signal::ctrl_c() => {}
                                _ = term.recv() => {}
                                _ = http_stop.notified() => {}
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "no SIGTERM handler; Ctrl-C still stops");
                            tokio::select! {
                                _ = tokio::signal::ctrl_c() => {}
                                _ = http_stop.notified() => {}
                            }
                        }
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
        "Veloc Pulse on http://{addr}/ consuming {:?} from {} as group {} ({}, state in {})",
        config.kafka.topics,
        config.kafka.brokers,
        config.kafka.group,
        config.kafka.guarantee,
        config.state_topic()
    );
    let mut source = Source::Kafka(Box::new(source));
    let report = driver::run(
        &mut source,
        &core,
        &Control {
            stop: &stop,
            exit_when_idle: a
                .exit_when_idle
                .map(|ms| Duration::from_millis(ms.max(0) as u64)),
            // A service logs; consumer lag is its progress.
            progress: None,
        },
    );
    // Leave the group (the revocation hook commits nothing new) before
    // the core goes away.
    drop(source);
    let report = report?;
    let mut g = core.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((what, e)) = g.sinks.error.take() {
        return Err(e).context(format!("cannot write the {what}"));
    }
    producer.flush(Duration::from_secs(60))?;
    http_stop.notify_one();
    let _ = runtime.block_on(server);
    let s = g.engine.ingest.stats.summary();
    let d = g.kafka.as_ref();
    println!(
        "stopped ({}): read {} valid {} invalid {} duplicate {} late {} in {:.2}s, consuming for {:.2}s ({:.0} events/s), {} KPI rows, {} alerts; {} commits, {} checkpoint bytes, longest commit {:.0} ms, restore {:.2}s, restored {} bytes (and {} from the local cache); {} partials read, merge delay p50 {} ms, p99 {} ms",
        report.stopped_by.as_str(),
        s.read,
        s.valid,
        s.invalid,
        s.duplicate,
        s.late,
        report.seconds,
        report.busy_seconds,
        // Events only: partials read back are messages too.
        report.messages.saturating_sub(g.engine.partials_read) as f64
            / report.busy_seconds.max(1e-9),
        g.sinks.kpi_rows,
        g.sinks.alerts.sent.iter().sum::<u64>(),
        d.map_or(0, |d| d.commits),
        d.map_or(0, |d| d.checkpoint_bytes),
        d.map_or(0.0, |d| d.longest_commit.as_secs_f64() * 1000.0),
        d.map_or(0.0, |d| d.restore_seconds),
        d.map_or(0, |d| d.restored_bytes),
        d.map_or(0, |d| d.cached_bytes),
        g.engine.partials_read,
        g.engine.merge_delays.quantile(0.5).unwrap_or(0),
        g.engine.merge_delays.quantile(0.99).unwrap_or(0),
    );
    Ok(())
}

/// The partition count of every topic the broker knows, once every input
/// topic exists. The changelog, partials and erasure topics are made with
/// the inputs' partition count, so an instance started before its input
/// topics (or in the second after they were made, before the broker that
/// answers has heard of them) waits for them rather than making those
/// topics too small. Waiting is logged every 30 s; SIGTERM ends it.
fn input_topics(
    config: &Config,
    timeout: Duration,
) -> anyhow::Result<std::collections::BTreeMap<String, usize>> {
    let started = std::time::Instant::now();
    let mut told: Option<std::time::Instant> = None;
    loop {
        let topics = check_connection(&config.kafka.brokers, &config.kafka.properties, timeout)?;
        let missing: Vec<&str> = config
            .kafka
            .topics
            .iter()
            .filter(|t| topics.get(*t).is_none_or(|&n| n == 0))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(topics);
        }
        if told.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            tracing::warn!(
                topics = ?missing,
                waited_s = started.elapsed().as_secs(),
                "waiting for the input topics to exist: their partition count sizes the changelog, partials and erasure topics"
            );
            told = Some(std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
