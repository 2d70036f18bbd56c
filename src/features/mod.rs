//! Per-trader state, updated per event in constant time and stored per
//! shard in a `Vec` indexed by the interned trader id; the feature vector the churn
//! model reads, offline and online alike.

mod behaviour;
mod per_trader;
mod segment;
mod snapshot;
mod state;
pub mod time_codec;
mod vector;

pub use behaviour::{Behaviour, TAU_DAYS};
pub use per_trader::PerTrader;
pub use segment::{Segment, SegmentThresholds};
pub use snapshot::{
    SUM_PRECISION, capture_for_merge, check_capture, expand_capture, traders_batch, traders_schema,
};
pub use state::{NEVER, TraderState, Traders};
pub use vector::{DAYS_SINCE_ACTIVITY, FeatureSpace, MAX_DAYS, NUMERIC};
