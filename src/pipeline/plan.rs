//! Loading and planning the pipelines of a folder (or the built-in
//! catalogue) on the query runtime, reporting every problem at once.

use std::path::Path;

use super::catalog::{Planned, load, plan_all};
use super::spec::PipelineError;

/// Failures that stop the engine from starting.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{} pipeline problem(s):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Pipelines(Vec<PipelineError>),
    #[error("cannot start the query runtime: {0}")]
    Runtime(std::io::Error),
}

/// The single-threaded runtime the queries run on (in the engine's thread).
pub fn runtime() -> Result<tokio::runtime::Runtime, EngineError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EngineError::Runtime)
}

/// Plans pipelines already checked once more (each plan keeps its own
/// state: a second runner of the same pipelines needs its own plans).
pub fn plan_defs(defs: Vec<super::PipelineDef>) -> Result<Vec<Planned>, EngineError> {
    runtime()?
        .block_on(plan_all(defs))
        .map_err(EngineError::Pipelines)
}

/// Loads and plans the pipelines of `dir` (the built-in catalogue when
/// `None`), reporting every problem of every file.
pub fn check_pipelines(dir: Option<&Path>) -> Result<Vec<Planned>, EngineError> {
    let (defs, mut errors) = load(dir);
    match runtime()?.block_on(plan_all(defs)) {
        Ok(planned) => {
            // Names are checked as the service registers them: next to the
            // built-in metrics and each other.
            errors.extend(crate::metrics::metric_name_problems(&planned));
            if errors.is_empty() {
                Ok(planned)
            } else {
                errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
                Err(EngineError::Pipelines(errors))
            }
        }
        Err(plan_errors) => {
            errors.extend(plan_errors);
            errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            Err(EngineError::Pipelines(errors))
        }
    }
}
