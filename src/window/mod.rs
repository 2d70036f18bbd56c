//! Event-time windows: watermarks per source partition, the closed frontier
//! (watermark minus grace), late events, and the Arrow tables of closed rows
//! that the SQL pipelines read.
//!
//! Events wait in a release buffer until the frontier passes them; then,
//! in event-time order, they are applied to trader state and become Arrow
//! rows of their table, tagged with the range of event time they close.
//! Pipelines take rows by range, so one query covers many windows (the
//! window start is a grouping key) and a row is converted once.

mod config;
mod release;
mod spec;
mod store;
pub(crate) mod tables;
mod watermark;

pub use config::WindowConfig;
pub use release::{Pending, ReleaseBuffer};
pub use spec::{WindowSpec, floor_to};
pub use store::{ClosedStore, RangeBatch, rows_between};
pub use tables::{TableBuilders, TableKind, money_type, schema_of, table_name};
pub use watermark::Watermarks;
