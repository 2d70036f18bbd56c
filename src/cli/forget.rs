//! `pulse forget`: LGPD erasure requests. One request per trader, written
//! to every partition of the erasure topic (so it reaches the partition
//! that holds the trader whatever partitioner the event producers use);
//! `pulse run` applies it and writes an audit record per partition.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use veloc_pulse::config::Config;
use veloc_pulse::driver::{Admin, create_erasure_topic};
use veloc_pulse::engine::ErasureRequest;
use veloc_pulse::event::time::format_rfc3339_ms;
use veloc_pulse::sink::{KafkaSink, check_connection};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Trader to erase (repeatable).
    #[arg(long = "trader", required = true)]
    traders: Vec<String>,
    /// Configuration file (brokers, security properties, topics).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Bootstrap servers (overrides the file and PULSE_KAFKA_BROKERS).
    #[arg(long)]
    brokers: Option<String>,
    /// Erasure topic (overrides `kafka.erasure_topic`).
    #[arg(long)]
    topic: Option<String>,
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
    let topic = a.topic.unwrap_or(config.kafka.erasure_topic.clone());
    anyhow::ensure!(
        !topic.is_empty(),
        "kafka.erasure_topic is empty: erasures are switched off; name a topic with --topic"
    );
    if let Some(t) = a.traders.iter().find(|t| t.is_empty()) {
        anyhow::bail!("--trader {t:?}: expected a trader id");
    }
    let k = &config.kafka;
    let timeout = Duration::from_secs(30);
    let topics = check_connection(&k.brokers, &k.properties, timeout)?;
    anyhow::ensure!(
        !topics.is_empty(),
        "no Kafka broker answered at {} within {timeout:?}",
        k.brokers
    );
    let partitions = match topics.get(&topic) {
        Some(n) => *n,
        None => {
            // Made as `pulse run` makes it: with the inputs' partition count.
            let n = k
                .topics
                .iter()
                .filter_map(|t| topics.get(t).copied())
                .max()
                .with_context(|| {
                    format!(
                        "neither the erasure topic {topic} nor the input topics {:?} exist at {}",
                        k.topics, k.brokers
                    )
                })?;
            let admin = Admin {
                brokers: &k.brokers,
                properties: &k.properties,
                replication: config.state.replication,
                timeout,
            };
            create_erasure_topic(&admin, &topic, n)?;
            n
        }
    };
    let sink = KafkaSink::new(&k.brokers, &k.properties, None)?;
    let now = format_rfc3339_ms(chrono::Utc::now().timestamp_millis());
    for trader in &a.traders {
        let request_id = format!("erasure-{:032x}", rand::random::<u128>());
        let request = ErasureRequest::new(trader, &request_id, &now);
        let payload = serde_json::to_vec(&request)?;
        for p in 0..partitions {
            sink.send_to(
                "erasure",
                &topic,
                Some(p as i32),
                trader.as_bytes(),
                Some(&payload),
                &[],
            )?;
        }
        println!(
            "{}",
            serde_json::json!({
                "request_id": request_id,
                "trader_id": trader,
                "topic": topic,
                "partitions": partitions,
                "requested_at": now,
            })
        );
    }
    sink.flush(timeout)?;
    Ok(())
}
