//! `pulse train`: snapshots at the cutoffs, a logistic regression and a
//! forest fitted on all but the last cutoff, the better of the two on the
//! last (later in time, never trained on), calibrated there.

use super::ModelError;
use super::artifact::{
    Bands, CandidateMetrics, Estimator, FORMAT, FORMAT_VERSION, FeatureInfo, Model,
    TrainingSummary, Validation, standardise_row,
};
use super::dataset::{History, Population, Snapshot, snapshots};
use super::forest::{self, ForestParams};
use super::logistic::{Calibration, Logistic};
use super::metrics::{brier, pr_auc, roc_auc};
use crate::event::stable_hash;
use crate::event::time::{DAY_MS, format_rfc3339_ms};

/// Settings of one training run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub name: String,
    /// Snapshot times; the last one validates. With a single cutoff, a
    /// training cutoff one horizon earlier is added.
    pub cutoffs: Vec<i64>,
    pub horizon_ms: i64,
    pub active_within_ms: i64,
    pub bands: Bands,
    pub forest: ForestParams,
    /// L2 penalty of the logistic regression.
    pub alpha: f64,
    /// At most this many acquisition channels become features.
    pub max_channels: usize,
}

/// Acquisition channels that become features by default.
pub const MAX_CHANNELS: usize = 12;

impl TrainConfig {
    pub fn new(name: &str, cutoffs: Vec<i64>, horizon_ms: i64, active_within_ms: i64) -> Self {
        Self {
            name: name.to_string(),
            cutoffs,
            horizon_ms,
            active_within_ms,
            bands: Bands::default(),
            forest: ForestParams::default(),
            alpha: 1.0,
            max_channels: MAX_CHANNELS,
        }
    }
}

/// Rows of the snapshots as vectors, with labels.
fn rows(snaps: &[Snapshot]) -> (Vec<Vec<f64>>, Vec<bool>) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for s in snaps {
        for i in 0..s.len() {
            x.push(s.row(i).to_vec());
            y.push(s.churned[i]);
        }
    }
    (x, y)
}

/// Mean and spread of each column (a constant column gets spread 1, so a
/// history of deposits only or trades only still trains).
pub fn scaling(x: &[Vec<f64>], names: &[String]) -> Vec<FeatureInfo> {
    let n = x.len().max(1) as f64;
    names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let mean = x.iter().map(|r| r[j]).sum::<f64>() / n;
            let var = x.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n;
            let std = var.sqrt();
            FeatureInfo {
                name: name.clone(),
                mean,
                std: if std > 1e-9 { std } else { 1.0 },
            }
        })
        .collect()
}

/// Standardises every row with `features`.
pub fn standardise(x: &mut [Vec<f64>], features: &[FeatureInfo]) {
    for r in x {
        standardise_row(r, features);
    }
}

fn churn_rate(y: &[bool]) -> f64 {
    y.iter().filter(|&&l| l).count() as f64 / y.len().max(1) as f64
}

