//! In-process throughput of the ingest stage and of the full KPI path
//! against a bare `serde_json` decode of the same bytes, measured in the
//! same run.

use std::borrow::Cow;
use std::time::Instant;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::alert::AlertsSection;
use crate::model::Model;

use crate::engine::{Engine, EngineConfig, Processed};
use crate::event::raw::RawTs;
use crate::features::Traders;
use crate::pipeline::{Dedup, Ingest, IngestConfig, check_pipelines};
use crate::sim::{SimConfig, Simulator};

/// The baseline: the contract's fields decoded into one flat struct with
/// optional fields, borrowing strings, with no validation, timestamp parsing
/// or interning.
#[derive(Deserialize)]
#[allow(dead_code)] // Fields are decoded to be measured, not read.
struct BareEvent<'a> {
    #[serde(borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    trader_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ts: Option<RawTs<'a>>,
    #[serde(borrow)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow)]
    campaign_id: Option<Cow<'a, str>>,
    success: Option<bool>,
    #[serde(borrow)]
    device_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    platform: Option<Cow<'a, str>>,
    amount: Option<f64>,
    #[serde(borrow)]
    currency: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    instrument: Option<Cow<'a, str>>,
    #[serde(borrow)]
    side: Option<Cow<'a, str>>,
    stake: Option<f64>,
    pnl: Option<f64>,
    #[serde(borrow)]
    variant: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
}

/// Results of one benchmark run.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub events: u64,
    pub bytes: u64,
    pub simulate_events_per_s: f64,
    pub bare_decode_events_per_s: f64,
    /// Decode + validate + de-duplicate + trader state.
    pub pipeline_events_per_s: f64,
    /// pipeline / bare decode.
    pub ratio: f64,
    /// The KPI path: ingest, windows, every catalogue pipeline, final flush;
    /// alert rules off.
    pub kpi_events_per_s: f64,
    /// KPI path / bare decode.
    pub kpi_ratio: f64,
    pub kpi_rows: u64,
    pub pipelines: usize,
    pub traders: usize,
    /// KPI path plus the default alert rules, no model.
    pub rules_events_per_s: f64,
    /// Everything: KPI path, alert rules, churn scoring with the bundled model.
    pub full_events_per_s: f64,
    /// Full path / bare decode.
    pub full_ratio: f64,
    pub alerts: u64,
    /// Traders scored by the model in the full path.
    pub scored: u64,
    /// Cost of one scoring (full − rules time / scorings), microseconds.
    pub scoring_us: f64,
    /// The KPI path with the catalogue twice (26 pipelines), events/s.
    pub doubled_events_per_s: f64,
    /// Its time over the KPI path's: the cost of doubling the pipelines.
    pub doubled_cost: f64,
    /// Seconds each pipeline's queries took in the fastest measured engine
    /// run, most expensive first.
    pub pipeline_seconds: Vec<(String, f64)>,
    /// Seconds spent building the daily `traders` snapshots the snapshot
    /// pipelines read, in the same run.
    pub capture_seconds: f64,
    /// The `flood` stage: distinct new traders pushed through the full
    /// pipeline (0: not run).
    pub flood_traders: u64,
    /// Resident memory the flood added, per trader tracked.
    pub flood_bytes_per_trader: f64,
    /// The engine's own accounting of that state, bytes per trader by
    /// component: names, trader state, alert and scorer state, windows and
    /// pipelines, de-duplication and release buffers.
    pub flood_accounted: Vec<(String, f64)>,
}

