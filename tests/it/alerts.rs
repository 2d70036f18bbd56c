//! Each alert kind: a hand-built event sequence that fires it exactly once
//! and a near miss that does not; every alert emitted is validated against
//! `schemas/alert.schema.json`; ids are deterministic.

use std::sync::Arc;

use serde_json::{Value, json};
use veloc_pulse::alert::{Alert, AlertKind, AlertRules, AlertSchema, LineCheck};
use veloc_pulse::engine::{Engine, EngineConfig};
use veloc_pulse::event::time::{DAY_MS, HOUR_MS, MINUTE_MS, format_rfc3339_ms};
use veloc_pulse::features::NUMERIC;
use veloc_pulse::model::{Calibration, Estimator, FeatureInfo, Logistic, Model};
use veloc_pulse::pipeline::KpiRow;

use crate::common::scratch;

/// 2026-03-02T00:00:00Z: the start of every script.
const T0: i64 = 1_772_409_600_000;

/// Builds NDJSON events in time order.
pub struct Script {
    lines: Vec<String>,
    n: u64,
}

impl Script {
    fn new() -> Self {
        Self {
            lines: Vec::new(),
            n: 0,
        }
    }

    fn ev(&mut self, trader: &str, ts: i64, kind: &str, fields: Value) -> &mut Self {
        self.n += 1;
        let mut e = json!({
            "event_id": format!("e{}", self.n),
            "type": kind,
            "trader_id": trader,
            "ts": format_rfc3339_ms(ts),
        });
        for (k, v) in fields.as_object().unwrap() {
            e[k] = v.clone();
        }
        self.lines.push(e.to_string());
        self
    }

    fn signup(&mut self, t: &str, ts: i64) -> &mut Self {
        self.ev(
            t,
            ts,
            "signup",
            json!({"channel": "paid_search", "country": "BR"}),
        )
    }

    fn deposit(&mut self, t: &str, ts: i64, amount: f64, status: &str) -> &mut Self {
        self.ev(
            t,
            ts,
            "deposit",
            json!({"amount": amount, "currency": "BRL", "method": "pix", "status": status}),
        )
    }

    fn trade(&mut self, t: &str, ts: i64) -> &mut Self {
        self.ev(
            t,
            ts,
            "trade",
            json!({"instrument": "PETR4", "side": "buy", "stake": 50.0, "currency": "BRL", "status": "opened"}),
        )
    }

    fn login(&mut self, t: &str, ts: i64, ok: bool, device: &str, country: &str) -> &mut Self {
        self.ev(
            t,
            ts,
            "login",
            json!({"success": ok, "device_id": device, "country": country, "platform": "ios"}),
        )
    }

    fn withdrawal(&mut self, t: &str, ts: i64, amount: f64) -> &mut Self {
        self.ev(
            t,
            ts,
            "withdrawal",
            json!({"amount": amount, "currency": "BRL", "status": "requested"}),
        )
    }

    /// Moves event time forward with an unrelated trader's campaign touch.
    fn clock(&mut self, ts: i64) -> &mut Self {
        self.ev(
            "clock",
            ts,
            "campaign",
            json!({"campaign_id": "c", "variant": "a", "action": "sent", "channel": "email"}),
        )
    }
}

/// Runs the script through an engine (no SQL pipelines: the rules only)
/// and returns every alert, each validated against the JSON Schema.
fn alerts_of(script: &Script, model: Option<Model>) -> Vec<Alert> {
    alerts_with(script, model, AlertRules::default())
}

fn alerts_with(script: &Script, model: Option<Model>, rules: AlertRules) -> Vec<Alert> {
    let mut engine = rules_engine(rules);
    if let Some(m) = model {
        engine
            .risk
            .use_model(Arc::new(m), &mut engine.ingest.decoder.symbols, false);
    }
    for (i, l) in script.lines.iter().enumerate() {
        engine.process(l.as_bytes(), 0, i as i64, i64::MAX / 2, None);
    }
    engine.finish();
    let mut alerts = engine.take_emitted().alerts;
    let emitted_at = chrono_now();
    for a in &mut alerts {
        a.emitted_at = Some(emitted_at);
    }
    validate(&alerts);
    alerts
}

