//! Durable state: everything that outlives one message, per shard (input
//! partition), as versioned records of a key-value changelog.
//!
//! A checkpoint writes, per shard, what changed since the previous one:
//! changed traders (basic state, churn features, alert rule memory, scoring
//! memory), events still waiting for the frontier, new de-duplication ids,
//! closed window rows and hop-window slices not yet consumed, alert ids
//! sent, and the shard's progress (offsets, watermarks, frontier, clocks,
//! per-pipeline progress). Dropped pieces become tombstones, so a compacted
//! changelog holds exactly the current state. Restoring a shard reads its
//! records back into an engine; a record of another format version stops
//! the restore before anything is loaded, an unreadable one is reported
//! with where it was and skipped.

mod cache;
mod codec;
mod keys;
mod load;
mod save;

pub use cache::{Cached, LocalCache};
pub use codec::{
    CodecError, FORMAT_VERSION, decode, decode_batch, encode, encode_batch, encode_sized,
};
pub use keys::Key;
pub use load::{Corrupt, Record, RestoreError, Restored, restore_shard};
pub use save::{
    Global, InputMeta, MergeMeta, Meta, ShardDelta, TraderRecord, checkpoint, checkpoint_shards,
};

#[cfg(test)]
pub(crate) mod tests;
