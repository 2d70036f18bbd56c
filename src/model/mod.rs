//! The churn model: offline examples from event history, training with
//! linfa (a logistic regression and a bagged tree forest, picked on a later
//! validation snapshot and calibrated), honest evaluation against
//! baselines, the versioned artifact the live service loads, and scoring.

mod artifact;
mod card;
mod curves;
mod dataset;
mod evaluate;
mod export;
mod forest;
mod logistic;
mod metrics;
mod online;
mod report;
mod score;
mod train;

use std::path::PathBuf;

pub use artifact::{Band, Bands, Estimator, FeatureInfo, Model, Reason, round6};
pub use card::model_card;
pub use curves::{Curves, Importance};
pub use dataset::{History, Population, Snapshot, is_activity, snapshots};
pub use evaluate::{EvalConfig, Report, ScorerCurves, evaluate, model_scores, space_for};
pub use export::{ExportConfig, ExportError, ExportFormat, feature_table, write_table};
pub use forest::ForestParams;
pub use logistic::{Calibration, Logistic};
pub use metrics::{pr_auc, roc_auc};
pub use online::{OnlineScorer, Scored};
pub use report::{ReportError, write_report};
pub use score::write_scores;
pub use train::{MAX_CHANNELS, TrainConfig, train};

/// Failures of training, evaluation, scoring and model loading.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no valid events", .0.display())]
    NoEvents(PathBuf),
    #[error(
        "cutoff {cutoff}: its horizon runs to {horizon_end}, past the end of the events \
         ({data_end}); pick a cutoff at least one horizon before the end"
    )]
    HorizonPastData {
        cutoff: String,
        horizon_end: String,
        data_end: String,
    },
    #[error("cutoff {cutoff} is not after the first event ({data_start})")]
    CutoffBeforeData { cutoff: String, data_start: String },
    #[error("training: {0}")]
    Training(String),
    #[error("{}: not a usable model:\n{}", path.display(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Artifact {
        path: PathBuf,
        problems: Vec<String>,
    },
}
