//! Kafka through a real SASL_SSL listener (SCRAM-SHA-512 over TLS, made by
//! scripts/kafka with keytool and Kafka's own tools): the right credentials
//! give exactly the golden replay and no secret shows anywhere; wrong ones
//! stop `pulse run` at start with a message naming the settings at fault.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Running, http_get, pulse, scratch};
use crate::durable::{Case, args, assert_golden, case, sigkill, sigterm, wait_read, wait_ready};
use crate::kafka::{SERIAL, broker, kafka_script, lines, produce, topic, wait_exit};

/// The broker's SASL_SSL listener as `scripts/kafka secure` describes it.
struct Secure {
    bootstrap: String,
    ca: String,
    user: String,
    password: String,
}

fn secure() -> Secure {
    broker();
    let out = kafka_script(&["secure"]);
    let kv: BTreeMap<&str, &str> = out.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(kv["security.protocol"], "SASL_SSL", "{out}");
    assert_eq!(kv["sasl.mechanism"], "SCRAM-SHA-512", "{out}");
    Secure {
        bootstrap: kv["bootstrap"].to_owned(),
        ca: kv["ca"].to_owned(),
        user: kv["username"].to_owned(),
        password: std::fs::read_to_string(kv["password_file"])
            .unwrap()
            .trim()
            .to_owned(),
    }
}

/// A golden case whose `pulse run` talks SASL_SSL to the secure listener.
fn secure_case(name: &str) -> (Case, Secure) {
    let mut sec = None;
    let c = case(name, |_| {
        let x = secure();
        let p = properties(&x.user, &x.ca);
        sec = Some(x);
        p
    });
    (c, sec.unwrap())
}

/// The `[kafka.properties]` of a client of the secure listener; the
/// password comes from PULSE_KAFKA_PASSWORD.
fn properties(user: &str, ca: &str) -> String {
    format!(
        "[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\
         \"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"{user}\"\n\
         \"ssl.ca.location\" = \"{ca}\"\n"
    )
}

/// `pulse ARGS` with `PULSE_KAFKA_PASSWORD`, stderr into `log`, stdout
/// collected into the returned buffer.
fn spawn(args: &[String], password: &str, log: &Path) -> (Child, Arc<Mutex<String>>) {
    let mut child = pulse()
        .args(args)
        .env("PULSE_KAFKA_PASSWORD", password)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let out = Arc::new(Mutex::new(String::new()));
    let stdout = child.stdout.take().unwrap();
    let sink = out.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    (child, out)
}

