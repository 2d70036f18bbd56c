//! The ingest pipeline shared by `replay`, `demo`, `run` and `bench`:
//! decode + validate, de-duplicate, update per-trader state, and account for
//! every event read.

mod dedup;
mod dlq;
mod ingest;
mod replay;
mod stats;

pub use dedup::Dedup;
pub use dlq::{DeadLetter, DeadLetterSink, Origin};
pub use ingest::{Ingest, IngestConfig, Outcome};
pub use replay::{ReplayError, ReplayReport, default_dlq_path, replay, replay_file};
pub use stats::{Stats, Summary};
