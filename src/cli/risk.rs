//! Churn scoring and alert outputs, as the commands that run the engine
//! set them up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use veloc_pulse::alert::{AlertRules, Risk};
use veloc_pulse::engine::Engine;
use veloc_pulse::model::Model;
use veloc_pulse::pipeline::NdjsonFile;

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

/// Sets the engine's alert rules and model.
pub fn attach_risk(
    engine: &mut Engine,
    rules: AlertRules,
    model: ModelSource,
) -> anyhow::Result<()> {
    let metrics = engine.risk.metrics.clone();
    engine.risk = Risk::new(rules);
    engine.risk.metrics = metrics;
    let symbols = &mut engine.ingest.decoder.symbols;
    match model {
        ModelSource::None => {}
        ModelSource::File { path, reload } => engine
            .risk
            .load_model(path.clone(), symbols, reload)
            .with_context(|| format!("cannot load the churn model {}", path.display()))?,
        ModelSource::Bundled => engine
            .risk
            .use_model(Arc::new(Model::bundled()), symbols, false),
    }
    Ok(())
}

/// The JSONL alert file, created now.
pub fn alerts_file(path: Option<&Path>) -> anyhow::Result<Option<NdjsonFile>> {
    path.map(|p| {
        NdjsonFile::create(p).with_context(|| format!("cannot create alerts file {}", p.display()))
    })
    .transpose()
}
