//! Durable state and exactly-once against the real broker: a golden
//! `pulse replay` of a simulated history with the bundled model, then the
//! same events through Kafka in slices with stops, kills, a broker restart
//! and a rebalance; the KPI topic and the alert topic (read_committed)
//! must hold exactly the golden rows and alert ids, every pipeline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use veloc_pulse::sink::client_config;

use crate::common::{
    Running, http_get, metric_sum, page_check, pulse, pulse_ok, require_program, scratch,
};
use crate::kafka::{
    ROOT, SERIAL, broker, kafka_script, lines, produce, spawn_run, topic, wait_exit,
};

/// The history every test replays: 2,000 traders over 30 days.
pub(crate) fn history(dir: &Path) -> PathBuf {
    let path = dir.join("history.ndjson");
    pulse_ok(&[
        "simulate",
        "--seed",
        "5",
        "--traders",
        "2000",
        "--days",
        "30",
        "--out",
        path.to_str().unwrap(),
    ]);
    path
}

/// Topics and config of one test.
pub(crate) struct Setup {
    pub brokers: String,
    pub input: String,
    kpis: String,
    alerts: String,
    group: String,
    pub config: PathBuf,
}

fn setup(dir: &Path, name: &str, extra: &str) -> Setup {
    let brokers = broker();
    let input = topic(name, 4);
    let (kpis, alerts) = (format!("{input}.kpis"), format!("{input}.alerts"));
    kafka_script(&["create-topic", &kpis, "1"]);
    kafka_script(&["create-topic", &alerts, "1"]);
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[kafka]\nkpi_topic = \"{kpis}\"\nalert_topic = \"{alerts}\"\n\
             dead_letter_topic = \"{input}.dlq\"\nlate_topic = \"{input}.late\"\n\
             [model]\npath = \"{ROOT}/models/churn-default.json\"\n\
             [state]\ncommit_every = \"300ms\"\ntransaction_timeout = \"20s\"\n{extra}"
        ),
    )
    .unwrap();
    Setup {
        group: format!("{input}.g"),
        brokers,
        input,
        kpis,
        alerts,
        config,
    }
}