/// An engine with no SQL pipelines (the alert rules only).
fn rules_engine(rules: AlertRules) -> Engine {
    let mut engine =
        Engine::with_pipelines(EngineConfig::default(), Vec::new()).expect("an engine");
    engine.risk.set_rules(rules);
    engine
}

/// Wall-clock now, epoch ms (what the sinks stamp as `emitted_at`).
fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Checks alerts against `schemas/alert.schema.json` in-process (the
/// `jsonschema` crate, as `pulse validate-alerts` does).
pub fn validate(alerts: &[Alert]) {
    let schema = AlertSchema::bundled().expect("the bundled schema compiles");
    let broken: Vec<String> = alerts
        .iter()
        .flat_map(|a| {
            let value = serde_json::to_value(a).unwrap();
            schema
                .check(&value)
                .into_iter()
                .map(move |v| format!("{}: {} at {}", a.alert_id, v.message, v.path))
        })
        .collect();
    assert!(
        broken.is_empty(),
        "alerts do not match schemas/alert.schema.json:\n{}",
        broken.join("\n")
    );
}

/// Checks a JSONL file of alerts, every line, against the schema.
pub fn validate_file(path: &std::path::Path) {
    let schema = AlertSchema::bundled().expect("the bundled schema compiles");
    let file = std::fs::File::open(path).expect("the alerts file opens");
    let checks = schema
        .check_lines(std::io::BufReader::new(file))
        .expect("the alerts file reads");
    let broken: Vec<String> = checks
        .iter()
        .filter(|(_, c)| *c != LineCheck::Alert(Vec::new()))
        .map(|(line, c)| format!("{}:{line}: {c:?}", path.display()))
        .collect();
    assert!(
        broken.is_empty(),
        "alerts do not match schemas/alert.schema.json:\n{}",
        broken.join("\n")
    );
}

fn of(alerts: &[Alert], kind: AlertKind) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.kind == kind).collect()
}

fn stages(alerts: &[Alert], kind: AlertKind) -> Vec<String> {
    of(alerts, kind)
        .iter()
        .map(|a| a.stage.to_string())
        .collect()
}

#[test]
fn security_failed_login_burst() {
    let mut s = Script::new();
    for i in 0..5 {
        s.login("t1", T0 + i * MINUTE_MS, false, "d9", "RU");
    }
    let a = alerts_of(&s, None);
    assert_eq!(
        stages(&a, AlertKind::Security),
        ["security:failed_login_burst"]
    );

    // Near miss: the fifth failure comes after the 10-minute window.
    let mut s = Script::new();
    for i in 0..4 {
        s.login("t1", T0 + i * MINUTE_MS, false, "d9", "RU");
    }
    s.login("t1", T0 + 15 * MINUTE_MS, false, "d9", "RU");
    assert!(of(&alerts_of(&s, None), AlertKind::Security).is_empty());
}

#[test]
fn security_new_country_and_new_device() {
    let base = |s: &mut Script| {
        s.login("t1", T0, true, "phone", "BR");
        s.login("t1", T0 + DAY_MS, true, "phone", "BR");
    };
    let mut s = Script::new();
    base(&mut s);
    s.login("t1", T0 + 2 * DAY_MS, true, "phone", "NG");
    let a = alerts_of(&s, None);
    assert_eq!(stages(&a, AlertKind::Security), ["security:new_country"]);

    let mut s = Script::new();
    base(&mut s);
    s.login("t1", T0 + 2 * DAY_MS, true, "laptop", "BR");
    let a = alerts_of(&s, None);
    assert_eq!(stages(&a, AlertKind::Security), ["security:new_device"]);

    // Near miss: the known device from the known country.
    let mut s = Script::new();
    base(&mut s);
    s.login("t1", T0 + 2 * DAY_MS, true, "phone", "BR");
    assert!(of(&alerts_of(&s, None), AlertKind::Security).is_empty());
}

