//! `pulse train / evaluate / score` and the feature code path they share
//! with the live service.

use std::path::Path;

use veloc_pulse::engine::{Engine, EngineConfig};
use veloc_pulse::features::FeatureSpace;
use veloc_pulse::model::{History, Model, Population, snapshots};

use crate::common::{pulse, pulse_ok, scratch, simulated};

/// Training cutoffs every 15 days, validated on 2026-06-25; evaluation at
/// 2026-07-25, whose 30-day labels no training or validation label saw.
const CUTOFFS: [&str; 6] = [
    "2026-03-27",
    "2026-04-11",
    "2026-04-26",
    "2026-05-11",
    "2026-05-26",
    "2026-06-25",
];

fn train_args<'a>(events: &'a str, out: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--events",
        events,
        "--out",
        out,
        "--horizon",
        "30d",
    ];
    args.extend(["--active-within", "30d"]);
    for c in CUTOFFS {
        args.extend(["--cutoff", c]);
    }
    args
}

/// The README's command for the bundled model, run in `dir`.
fn train_default(dir: &Path) -> (String, String) {
    let events = dir.join("history.ndjson");
    pulse_ok(&[
        "simulate",
        "--seed",
        "7",
        "--traders",
        "20000",
        "--days",
        "240",
        "--out",
        events.to_str().unwrap(),
    ]);
    let model = dir.join("churn-default.json");
    let (events, model) = (
        events.to_str().unwrap().to_string(),
        model.to_str().unwrap().to_string(),
    );
    let mut args = train_args(&events, &model);
    args.extend(["--name", "churn-default"]);
    pulse_ok(&args);
    (events, model)
}

#[test]
fn model_beats_recency_and_rfm_on_a_later_unseen_time() {
    let dir = scratch();
    let (events, model) = train_default(dir.path());
    let (events, model) = (events.as_str(), model.as_str());
    // The bundled model is exactly what the README's command produces.
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/models/churn-default.json");
    assert!(
        std::fs::read(model).unwrap() == std::fs::read(committed).unwrap(),
        "models/churn-default.json differs from a fresh training: re-run the README command"
    );
    let card = concat!(env!("CARGO_MANIFEST_DIR"), "/models/churn-default.md");
    assert_eq!(
        std::fs::read_to_string(model.replace(".json", ".md")).unwrap(),
        std::fs::read_to_string(card).unwrap(),
        "model card beside the artifact"
    );

    let out = pulse_ok(&[
        "evaluate",
        "--events",
        events,
        "--at",
        "2026-07-25",
        "--horizon",
        "30d",
        "--model",
        model,
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let get =
        |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    let (roc, pr) = (get(&r, "roc_auc"), get(&r, "pr_auc"));
    for base in ["recency", "rfm_logistic"] {
        let b = &r["baselines"][base];
        assert!(
            roc > get(b, "roc_auc"),
            "ROC AUC {roc} vs {base} {}",
            b["roc_auc"]
        );
        assert!(
            pr > get(b, "pr_auc"),
            "PR AUC {pr} vs {base} {}",
            b["pr_auc"]
        );
    }
    assert!(roc > 0.75, "ROC AUC {roc}");
    for k in ["top_5", "top_10", "top_20"] {
        assert!(r["precision_at"][k].as_f64().is_some(), "precision_at.{k}");
        assert!(r["recall_at"][k].as_f64().is_some(), "recall_at.{k}");
    }
    let bands = r["bands"].as_array().unwrap();
    assert_eq!(bands.len(), 4);
    assert_eq!(r["deciles"].as_array().unwrap().len(), 10);
    // Calibrated: realised churn rises with the band, and the predicted
    // mean of each populated band is within 0.1 of what happened.
    let realised: Vec<f64> = bands.iter().map(|b| get(b, "realised")).collect();
    assert!(
        realised.windows(2).all(|w| w[0] < w[1]),
        "realised by band {realised:?}"
    );
    for b in bands
        .iter()
        .filter(|b| b["traders"].as_u64().unwrap() >= 100)
    {
        assert!(
            (get(b, "predicted") - get(b, "realised")).abs() < 0.1,
            "band {b}"
        );
    }

    // The text report says the same.
    let text = pulse_ok(&[
        "evaluate",
        "--events",
        events,
        "--at",
        "2026-07-25",
        "--model",
        model,
    ]);
    let text = String::from_utf8(text.stdout).unwrap();
    for needle in [
        "recency baseline",
        "RFM logistic",
        "calibration by decile",
        "calibration by band",
    ] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }

    // Scores for every trader seen, with bands and reasons.
    let csv = dir.path().join("scores.csv");
    pulse_ok(&[
        "score",
        "--events",
        events,
        "--at",
        "2026-07-25",
        "--model",
        model,
        "--out",
        csv.to_str().unwrap(),
    ]);
    let mut reader = csv::Reader::from_path(&csv).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec!["trader_id", "churn_score", "band", "reasons"]
    );
    let history = History::load(Path::new(events)).unwrap();
    let cutoff = veloc_pulse::event::time::parse_instant_ms("2026-07-25").unwrap();
    let seen: std::collections::HashSet<u32> = history
        .events
        .iter()
        .filter(|e| e.ts <= cutoff)
        .map(|e| e.trader)
        .collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), seen.len(), "one row per trader seen");
    for row in rows.iter().take(500) {
        assert_eq!(row.len(), 4, "{row:?}");
        let score: f64 = row[1].parse().unwrap();
        assert!((0.0..=1.0).contains(&score), "{row:?}");
        assert!(
            ["low", "medium", "high", "critical"].contains(&&row[2]),
            "{row:?}"
        );
        assert!(row[3].contains("(baseline "), "{row:?}");
    }
}

