//! `pulse evaluate`: the model against realised churn at a time it never
//! saw, next to two baselines computed in the same run.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ModelError;
use super::artifact::{Band, Model};
use super::curves::{Curves, Importance, curves, lift_by_decile, permutation_importance};
use super::dataset::{History, Population, Snapshot, snapshots};
use super::logistic::Logistic;
use super::metrics::{CalibrationRow, TOP, deciles, pr_auc, roc_auc, row, top_fraction};
use super::train::{scaling, standardise};
use crate::event::time::{DAY_MS, format_rfc3339_ms};
use crate::features::{DAYS_SINCE_ACTIVITY, FeatureSpace, NUMERIC};

/// Ranking quality of one scorer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ranking {
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub precision_at: BTreeMap<String, f64>,
    pub recall_at: BTreeMap<String, f64>,
}

fn ranking(scores: &[f64], labels: &[bool]) -> Ranking {
    let mut precision_at = BTreeMap::new();
    let mut recall_at = BTreeMap::new();
    for (key, fraction) in TOP {
        let (p, r) = top_fraction(scores, labels, fraction);
        precision_at.insert(key.to_string(), p);
        recall_at.insert(key.to_string(), r);
    }
    Ranking {
        roc_auc: roc_auc(scores, labels).unwrap_or(0.5),
        pr_auc: pr_auc(scores, labels).unwrap_or(0.0),
        precision_at,
        recall_at,
    }
}

/// The RFM baseline with where it was fitted.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RfmBaseline {
    #[serde(flatten)]
    pub ranking: Ranking,
    /// Snapshot the baseline was fitted on (one horizon before `at`, so
    /// its labels end where the evaluation starts).
    pub fitted_at: String,
    pub fitted_examples: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Baselines {
    /// Days since the latest trade or approved deposit.
    pub recency: Ranking,
    /// Logistic regression on recency, frequency and monetary value.
    pub rfm_logistic: RfmBaseline,
}

/// What `pulse evaluate` prints (`--json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub model: String,
    pub model_version: String,
    pub estimator: String,
    pub at: String,
    pub horizon_days: f64,
    pub examples: usize,
    pub churn_rate: f64,
    #[serde(flatten)]
    pub ranking: Ranking,
    pub deciles: Vec<CalibrationRow>,
    pub bands: Vec<CalibrationRow>,
    pub baselines: Baselines,
    /// Lift per score decile, highest scores first.
    pub lift: Vec<f64>,
    /// Permutation importance on the evaluation snapshot, largest first.
    pub importance: Vec<Importance>,
    /// ROC, PR and gains curves of the model and both baselines (for the
    /// HTML report; not in the JSON).
    #[serde(skip)]
    pub curves: ScorerCurves,
}

/// The curves of each scorer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScorerCurves {
    pub model: Curves,
    pub recency: Curves,
    pub rfm_logistic: Curves,
}

/// Settings of an evaluation.
#[derive(Debug, Clone, Copy)]
pub struct EvalConfig {
    pub at: i64,
    pub horizon_ms: i64,
    pub active_within_ms: i64,
}

/// The RFM baseline's rows: recency, frequency (trades + deposits over
/// 90 days) and monetary value (log deposit amount over 90 days).
fn rfm_rows(s: &Snapshot) -> Vec<Vec<f64>> {
    #[expect(
        clippy::expect_used,
        reason = "the RFM columns are names of NUMERIC (constants)"
    )]
    let col = |name: &str| NUMERIC.iter().position(|n| *n == name).expect("feature");
    let (trades, deposits, amount) = (
        col("trades_90d"),
        col("deposits_90d"),
        col("log_deposit_amount_90d"),
    );
    (0..s.len())
        .map(|i| {
            let row = s.row(i);
            vec![
                row[DAYS_SINCE_ACTIVITY],
                row[trades] + row[deposits],
                row[amount],
            ]
        })
        .collect()
}

/// Scores every example of `snap` with `model`.
pub fn model_scores(model: &Model, snap: &Snapshot) -> Vec<f64> {
    let mut buf = Vec::with_capacity(snap.width);
    (0..snap.len())
        .map(|i| {
            buf.clear();
            buf.extend_from_slice(snap.row(i));
            model.score(&mut buf)
        })
        .collect()
}

/// The model's feature space, resolved against the history's symbols.
pub fn space_for(model: &Model, history: &History) -> FeatureSpace {
    let mut space = model.space();
    space.resolve(&mut history.ingest.decoder.symbols.clone());
    space
}

