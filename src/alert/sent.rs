//! The memory of alert ids already sent, so a repeat of an id is dropped.
//!
//! Ids are kept in sealed blocks of arrival order; the oldest blocks are
//! forgotten once more than `capacity` ids are held. Blocks are what a
//! checkpoint writes and forgets, one record each.

use std::collections::{HashSet, VecDeque};

/// Ids per block sealed without a checkpoint (replay, demo).
const AUTO_SEAL: usize = 4096;

/// One sealed block of id fingerprints.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SentBlock {
    pub no: u64,
    pub ids: Vec<u64>,
}

/// Fingerprints of the ids sent, oldest block first.
#[derive(Debug, Clone)]
pub struct SentIds {
    set: HashSet<u64, ahash::RandomState>,
    blocks: VecDeque<SentBlock>,
    current: Vec<u64>,
    held: usize,
    next_no: u64,
    /// Blocks sealed but not yet saved, and blocks forgotten but not yet
    /// removed from the checkpoint.
    unsaved: Vec<u64>,
    forgotten: Vec<u64>,
    pub capacity: usize,
}

impl Default for SentIds {
    fn default() -> Self {
        Self::new(200_000)
    }
}

impl SentIds {
    pub fn new(capacity: usize) -> Self {
        Self {
            set: HashSet::with_hasher(crate::event::fixed_hasher()),
            blocks: VecDeque::new(),
            current: Vec::new(),
            held: 0,
            next_no: 0,
            unsaved: Vec::new(),
            forgotten: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    /// True when `id` is new (and remembers it); false for a repeat.
    pub fn insert(&mut self, id: u64) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.current.push(id);
        self.held += 1;
        if self.current.len() >= AUTO_SEAL {
            self.seal();
        }
        true
    }

    /// Closes the current block (at each checkpoint).
    pub fn seal(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let no = self.next_no;
        self.next_no += 1;
        self.blocks.push_back(SentBlock {
            no,
            ids: std::mem::take(&mut self.current),
        });
        self.unsaved.push(no);
        while self.held > self.capacity && self.blocks.len() > 1 {
            let Some(old) = self.blocks.pop_front() else {
                break;
            };
            self.held -= old.ids.len();
            for id in &old.ids {
                self.set.remove(id);
            }
            self.forgotten.push(old.no);
        }
    }

    /// Seals the current block; returns the blocks to save and the block
    /// numbers to remove from the checkpoint since the last call.
    pub fn take_changes(&mut self) -> (Vec<SentBlock>, Vec<u64>) {
        self.seal();
        let unsaved = std::mem::take(&mut self.unsaved);
        let saved: Vec<SentBlock> = self
            .blocks
            .iter()
            .filter(|b| unsaved.contains(&b.no))
            .cloned()
            .collect();
        (saved, std::mem::take(&mut self.forgotten))
    }

    /// Every block held, the current one sealed first.
    pub fn all_blocks(&mut self) -> Vec<SentBlock> {
        self.seal();
        self.unsaved.clear();
        self.forgotten.clear();
        self.blocks.iter().cloned().collect()
    }

    /// Rebuilds the memory from saved blocks (any order).
    pub fn restore(capacity: usize, mut blocks: Vec<SentBlock>) -> Self {
        blocks.sort_by_key(|b| b.no);
        let mut s = Self::new(capacity);
        for b in blocks {
            s.next_no = s.next_no.max(b.no + 1);
            s.held += b.ids.len();
            s.set.extend(b.ids.iter().copied());
            s.blocks.push_back(b);
        }
        s
    }

    pub fn len(&self) -> usize {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.held * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_refused_and_old_blocks_forgotten() {
        let mut s = SentIds::new(3);
        assert!(s.insert(1));
        assert!(!s.insert(1));
        s.insert(2);
        s.seal();
        s.insert(3);
        s.insert(4);
        s.seal();
        // 4 held > 3: the oldest block (1, 2) is forgotten.
        assert!(s.insert(1));
        let (saved, forgotten) = s.take_changes();
        assert_eq!(forgotten, vec![0]);
        assert_eq!(saved.iter().map(|b| b.no).collect::<Vec<_>>(), vec![1, 2]);
        let r = SentIds::restore(3, saved);
        assert!(!r.clone().insert(3) && !r.clone().insert(1));
    }
}
