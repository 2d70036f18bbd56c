//! KPI pipelines: totals recomputed by a plain loop equal the pipeline
//! output; late events; `pulse check` on broken files.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use veloc_pulse::event::{Body, Decoder, DepositStatus, time::DAY_MS};

use crate::common::{pulse, pulse_ok, scratch, simulated};

fn read_rows(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("KPI rows are JSON"))
        .collect()
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("label {k} in {v}"))
        .to_owned()
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("value {k} in {v}"))
}

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

/// A 60-day simulated brokerage with events up to 90 s out of order: the
/// pipelines' sums over windows equal what a plain loop counts in the file.
#[test]
fn sixty_days_with_disorder_match_a_plain_recount() {
    let dir = scratch();
    let events = dir.path().join("a.ndjson");
    let kpis = dir.path().join("k.ndjson");
    pulse_ok(&[
        "simulate",
        "--seed",
        "11",
        "--traders",
        "5000",
        "--days",
        "60",
        "--disorder",
        "90s",
        "--out",
        events.to_str().unwrap(),
    ]);
    let out = pulse_ok(&[
        "replay",
        "--events",
        events.to_str().unwrap(),
        "--kpi-out",
        kpis.to_str().unwrap(),
        "--disorder",
        "2m",
        "--json",
    ]);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["summary"]["late"], 0,
        "disorder within the allowance: nothing is late"
    );

    // The plain loop.
    let mut d = Decoder::default();
    let mut deposits: BTreeMap<(String, String), (u64, i64)> = BTreeMap::new();
    let mut signups: BTreeMap<String, u64> = BTreeMap::new();
    let mut channel_of: HashMap<u32, String> = HashMap::new();
    let mut first: HashMap<u32, (i64, f64)> = HashMap::new();
    let mut active: BTreeMap<i64, BTreeSet<u32>> = BTreeMap::new();
    let bytes = std::fs::read(&events).unwrap();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let e = d.decode(line, i64::MAX / 2).unwrap();
        let day = e.ts.div_euclid(DAY_MS) * DAY_MS;
        match &e.body {
            Body::Deposit(x) => {
                let k = (
                    d.symbols.name(x.method).to_owned(),
                    x.status.as_str().to_owned(),
                );
                let entry = deposits.entry(k).or_default();
                entry.0 += 1;
                entry.1 += cents(x.amount.as_f64());
                if x.status == DepositStatus::Approved {
                    let f = first.entry(e.trader).or_insert((e.ts, x.amount.as_f64()));
                    if e.ts < f.0 {
                        *f = (e.ts, x.amount.as_f64());
                    }
                }
            }
            Body::Signup(x) => {
                *signups
                    .entry(d.symbols.name(x.channel).to_owned())
                    .or_default() += 1;
                channel_of.insert(e.trader, d.symbols.name(x.channel).to_owned());
            }
            _ => {}
        }
        if !matches!(e.body, Body::Campaign(_)) {
            active.entry(day).or_default().insert(e.trader);
        }
    }
    let mut ftds: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for (trader, (_, amount)) in &first {
        let ch = channel_of
            .get(trader)
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let entry = ftds.entry(ch).or_default();
        entry.0 += 1;
        entry.1 += cents(*amount);
    }

    // The pipelines' output, summed over windows.
    let rows = read_rows(&kpis);
    let pipelines: BTreeSet<String> = rows.iter().map(|r| s(r, "pipeline")).collect();
    for (p, _) in veloc_pulse::pipeline::BUILTIN {
        assert!(pipelines.contains(*p), "pipeline {p} wrote rows");
    }
    let mut got_deposits: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    let mut got_signups: BTreeMap<String, u64> = BTreeMap::new();
    let mut got_ftds: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    let mut got_active: BTreeMap<i64, u64> = BTreeMap::new();
    for r in &rows {
        match s(r, "pipeline").as_str() {
            "deposits" => {
                let e = got_deposits
                    .entry((s(r, "method"), s(r, "status")))
                    .or_default();
                e.0 += f(r, "count_total") as u64;
                e.1 += f(r, "amount_total");
            }
            "signups" => {
                *got_signups.entry(s(r, "channel")).or_default() += f(r, "count_total") as u64
            }
            "first_deposits" => {
                let e = got_ftds.entry(s(r, "channel")).or_default();
                e.0 += f(r, "count_total") as u64;
                e.1 += f(r, "amount_total");
            }
            "active_traders" => {
                let end = veloc_pulse::event::time::parse_instant_ms(&s(r, "window_end")).unwrap();
                got_active.insert(end - DAY_MS, f(r, "traders_1d") as u64);
            }
            _ => {}
        }
    }
    let got_deposits: BTreeMap<_, _> = got_deposits
        .into_iter()
        .map(|(k, (n, a))| (k, (n, cents(a))))
        .collect();
    let got_ftds: BTreeMap<_, _> = got_ftds
        .into_iter()
        .map(|(k, (n, a))| (k, (n, cents(a))))
        .collect();
    assert_eq!(
        got_deposits, deposits,
        "deposits count and amount by method and status"
    );
    assert_eq!(got_signups, signups, "signups by channel");
    assert_eq!(got_ftds, ftds, "first deposits by channel");
    let want_active: BTreeMap<i64, u64> =
        active.iter().map(|(d, t)| (*d, t.len() as u64)).collect();
    assert_eq!(got_active, want_active, "distinct active traders per day");
}