#[test]
fn aml_deposit_withdrawn_without_trading() {
    let mut s = Script::new();
    s.deposit("t1", T0, 5_000.0, "approved")
        .withdrawal("t1", T0 + 5 * HOUR_MS, 4_600.0);
    let a = alerts_of(&s, None);
    assert_eq!(stages(&a, AlertKind::Aml), ["aml:flip"]);
    assert_eq!(of(&a, AlertKind::Aml)[0].severity.as_str(), "critical");

    // Near miss: a trade in between.
    let mut s = Script::new();
    s.deposit("t1", T0, 5_000.0, "approved")
        .trade("t1", T0 + HOUR_MS)
        .withdrawal("t1", T0 + 5 * HOUR_MS, 4_600.0);
    assert!(of(&alerts_of(&s, None), AlertKind::Aml).is_empty());
}

#[test]
fn aml_structuring_just_under_the_threshold() {
    let mut s = Script::new();
    for (i, amount) in [9_500.0, 9_800.0, 9_990.0, 9_700.0].iter().enumerate() {
        s.deposit("t1", T0 + i as i64 * HOUR_MS, *amount, "approved");
    }
    let a = alerts_of(&s, None);
    assert_eq!(stages(&a, AlertKind::Aml), ["aml:structuring"]);

    // Near miss: the third is well under 90% of the threshold.
    let mut s = Script::new();
    for (i, amount) in [9_500.0, 9_800.0, 8_000.0].iter().enumerate() {
        s.deposit("t1", T0 + i as i64 * HOUR_MS, *amount, "approved");
    }
    assert!(of(&alerts_of(&s, None), AlertKind::Aml).is_empty());
}

#[test]
fn deposit_recovery_steps_and_cancellation() {
    let mut s = Script::new();
    s.deposit("t1", T0, 300.0, "failed").clock(T0 + 8 * DAY_MS);
    let a = alerts_of(&s, None);
    assert_eq!(
        stages(&a, AlertKind::DepositRecovery),
        ["recovery:D+1", "recovery:D+3", "recovery:D+7"]
    );
    let first = of(&a, AlertKind::DepositRecovery)[0];
    assert_eq!(
        serde_json::to_value(first).unwrap()["event_time"],
        format_rfc3339_ms(T0 + DAY_MS)
    );

    // Near miss: an approved deposit an hour after the failure.
    let mut s = Script::new();
    s.deposit("t1", T0, 300.0, "failed")
        .deposit("t1", T0 + HOUR_MS, 300.0, "approved")
        .clock(T0 + 8 * DAY_MS);
    assert!(of(&alerts_of(&s, None), AlertKind::DepositRecovery).is_empty());
}

#[test]
fn activation_steps_by_channel_until_a_deposit() {
    let mut s = Script::new();
    s.signup("t1", T0).clock(T0 + 11 * DAY_MS);
    let a = alerts_of(&s, None);
    assert_eq!(
        stages(&a, AlertKind::Activation),
        [
            "activation:D+0",
            "activation:D+1..3",
            "activation:D+5..7",
            "activation:D+10"
        ]
    );
    assert!(
        of(&a, AlertKind::Activation)
            .iter()
            .all(|x| x.channel.as_deref() == Some("paid_search") && x.segment == Some("new"))
    );

    // Near miss: a first deposit an hour after signup, before D+0 is due.
    let mut s = Script::new();
    s.signup("t1", T0)
        .deposit("t1", T0 + HOUR_MS, 100.0, "approved")
        .clock(T0 + 11 * DAY_MS);
    assert!(of(&alerts_of(&s, None), AlertKind::Activation).is_empty());
}

