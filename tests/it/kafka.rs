//! The Kafka path against a real Apache Kafka (scripts/kafka starts one from
//! Maven Central jars). Without a broker these tests fail: they never skip.
//! They share one broker and run one at a time (the broker is restarted by
//! one of them).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use serde_json::Value;
use veloc_pulse::sink::{KafkaSink, client_config};

use crate::common::{http_get, pulse, pulse_ok, scratch};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One Kafka test at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn kafka_script(args: &[&str]) -> String {
    let out = Command::new(format!("{ROOT}/scripts/kafka"))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/kafka runs");
    assert!(
        out.status.success(),
        "scripts/kafka {args:?} failed (Java 17 and Maven are needed)"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Starts the broker when needed; its bootstrap address.
pub fn broker() -> String {
    kafka_script(&["start"])
}

pub fn topic(name: &str, partitions: u32) -> String {
    let t = format!(
        "it.{name}.{}.{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ rand_suffix()
    );
    kafka_script(&["create-topic", &t, &partitions.to_string()]);
    t
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000
}

/// Produces NDJSON lines keyed by trader_id (the contract's message key).
pub fn produce(brokers: &str, topic: &str, lines: &[&[u8]]) {
    let sink = KafkaSink::new(brokers, &BTreeMap::new(), None).unwrap();
    for l in lines {
        let key = serde_json::from_slice::<Value>(l)
            .ok()
            .and_then(|v| v["trader_id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        sink.send("events", topic, key.as_bytes(), l, &[]);
    }
    sink.flush(Duration::from_secs(60)).unwrap();
}

pub fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

fn simulate(dir: &Path, seed: &str, disorder: &str) -> Vec<u8> {
    let path = dir.join(format!("sim-{seed}.ndjson"));
    pulse_ok(&[
        "simulate",
        "--seed",
        seed,
        "--traders",
        "1500",
        "--days",
        "30",
        "--disorder",
        disorder,
        "--out",
        path.to_str().unwrap(),
    ]);
    std::fs::read(path).unwrap()
}

/// Arguments of `pulse run` on `topic` as `group`, writing KPI rows to
/// `kpis`; with `idle`, it stops once caught up and quiet that long.
fn run_args(
    brokers: &str,
    topic: &str,
    group: &str,
    kpis: &Path,
    idle: Option<&str>,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--group",
        group,
        "--kpi-out",
        kpis.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--pipelines".into(), format!("{ROOT}/pipelines")]);
    if let Some(idle) = idle {
        args.extend(["--exit-when-idle".into(), idle.into()]);
    }
    args
}

/// Runs `pulse ARGS` to its end, panicking with its errors when it fails.
fn run_to_end(args: &[String]) {
    let out = pulse().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Counter totals of the tumbling pipelines: (pipeline, labels, value) -> sum.
fn counter_totals(rows: &[Value]) -> BTreeMap<String, i64> {
    let pipelines: &[&str] = &[
        "deposits",
        "first_deposits",
        "signups",
        "withdrawals",
        "trading",
        "logins",
        "campaigns",
    ];
    let mut out = BTreeMap::new();
    for r in rows {
        let obj = r.as_object().unwrap();
        let p = obj["pipeline"].as_str().unwrap();
        if !pipelines.contains(&p) {
            continue;
        }
        let labels: Vec<String> = obj
            .iter()
            .filter(|(_, v)| v.is_string())
            .filter(|(k, _)| !k.starts_with("window"))
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        for (k, v) in obj.iter().filter(|(k, _)| k.ends_with("_total")) {
            *out.entry(format!("{}/{}/{k}", p, labels.join(",")))
                .or_default() += (v.as_f64().unwrap() * 100.0).round() as i64;
        }
    }
    out
}

/// Equal totals, or a panic listing the keys that differ.
fn assert_same_totals(got: &BTreeMap<String, i64>, want: &BTreeMap<String, i64>) {
    let diff: Vec<String> = want
        .keys()
        .chain(got.keys())
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| format!("{k}: got {:?}, want {:?}", got.get(k), want.get(k)))
        .collect();
    assert!(
        diff.is_empty(),
        "{} totals differ:\n{}",
        diff.len(),
        diff.join("\n")
    );
}

fn replay_rows(dir: &Path, events: &[u8]) -> Vec<Value> {
    let file = dir.join("replayed.ndjson");
    std::fs::write(&file, events).unwrap();
    let kpis = dir.join("replay-kpis.ndjson");
    pulse_ok(&[
        "replay",
        "--events",
        file.to_str().unwrap(),
        "--kpi-out",
        kpis.to_str().unwrap(),
        "--pipelines",
        &format!("{ROOT}/pipelines"),
    ]);
    rows(&kpis)
}

pub fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "pulse run did not stop in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn spawn_run(args: &[String]) -> crate::common::Running {
    let mut child = pulse()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let line = lines.next().expect("pulse run announces itself").unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("address")
        .to_owned();
    std::thread::spawn(move || for _ in lines {});
    crate::common::Running { child, addr }
}

#[test]
fn malformed_messages_go_to_the_dead_letter_topic() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let brokers = broker();
    let dir = scratch();
    let t = topic("dlq", 2);
    let dlq = format!("{t}.dlq");
    kafka_script(&["create-topic", &dlq, "1"]);
    let good = br#"{"event_id":"k1","type":"signup","trader_id":"a","ts":1767225600000,"channel":"organic","country":"BR"}"#;
    let bad: Vec<(&[u8], &str)> = vec![
        (b"not json", "not_json"),
        (br#"{"event_id":"k2","type":"deposit","trader_id":"a","ts":1767225600000,"amount":-1,"currency":"BRL","method":"pix","status":"approved"}"#, "bad_value"),
        (br#"{"event_id":"k3","type":"teleport","trader_id":"a","ts":1767225600000}"#, "unknown_type"),
    ];
    let mut all: Vec<&[u8]> = vec![good];
    all.extend(bad.iter().map(|(b, _)| *b));
    produce(&brokers, &t, &all);
    let kpis = dir.path().join("k.ndjson");
    let mut args = run_args(&brokers, &t, &format!("{t}.g"), &kpis, Some("2s"));
    let cfg_path = dir.path().join("pulse.toml");
    std::fs::write(
        &cfg_path,
        format!("[kafka]\ndead_letter_topic = \"{dlq}\"\n"),
    )
    .unwrap();
    args.extend(["--config".into(), cfg_path.to_str().unwrap().into()]);
    run_to_end(&args);

    let consumer: BaseConsumer = {
        let mut c = client_config(&brokers, &BTreeMap::new());
        c.set("group.id", format!("{t}.reader"))
            .set("auto.offset.reset", "earliest");
        c.create().unwrap()
    };
    consumer.subscribe(&[&dlq]).unwrap();
    let mut got: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < bad.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m.headers().expect("dead letters carry headers");
            let h = |k: &str| {
                headers
                    .iter()
                    .find(|x| x.key == k)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            };
            assert_eq!(h("pulse.source.topic").as_deref(), Some(t.as_str()));
            assert!(
                h("pulse.source.offset").is_some()
                    && h("pulse.message").is_some_and(|m| !m.is_empty())
            );
            got.insert(
                String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
                h("pulse.reason").unwrap(),
            );
        }
    }
    let want: BTreeMap<String, String> = bad
        .iter()
        .map(|(b, r)| (String::from_utf8_lossy(b).into_owned(), r.to_string()))
        .collect();
    assert_eq!(
        got, want,
        "every malformed message, with its original bytes and reason"
    );
}

/// Two instances in one group split the partitions; their counters summed
/// equal the single-instance totals.
#[test]
fn two_instances_split_the_partitions() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let brokers = broker();
    let dir = scratch();
    let events = simulate(dir.path(), "24", "0s");
    let t = topic("split", 4);
    let group = format!("{t}.g");
    let (ka, kb) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    // Two instances at once need different names (transactional ids).
    let mut a_args = run_args(&brokers, &t, &group, &ka, Some("5s"));
    a_args.extend(["--instance-id".into(), "a".into()]);
    let mut b_args = run_args(&brokers, &t, &group, &kb, Some("5s"));
    b_args.extend(["--instance-id".into(), "b".into()]);
    let mut a = spawn_run(&a_args);
    let mut b = spawn_run(&b_args);
    // Both are ready once each holds partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(&a.addr, "/readyz").0 != 200 || http_get(&b.addr, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "both instances get partitions");
        std::thread::sleep(Duration::from_millis(200));
    }
    produce(&brokers, &t, &lines(&events));
    assert!(wait_exit(&mut a.child, Duration::from_secs(120)).success());
    assert!(wait_exit(&mut b.child, Duration::from_secs(120)).success());
    let (ra, rb) = (rows(&ka), rows(&kb));
    assert!(!ra.is_empty() && !rb.is_empty(), "both instances did work");
    let mut both = ra;
    both.extend(rb);
    assert_same_totals(
        &counter_totals(&both),
        &counter_totals(&replay_rows(dir.path(), &events)),
    );
}

