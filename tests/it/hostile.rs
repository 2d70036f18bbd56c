//! Hostile input under Kafka: 100,000 bad messages of 22 shapes mixed into
//! a simulated history change no KPI row and no alert (the golden replay of
//! the clean history), and every one reaches the dead-letter topic with the
//! same reason `pulse replay` gives it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::pulse_ok;
use crate::durable::{Case, args, assert_golden, case, read_raw, run_to_idle};
use crate::kafka::{ROOT, kafka_script, lines, produce};

/// The 22 shapes; `i` keeps ids distinct. Each is invalid on its own
/// whatever the rest of the stream holds.
fn shape(kind: usize, i: usize) -> Vec<u8> {
    let id = format!("hostile-{i}");
    let s = match kind {
        0 => format!("not json {i}"),
        1 => format!(r#"{{"event_id":"{id}","type":"sig"#),
        2 => "{}".to_owned(),
        3 => format!("[{i}]"),
        4 => "null".to_owned(),
        5 => format!(r#"{{"event_id":"{id}","ts":NaN}}"#),
        6 => {
            return [
                b"{\"event_id\":\"\xc3\x28".as_slice(),
                id.as_bytes(),
                b"\"}",
            ]
            .concat();
        }
        7 => "[".repeat(3_000),
        8 => format!(
            r#"{{"event_id":"{id}","x":{}{}}}"#,
            "[".repeat(2_000),
            "]".repeat(2_000)
        ),
        9 => format!(r#"{{"event_id":"{}{id}"}}"#, "a".repeat(70_000)),
        10 => {
            format!(r#"{{"event_id":"{id}","type":"teleport","trader_id":"x","ts":1767225600000}}"#)
        }
        11 => format!(
            r#"{{"event_id":"{id}","type":"signup","ts":1767225600000,"channel":"organic","country":"BR"}}"#
        ),
        12 => format!(
            r#"{{"event_id":"{id}","type":"deposit","trader_id":"x","ts":1767225600000,"amount":"ten","currency":"BRL","method":"pix","status":"approved"}}"#
        ),
        13 => format!(
            r#"{{"event_id":"{id}","type":"deposit","trader_id":"x","ts":1767225600000,"amount":-5,"currency":"BRL","method":"pix","status":"approved"}}"#
        ),
        14 => format!(
            r#"{{"event_id":"{id}","type":"login","trader_id":"x","ts":"yesterday","success":true,"platform":"web"}}"#
        ),
        15 => format!(
            r#"{{"event_id":"{id}","type":"login","trader_id":"x","ts":4102444800000,"success":true,"platform":"web"}}"#
        ),
        16 => format!(
            r#"{{"event_id":"{id}","type":"deposit","trader_id":"x","ts":1767225600000,"amount":1e400,"currency":"BRL","method":"pix","status":"approved"}}"#
        ),
        17 => format!(
            r#"{{"event_id":"{id}","type":"login","trader_id":"x","ts":1767225600000,"success":"yes","platform":"web"}}"#
        ),
        18 => format!("{{}} trailing {i}"),
        19 => format!("{{'event_id':'{id}'}}"),
        20 => format!(
            r#"{{"event_id":"{id}","type":"login","trader_id":"x","ts":1767225600000,"success":true,"platform":"toaster"}}"#
        ),
        _ => String::new(),
    };
    s.into_bytes()
}

/// Reasons of an NDJSON dead-letter file, counted.
fn reasons_in_file(path: &std::path::Path) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        *m.entry(v["reason"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    m
}

#[test]
fn a_hundred_thousand_hostile_messages_change_nothing_and_all_dead_letter() {
    let Case {
        s, g, bytes, dir, ..
    } = &case("hostile", |_| String::new());
    let good = lines(bytes);
    // 22 shapes; the 70 kB one (over the line limit) 200 times, the others
    // evenly, 100,000 in all, spread through the history.
    let mut hostile: Vec<Vec<u8>> = Vec::new();
    for i in 0..100_000 {
        let kind = match (i % 500, i % 21) {
            (0, _) => 9,
            (_, k) if k >= 9 => k + 1,
            (_, k) => k,
        };
        hostile.push(shape(kind, i));
    }
    let step = good.len() / hostile.len() + 1;
    let mut mixed: Vec<&[u8]> = Vec::with_capacity(good.len() + hostile.len());
    let mut h = hostile.iter();
    for (n, l) in good.iter().enumerate() {
        mixed.push(l);
        if n % step == 0 {
            mixed.extend(h.next().map(Vec::as_slice));
        }
    }
    mixed.extend(h.map(Vec::as_slice));
    assert_eq!(mixed.len(), good.len() + 100_000);

    // The replay of the mixed file: the clean history's KPI rows, and every
    // hostile line dead-lettered.
    let file = dir.path().join("mixed.ndjson");
    let mut text = Vec::new();
    for l in &mixed {
        // A file cannot hold an empty or newline-bearing line as one event:
        // the empty shape goes through Kafka only.
        if !l.is_empty() {
            text.extend_from_slice(l);
            text.push(b'\n');
        }
    }
    std::fs::write(&file, &text).unwrap();
    let (k, d) = (dir.path().join("mixed.kpis"), dir.path().join("mixed.dlq"));
    pulse_ok(&[
        "replay",
        "--events",
        file.to_str().unwrap(),
        "--kpi-out",
        k.to_str().unwrap(),
        "--dlq",
        d.to_str().unwrap(),
        "--config",
        s.config.to_str().unwrap(),
        "--pipelines",
        &format!("{ROOT}/pipelines"),
    ]);
    let mut replay_reasons = reasons_in_file(&d);
    let empty = hostile.iter().filter(|x| x.is_empty()).count();
    assert_eq!(
        replay_reasons.values().sum::<usize>(),
        100_000 - empty,
        "the replay dead-letters every hostile line: {replay_reasons:?}"
    );
    *replay_reasons.entry("truncated".into()).or_default() += empty;

    // Through Kafka: the same KPI rows and alerts as the clean replay, and
    // the dead-letter topic holds every hostile message with that reason.
    let dlq = format!("{}.dlq", s.input);
    kafka_script(&["create-topic", &dlq, "1"]);
    produce(&s.brokers, &s.input, &mixed);
    run_to_idle(&args(s, "a", Some("3s")));
    assert_golden(s, g);
    let dead = read_raw(&s.brokers, &dlq);
    let mut kafka_reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (_, reason) in &dead {
        *kafka_reasons
            .entry(reason.clone().expect("a dead letter carries its reason"))
            .or_default() += 1;
    }
    assert_eq!(
        kafka_reasons, replay_reasons,
        "every hostile message is dead-lettered once, with the replay's reason"
    );
}
