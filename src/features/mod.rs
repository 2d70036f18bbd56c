//! Per-trader state, updated per event in constant time and stored in a
//! `Vec` indexed by the interned trader id.

mod segment;
mod snapshot;
mod state;

pub use segment::{Segment, SegmentThresholds};
pub use snapshot::{traders_batch, traders_schema};
pub use state::{TraderState, Traders};