#[test]
fn inactivity_tiers_against_the_usual_gap() {
    let daily = |s: &mut Script, days: i64| {
        s.deposit("t1", T0, 500.0, "approved");
        for d in 0..days {
            s.trade("t1", T0 + d * DAY_MS + HOUR_MS);
        }
    };
    let mut s = Script::new();
    daily(&mut s, 20);
    s.clock(T0 + 60 * DAY_MS);
    let a = alerts_of(&s, None);
    assert_eq!(
        stages(&a, AlertKind::Inactivity),
        [
            "inactivity:D+1",
            "inactivity:D+3",
            "inactivity:D+7",
            "inactivity:D+14",
            "inactivity:D+30"
        ]
    );

    // Near miss: the same trader keeps trading every day.
    let mut s = Script::new();
    daily(&mut s, 60);
    assert!(of(&alerts_of(&s, None), AlertKind::Inactivity).is_empty());

    // A trader who usually trades every 5 days is not "inactive" after 4.
    // (Before its second active day nobody can know its rhythm: the rules
    // see only the events before each tick, so the first spell is judged
    // against the default gap of a day.)
    let mut s = Script::new();
    s.deposit("t2", T0, 500.0, "approved");
    for k in 0..8 {
        s.trade("t2", T0 + k * 5 * DAY_MS);
    }
    s.clock(T0 + 7 * 5 * DAY_MS + 4 * DAY_MS);
    let late: Vec<_> = of(&alerts_of(&s, None), AlertKind::Inactivity)
        .into_iter()
        .filter(|a| a.event_ms > T0 + 5 * DAY_MS)
        .cloned()
        .collect();
    assert!(late.is_empty(), "{late:?}");
}

#[test]
fn vip_drop_when_trade_frequency_falls() {
    let vip = |s: &mut Script, amount: f64, active_days: i64, total_days: i64| {
        s.deposit("t1", T0, amount, "approved");
        for d in 0..total_days {
            if d < active_days {
                for k in 0..3 {
                    s.trade("t1", T0 + d * DAY_MS + (k + 1) * HOUR_MS);
                }
            } else {
                s.login("t1", T0 + d * DAY_MS + HOUR_MS, true, "phone", "BR");
            }
        }
    };
    let mut s = Script::new();
    vip(&mut s, 30_000.0, 60, 85);
    let a = alerts_of(&s, None);
    assert_eq!(stages(&a, AlertKind::VipDrop), ["vip_drop:trade_frequency"]);
    assert_eq!(of(&a, AlertKind::VipDrop)[0].segment, Some("vip"));

    // Near miss: the VIP keeps trading.
    let mut s = Script::new();
    vip(&mut s, 30_000.0, 85, 85);
    assert!(of(&alerts_of(&s, None), AlertKind::VipDrop).is_empty());
    // Near miss: the same drop from a trader who is not a VIP.
    let mut s = Script::new();
    vip(&mut s, 3_000.0, 60, 85);
    assert!(of(&alerts_of(&s, None), AlertKind::VipDrop).is_empty());
}

/// A logistic model on two features: days since activity raises the
/// score, logins in the last week lower it (so a trader can hover).
fn hand_model() -> Model {
    let mut m = Model::bundled();
    m.channels = Vec::new();
    m.features = NUMERIC
        .iter()
        .map(|n| FeatureInfo {
            name: n.to_string(),
            mean: 0.0,
            std: 1.0,
        })
        .collect();
    let mut weights = vec![0.0; NUMERIC.len()];
    weights[NUMERIC
        .iter()
        .position(|n| *n == "days_since_activity")
        .unwrap()] = 0.5;
    weights[NUMERIC.iter().position(|n| *n == "logins_7d").unwrap()] = -0.3;
    m.estimator = Estimator::Logistic(Logistic {
        weights,
        intercept: -3.0,
    });
    m.calibration = Calibration::IDENTITY;
    m.training.active_within_days = 30.0;
    m.version = "test-1".into();
    assert!(m.validate().is_ok(), "{:?}", m.validate());
    m
}

