//! Churn scoring and alert outputs, as the commands that run the engine
//! set them up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use veloc_pulse::alert::AlertRules;
use veloc_pulse::http::{AppState, ModelStatus};
use veloc_pulse::model::{Band, Model};
use veloc_pulse::pipeline::{Engine, NdjsonFile};

/// Flags of the commands that score traders and send alerts.
#[derive(clap::Args, Debug)]
pub struct RiskArgs {
    /// Churn model artifact (`pulse train`); without one there is no
    /// churn scoring (`pulse demo` uses the bundled default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Write every alert here as JSONL (one alert per line).
    #[arg(long)]
    pub alerts_out: Option<PathBuf>,
}

/// Which model the engine scores with.
pub enum ModelSource {
    None,
    File {
        path: PathBuf,
        /// Check the file for a new version this often.
        reload: Option<Duration>,
    },
    /// `models/churn-default.json`, built into the binary.
    Bundled,
}

/// Sets the engine's alert rules, model and alert file.
pub fn attach_risk(
    engine: &mut Engine,
    rules: AlertRules,
    model: ModelSource,
    alerts_out: Option<&Path>,
) -> anyhow::Result<()> {
    engine.risk.set_rules(rules);
    match model {
        ModelSource::None => {}
        ModelSource::File { path, reload } => engine
            .risk
            .load_model(path.clone(), &mut engine.ingest, reload)
            .with_context(|| format!("cannot load the churn model {}", path.display()))?,
        ModelSource::Bundled => {
            engine
                .risk
                .use_model(Arc::new(Model::bundled()), &mut engine.ingest, false)
        }
    }
    if let Some(path) = alerts_out {
        engine.risk.outputs.file = Some(
            NdjsonFile::create(path)
                .with_context(|| format!("cannot create alerts file {}", path.display()))?,
        );
    }
    Ok(())
}

/// The model and churn bands for `/api/status`.
pub fn publish_risk(state: &AppState, engine: &Engine) {
    let scorer = engine.risk.scorer.as_ref();
    if let Ok(mut s) = state.status.lock() {
        s.alerts_sent = engine.risk.outputs.sent.iter().sum();
        s.model = scorer.map(|sc| ModelStatus {
            name: sc.model.name.clone(),
            version: sc.model.version.clone(),
            estimator: sc.model.validation.chosen.clone(),
            loaded_at: engine.risk.loaded_at.clone(),
        });
        s.churn_bands = scorer
            .filter(|sc| sc.counts.iter().any(|&n| n > 0))
            .map(|sc| {
                Band::ALL
                    .iter()
                    .zip(sc.counts)
                    .map(|(b, n)| (b.as_str(), n))
                    .collect()
            });
    }
}
