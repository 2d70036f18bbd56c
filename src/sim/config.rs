//! Settings of the simulator.

use crate::event::time::{DAY_MS, SECOND_MS};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of the one RNG; same seed and settings give the same bytes.
    pub seed: u64,
    /// Traders who sign up over the period.
    pub traders: u32,
    /// Start of the simulated period, epoch ms (UTC midnight recommended).
    pub start_ms: i64,
    /// Length of the period in days.
    pub days: u32,
    /// Largest delay between an event's time and its place in the output,
    /// ms: events arrive out of order by up to this much.
    pub disorder_ms: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            traders: 5_000,
            start_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            days: 60,
            disorder_ms: 5 * SECOND_MS,
        }
    }
}

impl SimConfig {
    /// End of the simulated period (exclusive), epoch ms.
    pub fn end_ms(&self) -> i64 {
        self.start_ms + i64::from(self.days) * DAY_MS
    }
}
