//! The event contract of DESIGN.md: typed events, their decoding from JSON
//! bytes and their validation.
//!
//! Decoding is the hot path of the product, so it goes straight from bytes to
//! a compact [`Event`]: strings of small sets are interned to [`Sym`]s, trader
//! ids to dense [`TraderId`]s, and the only allocation per event is for a
//! string that contained JSON escapes.

mod decode;
mod intern;
pub(crate) mod model;
pub(crate) mod raw;
mod reason;
pub mod time;

#[cfg(test)]
mod tests;

pub use decode::{DecodeConfig, Decoder};
pub use intern::{Interner, Sym, TraderId, stable_hash};
pub use model::*;
pub use reason::{Invalid, Reason};