/// `pulse run` arguments of one instance.
pub(crate) fn args(s: &Setup, instance: &str, idle: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = [
        "run",
        "--config",
        s.config.to_str().unwrap(),
        "--brokers",
        &s.brokers,
        "--topic",
        &s.input,
        "--group",
        &s.group,
        "--instance-id",
        instance,
        "--listen",
        "127.0.0.1:0",
        "--pipelines",
        &format!("{ROOT}/pipelines"),
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    if let Some(idle) = idle {
        a.extend(["--exit-when-idle".into(), idle.into()]);
    }
    a
}

/// What the golden replay gives: KPI rows (canonical JSON, sorted) and
/// alert ids.
pub(crate) struct Golden {
    rows: Vec<String>,
    alerts: Vec<String>,
}

fn canonical(v: &Value) -> String {
    // serde_json maps are sorted by key: the text is canonical.
    v.to_string()
}

fn golden(dir: &Path, events: &Path, config: &Path) -> Golden {
    let (k, a) = (dir.join("golden.kpis"), dir.join("golden.alerts"));
    pulse_ok(&[
        "replay",
        "--events",
        events.to_str().unwrap(),
        "--kpi-out",
        k.to_str().unwrap(),
        "--alerts-out",
        a.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--pipelines",
        &format!("{ROOT}/pipelines"),
    ]);
    let read = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut rows: Vec<String> = read(&k).iter().map(canonical).collect();
    rows.sort();
    let mut alerts: Vec<String> = read(&a)
        .iter()
        .map(|v| v["alert_id"].as_str().unwrap().to_owned())
        .collect();
    alerts.sort();
    Golden { rows, alerts }
}

/// Every committed message of a topic (read_committed), as JSON.
pub(crate) fn read_topic(brokers: &str, topic: &str) -> Vec<Value> {
    read_raw(brokers, topic)
        .iter()
        .map(|(payload, _)| serde_json::from_slice(payload).unwrap())
        .collect()
}

/// Every committed message of partition 0 of a topic (read_committed):
/// its bytes and its `pulse.reason` header, if any.
pub(crate) fn read_raw(brokers: &str, topic: &str) -> Vec<(Vec<u8>, Option<String>)> {
    use rdkafka::message::Headers;
    let mut c = client_config(brokers, &BTreeMap::new());
    c.set("group.id", format!("{topic}.check"))
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = c.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "reading {topic} took too long");
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let reason = m.headers().and_then(|h| {
                    h.iter()
                        .find(|x| x.key == "pulse.reason")
                        .and_then(|x| x.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                });
                out.push((m.payload().unwrap_or_default().to_vec(), reason));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// What a setup's KPI and alert topics hold (read_committed): rows in
/// canonical JSON and alert ids, each sorted.
fn outputs(s: &Setup) -> Golden {
    let mut rows: Vec<String> = read_topic(&s.brokers, &s.kpis)
        .iter()
        .map(canonical)
        .collect();
    rows.sort();
    let mut alerts: Vec<String> = read_topic(&s.brokers, &s.alerts)
        .iter()
        .map(|v| v["alert_id"].as_str().unwrap().to_owned())
        .collect();
    alerts.sort();
    Golden { rows, alerts }
}

/// Rows on the KPI topic equal the golden rows exactly; alert ids on the
/// alert topic equal the golden ids, each once.
pub(crate) fn assert_golden(s: &Setup, g: &Golden) {
    let got = outputs(s);
    assert_same("KPI rows", &got.rows, &g.rows);
    assert_same("alert ids", &got.alerts, &g.alerts);
}

/// Equal multisets, or a panic with the differences by pipeline.
fn assert_same(what: &str, got: &[String], want: &[String]) {
    if got == want {
        return;
    }
    fn count(v: &[String]) -> BTreeMap<&str, i64> {
        let mut m: BTreeMap<&str, i64> = BTreeMap::new();
        for x in v {
            *m.entry(x.as_str()).or_default() += 1;
        }
        m
    }
    let (g, w) = (count(got), count(want));
    let mut missing: BTreeMap<String, usize> = BTreeMap::new();
    let mut extra: BTreeMap<String, usize> = BTreeMap::new();
    let mut examples = Vec::new();
    let group = |x: &str| {
        serde_json::from_str::<Value>(x)
            .ok()
            .and_then(|v| v["pipeline"].as_str().map(str::to_owned))
            .unwrap_or_else(|| x.split('-').next().unwrap_or("").to_owned())
    };
    for k in w.keys().chain(g.keys()).collect::<BTreeSet<_>>() {
        let d = g.get(k).copied().unwrap_or(0) - w.get(k).copied().unwrap_or(0);
        if d < 0 {
            *missing.entry(group(k)).or_default() += (-d) as usize;
        } else if d > 0 {
            *extra.entry(group(k)).or_default() += d as usize;
        }
        if d != 0 && examples.len() < 6 {
            examples.push(format!("{d:+} {k}"));
        }
    }
    panic!(
        "{what} differ from the golden replay ({} got, {} golden): missing {missing:?}, extra {extra:?}\nfor example:\n{}",
        got.len(),
        want.len(),
        examples.join("\n")
    );
}

/// Events read so far by an instance (its counters continue across restarts).
fn read_so_far(r: &Running) -> u64 {
    let (code, body) = http_get(&r.addr, "/api/status");
    if code != 200 {
        return 0;
    }
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["events"]["read"].as_u64())
        .unwrap_or(0)
}

/// Waits until the instances together have read `n` events.
pub(crate) fn wait_read(rs: &[&Running], n: u64) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let got: u64 = rs.iter().map(|r| read_so_far(r)).sum();
        if got >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "instances read {got} of {n} events"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn sigterm(r: &mut Running) {
    let pid = r.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let st = wait_exit(&mut r.child, Duration::from_secs(120));
    assert!(st.success(), "pulse run stops cleanly on SIGTERM: {st}");
}

pub(crate) fn sigkill(r: &mut Running) {
    let pid = r.child.id().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    wait_exit(&mut r.child, Duration::from_secs(30));
}

pub(crate) fn run_to_idle(args: &[String]) {
    let out = pulse().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "pulse run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Splits the events into `n` slices by line count.
fn slices(events: &[u8], n: usize) -> Vec<Vec<&[u8]>> {
    let all = lines(events);
    let size = all.len().div_ceil(n);
    all.chunks(size).map(|c| c.to_vec()).collect()
}

/// One golden comparison: the broker held for this test alone, a scratch
/// folder, the history's bytes, its topics and config (with
/// `extra` settings, given the folder) and the golden replay.
pub(crate) struct Case {
    _serial: std::sync::MutexGuard<'static, ()>,
    pub dir: crate::common::Scratch,
    pub bytes: Vec<u8>,
    pub s: Setup,
    pub g: Golden,
}

pub(crate) fn case(name: &str, extra: impl FnOnce(&Path) -> String) -> Case {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch();
    let events = history(dir.path());
    let bytes = std::fs::read(&events).unwrap();
    let s = setup(dir.path(), name, &extra(dir.path()));
    let g = golden(dir.path(), &events, &s.config);
    Case {
        _serial: serial,
        dir,
        bytes,
        s,
        g,
    }
}

#[test]
fn a_topic_filled_up_front_gives_exactly_the_replay() {
    let Case { s, g, bytes, .. } = &case("upfront", |_| String::new());
    assert!(g.rows.len() > 5_000 && g.alerts.len() > 1_000);
    produce(&s.brokers, &s.input, &lines(bytes));
    run_to_idle(&args(s, "a", Some("3s")));
    assert_golden(s, g);
}

/// The coordinator takes the transactional id away mid-run (another
/// producer registers it, as the coordinator does when a transaction
/// outlives its timeout): the instance's producer fails for good, a new
/// one takes over, the state rewinds, and the outputs stay exactly the
/// golden ones.
#[test]
fn a_producer_that_loses_its_transactional_id_is_renewed_and_changes_nothing() {
    let Case { s, g, bytes, .. } = &case("renew", |_| String::new());
    let parts = slices(bytes, 2);
    produce(&s.brokers, &s.input, &parts[0]);
    let mut a = spawn_run(&args(s, "a", None));
    wait_read(&[&a], parts[0].len() as u64 / 2);
    take_transactional_id(s, "a");
    produce(&s.brokers, &s.input, &parts[1]);
    wait_read(&[&a], (parts[0].len() + parts[1].len()) as u64);
    assert_eq!(
        http_get(&a.addr, "/healthz").0,
        200,
        "the instance lives on"
    );
    sigterm(&mut a);
    run_to_idle(&args(s, "a", Some("3s")));
    assert_golden(s, g);
}

/// Another producer registers the instance's transactional id (fencing
/// the instance's producer), as the coordinator does when a transaction
/// outlives its timeout.
fn take_transactional_id(s: &Setup, instance: &str) {
    let usurper: rdkafka::producer::BaseProducer = client_config(&s.brokers, &Default::default())
        .set("transactional.id", format!("pulse.{}.{instance}", s.group))
        .create()
        .unwrap();
    rdkafka::producer::Producer::init_transactions(&usurper, Duration::from_secs(30)).unwrap();
}

/// Polls `done` until it holds; fails the test with `what` after `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Commits of an instance that succeeded so far.
fn commits(r: &Running) -> f64 {
    let (_, body) = http_get(&r.addr, "/metrics");
    metric_sum(&body, "pulse_state_commit_duration_seconds_count")
}

/// The id is taken before the instance's first commit: the rewind has no
/// checkpoint to go back to, and every partition is read again from the
/// group's committed offsets (none: the beginning). Before, the consumer
/// went on past the events of the aborted transaction and their windows
/// were missing (CI saw it once, when a loaded machine delayed the first
/// commit past the fence; a long commit interval makes it certain here).
#[test]
fn a_producer_fenced_before_its_first_commit_reads_everything_again() {
    let Case { s, g, bytes, .. } = &case("renew-first", |_| String::new());
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        text.replace("commit_every = \"300ms\"", "commit_every = \"8s\""),
    )
    .unwrap();
    let parts = slices(bytes, 2);
    produce(&s.brokers, &s.input, &parts[0]);
    let mut a = spawn_run(&args(s, "a", None));
    wait_read(&[&a], parts[0].len() as u64 / 2);
    assert_eq!(
        commits(&a),
        0.0,
        "the fence must come before the first commit (commit_every 8s)"
    );
    take_transactional_id(s, "a");
    wait_until(
        "a commit succeeds after the producer is renewed",
        Duration::from_secs(90),
        || commits(&a) >= 1.0,
    );
    produce(&s.brokers, &s.input, &parts[1]);
    wait_read(&[&a], (parts[0].len() + parts[1].len()) as u64);
    sigterm(&mut a);
    run_to_idle(&args(s, "a", Some("3s")));
    assert_golden(s, g);
}

#[test]
fn clean_stops_between_slices_change_nothing() {
    let Case { s, g, bytes, .. } = &case("slices", |_| String::new());
    let parts = slices(bytes, 4);
    let mut produced = 0u64;
    for (i, part) in parts.iter().enumerate() {
        produce(&s.brokers, &s.input, part);
        produced += part.len() as u64;
        if i + 1 == parts.len() {
            run_to_idle(&args(s, "a", Some("3s")));
        } else {
            let mut r = spawn_run(&args(s, "a", None));
            wait_read(&[&r], produced);
            sigterm(&mut r);
        }
    }
    assert_golden(s, g);
}

#[test]
fn kill_9_between_and_inside_slices_changes_nothing() {
    let Case { s, g, bytes, .. } = &case("kills", |_| String::new());
    let parts = slices(bytes, 4);
    let mut produced = 0u64;
    let mut kills = 0;
    for (i, part) in parts.iter().enumerate() {
        produce(&s.brokers, &s.input, part);
        let before = produced;
        produced += part.len() as u64;
        if i + 1 == parts.len() {
            break;
        }
        // Inside the slice: killed once it has read about half of it.
        let mut r = spawn_run(&args(s, "a", None));
        wait_read(&[&r], before + part.len() as u64 / 2);
        sigkill(&mut r);
        kills += 1;
        // Between slices: killed once it has read all of it.
        let mut r = spawn_run(&args(s, "a", None));
        wait_read(&[&r], produced);
        std::thread::sleep(Duration::from_millis(700));
        sigkill(&mut r);
        kills += 1;
    }
    assert!(kills >= 5, "{kills} kills");
    run_to_idle(&args(s, "a", Some("3s")));
    assert_golden(s, g);
}

/// The broker stopped for `outage` under an instance in the middle of its
/// input, then started again. Exactly-once: the golden rows and alerts
/// exactly; at-least-once: every golden row and alert, repeats allowed.
fn broker_outage(c: &Case, outage: Duration, exactly_once: bool) {
    let Case { s, g, bytes, .. } = c;
    let parts = slices(bytes, 2);
    produce(&s.brokers, &s.input, &parts[0]);
    let mut r = spawn_run(&args(s, "a", None));
    wait_read(&[&r], parts[0].len() as u64 / 2);
    kafka_script(&["stop"]);
    let stopped = Instant::now();
    // Not ready while its commit waits for the broker; still alive and
    // serving.
    let deadline = stopped + Duration::from_secs(50);
    while http_get(&r.addr, "/readyz").0 != 503 {
        assert!(
            Instant::now() < deadline,
            "/readyz stayed 200 with the broker away"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(http_get(&r.addr, "/healthz").0, 200);
    std::thread::sleep(outage.saturating_sub(stopped.elapsed()));
    assert_eq!(kafka_script(&["start"]), s.brokers, "same address");
    // It recovers by itself: ready again, and it reads everything ...
    wait_until(
        "/readyz comes back after the broker did",
        Duration::from_secs(120),
        || http_get(&r.addr, "/readyz").0 == 200,
    );
    produce(&s.brokers, &s.input, &parts[1]);
    wait_read(&[&r], (parts[0].len() + parts[1].len()) as u64);
    sigterm(&mut r);
    // ... and a last run closes the windows still open.
    run_to_idle(&args(s, "a", Some("3s")));
    if exactly_once {
        assert_golden(s, g);
    } else {
        let rows: BTreeSet<String> = read_topic(&s.brokers, &s.kpis)
            .iter()
            .map(canonical)
            .collect();
        let missing = g.rows.iter().filter(|r| !rows.contains(*r)).count();
        assert_eq!(
            missing,
            0,
            "{missing} of {} golden rows missing",
            g.rows.len()
        );
        let alerts: BTreeSet<String> = read_topic(&s.brokers, &s.alerts)
            .iter()
            .map(|v| v["alert_id"].as_str().unwrap().to_owned())
            .collect();
        let missing = g.alerts.iter().filter(|a| !alerts.contains(*a)).count();
        assert_eq!(
            missing,
            0,
            "{missing} of {} golden alerts missing",
            g.alerts.len()
        );
    }
}

/// The broker stopped for a minute under an instance in the middle of
/// its input, then started again (issue 15's fault test, exactly).
#[test]
fn a_broker_outage_of_a_minute_mid_run_changes_nothing() {
    broker_outage(
        &case("outage", |_| String::new()),
        Duration::from_secs(60),
        true,
    );
}

/// A broker that is up but slow: a produce quota on the instance's client
/// id (set before it starts) throttles its producer, so its first commit
/// waits longer than `max.poll.interval.ms` (10 s, the lowest it may go)
/// while the group coordinator stays reachable. The consumer is paused and
/// polled beside the waiting commit: it never exceeds the poll interval,
/// never leaves the group, no commit is aborted, and the outputs are
/// exactly the golden ones. (Without the keep-alive the consumer left the
/// group in the middle of the commit and the commit was aborted.)
#[test]
fn a_commit_throttled_past_the_poll_interval_keeps_the_group_and_changes_nothing() {
    let c = case("throttled", |_| {
        "[kafka.properties]\n\"max.poll.interval.ms\" = \"10000\"\n".to_owned()
    });
    let Case { s, g, bytes, .. } = &c;
    // The transaction may take far longer than usual; not the point here.
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        text.replace(
            "transaction_timeout = \"20s\"",
            "transaction_timeout = \"120s\"",
        ),
    )
    .unwrap();
    let instance = "throttled-a";
    let quota = |op: &str, value: &str| {
        kafka_script(&[
            "run-class",
            "kafka.admin.ConfigCommand",
            "--bootstrap-server",
            &s.brokers,
            "--alter",
            "--entity-type",
            "clients",
            "--entity-name",
            instance,
            op,
            value,
        ])
    };
    quota("--add-config", "producer_byte_rate=300000");
    produce(&s.brokers, &s.input, &lines(bytes));
    let out = pulse()
        .args(args(s, instance, Some("3s")))
        .output()
        .unwrap();
    quota("--delete-config", "producer_byte_rate");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "pulse run failed: {stderr}");
    let longest: u64 = stdout
        .split("longest commit ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no longest commit in the stop line: {stdout}"));
    assert!(
        longest > 10_000,
        "the quota must hold a commit past max.poll.interval.ms (longest {longest} ms)"
    );
    assert!(stderr.contains("consumer paused and polled"), "{stderr}");
    for bad in [
        "maximum poll interval",
        "commit aborted",
        "revoked while a commit waits",
    ] {
        assert!(!stderr.contains(bad), "{bad:?} in the log:\n{stderr}");
    }
    assert_golden(s, g);
}

