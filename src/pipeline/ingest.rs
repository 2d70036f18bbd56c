//! Decode, validate, de-duplicate and apply one message to trader state.

use crate::event::time::HOUR_MS;
use crate::event::{DecodeConfig, Decoder, Event, EventType, Invalid};
use crate::features::Traders;

use super::dedup::Dedup;
use super::stats::Stats;

/// Settings of the ingest stage.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub decode: DecodeConfig,
    /// Event ids are remembered for at least this long (event time).
    pub dedup_window_ms: i64,
    /// Cap on remembered ids per generation (memory bound).
    pub dedup_max_ids: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            decode: DecodeConfig::default(),
            dedup_window_ms: 6 * HOUR_MS,
            dedup_max_ids: 4_000_000,
        }
    }
}

/// What became of one message.
#[derive(Debug)]
pub enum Outcome {
    /// A new valid event; trader state already includes it.
    Valid(Event),
    /// Refused, with the reason; goes to the dead-letter sink.
    Invalid(Invalid),
    /// An event id seen within the de-duplication window.
    Duplicate,
}

/// The ingest stage with its state.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub decoder: Decoder,
    pub dedup: Dedup,
    pub traders: Traders,
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
            decoder: Decoder::new(config.decode),
            dedup: Dedup::new(config.dedup_window_ms, config.dedup_max_ids),
            traders: Traders::default(),
            stats: Stats::default(),
        }
    }

    /// Processes one message; `now_ms` is the reference clock of the
    /// future-timestamp check.
    #[inline]
    pub fn ingest(&mut self, bytes: &[u8], now_ms: i64) -> Outcome {
        self.ingest_typed(bytes, now_ms, None)
    }

    /// As [`Ingest::ingest`]; `fallback_type` applies when `type` is absent.
    #[inline]
    pub fn ingest_typed(
        &mut self,
        bytes: &[u8],
        now_ms: i64,
        fallback_type: Option<EventType>,
    ) -> Outcome {
        self.stats.read += 1;
        match self.decoder.decode_typed(bytes, now_ms, fallback_type) {
            Err(invalid) => {
                self.stats.invalid[invalid.reason.index()] += 1;
                Outcome::Invalid(invalid)
            }
            Ok(event) => {
                let t = event.event_type().index();
                if self.dedup.is_duplicate(event.id_hash, event.ts) {
                    self.stats.duplicate[t] += 1;
                    return Outcome::Duplicate;
                }
                self.stats.valid[t] += 1;
                self.traders.apply(&event);
                Outcome::Valid(event)
            }
        }
    }

    /// Approximate bytes of state held (traders, interned strings, ids).
    pub fn state_bytes(&self) -> usize {
        self.traders.heap_bytes()
            + self.decoder.traders.heap_bytes()
            + self.decoder.symbols.heap_bytes()
            + self.dedup.heap_bytes()
    }
}
