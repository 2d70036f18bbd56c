//! `pulse simulate`: deterministic, every line valid, all six types.

use std::collections::BTreeSet;

use veloc_pulse::event::Decoder;

use crate::common::{pulse_ok, scratch};

#[test]
fn same_seed_same_bytes_all_types_all_valid() {
    let dir = scratch();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let run = |seed: &str, out: &str| {
        pulse_ok(&[
            "simulate",
            "--seed",
            seed,
            "--traders",
            "5000",
            "--days",
            "60",
            "--out",
            out,
        ]);
        std::fs::read(out).unwrap()
    };
    let a = run("7", &path("a.ndjson"));
    let b = run("7", &path("b.ndjson"));
    let c = run("8", &path("c.ndjson"));
    assert!(a == b, "same seed must give byte-identical files");
    assert!(a != c, "a different seed must give a different file");

    let mut decoder = Decoder::default();
    let mut types = BTreeSet::new();
    let mut lines = 0;
    for line in a.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        lines += 1;
        match decoder.decode(line, i64::MAX / 2) {
            Ok(e) => {
                types.insert(e.event_type().as_str());
            }
            Err(e) => panic!(
                "line {lines} invalid: {e}: {}",
                String::from_utf8_lossy(line)
            ),
        }
    }
    assert!(
        lines > 100_000,
        "a 60-day brokerage of 5000 traders has many events, got {lines}"
    );
    assert_eq!(types.len(), 6, "all six event types appear: {types:?}");
}

#[test]
fn truth_file_names_segments_churn_and_lifts() {
    let dir = scratch();
    let out = dir.path().join("s.ndjson");
    let truth = dir.path().join("truth.json");
    pulse_ok(&[
        "simulate",
        "--seed",
        "3",
        "--traders",
        "2000",
        "--days",
        "90",
        "--out",
        out.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
    ]);
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    let traders = t["traders"].as_array().unwrap();
    assert_eq!(traders.len(), 2000);
    let churned = traders
        .iter()
        .filter(|x| !x["churned_at"].is_null())
        .count();
    let back = traders
        .iter()
        .filter(|x| !x["reactivated_at"].is_null())
        .count();
    let vips = traders.iter().filter(|x| x["segment"] == "vip").count();
    let aml = traders.iter().filter(|x| x["aml"] != "none").count();
    assert!(
        churned > 100 && churned < 1900,
        "some but not all traders churn: {churned}"
    );
    assert!(back > 0, "some churned traders come back after a win-back");
    assert!(vips > 20, "there are VIPs: {vips}");
    assert!(aml > 0, "a few traders follow AML patterns");
    let lifts: Vec<f64> = t["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["lift"].as_f64().unwrap())
        .collect();
    assert!(
        lifts.iter().any(|l| *l > 0.5),
        "some variant has a real lift: {lifts:?}"
    );
}

#[test]
fn start_and_end_bound_the_events() {
    let dir = scratch();
    let out = dir.path().join("s.ndjson");
    pulse_ok(&[
        "simulate",
        "--traders",
        "300",
        "--start",
        "2026-03-01",
        "--end",
        "2026-03-08",
        "--disorder",
        "0s",
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut decoder = Decoder::default();
    let (lo, hi) = (
        veloc_pulse::event::time::parse_instant_ms("2026-03-01").unwrap(),
        veloc_pulse::event::time::parse_instant_ms("2026-03-10").unwrap(),
    );
    let mut last = i64::MIN;
    for line in std::fs::read(&out)
        .unwrap()
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let e = decoder.decode(line, i64::MAX / 2).unwrap();
        assert!(
            e.ts >= lo && e.ts < hi,
            "event at {} outside the period",
            e.ts
        );
        assert!(
            e.ts >= last,
            "with --disorder 0s events come in event-time order"
        );
        last = e.ts;
    }
}

#[test]
fn bench_reports_both_rates_and_their_ratio() {
    let out = pulse_ok(&[
        "bench",
        "--events",
        "300000",
        "--traders",
        "3000",
        "--rounds",
        "1",
        "--flood-traders",
        "20000",
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    // Every distinct new id of the flood is tracked, and it costs memory.
    assert_eq!(r["flood_traders"], 20_000);
    assert!(r["flood_bytes_per_trader"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["events"].as_u64().unwrap() >= 300_000);
    for k in [
        "simulate_events_per_s",
        "bare_decode_events_per_s",
        "pipeline_events_per_s",
        "kpi_events_per_s",
    ] {
        assert!(r[k].as_f64().unwrap() > 0.0, "{k}: {r}");
    }
    let ratio = r["ratio"].as_f64().unwrap();
    let expected = r["pipeline_events_per_s"].as_f64().unwrap()
        / r["bare_decode_events_per_s"].as_f64().unwrap();
    assert!((ratio - expected).abs() < 1e-9);
    assert_eq!(r["pipelines"], 13);
}