#[test]
fn training_is_reproducible_and_refuses_a_horizon_past_the_data() {
    let dir = scratch();
    let events = simulated(dir.path(), 3, 4_000, 150);
    let events = events.to_str().unwrap();
    let run = |out: &str| {
        pulse_ok(&[
            "train",
            "--events",
            events,
            "--cutoff",
            "2026-03-01",
            "--cutoff",
            "2026-04-01",
            "--out",
            out,
            "--trees",
            "10",
            "--name",
            "churn",
        ]);
        std::fs::read(out).unwrap()
    };
    let a = run(dir.path().join("a.json").to_str().unwrap());
    let b = run(dir.path().join("b.json").to_str().unwrap());
    assert!(a == b, "same history and flags must give the same artifact");
    let m: Model = serde_json::from_slice(&a).unwrap();
    assert!(m.validate().is_ok());
    assert!(m.version.starts_with("20260401-"), "{}", m.version);

    // The data ends 2026-05-30: a cutoff on 2026-05-15 has no 30 days of labels.
    let out = pulse()
        .args([
            "train",
            "--events",
            events,
            "--cutoff",
            "2026-04-01",
            "--cutoff",
            "2026-05-15",
        ])
        .args(["--out", dir.path().join("c.json").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cutoff 2026-05-15T00:00:00.000Z") && err.contains("past the end"),
        "{err}"
    );
}

/// Writes the lines of `events` whose type is one of `types`.
fn filtered(events: &Path, types: &[&str], out: &Path) {
    let text = std::fs::read_to_string(events).unwrap();
    let keep: String = text
        .lines()
        .filter(|l| {
            types
                .iter()
                .any(|t| l.contains(&format!("\"type\":\"{t}\"")))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!keep.is_empty());
    std::fs::write(out, keep).unwrap();
}

#[test]
fn histories_of_deposits_only_or_trades_only_train_and_evaluate() {
    let dir = scratch();
    let events = simulated(dir.path(), 5, 6_000, 150);
    for types in [&["deposit"][..], &["trade"][..]] {
        let part = dir.path().join(format!("{}.ndjson", types[0]));
        filtered(&events, types, &part);
        let part = part.to_str().unwrap();
        let model = dir.path().join(format!("{}.json", types[0]));
        let model = model.to_str().unwrap();
        pulse_ok(&[
            "train",
            "--events",
            part,
            "--cutoff",
            "2026-03-01",
            "--cutoff",
            "2026-04-01",
            "--out",
            model,
            "--trees",
            "10",
        ]);
        let out = pulse_ok(&[
            "evaluate",
            "--events",
            part,
            "--at",
            "2026-04-20",
            "--model",
            model,
            "--json",
        ]);
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let roc = r["roc_auc"].as_f64().unwrap();
        assert!(roc > 0.6, "{types:?}: ROC AUC {roc}");
    }
}

#[test]
fn offline_snapshots_and_the_live_state_give_the_same_vectors() {
    let dir = scratch();
    let path = dir.path().join("ordered.ndjson");
    pulse_ok(&[
        "simulate",
        "--seed",
        "9",
        "--traders",
        "1500",
        "--days",
        "50",
        "--disorder",
        "0s",
        "--out",
        path.to_str().unwrap(),
    ]);
    // Online: the live engine, message by message, released to the end.
    let mut live = Engine::with_pipelines(EngineConfig::default(), Vec::new()).unwrap();
    let text = std::fs::read(&path).unwrap();
    for (i, line) in text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        live.process(line, 0, i as i64, i64::MAX / 2, None);
    }
    live.finish();
    // Offline: the training snapshot at the same time.
    let history = History::load(&path).unwrap();
    let channels = history.channels(12);
    let mut space = FeatureSpace::new(channels.clone());
    space.resolve(&mut history.ingest.decoder.symbols.clone());
    let at = history.last_ts();
    let snap = snapshots(&history, &space, &[at], None, Population::Everyone)
        .pop()
        .unwrap();
    assert!(snap.len() > 1000);

    let mut live_space = FeatureSpace::new(channels);
    live_space.resolve(&mut live.ingest.decoder.symbols);
    let mut v = Vec::new();
    for (i, &t) in snap.traders.iter().enumerate() {
        // Same interning order, so the same dense ids.
        let state = live.traders.get(t).unwrap();
        live_space.vector(state, &live.traders.thresholds, at, &mut v);
        assert_eq!(
            v.as_slice(),
            snap.row(i),
            "trader {}",
            history.trader_name(t)
        );
    }
}

/// A small history (4,000 traders, 150 days) and a quick model of it:
/// (events, model) paths.
fn small_model(dir: &Path) -> (String, String) {
    let events = simulated(dir, 3, 4_000, 150);
    let events = events.to_str().unwrap().to_owned();
    let model = dir.join("churn.json").to_str().unwrap().to_owned();
    pulse_ok(&[
        "train",
        "--events",
        &events,
        "--cutoff",
        "2026-03-01",
        "--cutoff",
        "2026-04-01",
        "--out",
        &model,
        "--trees",
        "10",
        "--name",
        "churn",
    ]);
    (events, model)
}

/// `pulse evaluate --report DIR`: an HTML page whose seven charts all draw
/// in headless Chromium with no console error and no network request; the
/// model card links it; the screenshot is kept.
#[test]
fn the_evaluation_report_draws_every_chart_in_chromium() {
    crate::common::require_program("chromium", "chromium");
    crate::common::require_program("node", "nodejs");
    let dir = scratch();
    let (events, model) = small_model(dir.path());
    let (events, model) = (events.as_str(), model.as_str());
    let report = dir.path().join("report");
    let out = pulse_ok(&[
        "evaluate",
        "--events",
        events,
        "--at",
        "2026-04-25",
        "--model",
        model,
        "--json",
        "--report",
        report.to_str().unwrap(),
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["lift"].as_array().unwrap().len(), 10);
    let importance = r["importance"].as_array().unwrap();
    assert!(importance.len() > 10, "{importance:?}");
    assert!(importance[0]["auc_drop"].as_f64().unwrap() > 0.0);
    let page = report.join("index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<figure data-chart=").count(), 7);
    assert!(!html.contains("<script") && !html.contains("https://"));
    let card = std::fs::read_to_string(model.replace(".json", ".md")).unwrap();
    assert!(
        card.contains("## Evaluation reports") && card.contains(page.to_str().unwrap()),
        "the model card links the report:\n{card}"
    );
    // A second run with the same report links it once.
    pulse_ok(&[
        "evaluate",
        "--events",
        events,
        "--at",
        "2026-04-25",
        "--model",
        model,
        "--report",
        report.to_str().unwrap(),
    ]);
    let again = std::fs::read_to_string(model.replace(".json", ".md")).unwrap();
    assert_eq!(again, card);

    let shot = concat!(env!("CARGO_TARGET_TMPDIR"), "/evaluation-report.png");
    let check = std::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/page-check/report.mjs"
        ))
        .arg(&page)
        .arg(shot)
        .output()
        .expect("node runs the report check");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "report check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        std::fs::metadata(shot).is_ok_and(|m| m.len() > 10_000),
        "screenshot saved at {shot}"
    );
    println!("screenshot: {shot}\n{stdout}");
}