/// Simulates at least `min_events` events, then measures the bare decode and
/// the ingest pipeline over the same bytes (best of `rounds`).
pub fn run(
    min_events: u64,
    traders: u32,
    rounds: u32,
    stages: &[Stage],
    flood_traders: u32,
) -> BenchReport {
    // First, while nothing else has touched the heap: freed memory of the
    // other stages would be reused by the flood without showing in RSS.
    let flood = if stages.contains(&Stage::Flood) {
        self::flood(flood_traders)
    } else {
        Flood::default()
    };
    // Enough days to produce the requested events.
    let mut config = SimConfig {
        traders,
        days: 180,
        ..SimConfig::default()
    };
    let t0 = Instant::now();
    let mut sim = Simulator::new(config.clone());
    let mut bytes = Vec::with_capacity((min_events as usize) * 200);
    let mut day = Vec::new();
    let mut events = 0u64;
    while events < min_events {
        if !sim.next_day(&mut day) {
            // Another brokerage after the first, so that event time keeps moving forward.
            config.seed += 1;
            // Late arrivals of the first (withdrawals settle up to 2 days later) stay ahead.
            config.start_ms = config.end_ms() + 3 * crate::event::time::DAY_MS;
            sim = Simulator::new(config.clone());
            continue;
        }
        for e in &day {
            sim.write_json(e, &mut bytes);
        }
        events += day.len() as u64;
        day.clear();
    }
    let simulate_s = t0.elapsed().as_secs_f64();
    let lines: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let n = lines.len() as u64;

    let mut bare_best = f64::MAX;
    let mut pipe_best = f64::MAX;
    let mut kpi_best = f64::MAX;
    let (mut rules_best, mut full_best, mut doubled_best) = (f64::MAX, f64::MAX, f64::MAX);
    let (mut kpi_rows, mut pipelines, mut alerts, mut scored) = (0, 0, 0, 0);
    let mut traders_seen = 0;
    let mut pipeline_seconds = Vec::new();
    let mut capture_seconds = 0.0;
    let mut engine_best = f64::MAX;
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        let mut ok = 0u64;
        for l in &lines {
            ok += u64::from(serde_json::from_slice::<BareEvent>(l).is_ok());
        }
        assert_eq!(ok, n, "the simulator writes only valid JSON");
        bare_best = bare_best.min(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let config = IngestConfig::default();
        let mut dedup = Dedup::new(config.dedup_window_ms, config.dedup_max_ids);
        let mut ingest = Ingest::new(config);
        let mut traders = Traders::default();
        let now = i64::MAX / 2;
        let mut valid = 0u64;
        for l in &lines {
            if let Ok(e) = ingest.decode(l, now, None, 0)
                && !dedup.is_duplicate(e.id_hash, e.ts)
            {
                traders.apply(&e);
                valid += 1;
            }
        }
        pipe_best = pipe_best.min(t.elapsed().as_secs_f64());
        assert_eq!(valid, n, "every simulated event is valid and new");
        traders_seen = ingest.decoder.traders.len();

        for (stage, best) in [
            (Stage::Kpi, &mut kpi_best),
            (Stage::Rules, &mut rules_best),
            (Stage::Full, &mut full_best),
            (Stage::Doubled, &mut doubled_best),
        ] {
            if !stages.contains(&stage) {
                continue;
            }
            let r = run_engine(&lines, stage, now);
            *best = best.min(r.seconds);
            if stage == Stage::Doubled {
                continue;
            }
            if r.seconds < engine_best {
                engine_best = r.seconds;
                pipeline_seconds = r.spent.clone();
                capture_seconds = r.captures;
            }
            // Stages run in order: the counts are the full pipeline's when it ran.
            (kpi_rows, pipelines, alerts, scored) = (r.rows, r.pipelines, r.alerts, r.scored);
        }
    }
    let bare = n as f64 / bare_best;
    let pipe = n as f64 / pipe_best;
    // A stage left out with --stages reports 0 (the text output says
    // "not run"), never a rate from an unmeasured time.
    let per_s = |best: f64| {
        if best < f64::MAX {
            n as f64 / best
        } else {
            0.0
        }
    };
    BenchReport {
        flood_traders: flood.traders,
        flood_bytes_per_trader: flood.bytes_per_trader,
        flood_accounted: flood.accounted,
        events: n,
        bytes: bytes.len() as u64,
        simulate_events_per_s: n as f64 / simulate_s,
        bare_decode_events_per_s: bare,
        pipeline_events_per_s: pipe,
        ratio: pipe / bare,
        kpi_events_per_s: per_s(kpi_best),
        kpi_ratio: per_s(kpi_best) / bare,
        kpi_rows,
        pipelines,
        traders: traders_seen,
        rules_events_per_s: per_s(rules_best),
        full_events_per_s: per_s(full_best),
        full_ratio: per_s(full_best) / bare,
        alerts,
        scored,
        scoring_us: if scored > 0 && rules_best < f64::MAX && full_best < f64::MAX {
            (full_best - rules_best).max(0.0) * 1e6 / scored as f64
        } else {
            0.0
        },
        doubled_events_per_s: per_s(doubled_best),
        doubled_cost: if doubled_best < f64::MAX && kpi_best < f64::MAX {
            doubled_best / kpi_best
        } else {
            0.0
        },
        pipeline_seconds,
        capture_seconds,
    }
}

/// What the engine runs in a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// Windows and SQL pipelines; every alert rule off.
    Kpi,
    /// Plus the default alert rules, no model.
    Rules,
    /// Plus churn scoring with the bundled model.
    Full,
    /// The KPI path with every catalogue pipeline twice (26 pipelines):
    /// what doubling the number of pipelines costs.
    Doubled,
    /// State per tracked trader: a flood of distinct new traders (a signup
    /// and a login each, over 30 days) through the full pipeline, resident
    /// memory before and after.
    Flood,
}

/// The engine a stage measures: the catalogue (twice for `doubled`), the
/// default rules unless `kpi`/`doubled`, the bundled model for `full`/`flood`.
#[expect(
    clippy::expect_used,
    reason = "the built-in catalogue and default rules, which every test plans and resolves"
)]
fn full_engine(stage: Stage) -> Engine {
    let mut planned = check_pipelines(None).expect("the built-in catalogue plans");
    if stage == Stage::Doubled {
        for mut p in check_pipelines(None).expect("the built-in catalogue plans") {
            p.name = format!("{}_copy", p.name).into();
            planned.push(p);
        }
    }
    let mut engine = Engine::with_pipelines(EngineConfig::default(), planned)
        .expect("the built-in catalogue plans");
    let section = match stage {
        Stage::Kpi | Stage::Doubled => AlertsSection::disabled(),
        Stage::Rules | Stage::Full | Stage::Flood => AlertsSection::default(),
    };
    engine
        .risk
        .set_rules(section.resolve().expect("valid rules"));
    if matches!(stage, Stage::Full | Stage::Flood) {
        engine.risk.use_model(
            Arc::new(Model::bundled()),
            &mut engine.ingest.decoder.symbols,
            false,
        );
    }
    engine
}

