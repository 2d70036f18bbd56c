//! The event contract of DESIGN.md: typed events, their decoding from JSON
//! bytes and their validation.
//!
//! Decoding is the hot path of the product, so it goes straight from bytes to
//! a compact [`Event`]: strings of small sets are interned to [`Sym`]s, trader
//! ids to dense [`TraderId`]s, and the only allocation per event is for a
//! string that contained JSON escapes. Lines in the form producers write
//! take a hand-written scan of the bytes (`scan`); serde_json reads the rest
//! and names every error.

mod decode;
mod intern;
pub(crate) mod model;
mod money;
pub(crate) mod raw;
mod reason;
mod scan;
pub mod time;

#[cfg(test)]
mod tests;

pub use decode::{DecodeConfig, Decoder};
pub(crate) use intern::fixed_hasher;
pub use intern::{
    Interner, MAX_SHARDS, MAX_TRADERS_PER_SHARD, ShardedNames, Sym, TraderId, local_of,
    placeholder_name, shard_of, stable_hash, trader_id,
};
pub use model::*;
pub use money::Money;
pub use reason::{Invalid, Reason};
