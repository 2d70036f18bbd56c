//! LGPD erasure against the real broker: `pulse forget` asks, `pulse run`
//! forgets the trader in memory and in the changelog (a tombstone), writes
//! an audit record per partition, keeps trader ids out of its log, and a
//! restart from the changelog brings none of it back.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use veloc_pulse::sink::client_config;

use crate::common::{Running, http_get, metric_sum, pulse, scratch};
use crate::durable::{history, read_topic, sigterm, wait_read};
use crate::kafka::{ROOT, SERIAL, broker, kafka_script, lines, produce, topic};

/// Every committed record of every partition of `topic`: (partition, key,
/// value; `None` for a tombstone), in offset order per partition.
fn read_raw(brokers: &str, topic: &str, partitions: i32) -> Vec<(i32, Vec<u8>, Option<Vec<u8>>)> {
    let mut c = client_config(brokers, &BTreeMap::new());
    c.set("group.id", format!("{topic}.raw"))
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = c.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut open: BTreeSet<i32> = (0..partitions).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !open.is_empty() {
        assert!(Instant::now() < deadline, "reading {topic} took too long");
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => out.push((
                m.partition(),
                m.key().unwrap_or_default().to_vec(),
                m.payload().map(<[u8]>::to_vec),
            )),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn pulse_forget_erases_a_trader_from_memory_and_the_changelog() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch();
    let brokers = broker();
    let input = topic("erasure", 2);
    let (erasures, audit) = (format!("{input}.erasure"), format!("{input}.audit"));
    let group = format!("{input}.g");
    // One partition: the audit is read back in one pass.
    kafka_script(&["create-topic", &audit, "1"]);
    // A lowered max.poll.interval.ms (below librdkafka's default session
    // timeout) must suit every consumer, the restore's too.
    let config = dir.path().join("pulse.toml");
    let cache = dir.path().join("cache");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nerasure_topic = \"{erasures}\"\naudit_topic = \"{audit}\"\n\
             alert_topic = \"{input}.alerts\"\ndead_letter_topic = \"{input}.dlq\"\n\
             late_topic = \"{input}.late\"\n\
             [model]\npath = \"{ROOT}/models/churn-default.json\"\n\
             [state]\ncommit_every = \"300ms\"\ndir = \"{cache}\"\n\
             [kafka.properties]\n\"max.poll.interval.ms\" = \"20000\"\n",
            cache = cache.display()
        ),
    )
    .unwrap();
    let bytes = std::fs::read(history(dir.path())).unwrap();
    let events = lines(&bytes);
    // Two traders with plenty of history, and one nobody knows.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for l in &events {
        let v: Value = serde_json::from_slice(l).unwrap();
        *seen
            .entry(v["trader_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let mut busiest: Vec<(usize, String)> = seen.into_iter().map(|(t, n)| (n, t)).collect();
    busiest.sort();
    let gone: Vec<String> = busiest
        .iter()
        .rev()
        .take(2)
        .map(|(_, t)| t.clone())
        .collect();
    let nobody = "nobody-ever-seen-42";
    produce(&brokers, &input, &events);

    let args = |idle: Option<&str>| -> Vec<String> {
        let mut a: Vec<String> = [
            "run",
            "--config",
            config.to_str().unwrap(),
            "--brokers",
            &brokers,
            "--topic",
            &input,
            "--group",
            &group,
            "--instance-id",
            "a",
            "--listen",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(idle) = idle {
            a.extend(["--exit-when-idle".into(), idle.into()]);
        }
        a
    };
    let log = dir.path().join("run.log");
    let mut child = pulse()
        .args(args(None))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut out = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let first = out.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_owned();
    std::thread::spawn(move || for _ in out {});
    let mut r = Running { child, addr };
    wait_read(&[&r], events.len() as u64);
    // Let a checkpoint hold the traders before they are erased.
    std::thread::sleep(Duration::from_secs(1));

    let forget = pulse()
        .args(["forget", "--config", config.to_str().unwrap()])
        .args(["--brokers", &brokers])
        .args([
            "--trader", &gone[0], "--trader", &gone[1], "--trader", nobody,
        ])
        .output()
        .unwrap();
    assert!(
        forget.status.success(),
        "{}",
        String::from_utf8_lossy(&forget.stderr)
    );
    let requests: Vec<Value> = String::from_utf8_lossy(&forget.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(requests.len(), 3);
    assert!(
        requests.iter().all(|q| q["partitions"] == 2),
        "{requests:?}"
    );

    // One audit record per request and partition; the partition holding
    // the trader found them, the others did not.
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let got = read_topic(&brokers, &audit);
        if got.len() >= 6 {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "{} audit records; pulse run said:\n{}",
            got.len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(records.len(), 6, "{records:#?}");
    for q in &requests {
        let mine: Vec<&Value> = records
            .iter()
            .filter(|a| a["request_id"] == q["request_id"])
            .collect();
        assert_eq!(mine.len(), 2);
        assert!(mine.iter().all(|a| a["type"] == "erasure"));
        assert!(mine.iter().all(|a| a["trader_id"] == q["trader_id"]));
        let found = mine.iter().filter(|a| a["found"] == true).count();
        let want = usize::from(q["trader_id"] != nobody);
        assert_eq!(found, want, "{mine:#?}");
    }
    let (_, metrics) = http_get(&r.addr, "/metrics");
    assert_eq!(
        metric_sum(&metrics, "pulse_erasures_total{outcome=\"erased\"}"),
        2.0
    );
    let (_, recent) = http_get(&r.addr, "/api/alerts");
    for t in &gone {
        assert!(!recent.contains(t.as_str()), "{t} still in /api/alerts");
    }
    sigterm(&mut r);

    // The changelog: the traders were in it, and the latest record of
    // every key holding them is a tombstone.
    let changelog = read_raw(&brokers, &format!("{group}.state"), 2);
    let mut latest: BTreeMap<(i32, Vec<u8>), Option<Vec<u8>>> = BTreeMap::new();
    for t in &gone {
        assert!(
            changelog
                .iter()
                .any(|(_, _, v)| v.as_ref().is_some_and(|v| contains(v, t.as_bytes()))),
            "{t} was never in the changelog"
        );
    }
    for (p, k, v) in changelog {
        latest.insert((p, k), v);
    }
    for t in &gone {
        let left: Vec<_> = latest
            .iter()
            .filter(|(_, v)| v.as_ref().is_some_and(|v| contains(v, t.as_bytes())))
            .map(|((p, k), _)| (p, String::from_utf8_lossy(k).into_owned()))
            .collect();
        assert!(left.is_empty(), "{t} is still held by {left:?}");
    }

    // Nor does the local cache keep an older copy.
    let mut files = 0;
    for f in std::fs::read_dir(cache.join(format!("{group}.state"))).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        files += 1;
        for t in &gone {
            assert!(
                !contains(&bytes, t.as_bytes()),
                "{t} is still in the local cache"
            );
        }
    }
    assert_eq!(files, 2, "one cache file per partition");

    // A restart restores from the changelog; nothing of them comes back,
    // and the log never named them.
    let again = pulse()
        .args(args(Some("3s")))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let log = std::fs::read_to_string(&log).unwrap() + &String::from_utf8_lossy(&again.stderr);
    assert!(log.contains("erasure applied"), "{log}");
    for t in &gone {
        assert!(!log.contains(t.as_str()), "{t} appears in the log");
    }
    let changelog = read_raw(&brokers, &format!("{group}.state"), 2);
    let mut latest: BTreeMap<(i32, Vec<u8>), Option<Vec<u8>>> = BTreeMap::new();
    for (p, k, v) in changelog {
        latest.insert((p, k), v);
    }
    for t in &gone {
        assert!(
            !latest.values().flatten().any(|v| contains(v, t.as_bytes())),
            "{t} came back after the restart"
        );
    }
}
