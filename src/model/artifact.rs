//! The model artifact: a versioned, self-describing JSON file holding the
//! feature list and scaling, the estimator, the calibration, the band
//! thresholds, a summary of the training data and validation metrics.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::forest::{self, Tree};
use super::logistic::{Calibration, Logistic};
use crate::features::{FeatureSpace, SegmentThresholds};

/// The `format` of every artifact.
pub const FORMAT: &str = "veloc-pulse-churn-model";
/// The default model, trained by the command in the README.
const BUNDLED: &str = include_str!("../../models/churn-default.json");
/// Version of the artifact layout this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// A churn-risk band of the alert contract.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Band {
    Low,
    Medium,
    High,
    Critical,
}

impl Band {
    pub const ALL: [Band; 4] = [Band::Low, Band::Medium, Band::High, Band::Critical];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Lower bounds of the calibrated churn probability of each band above low.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bands {
    pub medium: f64,
    pub high: f64,
    pub critical: f64,
}

impl Default for Bands {
    fn default() -> Self {
        Self {
            medium: 0.3,
            high: 0.6,
            critical: 0.85,
        }
    }
}

impl Bands {
    pub fn band(&self, p: f64) -> Band {
        if p >= self.critical {
            Band::Critical
        } else if p >= self.high {
            Band::High
        } else if p >= self.medium {
            Band::Medium
        } else {
            Band::Low
        }
    }

    pub fn lower_bound(&self, b: Band) -> f64 {
        match b {
            Band::Low => 0.0,
            Band::Medium => self.medium,
            Band::High => self.high,
            Band::Critical => self.critical,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let ok = 0.0 < self.medium
            && self.medium < self.high
            && self.high < self.critical
            && self.critical < 1.0;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "bands must satisfy 0 < medium < high < critical < 1, got {} / {} / {}",
                self.medium, self.high, self.critical
            ))
        }
    }
}

/// A feature of the model with its training mean and spread (scaling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureInfo {
    pub name: String,
    pub mean: f64,
    pub std: f64,
}

/// Standardises one row with the features' training mean and spread.
#[inline]
pub fn standardise_row(row: &mut [f64], features: &[FeatureInfo]) {
    for (v, f) in row.iter_mut().zip(features) {
        *v = (*v - f.mean) / f.std;
    }
}

/// The fitted estimator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Estimator {
    /// Logistic regression on standardised features.
    Logistic(Logistic),
    /// Bagged decision trees on standardised features.
    Forest { trees: Vec<Tree> },
    /// The mean of the two: the forest's interactions with the logistic
    /// regression's smooth ordering.
    Blend {
        logistic: Logistic,
        trees: Vec<Tree>,
    },
}

impl Estimator {
    /// Uncalibrated churn score of standardised features.
    #[inline]
    pub fn predict(&self, z: &[f64]) -> f64 {
        match self {
            Estimator::Logistic(l) => l.predict(z),
            Estimator::Forest { trees } => forest::predict(trees, z),
            Estimator::Blend { logistic, trees } => {
                0.5 * (logistic.predict(z) + forest::predict(trees, z))
            }
        }
    }

    /// [`Estimator::predict`] of each row of `rows` (`width` features each)
    /// into `out`, bit for bit; the forest is walked tree by tree over the
    /// rows (see [`forest::predict_rows`]).
    pub fn predict_rows(&self, rows: &[f64], width: usize, out: &mut Vec<f64>) {
        let zs = rows.chunks_exact(width.max(1));
        match self {
            Estimator::Logistic(l) => {
                out.clear();
                out.extend(zs.map(|z| l.predict(z)));
            }
            Estimator::Forest { trees } => forest::predict_rows(trees, rows, width, out),
            Estimator::Blend { logistic, trees } => {
                forest::predict_rows(trees, rows, width, out);
                for (p, z) in out.iter_mut().zip(zs) {
                    *p = 0.5 * (logistic.predict(z) + *p);
                }
            }
        }
    }