/// Trains a model on `history`.
pub fn train(history: &History, cfg: &TrainConfig) -> Result<Model, ModelError> {
    let mut cutoffs = cfg.cutoffs.clone();
    cutoffs.sort_unstable();
    cutoffs.dedup();
    if cutoffs.len() == 1 {
        cutoffs.insert(0, cutoffs[0] - cfg.horizon_ms);
    }
    for &c in &cutoffs {
        history.check_horizon(c, cfg.horizon_ms)?;
    }
    let channels = history.channels(cfg.max_channels);
    let mut space = crate::features::FeatureSpace::new(channels.clone());
    space.resolve(&mut history.ingest.decoder.symbols.clone());
    let snaps = snapshots(
        history,
        &space,
        &cutoffs,
        Some(cfg.horizon_ms),
        Population::ActiveWithin(cfg.active_within_ms),
    );
    #[expect(
        clippy::expect_used,
        reason = "the configuration is validated to hold at least two cutoffs"
    )]
    let (val_snap, train_snaps) = snaps.split_last().expect("two cutoffs");
    let (mut x, y) = rows(train_snaps);
    let (mut vx, vy) = rows(std::slice::from_ref(val_snap));
    for (what, ys) in [("training", &y), ("validation", &vy)] {
        if ys.len() < 50 || ys.iter().all(|&l| l) || ys.iter().all(|&l| !l) {
            return Err(ModelError::Training(format!(
                "the {what} snapshots hold {} examples ({} churned): at least 50 with both \
                 churners and stayers are needed; pick other cutoffs or a wider --active-within",
                ys.len(),
                ys.iter().filter(|&&l| l).count()
            )));
        }
    }
    let features = scaling(&x, &space.names());
    standardise(&mut x, &features);
    standardise(&mut vx, &features);

    let logistic = Logistic::fit(&x, &y, cfg.alpha)?;
    let trees = forest::fit(&x, &y, cfg.forest)?;
    let candidates = [
        ("logistic", Estimator::Logistic(logistic.clone())),
        (
            "forest",
            Estimator::Forest {
                trees: trees.clone(),
            },
        ),
        ("blend", Estimator::Blend { logistic, trees }),
    ];
    let mut metrics = Vec::new();
    let mut best: Option<(usize, f64)> = None;
    for (i, (name, est)) in candidates.iter().enumerate() {
        let scores: Vec<f64> = vx.iter().map(|r| est.predict(r)).collect();
        let roc = roc_auc(&scores, &vy).unwrap_or(0.5);
        let pr = pr_auc(&scores, &vy).unwrap_or(0.0);
        metrics.push(CandidateMetrics {
            name: name.to_string(),
            roc_auc: roc,
            pr_auc: pr,
        });
        // Both the ordering overall and at the top count.
        if best.is_none_or(|(_, b)| roc + pr > b) {
            best = Some((i, roc + pr));
        }
    }
    #[expect(
        clippy::expect_used,
        reason = "the candidate list is a non-empty constant"
    )]
    let (chosen, _) = best.expect("two candidates");
    #[expect(
        clippy::expect_used,
        reason = "the chosen index comes from the same list"
    )]
    let (name, estimator) = candidates
        .into_iter()
        .nth(chosen)
        .expect("chosen candidate");
    let val_raw: Vec<f64> = vx.iter().map(|r| estimator.predict(r)).collect();
    let calibration = Calibration::fit(&val_raw, &vy)?;
    let calibrated: Vec<f64> = val_raw.iter().map(|&p| calibration.apply(p)).collect();

    let days = |ms: i64| ms as f64 / DAY_MS as f64;
    let mut model = Model {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        name: cfg.name.clone(),
        version: String::new(),
        horizon_days: days(cfg.horizon_ms),
        channels,
        segment_thresholds: crate::features::SegmentThresholds::default(),
        features,
        estimator,
        calibration,
        bands: cfg.bands,
        training: TrainingSummary {
            events_file: history
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            events: history.events.len(),
            first_event: format_rfc3339_ms(history.first_ts()),
            last_event: format_rfc3339_ms(history.last_ts()),
            training_cutoffs: train_snaps
                .iter()
                .map(|s| format_rfc3339_ms(s.at))
                .collect(),
            validation_cutoff: format_rfc3339_ms(val_snap.at),
            horizon_days: days(cfg.horizon_ms),
            active_within_days: days(cfg.active_within_ms),
            training_examples: y.len(),
            training_churn_rate: churn_rate(&y),
            validation_examples: vy.len(),
            validation_churn_rate: churn_rate(&vy),
        },
        validation: Validation {
            chosen: name.to_string(),
            candidates: metrics,
            brier: brier(&calibrated, &vy),
        },
    };
    // The version names the content: the same data and settings give the
    // same artifact, byte for byte.
    #[expect(
        clippy::expect_used,
        reason = "a model is plain data: serialising it cannot fail"
    )]
    let body = serde_json::to_vec(&model).expect("a model serialises");
    let day = &model.training.validation_cutoff[..10];
    model.version = format!(
        "{}-{:08x}",
        day.replace('-', ""),
        stable_hash(&[&body]) >> 32
    );
    Ok(model)
}