#[test]
fn churn_risk_once_with_hysteresis_while_hovering() {
    // Quiet after one trade: the score crosses 0.6 (high) on day 7, a
    // login dips it to about 0.58 (not below 0.5 = high − hysteresis), it
    // rises again: one alert.
    let mut s = Script::new();
    // (The clock event lets the day-7 midnight tick run before the login
    // is applied: state is applied on arrival, ticks follow the watermark.)
    s.trade("t1", T0 + HOUR_MS)
        .clock(T0 + 7 * DAY_MS + 30 * MINUTE_MS)
        .login("t1", T0 + 7 * DAY_MS + HOUR_MS, true, "phone", "BR")
        .clock(T0 + 25 * DAY_MS);
    let a = alerts_of(&s, Some(hand_model()));
    let churn = of(&a, AlertKind::ChurnRisk);
    assert_eq!(churn.len(), 1, "{churn:#?}");
    let c = churn[0];
    assert_eq!(c.model_version.as_deref(), Some("test-1"));
    assert!(c.score.unwrap() >= 0.6 && c.band.is_some());
    assert_eq!(
        serde_json::to_value(c).unwrap()["event_time"],
        format_rfc3339_ms(T0 + 7 * DAY_MS)
    );
    assert_eq!(c.reasons[0].feature, "days_since_activity");
    // The dip is real: without hysteresis and cooldown it alerts twice.
    let mut section = veloc_pulse::alert::AlertsSection::default();
    section.churn_risk.hysteresis = 0.0;
    section.churn_risk.cooldown = "1h".into();
    let twice = alerts_with(&s, Some(hand_model()), section.resolve().unwrap());
    assert_eq!(of(&twice, AlertKind::ChurnRisk).len(), 2);

    // Near miss: trading every 6 days keeps the score below the high band.
    let mut s = Script::new();
    for k in 0..5 {
        s.trade("t1", T0 + HOUR_MS + k * 6 * DAY_MS);
    }
    s.clock(T0 + 25 * DAY_MS);
    assert!(of(&alerts_of(&s, Some(hand_model())), AlertKind::ChurnRisk).is_empty());
}

#[test]
fn churn_risk_with_the_bundled_model() {
    // An active daily trader who stops: the default model alerts once.
    let mut s = Script::new();
    s.deposit("t1", T0, 800.0, "approved");
    for d in 0..30 {
        s.login("t1", T0 + d * DAY_MS + HOUR_MS, true, "phone", "BR")
            .trade("t1", T0 + d * DAY_MS + 2 * HOUR_MS);
    }
    s.clock(T0 + 60 * DAY_MS);
    let a = alerts_of(&s, Some(Model::bundled()));
    assert_eq!(
        of(&a, AlertKind::ChurnRisk).len(),
        1,
        "{:#?}",
        of(&a, AlertKind::ChurnRisk)
    );
    // Near miss: the same trader still trading.
    let mut s = Script::new();
    s.deposit("t1", T0, 800.0, "approved");
    for d in 0..60 {
        s.login("t1", T0 + d * DAY_MS + HOUR_MS, true, "phone", "BR")
            .trade("t1", T0 + d * DAY_MS + 2 * HOUR_MS);
    }
    assert!(of(&alerts_of(&s, Some(Model::bundled())), AlertKind::ChurnRisk).is_empty());
}

fn deposit_rows(amounts: &[f64]) -> Vec<KpiRow> {
    amounts
        .iter()
        .enumerate()
        .map(|(d, &amount)| KpiRow {
            pipeline: "deposits".into(),
            window_start: T0 + d as i64 * DAY_MS + 12 * HOUR_MS,
            window_end: T0 + d as i64 * DAY_MS + 12 * HOUR_MS + MINUTE_MS,
            labels: vec![
                ("method".into(), "pix".into()),
                ("status".into(), "approved".into()),
                ("currency".into(), "BRL".into()),
            ],
            values: vec![("amount_total".into(), Some(amount))],
        })
        .collect()
}

fn kpi_alerts(amounts: &[f64]) -> Vec<Alert> {
    let mut engine = rules_engine(AlertRules::default());
    let mut a = Vec::new();
    engine.risk.on_kpi_rows(&deposit_rows(amounts), &mut a);
    for x in &mut a {
        x.emitted_at = Some(chrono_now());
    }
    validate(&a);
    a
}

