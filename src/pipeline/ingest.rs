//! Decode and validate one message, counting every outcome.

use crate::event::time::HOUR_MS;
use crate::event::{DecodeConfig, Decoder, Event, EventType, Invalid};

use super::stats::Stats;

/// Settings of the ingest stage.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub decode: DecodeConfig,
    /// Event ids are remembered for at least this long (event time).
    pub dedup_window_ms: i64,
    /// Cap on remembered ids per shard (memory bound).
    pub dedup_max_ids: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            decode: DecodeConfig::default(),
            dedup_window_ms: 6 * HOUR_MS,
            dedup_max_ids: 8_000_000,
        }
    }
}

/// The decoder with the accounting of every message read.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub config: IngestConfig,
    pub decoder: Decoder,
    pub stats: Stats,
}

impl Default for Ingest {
    fn default() -> Self {
        Self::new(IngestConfig::default())
    }
}

impl Ingest {
    pub fn new(config: IngestConfig) -> Self {
        Self {
            decoder: Decoder::new(config.decode.clone()),
            config,
            stats: Stats::default(),
        }
    }

    /// Decodes one message of `shard`, counting it as read (and as invalid
    /// when refused); `now_ms` is the reference clock of the
    /// future-timestamp check, `fallback_type` applies when `type` is absent.
    #[inline]
    pub fn decode(
        &mut self,
        bytes: &[u8],
        now_ms: i64,
        fallback_type: Option<EventType>,
        shard: u32,
    ) -> Result<Event, Invalid> {
        self.stats.read += 1;
        self.decoder
            .decode_typed(bytes, now_ms, fallback_type, shard)
            .inspect_err(|invalid| self.stats.invalid[invalid.reason.index()] += 1)
    }

    /// Approximate bytes of interned names.
    pub fn state_bytes(&self) -> usize {
        self.decoder.traders.heap_bytes() + self.decoder.symbols.heap_bytes()
    }
}
