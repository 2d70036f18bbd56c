//! The pipeline every command runs: ingest (decode + validate, de-duplicate,
//! per-trader state, accounting, dead letters), then the event-time windows
//! and the DataFusion SQL pipelines of `pipelines/*.sql`, whose KPI rows go
//! to the NDJSON sink, Prometheus and `/api/kpis`.

mod catalog;
mod dedup;
mod dlq;
mod engine;
mod ingest;
mod kpi;
mod replay;
mod runner;
mod spec;
mod stats;
mod udf;

pub use catalog::{BUILTIN, Planned, load};
pub use dedup::Dedup;
pub use dlq::{DeadLetter, DeadLetterSink, LateEvent, NdjsonFile, Origin};
pub use engine::{Engine, EngineConfig, EngineError, KpiOutputs, Processed, check_pipelines};
pub use ingest::{Ingest, IngestConfig, Outcome};
pub use kpi::{BoardEntry, KpiBoard, KpiRow, KpiSink, SharedBoard, latest_window};
pub use replay::{ReplayError, ReplayReport, default_dlq_path, replay_file};
pub use spec::{PipelineDef, PipelineError, ValueKind};
pub use stats::{Stats, Summary};
pub use udf::phi;