/// `pulse features` writes the vectors the scorer computes: read back with
/// pyarrow (Parquet, and Arrow IPC for the labelled one), the file has a row per trader `pulse score` scores, the
/// model's features in its order, and the same scores; with a horizon the
/// labels are there and the population is the trainer's.
#[test]
fn the_feature_export_reads_back_in_pyarrow_as_pulse_score_sees_it() {
    let dir = scratch();
    let (events, model) = small_model(dir.path());
    let (events, model) = (events.as_str(), model.as_str());
    let (all, labelled, scores) = (
        dir.path().join("all.parquet"),
        dir.path().join("labelled.feather"),
        dir.path().join("scores.csv"),
    );
    let at = "2026-04-25";
    pulse_ok(&[
        "features",
        "--events",
        events,
        "--at",
        at,
        "--everyone",
        "--model",
        model,
        "--out",
        all.to_str().unwrap(),
    ]);
    pulse_ok(&[
        "features",
        "--events",
        events,
        "--at",
        at,
        "--horizon",
        "30d",
        "--out",
        labelled.to_str().unwrap(),
    ]);
    pulse_ok(&[
        "score",
        "--events",
        events,
        "--at",
        at,
        "--model",
        model,
        "--out",
        scores.to_str().unwrap(),
    ]);
    let refused = pulse()
        .args(["features", "--events", events, "--at", at, "--out", "x.csv"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("x.csv") && said.contains(".parquet") && said.contains(".arrow"),
        "{said}"
    );

    let check = r#"
import csv, json, sys
import pyarrow.feather as feather, pyarrow.parquet as pq
all_, labelled, scores, model = sys.argv[1:5]
meta = pq.ParquetFile(all_).metadata
assert meta.row_group(0).column(0).compression == "SNAPPY", meta.row_group(0).column(0).compression
t = pq.read_table(all_).to_pydict()
rows = {r["trader_id"]: r for r in csv.DictReader(open(scores))}
names = [f["name"] for f in json.load(open(model))["features"]]
cols = list(t.keys())
assert cols[:2] == ["trader_id", "at"], cols[:2]
assert cols[2:-1] == names, (cols[2:-1], names)
assert cols[-1] == "churn_score"
assert sorted(t["trader_id"]) == sorted(rows), (len(t["trader_id"]), len(rows))
worst = max(abs(float(rows[i]["churn_score"]) - s) for i, s in zip(t["trader_id"], t["churn_score"]))
assert worst < 5e-7, worst
l = feather.read_table(labelled)
assert "churned" in l.column_names and "churn_score" not in l.column_names
churned = l.column("churned").to_pylist()
assert 0 < sum(churned) < len(churned)
assert l.column("days_since_activity").to_pylist() and max(l.column("days_since_activity").to_pylist()) <= 90
print(json.dumps({"traders": len(rows), "columns": len(cols), "labelled": l.num_rows, "worst": worst}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", check])
        .args([&all, &labelled, &scores])
        .arg(model)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pyarrow check failed (scripts/install-test-deps installs pyarrow):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
