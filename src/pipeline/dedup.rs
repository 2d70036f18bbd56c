//! De-duplication by event id within a bounded window of event time.
//!
//! Two generations of id fingerprints: ids are remembered for at least one
//! window and at most two, and memory is bounded by the ids of two windows
//! (or by `max_ids`, whichever comes first). Constant time per event.

use std::collections::HashSet;

use ahash::RandomState;

/// Remembers recent event ids.
#[derive(Debug, Clone)]
pub struct Dedup {
    window_ms: i64,
    max_ids: usize,
    current: HashSet<u64, RandomState>,
    previous: HashSet<u64, RandomState>,
    generation_start: Option<i64>,
}

impl Dedup {
    /// Ids are remembered for at least `window_ms` of event time, holding at
    /// most about `2 * max_ids` of them.
    pub fn new(window_ms: i64, max_ids: usize) -> Self {
        Self {
            window_ms,
            max_ids,
            current: HashSet::with_hasher(RandomState::new()),
            previous: HashSet::with_hasher(RandomState::new()),
            generation_start: None,
        }
    }

    /// True when `id` was seen within the window; otherwise remembers it.
    #[inline]
    pub fn is_duplicate(&mut self, id: u64, ts: i64) -> bool {
        let start = *self.generation_start.get_or_insert(ts);
        if ts >= start.saturating_add(self.window_ms) || self.current.len() >= self.max_ids {
            self.previous = std::mem::take(&mut self.current);
            self.current.reserve(self.previous.len());
            self.generation_start = Some(ts);
        }
        if self.previous.contains(&id) {
            return true;
        }
        !self.current.insert(id)
    }

    /// Ids currently remembered.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        (self.current.capacity() + self.previous.capacity()) * 9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_repeats_within_the_window() {
        let mut d = Dedup::new(1000, 1_000_000);
        assert!(!d.is_duplicate(1, 0));
        assert!(d.is_duplicate(1, 500));
        assert!(!d.is_duplicate(2, 1500));
        // Still remembered one generation later.
        assert!(d.is_duplicate(1, 1600));
        // Forgotten after two windows.
        assert!(!d.is_duplicate(1, 3100 + 1000));
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = Dedup::new(i64::MAX, 100);
        for i in 0..10_000u64 {
            d.is_duplicate(i, 0);
        }
        assert!(d.len() <= 200);
    }
}
