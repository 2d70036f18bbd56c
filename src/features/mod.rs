//! Per-trader state, updated per event in constant time and stored in a
//! `Vec` indexed by the interned trader id; the feature vector the churn
//! model reads, offline and online alike.

mod behaviour;
mod segment;
mod snapshot;
mod state;
mod vector;

pub use behaviour::{Behaviour, TAU_DAYS};
pub use segment::{Segment, SegmentThresholds};
pub use snapshot::{traders_batch, traders_schema};
pub use state::{NEVER, TraderState, Traders};
pub use vector::{DAYS_SINCE_ACTIVITY, FeatureSpace, MAX_DAYS, NUMERIC};