    /// Per feature, how much it moved the score of `z` (probability units;
    /// the logistic part converts log-odds with the slope at its score).
    pub fn contributions(&self, z: &[f64]) -> Vec<f64> {
        let mut contrib = vec![0.0; z.len()];
        let linear = |l: &Logistic, scale: f64, contrib: &mut [f64]| {
            let p = l.predict(z);
            let slope = scale * p * (1.0 - p);
            for (c, (w, v)) in contrib.iter_mut().zip(l.weights.iter().zip(z)) {
                *c += slope * w * v;
            }
        };
        let trees_part = |trees: &[Tree], scale: f64, contrib: &mut [f64]| {
            let mut part = vec![0.0; z.len()];
            for t in trees {
                t.explain(z, &mut part);
            }
            let k = scale / trees.len().max(1) as f64;
            for (c, p) in contrib.iter_mut().zip(part) {
                *c += k * p;
            }
        };
        match self {
            Estimator::Logistic(l) => linear(l, 1.0, &mut contrib),
            Estimator::Forest { trees } => trees_part(trees, 1.0, &mut contrib),
            Estimator::Blend { logistic, trees } => {
                linear(logistic, 0.5, &mut contrib);
                trees_part(trees, 0.5, &mut contrib);
            }
        }
        contrib
    }

    /// The trees, if any (for validation).
    fn trees(&self) -> &[Tree] {
        match self {
            Estimator::Logistic(_) => &[],
            Estimator::Forest { trees } | Estimator::Blend { trees, .. } => trees,
        }
    }

    fn logistic(&self) -> Option<&Logistic> {
        match self {
            Estimator::Logistic(l) | Estimator::Blend { logistic: l, .. } => Some(l),
            Estimator::Forest { .. } => None,
        }
    }
}

/// What the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSummary {
    pub events_file: String,
    pub events: usize,
    pub first_event: String,
    pub last_event: String,
    pub training_cutoffs: Vec<String>,
    pub validation_cutoff: String,
    pub horizon_days: f64,
    pub active_within_days: f64,
    pub training_examples: usize,
    pub training_churn_rate: f64,
    pub validation_examples: usize,
    pub validation_churn_rate: f64,
}

/// Metrics of one candidate on the validation snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateMetrics {
    pub name: String,
    pub roc_auc: f64,
    pub pr_auc: f64,
}

/// Validation of the model on a snapshot later than its training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    pub chosen: String,
    pub candidates: Vec<CandidateMetrics>,
    /// Of the calibrated probabilities (the calibration was fitted on the
    /// same snapshot, so this is optimistic).
    pub brier: f64,
}

/// A churn model as stored in `models/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub format: String,
    pub format_version: u32,
    pub name: String,
    /// Derived from the content, so the same training gives the same version.
    pub version: String,
    pub horizon_days: f64,
    pub channels: Vec<String>,
    pub segment_thresholds: SegmentThresholds,
    pub features: Vec<FeatureInfo>,
    pub estimator: Estimator,
    pub calibration: Calibration,
    pub bands: Bands,
    pub training: TrainingSummary,
    pub validation: Validation,
}

/// One reason behind a score: how much a feature moved it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason<'a> {
    /// The feature's name in the model, and its position there.
    pub feature: &'a str,
    #[serde(skip)]
    pub index: usize,
    pub value: f64,
    /// Training mean of the feature.
    pub baseline: f64,
    /// How much the feature moved the probability from the base rate.
    pub contribution: f64,
}