/// The same under at-least-once: the instance waits for the broker (its
/// flush is retried, it does not stop) and nothing is lost.
#[test]
fn at_least_once_rides_out_a_broker_outage_and_loses_nothing() {
    let c = case("outage-alo", |_| String::new());
    let text = std::fs::read_to_string(&c.s.config).unwrap();
    std::fs::write(
        &c.s.config,
        text.replacen("[kafka]\n", "[kafka]\nguarantee = \"at_least_once\"\n", 1),
    )
    .unwrap();
    broker_outage(&c, Duration::from_secs(40), false);
}

/// Waits until every instance holds partitions and is ready.
pub(crate) fn wait_ready(rs: &[&Running]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while rs.iter().any(|r| http_get(&r.addr, "/readyz").0 != 200) {
        assert!(Instant::now() < deadline, "every instance holds partitions");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One picture from every instance: each pipeline is exported by exactly
/// one of them, every instance names that one for each pipeline in
/// `/api/status` and `/api/kpis`, and `pulse_pipeline_exported` adds up
/// to one per pipeline over the instances' `/metrics`.
fn assert_one_exporter(rs: &[(&str, &Running)]) {
    let pipelines = std::fs::read_dir(format!("{ROOT}/pipelines"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let get = |r: &Running, path: &str| -> Value {
            serde_json::from_str(&http_get(&r.addr, path).1).unwrap_or(Value::Null)
        };
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        let mut twice = false;
        let mut views = Vec::new();
        for (name, r) in rs {
            let status = get(r, "/api/status");
            for p in status["exports"]["here"].as_array().into_iter().flatten() {
                twice |= owner
                    .insert(p.as_str().unwrap().to_owned(), name.to_string())
                    .is_some();
            }
            views.push(status["exports"]["by_pipeline"].clone());
            views.push(get(r, "/api/kpis")["exports"]["by_pipeline"].clone());
        }
        let want = serde_json::to_value(&owner).unwrap();
        let metrics: Vec<String> = rs
            .iter()
            .map(|(_, r)| http_get(&r.addr, "/metrics").1)
            .collect();
        let exported: f64 = metrics
            .iter()
            .map(|m| metric_sum(m, "pulse_pipeline_exported"))
            .sum();
        // Every instance says the merge is on, over the inputs' 4 partitions.
        let merging = metrics
            .iter()
            .all(|m| metric_sum(m, "pulse_scale_out_partitions") == 4.0);
        if !twice
            && owner.len() == pipelines
            && views.iter().all(|v| *v == want)
            && exported == pipelines as f64
            && merging
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "exports: twice {twice}, owners {owner:?}, views {views:?}, exported {exported}, merge on everywhere {merging}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Scale-out: instances join and leave (1 -> 2 -> 3 -> 1) while events
/// arrive. Each exports the pipelines of the partials partitions it holds,
/// merged over every input partition, so the KPI topic holds exactly the
/// golden rows (one per window and label set, no per-instance shares) and
/// the alert topic exactly the golden alert ids, KPI drops included.
#[test]
fn scaling_one_two_three_one_changes_nothing() {
    let Case { s, g, bytes, .. } = &case("scale", |_| String::new());
    let parts = slices(bytes, 4);
    produce(&s.brokers, &s.input, &parts[0]);
    let mut a = spawn_run(&args(s, "a", None));
    wait_read(&[&a], parts[0].len() as u64 / 2);
    // A second instance joins: the partitions are split.
    let mut b = spawn_run(&args(s, "b", None));
    wait_ready(&[&a, &b]);
    produce(&s.brokers, &s.input, &parts[1]);
    std::thread::sleep(Duration::from_secs(3));
    // A third one.
    let mut c = spawn_run(&args(s, "c", None));
    wait_ready(&[&a, &b, &c]);
    assert_one_exporter(&[("a", &a), ("b", &b), ("c", &c)]);
    produce(&s.brokers, &s.input, &parts[2]);
    std::thread::sleep(Duration::from_secs(3));
    // Back to one while the last slice arrives.
    sigterm(&mut b);
    produce(&s.brokers, &s.input, &parts[3]);
    sigterm(&mut c);
    sigterm(&mut a);
    run_to_idle(&args(s, "a", Some("3s")));
    assert_golden(s, g);
}

/// Scale-out: one of three instances is killed (`kill -9`) mid-stream and
/// never comes back; the other two take its partitions and its merges over.
#[test]
fn a_kill_9_of_one_of_three_instances_changes_nothing() {
    let Case { s, g, bytes, .. } = &case("scalekill", |_| String::new());
    let parts = slices(bytes, 3);
    produce(&s.brokers, &s.input, &parts[0]);
    let mut a = spawn_run(&args(s, "a", None));
    let mut b = spawn_run(&args(s, "b", None));
    let mut c = spawn_run(&args(s, "c", None));
    wait_ready(&[&a, &b, &c]);
    produce(&s.brokers, &s.input, &parts[1]);
    std::thread::sleep(Duration::from_secs(2));
    sigkill(&mut c);
    produce(&s.brokers, &s.input, &parts[2]);
    std::thread::sleep(Duration::from_secs(3));
    sigterm(&mut b);
    sigterm(&mut a);
    run_to_idle(&args(s, "a", Some("3s")));
    assert_golden(s, g);
}

/// Traders whose logins close the history in [`flush_events`].
const FLUSH_TRADERS: usize = 64;

/// Logins of existing traders a day after the history's last event, so
/// that every partition's event time passes the history's end. A live
/// instance fires a shard's time rules (ticks) up to the frontier of the
/// partitions it holds, so before such events an instance holding only
/// the partitions that are ahead has fired more of them than one holding
/// all; both fire the same ones once every partition has passed. (64
/// traders miss one of 4 partitions with a chance of 4 x (3/4)^64.)
fn flush_events(events: &[&[u8]]) -> String {
    let mut last = i64::MIN;
    let mut traders = BTreeSet::new();
    for l in events {
        let v: Value = serde_json::from_slice(l).unwrap();
        let ts = match &v["ts"] {
            Value::Number(n) => n.as_i64().unwrap(),
            Value::String(t) => veloc_pulse::event::time::parse_rfc3339_ms(t).unwrap(),
            other => panic!("ts {other}"),
        };
        last = last.max(ts);
        traders.insert(v["trader_id"].as_str().unwrap().to_owned());
    }
    let at = last + 86_400_000;
    traders
        .iter()
        .take(FLUSH_TRADERS)
        .enumerate()
        .map(|(i, t)| {
            format!(
                "{{\"event_id\":\"flush-{i}\",\"type\":\"login\",\"trader_id\":\"{t}\",\
                 \"ts\":{at},\"success\":true,\"device_id\":\"{t}-d0\",\"country\":\"BR\",\
                 \"platform\":\"web\"}}\n"
            )
        })
        .collect()
}

/// Scale-out as a dashboard sees it: a real Prometheus scraping three
/// instances of one group and another scraping one instance of a second
/// group, both reading the same events, give the same answer to every
/// dashboard and recording-rule expression (scripts/compare-dashboards
/// says how range functions and per-process metrics are compared).
#[test]
fn prometheus_scraping_three_instances_sees_what_it_sees_with_one() {
    let prometheus = require_program("prometheus", "prometheus");
    let Case { s, bytes, dir, .. } = &case("scrape", |_| String::new());
    // The single instance: its own group and output topics, same input.
    let single = Setup {
        input: s.input.clone(),
        ..setup(dir.path(), "scrapeone", "")
    };
    let one = spawn_run(&args(&single, "one", None));
    let a = spawn_run(&args(s, "a", None));
    let b = spawn_run(&args(s, "b", None));
    let c = spawn_run(&args(s, "c", None));
    wait_ready(&[&one, &a, &b, &c]);
    assert_one_exporter(&[("a", &a), ("b", &b), ("c", &c)]);
    let events = lines(bytes);
    let many = [&a, &b, &c].map(|r| r.addr.clone()).join(",");
    let compare = Command::new(format!("{ROOT}/scripts/compare-dashboards"))
        .args(["--one", &one.addr, "--many", &many, "--events"])
        .arg((events.len() + FLUSH_TRADERS).to_string())
        .arg("--prometheus")
        .arg(&prometheus)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("scripts/compare-dashboards runs");
    produce(&s.brokers, &s.input, &events);
    let flush = flush_events(&events);
    produce(&s.brokers, &s.input, &lines(flush.as_bytes()));
    let out = compare.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    // What both wrote so far (open windows still open in both) is the same.
    let (want, got) = (outputs(&single), outputs(s));
    assert_same("KPI rows", &got.rows, &want.rows);
    assert_same("alert ids", &got.alerts, &want.alerts);
    let same: usize = stdout
        .lines()
        .find_map(|l| l.strip_suffix(" 0 differ"))
        .and_then(|l| l.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(
        out.status.success() && same >= 120,
        "dashboards differ between one and three instances ({same} same):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The live page of one of the three says what it exports, and its
    // tiles of pipelines exported elsewhere name the instance (headless
    // Chromium; the screenshot is kept).
    page_check(
        &a.addr,
        concat!(env!("CARGO_TARGET_TMPDIR"), "/live-page-scale-out.png"),
        &[
            ("PAGE_CHECK_MIN_CHANGED", "0"),
            ("PAGE_CHECK_EXPECT", "scale-out: instance a exports"),
        ],
    );
}

/// A partials topic or a changelog of the wrong size (the inputs grew since
/// they were made, or somebody made them by hand) stops `pulse run` at
/// start with the topic, both counts and what to do, before it reads
/// anything.
#[test]
fn topics_of_the_wrong_partition_count_stop_pulse_run_at_start() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch();
    for (name, suffix, says) in [
        ("wrongpartials", "partials", "[kafka] partials_topic"),
        ("wrongstate", "state", "start the group afresh"),
    ] {
        let s = setup(dir.path(), name, "");
        let topic = format!("{}.{suffix}", s.group);
        kafka_script(&["create-topic", &topic, "2"]);
        let out = pulse().args(args(&s, "a", Some("3s"))).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: pulse run started: {err}");
        assert!(
            err.contains(&format!("topic {topic} has 2 partition(s) and the input 4"))
                && err.contains(says),
            "{name}: {err}"
        );
    }
}

/// `[state] dir`: a restart on the same machine reads its local cache and
/// the changelog only after it, and outputs stay exactly the golden ones
/// (three slices: clean stops, and a `kill -9` inside the last slice).
#[test]
fn a_local_state_cache_reads_less_and_changes_nothing() {
    let Case {
        s, g, bytes, dir, ..
    } = &case("cache", |dir| {
        format!("dir = \"{}\"\n", dir.join("cache").display())
    });
    let cache = dir.path().join("cache");
    let parts = slices(bytes, 3);
    let metric = |r: &Running, name: &str| metric_sum(&http_get(&r.addr, "/metrics").1, name);
    produce(&s.brokers, &s.input, &parts[0]);
    let mut r = spawn_run(&args(s, "a", None));
    wait_read(&[&r], parts[0].len() as u64);
    sigterm(&mut r);
    produce(&s.brokers, &s.input, &parts[1]);
    let mut r = spawn_run(&args(s, "a", None));
    let before = parts[0].len() + parts[1].len();
    wait_read(&[&r], before as u64);
    let (changelog, cached) = (
        metric(&r, "pulse_state_restored_bytes_total"),
        metric(&r, "pulse_state_cache_read_bytes_total"),
    );
    assert!(cached > 100_000.0, "the cache was read: {cached} bytes");
    assert!(
        changelog * 20.0 < cached,
        "the changelog is read only after the cache: {changelog} bytes, {cached} from the cache"
    );
    sigterm(&mut r);
    // The last slice: killed inside it, then run to the end.
    produce(&s.brokers, &s.input, &parts[2]);
    let mut r = spawn_run(&args(s, "a", None));
    wait_read(&[&r], (before + parts[2].len() / 2) as u64);
    sigkill(&mut r);
    run_to_idle(&args(s, "a", Some("3s")));
    assert_golden(s, g);
    let files = std::fs::read_dir(cache.join(format!("{}.state", s.group))).unwrap();
    assert_eq!(files.count(), 4, "a cache file per partition");
}
