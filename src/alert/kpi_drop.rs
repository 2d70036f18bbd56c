//! `kpi_drop`: a KPI's latest complete period falls far below the mean of
//! its trailing periods. Fed with the KPI rows of each emission cycle.

use std::collections::{HashMap, VecDeque};

use super::config::{AlertRules, KpiAgg, KpiDropRule};
use super::contract::{Alert, AlertKind, AlertReason, KpiRef, Severity};
use crate::event::time::format_rfc3339_ms;
use crate::pipeline::KpiRow;

/// Series kept per rule (one per value of its `by` label).
const MAX_SERIES: usize = 2_000;

/// The trailing periods of one KPI series (part of the checkpoint).
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Series {
    /// Start of the period being filled.
    period: Option<i64>,
    acc: f64,
    /// Accumulated weight of the period (see `KpiDropRule::weight`).
    weight: f64,
    /// Completed periods, oldest first.
    history: VecDeque<f64>,
}

/// The KPI drop rules with their trailing series.
#[derive(Debug, Default, Clone)]
pub struct KpiDrop {
    rules: Vec<(KpiDropRule, i64)>,
    series: Vec<HashMap<String, Series>>,
}

/// The series of every rule, by rule index (what a checkpoint keeps).
pub type KpiDropState = Vec<Vec<(String, Series)>>;

fn label<'a>(row: &'a KpiRow, name: &str) -> Option<&'a str> {
    row.labels
        .iter()
        .find(|(k, _)| &**k == name)
        .map(|(_, v)| v.as_str())
}

impl KpiDrop {
    pub fn new(rules: &AlertRules) -> Self {
        let rules: Vec<(KpiDropRule, i64)> = rules
            .section
            .kpi_drop
            .iter()
            .cloned()
            .zip(rules.kpi_period_ms.iter().copied())
            .collect();
        let series = rules.iter().map(|_| HashMap::new()).collect();
        Self { rules, series }
    }

    /// The same rules with no series yet (a scale-out merge judges the
    /// KPIs it exports with its own series, which move with it).
    pub fn fresh(&self) -> Self {
        Self {
            rules: self.rules.clone(),
            series: self.rules.iter().map(|_| HashMap::new()).collect(),
        }
    }

    /// The series of every rule, sorted (for a checkpoint).
    pub fn state(&self) -> KpiDropState {
        self.series
            .iter()
            .map(|m| {
                let mut v: Vec<(String, Series)> =
                    m.iter().map(|(k, s)| (k.clone(), s.clone())).collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v
            })
            .collect()
    }

    /// Restores the series saved by [`KpiDrop::state`] (rules beyond the
    /// current ones are ignored).
    pub fn restore(&mut self, state: KpiDropState) {
        for (m, saved) in self.series.iter_mut().zip(state) {
            *m = saved.into_iter().collect();
        }
    }

    /// Feeds the rows of one pipeline run (any order).
    pub fn on_rows(&mut self, rows: &[KpiRow], out: &mut Vec<Alert>) {
        for (i, (rule, period_ms)) in self.rules.iter().enumerate() {
            let mut mine: Vec<&KpiRow> = rows
                .iter()
                .filter(|r| *r.pipeline == *rule.pipeline)
                .filter(|r| rule.r#where.iter().all(|(k, v)| label(r, k) == Some(v)))
                .collect();
            mine.sort_by_key(|r| r.window_start);
            for row in mine {
                let value_of = |name: &str| {
                    row.values
                        .iter()
                        .find(|(k, _)| **k == *name)
                        .and_then(|(_, v)| *v)
                };
                let Some(value) = value_of(&rule.value) else {
                    continue;
                };
                let weight = rule
                    .weight
                    .as_deref()
                    .map_or(0.0, |w| value_of(w).unwrap_or(0.0));
                let key = rule
                    .by
                    .as_deref()
                    .and_then(|b| label(row, b))
                    .unwrap_or("")
                    .to_string();
                let series = &mut self.series[i];
                if !series.contains_key(&key) && series.len() >= MAX_SERIES {
                    continue;
                }
                let s = series.entry(key.clone()).or_default();
                let period = row.window_start.div_euclid(*period_ms) * period_ms;
                match s.period {
                    Some(p) if period < p => continue, // an older period: already judged
                    Some(p) if period > p => {
                        close(rule, &key, s, p, *period_ms, out);
                        // Periods with no rows at all count as zero for sums.
                        let mut q = p + period_ms;
                        while q < period && rule.agg == KpiAgg::Sum {
                            (s.acc, s.weight) = (0.0, 0.0);
                            close(rule, &key, s, q, *period_ms, out);
                            q += period_ms;
                        }
                        s.period = Some(period);
                        (s.acc, s.weight) = (0.0, 0.0);
                    }
                    Some(_) => {}
                    None => s.period = Some(period),
                }
                match rule.agg {
                    KpiAgg::Sum => {
                        s.acc += value;
                        s.weight += weight;
                    }
                    KpiAgg::Last => (s.acc, s.weight) = (value, weight),
                }
            }
        }
    }
}

/// Judges the completed period `p` of `s` and adds it to the history.
fn close(
    rule: &KpiDropRule,
    key: &str,
    s: &mut Series,
    p: i64,
    period_ms: i64,
    out: &mut Vec<Alert>,
) {
    let latest = s.acc;
    if rule.weight.is_some() && s.weight < rule.min_weight {
        return;
    }
    if s.history.len() == rule.baseline_periods {
        let baseline = s.history.iter().sum::<f64>() / s.history.len() as f64;
        if baseline >= rule.min_baseline && baseline > 0.0 && latest < (1.0 - rule.drop) * baseline
        {
            out.push(kpi_alert(rule, key, latest, baseline, p, period_ms));
        }
        s.history.pop_front();
    }
    s.history.push_back(latest);
}

fn kpi_alert(
    rule: &KpiDropRule,
    key: &str,
    latest: f64,
    baseline: f64,
    p: i64,
    period_ms: i64,
) -> Alert {
    let mut labels = serde_json::Map::new();
    for (k, v) in &rule.r#where {
        labels.insert(k.clone(), v.clone().into());
    }
    if let Some(b) = &rule.by {
        labels.insert(b.clone(), key.into());
    }
    let subject = format!(
        "{}.{}{}",
        rule.pipeline,
        rule.value,
        serde_json::Value::from(labels.clone())
    );
    let stage = format!("kpi_drop:{}.{}", rule.pipeline, rule.value);
    let drop = 1.0 - latest / baseline;
    let round = |x: f64| (x * 1e4).round() / 1e4;
    let end = p + period_ms;
    let severity = if drop >= 0.8 {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let mut a = Alert::new(AlertKind::KpiDrop, &subject, stage.into(), severity, end, p);
    a.reasons.push(AlertReason {
        feature: rule.value.clone().into(),
        value: round(latest).into(),
        baseline: Some(round(baseline).into()),
        contribution: None,
    });
    a.playbook = Some(super::rules::playbook(AlertKind::KpiDrop, ""));
    a.kpi = Some(Box::new(KpiRef {
        pipeline: rule.pipeline.clone(),
        value: rule.value.clone(),
        labels,
        latest: round(latest),
        baseline: round(baseline),
        drop: round(drop),
        window_start: format_rfc3339_ms(p),
    }));
    a
}
