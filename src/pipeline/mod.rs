//! The pieces of the pipeline: ingest (decode + validate, accounting),
//! de-duplication, dead letters, and the DataFusion SQL pipelines of
//! `pipelines/*.sql` (their files, planning and KPI rows, which go to the
//! NDJSON sink, Prometheus and `/api/kpis`). The engine composes them.

mod catalog;
pub mod columns;
mod dedup;
mod dlq;
mod ingest;
mod kpi;
mod plan;
mod runner;
mod slot;
mod spec;
mod stats;
mod udf;

pub use catalog::{BUILTIN, Planned, load, slices_schema};
pub use columns::Columns;
pub use dedup::Dedup;
pub use dlq::{DeadLetter, DeadLetterSink, LateEvent, NdjsonFile, Origin};
pub use ingest::{Ingest, IngestConfig};
pub use kpi::{
    BoardEntry, Exports, KpiBoard, KpiRow, KpiSink, SharedBoard, latest_window, rows_from_batches,
};
pub use plan::{EngineError, check_pipelines, plan_defs, runtime};
pub use runner::Input;
pub use spec::{PipelineDef, PipelineError, ValueKind};
pub use stats::{Stats, Summary};
pub use udf::phi;