/// The example configuration is valid.
#[test]
fn example_config_passes_check() {
    let out = pulse_ok(&["check", "--config", &format!("{ROOT}/pulse.toml")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid configuration"));
    let dir = scratch();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[windows]\ndisorder = \"soon\"\n[http]\nlisten = \"x\"\n",
    )
    .unwrap();
    let out = pulse()
        .args(["check", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("windows.disorder") && err.contains("http.listen"),
        "{err}"
    );
}

/// Alerts of `pulse run` go to the alert topic (key = trader_id) and to the
/// JSONL file, the same alerts in both, each valid against the schema.
#[test]
fn alerts_go_to_the_alert_topic_and_the_file() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let brokers = broker();
    let dir = scratch();
    let t = topic("alerts", 2);
    let alert_topic = format!("{t}.alerts");
    kafka_script(&["create-topic", &alert_topic, "1"]);
    let events = simulate(dir.path(), "7", "5s");
    produce(&brokers, &t, &lines(&events));
    let kpis = dir.path().join("k.ndjson");
    let file = dir.path().join("alerts.jsonl");
    let mut args = run_args(&brokers, &t, &format!("{t}.g"), &kpis, Some("3s"));
    let cfg_path = dir.path().join("pulse.toml");
    std::fs::write(
        &cfg_path,
        format!("[kafka]\nalert_topic = \"{alert_topic}\"\n[model]\npath = \"{ROOT}/models/churn-default.json\"\n"),
    )
    .unwrap();
    args.extend(["--config".into(), cfg_path.to_str().unwrap().into()]);
    args.extend(["--alerts-out".into(), file.to_str().unwrap().into()]);
    run_to_end(&args);

    crate::alerts::validate_file(&file);
    let from_file: BTreeMap<String, String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let key = v["trader_id"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| {
                    format!(
                        "{}.{}",
                        v["kpi"]["pipeline"].as_str().unwrap(),
                        v["kpi"]["value"].as_str().unwrap()
                    )
                });
            (v["alert_id"].as_str().unwrap().to_string(), key)
        })
        .collect();
    assert!(from_file.len() > 50, "{} alerts", from_file.len());

    let consumer: BaseConsumer = {
        let mut c = client_config(&brokers, &BTreeMap::new());
        c.set("group.id", format!("{t}.reader"))
            .set("auto.offset.reset", "earliest");
        c.create().unwrap()
    };
    consumer.subscribe(&[&alert_topic]).unwrap();
    let mut from_topic: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while from_topic.len() < from_file.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let key = String::from_utf8_lossy(m.key().unwrap()).into_owned();
            from_topic.insert(v["alert_id"].as_str().unwrap().to_string(), key);
        }
    }
    assert_eq!(
        from_topic, from_file,
        "the topic holds the file's alerts, keyed by trader"
    );
}
