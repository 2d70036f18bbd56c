//! Event-time windows: watermarks per source partition, the closed frontier
//! (watermark minus grace), late events, and the Arrow tables of closed rows
//! that the SQL pipelines read.
//!
//! Events wait in an open buffer until the frontier passes them; then they
//! become Arrow rows of their table, tagged with the range of event time they
//! close. Pipelines take rows by range, so one query covers many windows
//! (the window start is a grouping key) and a row is converted once.

mod config;
mod spec;
mod store;
pub(crate) mod tables;
mod watermark;

pub use config::WindowConfig;
pub use spec::{WindowSpec, floor_to};
pub use store::{ClosedStore, RangeBatch};
pub use tables::{EventTables, OpenRow, TableKind};
pub use watermark::Watermarks;
