//! De-duplication by event id within a bounded span of event time.
//!
//! Ids are kept in buckets of event time (`window_ms` each): an event is a
//! repeat when its id sits in its own bucket or a neighbour, so two copies
//! up to one window apart are always caught, whatever the order and
//! interleaving of arrival. Buckets older than the released frontier minus
//! two windows are forgotten (a copy that old is late anyway), and so is the
//! oldest bucket when more than `max_ids` are held. Each bucket keeps the
//! ids added since the last checkpoint apart, so a checkpoint writes only
//! those.

use std::collections::{BTreeMap, HashSet};

use ahash::RandomState;

/// One bucket of ids.
#[derive(Debug, Clone, Default)]
struct Bucket {
    ids: HashSet<u64, RandomState>,
    /// Ids added since the last checkpoint.
    new: Vec<u64>,
}

/// Remembers recent event ids of one shard.
#[derive(Debug, Clone)]
pub struct Dedup {
    window_ms: i64,
    max_ids: usize,
    buckets: BTreeMap<i64, Bucket>,
    held: usize,
    /// Buckets forgotten since the last checkpoint.
    forgotten: Vec<i64>,
    /// Checkpoint blocks written per bucket (to forget with it).
    pub saved_blocks: BTreeMap<i64, Vec<u64>>,
}

impl Dedup {
    /// Ids are remembered for at least `window_ms` of event time, at most
    /// `max_ids` of them.
    pub fn new(window_ms: i64, max_ids: usize) -> Self {
        Self {
            window_ms: window_ms.max(1),
            max_ids: max_ids.max(1),
            buckets: BTreeMap::new(),
            held: 0,
            forgotten: Vec::new(),
            saved_blocks: BTreeMap::new(),
        }
    }

    /// True when `id` was seen within a window of `ts`; otherwise
    /// remembers it.
    #[inline]
    pub fn is_duplicate(&mut self, id: u64, ts: i64) -> bool {
        let b = ts.div_euclid(self.window_ms);
        for n in [b, b - 1, b + 1] {
            if self.buckets.get(&n).is_some_and(|k| k.ids.contains(&id)) {
                return true;
            }
        }
        let bucket = self.buckets.entry(b).or_insert_with(|| Bucket {
            ids: HashSet::with_hasher(crate::event::fixed_hasher()),
            new: Vec::new(),
        });
        bucket.ids.insert(id);
        bucket.new.push(id);
        self.held += 1;
        if self.held > self.max_ids {
            self.forget_oldest();
        }
        false
    }

    fn forget_oldest(&mut self) {
        if let Some((b, old)) = self.buckets.pop_first() {
            self.held -= old.ids.len();
            self.forgotten.push(b);
        }
    }

    /// Forgets buckets entirely before `frontier` minus two windows.
    pub fn forget_before(&mut self, frontier: i64) {
        let keep = frontier
            .saturating_sub(2 * self.window_ms)
            .div_euclid(self.window_ms);
        while self
            .buckets
            .first_key_value()
            .is_some_and(|(b, _)| *b < keep)
        {
            self.forget_oldest();
        }
    }

    /// Checkpoint: per bucket, the ids added since the last call; and the
    /// buckets forgotten since.
    pub fn take_changes(&mut self) -> (Vec<(i64, Vec<u64>)>, Vec<i64>) {
        let new = self
            .buckets
            .iter_mut()
            .filter(|(_, k)| !k.new.is_empty())
            .map(|(b, k)| (*b, std::mem::take(&mut k.new)))
            .collect();
        (new, std::mem::take(&mut self.forgotten))
    }

    /// Adds saved ids of bucket `b` (a restored checkpoint).
    pub fn restore(&mut self, b: i64, ids: &[u64]) {
        let bucket = self.buckets.entry(b).or_insert_with(|| Bucket {
            ids: HashSet::with_hasher(crate::event::fixed_hasher()),
            new: Vec::new(),
        });
        for id in ids {
            if bucket.ids.insert(*id) {
                self.held += 1;
            }
        }
    }

    /// Ids currently remembered.
    pub fn len(&self) -> usize {
        self.held
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.buckets
            .values()
            .map(|b| b.ids.capacity() * 9 + b.new.capacity() * 8)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_repeats_within_a_window_in_any_order() {
        let mut d = Dedup::new(1000, 1_000_000);
        assert!(!d.is_duplicate(1, 500));
        assert!(d.is_duplicate(1, 900));
        assert!(!d.is_duplicate(2, 1500));
        // An earlier copy arriving later is caught too.
        assert!(d.is_duplicate(2, 1200));
        // One window apart: caught.
        assert!(d.is_duplicate(1, 1499));
        // Forgotten once the frontier is two windows past.
        d.forget_before(4000);
        assert!(!d.is_duplicate(1, 3500));
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = Dedup::new(10, 100);
        for i in 0..10_000u64 {
            d.is_duplicate(i, i as i64);
        }
        assert!(d.len() <= 100);
    }

    #[test]
    fn changes_are_taken_once() {
        let mut d = Dedup::new(1000, 100);
        d.is_duplicate(1, 10);
        d.is_duplicate(2, 2010);
        let (new, gone) = d.take_changes();
        assert_eq!(new, vec![(0, vec![1]), (2, vec![2])]);
        assert!(gone.is_empty());
        assert_eq!(d.take_changes().0.len(), 0);
        d.forget_before(5000);
        assert_eq!(d.take_changes().1, vec![0, 2]);
    }
}