#[test]
fn late_events_are_counted_kept_in_state_and_written_aside() {
    let dir = scratch();
    let events = dir.path().join("late.ndjson");
    let mut lines = Vec::new();
    let t0 = 1_767_225_600_000i64; // 2026-01-01
    lines.push(format!(r#"{{"event_id":"s1","type":"signup","trader_id":"a","ts":{t0},"channel":"organic","country":"BR"}}"#));
    // An hour of logins, then one deposit from long before: late.
    for i in 1..=60 {
        let ts = t0 + i * 60_000;
        lines.push(format!(r#"{{"event_id":"l{i}","type":"login","trader_id":"a","ts":{ts},"success":true,"device_id":"d","country":"BR","platform":"web"}}"#));
    }
    lines.push(format!(r#"{{"event_id":"d1","type":"deposit","trader_id":"a","ts":{},"amount":50,"currency":"BRL","method":"pix","status":"approved"}}"#, t0 + 1000));
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let kpis = dir.path().join("k.ndjson");
    let out = pulse_ok(&[
        "replay",
        "--events",
        events.to_str().unwrap(),
        "--kpi-out",
        kpis.to_str().unwrap(),
        "--emit-every",
        "1m",
        "--json",
    ]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["summary"]["late"], 1);
    assert_eq!(r["summary"]["valid"], 61);
    assert_eq!(r["summary"]["read"], 62);
    let late = std::fs::read_to_string(dir.path().join("late.late.ndjson")).unwrap();
    let record: Value = serde_json::from_str(late.trim()).expect("one late record");
    assert!(
        record["raw"]
            .as_str()
            .unwrap()
            .contains(r#""event_id":"d1""#),
        "{late}"
    );
    assert_eq!(record["line"], 62);
    assert_eq!(record["frontier"], "2026-01-01T00:59:00.000Z");
    // The late deposit is not in a window but still made the trader a depositor.
    let rows = read_rows(&kpis);
    assert!(
        !rows.iter().any(|r| r["pipeline"] == "deposits"),
        "late deposit not in windows"
    );
    let seg = rows
        .iter()
        .rfind(|r| r["pipeline"] == "segments")
        .expect("segments rows");
    assert_eq!(
        seg["segment"], "low_volume",
        "trader state includes the late deposit: {seg}"
    );
}

#[test]
fn check_reports_every_broken_file_with_its_line() {
    let dir = scratch();
    let p = dir.path();
    std::fs::write(
        p.join("good.sql"),
        "-- window: tumble 1m\n-- labels: method\n-- values: n_total counter\nSELECT window_start, method, count(*) AS n_total FROM deposits GROUP BY 1, 2\n",
    )
    .unwrap();
    std::fs::write(
        p.join("unknown_column.sql"),
        "-- window: tumble 1m\n-- labels: method\n-- values: n_total counter\nSELECT window_start, method,\n       sum(amountt) AS n_total\nFROM deposits GROUP BY 1, 2\n",
    )
    .unwrap();
    std::fs::write(
        p.join("unbounded.sql"),
        "-- window: tumble 1m\n-- labels: trader_id\n-- values: n_total counter\nSELECT window_start, trader AS trader_id, count(*) AS n_total FROM trades GROUP BY 1, 2\n",
    )
    .unwrap();
    let out = pulse()
        .args(["check", "--pipelines", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "broken pipelines fail the check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown_column.sql:5:") && err.contains("amountt"),
        "{err}"
    );
    assert!(
        err.contains("unbounded.sql:2:") && err.contains("unbounded"),
        "{err}"
    );
    assert!(!err.contains("good.sql"), "{err}");
    // The shipped catalogue is clean.
    let ok = pulse_ok(&[
        "check",
        "--pipelines",
        concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines"),
    ]);
    assert!(String::from_utf8_lossy(&ok.stdout).contains("13 pipelines"));
}

/// Pipeline files that once passed `pulse check` and then crashed the
/// service: each is refused by the check with its file and line, and every
/// command that loads it stops with that message instead of a panic.
#[test]
fn check_refuses_what_would_crash_the_service() {
    let dir = scratch();
    // (case, its files as (name, text), what every command says)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            "builtin_collision",
            &[(
                "series.sql",
                "-- window: tumble 1m\n-- values: dropped_total counter\nSELECT window_start, count(*) AS dropped_total FROM deposits GROUP BY 1\n",
            )],
            "series.sql:2: value `dropped_total` would be exported as `pulse_kpi_series_dropped_total`, the name of a built-in metric",
        ),
        (
            "pipelines_collide",
            &[
                (
                    "a.sql",
                    "-- window: tumble 1m\n-- values: b_c_total counter\nSELECT window_start, count(*) AS b_c_total FROM deposits GROUP BY 1\n",
                ),
                (
                    "a_b.sql",
                    "-- window: tumble 1m\n-- values: c_total counter\nSELECT window_start, count(*) AS c_total FROM trades GROUP BY 1\n",
                ),
            ],
            "a_b.sql:2: value `c_total` would be exported as `pulse_kpi_a_b_c_total`, the metric of value `b_c_total` of pipeline `a`",
        ),
        (
            "label_twice",
            &[(
                "twice.sql",
                "-- window: tumble 1m\n-- labels: method, method\n-- values: n_total counter\nSELECT window_start, method, count(*) AS n_total FROM deposits GROUP BY 1, 2\n",
            )],
            "twice.sql:2: label `method` is listed twice",
        ),
        (
            "struct_label",
            &[(
                "nested.sql",
                "-- window: tumble 1m\n-- labels: m\n-- values: n_total counter\nSELECT window_start,\n       named_struct('a', method) AS m,\n       count(*) AS n_total\nFROM deposits GROUP BY 1, 2\n",
            )],
            "nested.sql:5: label `m` must be a string, integer, boolean or date column; the query gives Struct",
        ),
    ];
    let events = simulated(dir.path(), 3, 50, 2);
    for (case, files, expected) in cases {
        let p = dir.path().join(case);
        std::fs::create_dir(&p).unwrap();
        for (name, text) in files {
            std::fs::write(p.join(name), text).unwrap();
        }
        let p = p.to_str().unwrap();
        let runs: [&[&str]; 3] = [
            &["check", "--pipelines", p],
            &[
                "replay",
                "--events",
                events.to_str().unwrap(),
                "--pipelines",
                p,
            ],
            &[
                "demo",
                "--for",
                "2s",
                "--listen",
                "127.0.0.1:0",
                "--pipelines",
                p,
            ],
        ];
        for args in runs {
            let out = pulse().args(args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{case} {args:?}: {err}");
            assert!(err.contains(expected), "{case} {args:?}: {err}");
            assert!(!err.contains("panicked"), "{case} {args:?}: {err}");
        }
    }
}

/// Normalises a KPI row: keys sorted, no spaces (serde_json's map is sorted).
fn canonical(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

/// Golden test per pipeline: a small hand-written history (two days, three
/// traders, one late withdrawal) and each pipeline's expected rows, checked
/// by hand (see tests/fixtures/golden/README.md).
#[test]
fn golden_rows_per_pipeline() {
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden");
    let dir = scratch();
    let kpis = dir.path().join("k.ndjson");
    pulse_ok(&[
        "replay",
        "--events",
        golden.join("events.ndjson").to_str().unwrap(),
        "--dlq",
        dir.path().join("d.ndjson").to_str().unwrap(),
        "--kpi-out",
        kpis.to_str().unwrap(),
        "--pipelines",
        concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines"),
    ]);
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in read_rows(&kpis) {
        got.entry(s(&r, "pipeline"))
            .or_default()
            .push(canonical(&r));
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(golden.join("expected")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let mut want: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| canonical(&serde_json::from_str::<Value>(l).unwrap()))
            .collect();
        want.sort();
        let mut rows = got.remove(&name).unwrap_or_default();
        rows.sort();
        assert_eq!(rows, want, "pipeline {name}");
        checked += 1;
    }
    assert_eq!(checked, 13, "every catalogue pipeline has a golden file");
    assert!(
        got.is_empty(),
        "pipelines without a golden file: {:?}",
        got.keys()
    );
}