impl Model {
    /// Reads and validates an artifact.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// The model of `models/churn-default.json`, built into the binary so
    /// that `pulse demo` scores from any folder.
    #[expect(
        clippy::expect_used,
        reason = "the bundled model is built into the binary and loaded by the model tests"
    )]
    pub fn bundled() -> Self {
        Self::from_json(BUNDLED, Path::new("models/churn-default.json"))
            .expect("the bundled model is valid (tested)")
    }

    /// Parses and validates artifact text; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, ModelError> {
        let model: Model = serde_json::from_str(text).map_err(|e| ModelError::Artifact {
            path: path.to_owned(),
            problems: vec![format!("line {}, column {}: {e}", e.line(), e.column())],
        })?;
        model.validate().map_err(|problems| ModelError::Artifact {
            path: path.to_owned(),
            problems,
        })?;
        Ok(model)
    }

    /// Every problem of the artifact at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.format != FORMAT {
            problems.push(format!("format is {:?}, expected {FORMAT:?}", self.format));
        }
        if self.format_version != FORMAT_VERSION {
            problems.push(format!(
                "format_version is {}, this build reads {FORMAT_VERSION}",
                self.format_version
            ));
        }
        let names = self.space().names();
        let have: Vec<&str> = self.features.iter().map(|f| f.name.as_str()).collect();
        if names.iter().map(String::as_str).ne(have.iter().copied()) {
            problems.push(format!(
                "features are [{}]; this build computes [{}]",
                have.join(", "),
                names.join(", ")
            ));
        }
        for f in &self.features {
            if !(f.mean.is_finite() && f.std.is_finite() && f.std > 0.0) {
                problems.push(format!(
                    "feature {}: mean {} / std {} (std must be finite and > 0)",
                    f.name, f.mean, f.std
                ));
            }
        }
        let width = self.features.len();
        if let Some(l) = self.estimator.logistic()
            && l.weights.len() != width
        {
            problems.push(format!(
                "logistic: {} weights for {width} features",
                l.weights.len()
            ));
        }
        let trees = self.estimator.trees();
        if trees.is_empty() && !matches!(self.estimator, Estimator::Logistic(_)) {
            problems.push("forest: no trees".into());
        }
        for (i, t) in trees.iter().enumerate() {
            if let Err(e) = t.validate(width) {
                problems.push(format!("forest tree {i}: {e}"));
            }
        }
        if let Err(e) = self.bands.validate() {
            problems.push(e);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Writes the artifact as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        #[expect(
            clippy::expect_used,
            reason = "an artifact is plain data: serialising it cannot fail"
        )]
        let text = serde_json::to_string_pretty(self).expect("a model serialises");
        std::fs::write(path, text + "\n").map_err(|source| ModelError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// The feature space of this model (channels not yet resolved).
    pub fn space(&self) -> FeatureSpace {
        FeatureSpace::new(self.channels.clone())
    }

    /// Standardises `raw` in place.
    pub fn standardise(&self, raw: &mut [f64]) {
        standardise_row(raw, &self.features);
    }

    /// Calibrated churn probability of raw (unscaled) features; `raw` is
    /// standardised in place.
    #[inline]
    pub fn score(&self, raw: &mut [f64]) -> f64 {
        self.standardise(raw);
        self.calibration.apply(self.estimator.predict(raw))
    }

    /// The `n` features that pushed the score of `raw` up the most.
    pub fn reasons(&self, raw: &[f64], n: usize) -> Vec<Reason<'_>> {
        let mut z = raw.to_vec();
        self.standardise(&mut z);
        let contrib = self.estimator.contributions(&z);
        let mut idx: Vec<usize> = (0..contrib.len()).filter(|&i| contrib[i] > 0.0).collect();
        idx.sort_by(|&a, &b| contrib[b].total_cmp(&contrib[a]).then(a.cmp(&b)));
        idx.into_iter()
            .take(n)
            .map(|i| Reason {
                feature: &self.features[i].name,
                index: i,
                value: round6(raw[i]),
                baseline: round6(self.features[i].mean),
                contribution: round6(contrib[i]),
            })
            .collect()
    }
}

/// Six decimals: enough for any feature, and stable text in alerts.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
