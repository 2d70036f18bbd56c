//! `pulse replay`: accounting, dead letters with line numbers, duplicates.

use std::collections::BTreeMap;

use crate::common::{pulse, pulse_ok, scratch, simulated};

/// Garbage of many kinds, each with the reason it must be given.
fn garbage(i: usize) -> (Vec<u8>, &'static str) {
    match i % 12 {
        0 => (b"not json at all".to_vec(), "not_json"),
        1 => (br#"{"event_id":"x1","type":"deposit","trader_id":"t","ts":"2026-01-01T00:00:00Z","amount":-5,"currency":"BRL","method":"pix","status":"approved"}"#.to_vec(), "bad_value"),
        2 => (br#"{"event_id":"x2","type":"deposit","trader_id":"t","ts":"2026-01-01T00:00:00Z","amount":"12","currency":"BRL","method":"pix","status":"approved"}"#.to_vec(), "wrong_type"),
        3 => (br#"{"event_id":"x3","type":"teleport","trader_id":"t","ts":1767225600000}"#.to_vec(), "unknown_type"),
        4 => (br#"{"event_id":"x4","type":"login","trader_id":"t","ts":"yesterday","success":true,"device_id":"d","country":"BR","platform":"web"}"#.to_vec(), "bad_timestamp"),
        5 => (br#"{"event_id":"x5","type":"trade","trader_id":"t","ts":1767225600000}"#.to_vec(), "missing_field"),
        6 => (br#"{"event_id":"x6","type":"signup","trader_id":"t","ts":"2026-01-01T00"#.to_vec(), "truncated"),
        7 => (b"[1,2,3]".to_vec(), "not_object"),
        8 => (b"{\"event_id\":\"\xff\xfe\",\"type\":\"login\"}".to_vec(), "not_utf8"),
        9 => (br#"{"event_id":"x9","type":"signup","trader_id":"t","ts":4102444800000,"channel":"organic","country":"BR"}"#.to_vec(), "future_timestamp"),
        10 => (br#"{"event_id":"x10","type":"login","trader_id":"t","ts":1767225600000,"success":"yes","device_id":"d","country":"BR","platform":"web"}"#.to_vec(), "wrong_type"),
        _ => (br#"{"event_id":"x11","type":"campaign","trader_id":"t","ts":1767225600000,"campaign_id":"c","variant":"a","action":"liked","channel":"email"}"#.to_vec(), "bad_value"),
    }
}

#[test]
fn mixed_garbage_is_dead_lettered_and_accounted_for() {
    let dir = scratch();
    let clean = std::fs::read(simulated(dir.path(), 7, 5000, 60)).unwrap();
    let lines: Vec<&[u8]> = clean
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut mixed = Vec::new();
    let mut expected_bad: BTreeMap<u64, &'static str> = BTreeMap::new();
    let mut line_no = 0u64;
    let mut garbage_count = 0;
    for (i, l) in lines.iter().enumerate() {
        if i % 100 == 50 {
            let (g, reason) = garbage(garbage_count);
            garbage_count += 1;
            mixed.extend_from_slice(&g);
            mixed.push(b'\n');
            line_no += 1;
            expected_bad.insert(line_no, reason);
        }
        mixed.extend_from_slice(l);
        mixed.push(b'\n');
        line_no += 1;
        if i == 70_010 {
            // A valid line sent again a few lines later (a producer retry):
            // a duplicate, not two events.
            mixed.extend_from_slice(lines[70_000]);
            mixed.push(b'\n');
            line_no += 1;
        }
    }
    let events = dir.path().join("mixed.ndjson");
    let dlq = dir.path().join("bad.ndjson");
    std::fs::write(&events, &mixed).unwrap();

    let out = pulse_ok(&[
        "replay",
        "--events",
        events.to_str().unwrap(),
        "--dlq",
        dlq.to_str().unwrap(),
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    let s = &r["summary"];
    let (read, valid, invalid, dup) = (
        s["read"].as_u64().unwrap(),
        s["valid"].as_u64().unwrap(),
        s["invalid"].as_u64().unwrap(),
        s["duplicate"].as_u64().unwrap(),
    );
    assert_eq!(read, line_no);
    assert_eq!(read, valid + invalid + dup, "accounting adds up");
    assert_eq!(invalid, expected_bad.len() as u64);
    assert_eq!(valid, lines.len() as u64);
    assert_eq!(dup, 1);
    assert!(
        expected_bad.len() as f64 / read as f64 > 0.009,
        "about 1% garbage"
    );

    let dead = std::fs::read_to_string(&dlq).unwrap();
    let got: BTreeMap<u64, String> = dead
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("dead letters are JSON");
            assert!(
                v["message"].as_str().is_some_and(|m| !m.is_empty()),
                "a reason message: {v}"
            );
            assert!(v["raw"].is_string(), "the original line: {v}");
            (
                v["line"].as_u64().unwrap(),
                v["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: BTreeMap<u64, String> = expected_bad
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    assert_eq!(
        got, want,
        "exactly the garbage lines, with their line numbers and reasons"
    );
    // The original bytes come back for a UTF-8 garbage line.
    let first = dead.lines().next().unwrap();
    let v: serde_json::Value = serde_json::from_str(first).unwrap();
    assert_eq!(v["raw"], "not json at all");
    assert_eq!(v["source"], "file");
}

#[test]
fn default_dead_letter_file_sits_beside_the_input() {
    let dir = scratch();
    let events = dir.path().join("in.ndjson");
    std::fs::write(&events, "{}\n").unwrap();
    let out = pulse_ok(&["replay", "--events", events.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("read = valid + invalid + duplicate + late: yes"),
        "{text}"
    );
    let dead = std::fs::read_to_string(dir.path().join("in.dlq.ndjson")).unwrap();
    assert!(dead.contains("missing_field"), "{dead}");
}

#[test]
fn missing_input_is_a_clear_error() {
    let out = pulse()
        .args(["replay", "--events", "/nonexistent/events.ndjson"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/events.ndjson") && err.contains("cannot open"),
        "{err}"
    );
}

/// A progress bar (bytes, events, events/s, ETA) on a terminal only: under
/// a pseudo-terminal (`script`) it is drawn; with `--quiet`, or with stderr
/// a pipe, nothing of it appears.
#[test]
fn progress_is_drawn_on_a_terminal_only() {
    let script = crate::common::require_program("script", "bsdutils");
    let dir = scratch();
    // Long enough that the bar ticks at least once (every 200 ms).
    let events = simulated(dir.path(), 11, 20_000, 120);
    let pulse_bin = env!("CARGO_BIN_EXE_pulse");
    let replay = |quiet: &str| {
        let cmd = format!(
            "{pulse_bin} {quiet} replay --events {} --dlq {}",
            events.display(),
            dir.path().join("d.ndjson").display()
        );
        let out = std::process::Command::new(&script)
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .expect("script runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let drawn = replay("");
    assert!(
        drawn.contains("replay [") && drawn.contains("events, ") && drawn.contains("ETA"),
        "{drawn}"
    );
    assert!(drawn.contains("replayed "), "the summary follows: {drawn}");
    let quiet = replay("--quiet");
    assert!(!quiet.contains("replay ["), "{quiet}");
    let piped = pulse_ok(&[
        "replay",
        "--events",
        events.to_str().unwrap(),
        "--dlq",
        dir.path().join("d.ndjson").to_str().unwrap(),
    ]);
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("replay ["));
}

/// A flood of new trader ids (10x the traders of the history) against
/// `--max-traders-per-partition`: every event of a trader beyond the cap is
/// dead-lettered with reason `state_full` (none lost, the accounting adds
/// up), known traders go on, and the peak RSS stays where the history
/// alone puts it; without the cap the same flood visibly grows it.
#[test]
fn a_flood_of_new_trader_ids_is_bounded_and_dead_lettered() {
    let dir = scratch();
    let base = simulated(dir.path(), 5, 5_000, 30);
    let flood = dir.path().join("flood.ndjson");
    let mut text = std::fs::read_to_string(&base).unwrap();
    // After the history's last event (2026-01-31), four logins each.
    let t0 = 1_769_904_000_000_i64; // 2026-02-01T00:00:00Z
    let (new_ids, per_id) = (50_000, 4);
    for i in 0..new_ids {
        for k in 0..per_id {
            let ts = t0 + 10 * (i * per_id + k);
            text.push_str(&format!(
                r#"{{"event_id":"flood-{i}-{k}","type":"login","trader_id":"flood-{i}","ts":{ts},"success":true,"device_id":"d{i}","country":"BR","platform":"web"}}"#
            ));
            text.push('\n');
        }
    }
    std::fs::write(&flood, text).unwrap();
    let replay = |events: &std::path::Path, cap: Option<&str>| -> serde_json::Value {
        let dlq = dir.path().join("flood.dlq.ndjson");
        let mut args = vec![
            "replay",
            "--json",
            "--events",
            events.to_str().unwrap(),
            "--dlq",
            dlq.to_str().unwrap(),
        ];
        if let Some(cap) = cap {
            args.extend(["--max-traders-per-partition", cap]);
        }
        let out = pulse_ok(&args);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let peak = |v: &serde_json::Value| v["peak_rss_bytes"].as_f64().unwrap() / (1 << 20) as f64;
    let alone = replay(&base, None);
    let capped = replay(&flood, Some("6000"));
    let base_traders = alone["traders"].as_i64().unwrap();
    let room = 6_000 - base_traders;
    assert!(
        room > 0 && room < new_ids,
        "{base_traders} traders in the history"
    );
    let refused = (new_ids - room) * per_id;
    let s = &capped["summary"];
    assert_eq!(s["invalid_by_reason"]["state_full"].as_i64(), Some(refused));
    assert_eq!(capped["traders"].as_i64(), Some(6_000));
    assert_eq!(capped["dead_letters"].as_i64(), Some(refused));
    let n = |k: &str| s[k].as_i64().unwrap();
    assert_eq!(
        n("read"),
        n("valid") + n("invalid") + n("duplicate") + n("late"),
        "no event lost: {s}"
    );
    let dead = std::fs::read_to_string(dir.path().join("flood.dlq.ndjson")).unwrap();
    assert_eq!(
        dead.lines()
            .filter(|l| l.contains("\"state_full\""))
            .count() as i64,
        refused
    );
    let uncapped = replay(&flood, None);
    let (a, c, u) = (peak(&alone), peak(&capped), peak(&uncapped));
    assert!(
        c <= a + 8.0,
        "capped flood: peak {c:.1} MiB, history alone {a:.1} MiB"
    );
    assert!(
        u >= a + 25.0,
        "uncapped flood: peak {u:.1} MiB, history alone {a:.1} MiB"
    );
}