/// The HTTP address `pulse run` announced on stdout.
fn announced(out: &Mutex<String>, child: &mut Child) -> String {
    for _ in 0..600 {
        if let Some(rest) = out.lock().unwrap().split("http://").nth(1) {
            return rest.split('/').next().unwrap().to_owned();
        }
        assert!(child.try_wait().unwrap().is_none(), "pulse run exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("pulse run did not announce its address");
}

fn with_brokers(mut a: Vec<String>, brokers: &str) -> Vec<String> {
    let i = a.iter().position(|x| x == "--brokers").unwrap();
    a[i + 1] = brokers.to_owned();
    a
}

/// Through SASL_SSL, a second instance joining (a rebalance) and a
/// `kill -9` of the first mid-stream change nothing: the KPI and alert
/// topics equal the golden replay.
#[test]
fn sasl_ssl_through_a_rebalance_and_a_kill_9_gives_exactly_the_replay() {
    let (c, sec) = secure_case("saslkill");
    let Case {
        s, g, bytes, dir, ..
    } = &c;
    let start = |name: &str, log: &str, idle: Option<&str>| {
        let run = with_brokers(args(s, name, idle), &sec.bootstrap);
        let (mut child, out) = spawn(&run, &sec.password, &dir.path().join(log));
        let addr = announced(&out, &mut child);
        Running { child, addr }
    };
    let events = lines(bytes);
    let third = events.len() / 3;
    produce(&s.brokers, &s.input, &events[..third]);
    let mut a = start("a", "a.log", None);
    wait_read(&[&a], third as u64 / 2);
    // A second instance joins: the partitions (and merges) are split.
    let mut b = start("b", "b.log", None);
    wait_ready(&[&a, &b]);
    produce(&s.brokers, &s.input, &events[third..2 * third]);
    std::thread::sleep(Duration::from_secs(2));
    // The first dies mid-stream; the second takes its partitions over.
    sigkill(&mut a);
    produce(&s.brokers, &s.input, &events[2 * third..]);
    std::thread::sleep(Duration::from_secs(3));
    sigterm(&mut b);
    // The first comes back alone and runs to the end.
    let mut last = start("a", "a2.log", Some("5s"));
    let st = wait_exit(&mut last.child, Duration::from_secs(180));
    let log = std::fs::read_to_string(dir.path().join("a2.log")).unwrap_or_default();
    assert!(st.success(), "pulse run failed: {st}\n{log}");
    assert_golden(s, g);
}

#[test]
fn sasl_ssl_gives_exactly_the_replay_and_shows_no_secret() {
    let (c, sec) = secure_case("sasl");
    let Case {
        s, g, bytes, dir, ..
    } = &c;
    // Produced over the plain listener: what goes through SASL_SSL is
    // pulse run's consumer, its transactions, changelog and outputs.
    let events = lines(bytes);
    produce(&s.brokers, &s.input, &events);
    let log = dir.path().join("run.log");
    let run = with_brokers(args(s, "a", Some("10s")), &sec.bootstrap);
    let (mut child, out) = spawn(&run, &sec.password, &log);
    let addr = announced(&out, &mut child);
    let mut r = Running { child, addr };
    wait_read(&[&r], events.len() as u64);
    let mut shown = String::new();
    for path in ["/api/status", "/api/kpis", "/api/alerts", "/metrics"] {
        let (code, body) = http_get(&r.addr, path);
        assert_eq!(code, 200, "{path}");
        shown.push_str(&body);
    }
    let st = wait_exit(&mut r.child, Duration::from_secs(180));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(st.success(), "pulse run failed: {st}\n{log}");
    assert_golden(s, g);
    for (what, text) in [
        ("HTTP", &shown),
        ("the log", &log),
        ("stdout", &*out.lock().unwrap()),
    ] {
        assert!(
            !text.contains(&sec.password),
            "the SCRAM password shows in {what}"
        );
    }
}

#[test]
fn wrong_credentials_or_an_unknown_ca_stop_pulse_run_at_start() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sec = secure();
    let dir = scratch();
    let input = topic("sasl-refused", 1);
    let wrong = "not-the-password-4711";
    let system_cas = "/etc/ssl/certs/ca-certificates.crt";
    for (name, password, ca, says, setting) in [
        (
            "password",
            wrong,
            sec.ca.as_str(),
            "refused the credentials of user \"pulse\"",
            "sasl.password",
        ),
        (
            "ca",
            sec.password.as_str(),
            system_cas,
            "TLS handshake",
            "ssl.ca.location",
        ),
    ] {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, properties(&sec.user, ca)).unwrap();
        let run: Vec<String> = [
            "run",
            "--config",
            config.to_str().unwrap(),
            "--brokers",
            &sec.bootstrap,
            "--topic",
            &input,
            "--group",
            &format!("{input}.{name}"),
            "--listen",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        let log = dir.path().join(format!("{name}.log"));
        let (mut child, _) = spawn(&run, password, &log);
        let st = wait_exit(&mut child, Duration::from_secs(60));
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(!st.success(), "{name}: pulse run started anyway\n{log}");
        assert!(log.contains(says), "{name}: {log}");
        assert!(log.contains(setting), "{name}: names {setting}: {log}");
        assert!(!log.contains(password), "{name}: the password shows: {log}");
        // One refusal, not a retry storm.
        let refusals = log
            .lines()
            .filter(|l| l.contains("uthentication") || l.contains("handshake"))
            .count();
        assert!(refusals <= 3, "{name}: {refusals} refusals logged:\n{log}");
    }
}