#[test]
fn kpi_drop_against_the_trailing_baseline() {
    // Seven days at 200k, then 50k: judged when the next day starts.
    let mut days = vec![200_000.0; 7];
    days.extend([50_000.0, 200_000.0]);
    let a = kpi_alerts(&days);
    assert_eq!(
        stages(&a, AlertKind::KpiDrop),
        ["kpi_drop:deposits.amount_total"]
    );
    let k = a[0].kpi.as_ref().unwrap();
    assert_eq!((k.latest, k.baseline, k.drop), (50_000.0, 200_000.0, 0.75));
    assert!(a[0].trader_id.is_none());

    // Near miss: 120k is a 40% drop, under the 50% rule.
    let mut days = vec![200_000.0; 7];
    days.extend([120_000.0, 200_000.0]);
    assert!(kpi_alerts(&days).is_empty());
}

#[test]
fn alert_ids_are_deterministic_and_repeats_are_dropped() {
    let mut s = Script::new();
    s.signup("t1", T0)
        .deposit("t2", T0, 300.0, "failed")
        .clock(T0 + 11 * DAY_MS);
    let a = alerts_of(&s, None);
    let b = alerts_of(&s, None);
    let ids = |v: &[Alert]| v.iter().map(|x| x.alert_id).collect::<Vec<_>>();
    assert!(!a.is_empty());
    assert_eq!(ids(&a), ids(&b));
    let unique: std::collections::HashSet<_> = ids(&a).into_iter().collect();
    assert_eq!(unique.len(), a.len(), "one id per situation");

    // The same alert twice goes out once.
    let mut engine = rules_engine(AlertRules::default());
    let mut out = Vec::new();
    engine.risk.send(Some(0), a[0].clone(), &mut out);
    engine.risk.send(Some(0), a[0].clone(), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(engine.risk.duplicates.iter().sum::<u64>(), 1);
}

#[test]
fn replay_alerts_match_the_schema_and_repeat_with_the_same_ids() {
    let dir = scratch();
    let events = crate::common::simulated(dir.path(), 7, 5_000, 90);
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/churn-default.json");
    let run = |name: &str| {
        let out = dir.path().join(name);
        let r = crate::common::pulse_ok(&[
            "replay",
            "--events",
            events.to_str().unwrap(),
            "--model",
            model,
            "--alerts-out",
            out.to_str().unwrap(),
            "--json",
        ]);
        let report: Value = serde_json::from_slice(&r.stdout).unwrap();
        (out, report)
    };
    let (a, report) = run("a.jsonl");
    let (b, _) = run("b.jsonl");
    validate_file(&a);
    let text = std::fs::read_to_string(&a).unwrap();
    // Identical apart from the wall-clock emitted_at.
    let alerts = |t: &str| -> Vec<Value> {
        t.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("emitted_at");
                v
            })
            .collect()
    };
    assert_eq!(alerts(&text), alerts(&std::fs::read_to_string(&b).unwrap()));
    let kinds: std::collections::BTreeSet<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for k in [
        "churn_risk",
        "inactivity",
        "activation",
        "deposit_recovery",
        "security",
    ] {
        assert!(kinds.contains(k), "{k} missing from {kinds:?}");
    }
    assert_eq!(
        report["alerts"]["churn_risk"].as_u64().unwrap() as usize,
        text.matches("\"kind\":\"churn_risk\"").count()
    );
    assert!(
        report["alerts_per_1000_traders_per_day"]["inactivity"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

/// `pulse validate-alerts` (what `scripts/validate-alerts` runs): a file
/// of valid alerts passes; a broken line is reported with its file, line,
/// message and path, a line that is not JSON as such, and the exit status
/// tells them apart from an unreadable file.
#[test]
fn pulse_validate_alerts_reports_each_problem_with_its_line() {
    let dir = scratch();
    let mut s = Script::new();
    for (i, t) in ["t1", "t1", "t1", "t1", "t1", "t2"].iter().enumerate() {
        s.login(t, T0 + i as i64 * MINUTE_MS, false, "d9", "RU");
    }
    let alerts = alerts_of(&s, None);
    assert!(!alerts.is_empty());
    let good = dir.path().join("good.jsonl");
    let text: String = alerts
        .iter()
        .map(|a| serde_json::to_string(a).unwrap() + "\n")
        .collect();
    std::fs::write(&good, &text).unwrap();
    let ok = crate::common::pulse_ok(&["validate-alerts", good.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(
        said.contains(&format!(
            "validated {} alerts in 1 files, 0 errors",
            alerts.len()
        )),
        "{said}"
    );

    let mut broken = serde_json::to_value(&alerts[0]).unwrap();
    broken["severity"] = json!("panic");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!("{}\n\n{broken}\nnot json\n", text.lines().next().unwrap()),
    )
    .unwrap();
    let out = crate::common::pulse()
        .args([
            "validate-alerts",
            bad.to_str().unwrap(),
            good.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let bad_name = bad.display().to_string();
    assert!(
        said.contains(&format!("{bad_name}:3: ")) && said.contains("at $.severity"),
        "{said}"
    );
    assert!(said.contains(&format!("{bad_name}:4: not JSON")), "{said}");
    assert!(said.contains(", 2 errors"), "{said}");

    let missing = crate::common::pulse()
        .args(["validate-alerts", "/nonexistent/alerts.jsonl"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/alerts.jsonl"));
}

#[test]
fn the_example_config_holds_the_default_rules() {
    let c = veloc_pulse::config::Config::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pulse.toml"
    )))
    .unwrap();
    assert_eq!(c.alerts, veloc_pulse::alert::AlertsSection::default());
    let bad: veloc_pulse::config::Config = toml::from_str(
        "[alerts]\ntick = \"soon\"\n[alerts.vip_drop]\nshare = 2.0\n[alerts.security]\nburst_failures = 40\n",
    )
    .unwrap();
    let problems = bad.validate().unwrap_err();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("alerts.tick")));
}

#[test]
fn the_model_file_is_reloaded_without_a_restart_and_a_bad_file_is_refused() {
    use crate::common::{http_get, metric_sum, spawn_serving};
    let dir = scratch();
    let path = dir.path().join("model.json");
    let bundled = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/churn-default.json"
    ))
    .unwrap();
    std::fs::write(&path, &bundled).unwrap();
    let demo = spawn_serving(&[
        "demo",
        "--model",
        path.to_str().unwrap(),
        "--rate",
        "4000",
        "--traders",
        "2000",
        "--for",
        "120s",
    ]);
    let version = Model::bundled().version;
    let metrics = || http_get(&demo.addr, "/metrics").1;
    let wait_for = |what: &str, ok: &dyn Fn(&str) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let m = metrics();
            if ok(&m) {
                return m;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}:\n{m}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let info = |v: &str| format!("pulse_model_info{{name=\"churn-default\",version=\"{v}\"}} 1");
    wait_for("the first model", &|m| m.contains(&info(&version)));
    wait_for("scores", &|m| metric_sum(m, "pulse_churn_traders") > 0.0);

    // A truncated file: refused, counted, the old model stays.
    std::fs::write(&path, &bundled[..bundled.len() / 2]).unwrap();
    let m = wait_for("the reload error", &|m| {
        metric_sum(m, "pulse_model_reload_errors_total") >= 1.0
    });
    assert!(m.contains(&info(&version)), "the old model stays in use");

    // A new version: loaded without a restart.
    std::fs::write(&path, bundled.replacen(&version, "20990101-feedbeef", 1)).unwrap();
    let m = wait_for("the new model", &|m| m.contains(&info("20990101-feedbeef")));
    assert_eq!(metric_sum(&m, "pulse_model_reloads_total"), 1.0);
    assert!(!m.contains(&info(&version)), "one model at a time");
    // The status page follows within a tick.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, status) = http_get(&demo.addr, "/api/status");
        let status: Value = serde_json::from_str(&status).unwrap();
        if status["model"]["version"] == "20990101-feedbeef" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/api/status still shows {}",
            status["model"]["version"]
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
