//! What the engine keeps per shard (input partition) besides the
//! per-trader state: the ids it de-duplicates against, the events waiting
//! for the frontier, and how far it has released.

use crate::pipeline::Dedup;
use crate::window::ReleaseBuffer;

/// The ingest-side state of one shard.
#[derive(Debug)]
pub struct Shard {
    pub dedup: Dedup,
    pub pending: ReleaseBuffer,
    /// Every event before this has been released (applied in order).
    pub released: Option<i64>,
    /// Checkpoint bookkeeping: trader names and symbols saved so far,
    /// checkpoints written, whether the shard holds a `Global` record to
    /// remove (another instance's, merged in on restore).
    pub saved_names: u32,
    pub saved_symbols: usize,
    pub checkpoints: u64,
    pub stale_global: bool,
    /// Parts written per block of waiting events.
    pub pending_parts: std::collections::BTreeMap<u64, u32>,
    /// The progress and instance-wide records as last written (unchanged
    /// ones are not written again).
    pub last_meta: Option<Vec<u8>>,
    pub last_global: Option<Vec<u8>>,
    /// Traders erased since the last checkpoint (local ids): their records
    /// become tombstones.
    pub erased: Vec<u32>,
    /// Scale-out: the released point (and end of input) last published.
    pub published: Option<(i64, bool)>,
    /// Revoked and committed, kept in memory until the group says whether
    /// it stays: it stands still (no release, no time rules, no partials,
    /// its merge does not run), as the next owner starts from its commit.
    pub parked: bool,
}

impl Shard {
    pub fn new(dedup_window_ms: i64, dedup_max_ids: usize) -> Self {
        Self {
            dedup: Dedup::new(dedup_window_ms, dedup_max_ids),
            pending: ReleaseBuffer::default(),
            released: None,
            saved_names: 0,
            saved_symbols: 0,
            checkpoints: 0,
            stale_global: false,
            pending_parts: std::collections::BTreeMap::new(),
            last_meta: None,
            last_global: None,
            erased: Vec::new(),
            published: None,
            parked: false,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.dedup.heap_bytes() + self.pending.heap_bytes()
    }
}