/// What the flood stage measured.
#[derive(Debug, Default)]
struct Flood {
    traders: u64,
    bytes_per_trader: f64,
    accounted: Vec<(String, f64)>,
}

/// A memory figure of this process from /proc/self/status (Linux), bytes:
/// `VmRSS` (resident now) or `VmHWM` (peak resident).
pub fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resident memory now, bytes.
pub fn rss_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS")
}

/// `traders` distinct new ids, each a signup and a login a minute later,
/// spread evenly over 30 days of event time, through the engine of the
/// full stage (catalogue, default rules, bundled model).
fn flood(traders: u32) -> Flood {
    use std::io::Write;
    let start = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
    let step = (30 * crate::event::time::DAY_MS) / i64::from(traders.max(1));
    let mut text = Vec::with_capacity(traders as usize * 260);
    for i in 0..traders {
        let ts = start + i64::from(i) * step;
        // Writes into a Vec cannot fail.
        let _ = writeln!(
            text,
            r#"{{"event_id":"flood-{i}-s","type":"signup","trader_id":"flood-{i}","ts":{ts},"channel":"organic","country":"BR"}}"#
        );
        let _ = writeln!(
            text,
            r#"{{"event_id":"flood-{i}-l","type":"login","trader_id":"flood-{i}","ts":{},"success":true,"device_id":"dev-{i}","country":"BR","platform":"web"}}"#,
            ts + 60_000
        );
    }
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut engine = full_engine(Stage::Full);
    let before = rss_bytes().unwrap_or(0);
    for (i, l) in lines.iter().enumerate() {
        engine.process(l, 0, i as i64, i64::MAX / 2, None);
        if i % 4096 == 4095 {
            engine.advance();
            drop(engine.take_emitted());
        }
    }
    engine.advance();
    drop(engine.take_emitted());
    // What a live instance does once its input is quiet for a second: the
    // trims held back while snapshots came fast run.
    crate::engine::trim_held_back();
    let after = rss_bytes().unwrap_or(0);
    let tracked = engine.ingest.decoder.traders.len() as u64;
    let per = |b: usize| b as f64 / tracked.max(1) as f64;
    let shards: usize = engine.shards.iter().flatten().map(|s| s.heap_bytes()).sum();
    Flood {
        traders: tracked,
        bytes_per_trader: per(after.saturating_sub(before) as usize),
        accounted: vec![
            ("names".into(), per(engine.ingest.state_bytes())),
            ("traders".into(), per(engine.traders.heap_bytes())),
            ("alerts and scorer".into(), per(engine.risk.heap_bytes())),
            ("windows and pipelines".into(), per(engine.kpis.bytes())),
            ("dedup and release".into(), per(shards)),
        ],
    }
}

struct EngineRun {
    seconds: f64,
    rows: u64,
    pipelines: usize,
    alerts: u64,
    scored: u64,
    spent: Vec<(String, f64)>,
    captures: f64,
}

fn run_engine(lines: &[&[u8]], stage: Stage, now: i64) -> EngineRun {
    let mut engine = full_engine(stage);
    let t = Instant::now();
    let mut valid = 0u64;
    let (mut rows, mut alerts) = (0u64, 0u64);
    let mut count = |engine: &mut Engine| {
        let out = engine.take_emitted();
        rows += out.rows() as u64;
        alerts += out.alerts.len() as u64;
    };
    for (i, l) in lines.iter().enumerate() {
        valid += u64::from(matches!(
            engine.process(l, 0, i as i64, now, None),
            Processed::Valid
        ));
        if i % 4096 == 4095 {
            engine.advance();
            count(&mut engine);
        }
    }
    engine.finish();
    count(&mut engine);
    let seconds = t.elapsed().as_secs_f64();
    assert_eq!(
        valid,
        lines.len() as u64,
        "every simulated event lands in a window"
    );
    let mut spent: Vec<(String, f64)> = engine
        .kpis
        .pipelines
        .iter()
        .map(|p| (p.p.name.to_string(), p.spent.as_secs_f64()))
        .collect();
    spent.sort_by(|a, b| b.1.total_cmp(&a.1));
    EngineRun {
        spent,
        captures: engine.kpis.capture_spent.as_secs_f64(),
        seconds,
        rows,
        pipelines: engine.pipeline_names().len(),
        alerts,
        scored: engine.risk.scorer.as_ref().map_or(0, |s| s.scored),
    }
}