/// Evaluates `model` at `cfg.at` on `history`.
pub fn evaluate(history: &History, model: &Model, cfg: EvalConfig) -> Result<Report, ModelError> {
    history.check_horizon(cfg.at, cfg.horizon_ms)?;
    let space = space_for(model, history);
    let population = Population::ActiveWithin(cfg.active_within_ms);
    let fit_at = cfg.at - cfg.horizon_ms;
    let mut snaps = snapshots(
        history,
        &space,
        &[fit_at, cfg.at],
        Some(cfg.horizon_ms),
        population,
    );
    #[expect(
        clippy::expect_used,
        reason = "snapshots returns one snapshot per instant asked (two here)"
    )]
    let snap = snaps.pop().expect("two snapshots");
    #[expect(
        clippy::expect_used,
        reason = "snapshots returns one snapshot per instant asked (two here)"
    )]
    let fit_snap = snaps.pop().expect("two snapshots");
    let labels = &snap.churned;
    if labels.iter().all(|&l| l) || labels.iter().all(|&l| !l) {
        return Err(ModelError::Training(format!(
            "at {}: {} examples, all with the same outcome; nothing to evaluate",
            format_rfc3339_ms(cfg.at),
            labels.len()
        )));
    }
    let scores = model_scores(model, &snap);
    let recency: Vec<f64> = (0..snap.len())
        .map(|i| snap.row(i)[DAYS_SINCE_ACTIVITY])
        .collect();

    // RFM baseline: fitted one horizon earlier when that snapshot has both
    // outcomes, else on the evaluation snapshot itself (flattering it).
    let usable = fit_snap.len() >= 50
        && fit_snap.churned.iter().any(|&l| l)
        && fit_snap.churned.iter().any(|&l| !l);
    let base = if usable { &fit_snap } else { &snap };
    let names = ["recency", "frequency", "monetary"].map(String::from);
    let mut fx = rfm_rows(base);
    let scale = scaling(&fx, &names);
    standardise(&mut fx, &scale);
    let rfm_model = Logistic::fit(&fx, &base.churned, 1.0)?;
    let mut ex = rfm_rows(&snap);
    standardise(&mut ex, &scale);
    let rfm_scores: Vec<f64> = ex.iter().map(|r| rfm_model.predict(r)).collect();

    let bands = Band::ALL
        .iter()
        .map(|&b| {
            let idx: Vec<usize> = (0..scores.len())
                .filter(|&i| model.bands.band(scores[i]) == b)
                .collect();
            row(b.as_str().to_string(), &idx, &scores, labels)
        })
        .collect();
    let names: Vec<String> = model.features.iter().map(|f| f.name.clone()).collect();
    let rows: Vec<Vec<f64>> = (0..snap.len()).map(|i| snap.row(i).to_vec()).collect();
    let importance = permutation_importance(&names, &rows, labels, &|r: &[f64]| {
        model.score(&mut r.to_vec())
    });
    let scorer_curves = ScorerCurves {
        model: curves(&scores, labels),
        recency: curves(&recency, labels),
        rfm_logistic: curves(&rfm_scores, labels),
    };
    Ok(Report {
        model: model.name.clone(),
        model_version: model.version.clone(),
        estimator: model.validation.chosen.clone(),
        at: format_rfc3339_ms(cfg.at),
        horizon_days: cfg.horizon_ms as f64 / DAY_MS as f64,
        examples: snap.len(),
        churn_rate: labels.iter().filter(|&&l| l).count() as f64 / snap.len() as f64,
        ranking: ranking(&scores, labels),
        deciles: deciles(&scores, labels),
        bands,
        baselines: Baselines {
            recency: ranking(&recency, labels),
            rfm_logistic: RfmBaseline {
                ranking: ranking(&rfm_scores, labels),
                fitted_at: format_rfc3339_ms(base.at),
                fitted_examples: base.len(),
            },
        },
        lift: lift_by_decile(&scores, labels),
        importance,
        curves: scorer_curves,
    })
}

impl Report {
    /// The report as text for a terminal.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "model {} {} ({}) at {}, horizon {} days: {} traders, {:.1}% churned\n\n",
            self.model,
            self.model_version,
            self.estimator,
            self.at,
            self.horizon_days,
            self.examples,
            100.0 * self.churn_rate
        );
        s += "                  ROC AUC  PR AUC  P@5%   P@10%  P@20%  R@5%   R@10%  R@20%\n";
        let line = |name: &str, r: &Ranking| {
            let p = |k: &str| r.precision_at[k];
            let rc = |k: &str| r.recall_at[k];
            format!(
                "{name:<17} {:>7.4}  {:>6.4}  {:.3}  {:.3}  {:.3}  {:.3}  {:.3}  {:.3}\n",
                r.roc_auc,
                r.pr_auc,
                p("top_5"),
                p("top_10"),
                p("top_20"),
                rc("top_5"),
                rc("top_10"),
                rc("top_20")
            )
        };
        s += &line("model", &self.ranking);
        s += &line("recency baseline", &self.baselines.recency);
        s += &line("RFM logistic", &self.baselines.rfm_logistic.ranking);
        s += &format!(
            "(RFM logistic fitted at {} on {} traders)\n\ncalibration by decile (1 = lowest scores)\n  decile  traders  predicted  realised\n",
            self.baselines.rfm_logistic.fitted_at, self.baselines.rfm_logistic.fitted_examples
        );
        let table = |rows: &[CalibrationRow]| {
            rows.iter()
                .map(|r| {
                    format!(
                        "  {:<8} {:>7}  {:>9.3}  {:>8.3}\n",
                        r.group, r.traders, r.predicted, r.realised
                    )
                })
                .collect::<String>()
        };
        s += &table(&self.deciles);
        s += "\ncalibration by band\n  band     traders  predicted  realised\n";
        s += &table(&self.bands);
        s
    }
}
