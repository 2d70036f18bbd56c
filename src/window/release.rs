//! Events waiting for the frontier, released in event-time order.
//!
//! Every downstream effect of an event (trader state, features, alert
//! rules, table rows) happens when the frontier passes it, in order of
//! (event time, arrival), so outputs depend on the set of events and not
//! on how fast or in what interleaving they were read. Events arrive in
//! blocks (one per checkpoint); a block is saved once and forgotten by the
//! checkpoint once all its events are released.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};

use crate::event::Event;

/// One waiting event.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: u64,
    pub block: u64,
    pub event: Event,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.event.ts, self.seq).cmp(&(other.event.ts, other.seq))
    }
}

/// The waiting events of one shard: new arrivals are appended, and sorted
/// into the ordered queue when a release asks for the next event (a merge
/// of two sorted runs; events arrive nearly in order, so the sort is close
/// to linear). Cheaper per event than a binary heap of whole events.
#[derive(Debug, Default)]
pub struct ReleaseBuffer {
    /// In (event time, arrival) order.
    queue: VecDeque<Pending>,
    /// Arrived since the last release, in arrival order.
    incoming: Vec<Pending>,
    next_seq: u64,
    /// The block new events go to.
    block: u64,
    /// Events still waiting per block.
    waiting: BTreeMap<u64, u32>,
    /// Blocks whose events were all released since the last checkpoint.
    done: Vec<u64>,
}

impl ReleaseBuffer {
    /// Holds `event` until the frontier passes it.
    #[inline]
    pub fn push(&mut self, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        *self.waiting.entry(self.block).or_default() += 1;
        self.incoming.push(Pending {
            seq,
            block: self.block,
            event,
        });
    }

    /// Moves the new arrivals into the ordered queue.
    fn settle(&mut self) {
        if self.incoming.is_empty() {
            return;
        }
        // Taken and given back emptied: a vector grown anew for every
        // release reallocated its way up to the release's size each time.
        let mut new = std::mem::take(&mut self.incoming);
        new.sort_by_key(|p| (p.event.ts, p.seq));
        // Only the queued events after the first arrival can interleave
        // with the arrivals: merge that tail, keep the head where it is.
        let tail = self
            .queue
            .split_off(self.queue.partition_point(|p| *p <= new[0]));
        let (mut a, mut b) = (tail.into_iter().peekable(), new.drain(..).peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x <= y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, _) => b.next(),
            };
            match next {
                Some(p) => self.queue.push_back(p),
                None => break,
            }
        }
        drop(b);
        self.incoming = new;
    }

    /// The events to be released next, in order (as of the latest release:
    /// events pushed since are not among them).
    pub fn upcoming(&self) -> impl Iterator<Item = &Event> {
        self.queue.iter().map(|p| &p.event)
    }

    /// The next waiting event before `frontier`, in event-time order.
    #[inline]
    pub fn pop_before(&mut self, frontier: i64) -> Option<Event> {
        self.settle();
        if self.queue.front()?.event.ts >= frontier {
            return None;
        }
        let p = self.queue.pop_front()?;
        if let Some(n) = self.waiting.get_mut(&p.block) {
            *n -= 1;
            if *n == 0 {
                self.waiting.remove(&p.block);
                self.done.push(p.block);
            }
        }
        Some(p.event)
    }

    /// Every waiting event, in no particular order.
    fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.queue.iter().chain(&self.incoming)
    }

    /// Drops the waiting events `drop` selects (an erasure); how many.
    /// Saved blocks may hold copies of them, so when any is dropped every
    /// block waiting is given up (forgotten at the next checkpoint) and the
    /// events kept move, in arrival order, to the block being filled, which
    /// the next checkpoint writes.
    pub fn purge(&mut self, drop: impl Fn(&Event) -> bool) -> usize {
        if !self.iter().any(|p| drop(&p.event)) {
            return 0;
        }
        let before = self.len();
        let mut kept: Vec<Pending> = std::mem::take(&mut self.queue)
            .into_iter()
            .chain(std::mem::take(&mut self.incoming))
            .filter(|p| !drop(&p.event))
            .collect();
        let current = self.block;
        for (b, _) in std::mem::take(&mut self.waiting) {
            if b != current {
                self.done.push(b);
            }
        }
        kept.sort_by_key(|p| p.seq);
        for p in &mut kept {
            p.block = current;
        }
        if !kept.is_empty() {
            self.waiting.insert(current, kept.len() as u32);
        }
        let removed = before - kept.len();
        self.incoming = kept;
        removed
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.queue.len() + self.incoming.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.incoming.is_empty()
    }

    /// Checkpoint: the events that arrived since the last call (as block
    /// `number`), and the blocks fully released since (to forget).
    pub fn take_changes(&mut self) -> (u64, Vec<Event>, Vec<u64>) {
        let block = self.block;
        let new: Vec<(u64, Event)> = self
            .iter()
            .filter(|p| p.block == block)
            .map(|p| (p.seq, p.event.clone()))
            .collect();
        let mut new = new;
        new.sort_by_key(|(seq, _)| *seq);
        self.block += 1;
        let done = std::mem::take(&mut self.done);
        (block, new.into_iter().map(|(_, e)| e).collect(), done)
    }

    /// Rebuilds the buffer from saved blocks, keeping only events at or
    /// after `released_until` (the rest were released before the save).
    pub fn restore(blocks: Vec<(u64, Vec<Event>)>, released_until: i64) -> (Self, Vec<u64>) {
        let mut b = Self::default();
        let mut empty = Vec::new();
        let mut blocks = blocks;
        blocks.sort_by_key(|(no, _)| *no);
        for (no, events) in blocks {
            b.block = b.block.max(no + 1);
            let mut kept = 0;
            for e in events {
                if e.ts >= released_until {
                    let seq = b.next_seq;
                    b.next_seq += 1;
                    b.incoming.push(Pending {
                        seq,
                        block: no,
                        event: e,
                    });
                    kept += 1;
                }
            }
            if kept > 0 {
                b.waiting.insert(no, kept);
            } else {
                empty.push(no);
            }
        }
        // Saved blocks with nothing left are forgotten at the next save.
        b.done = empty.clone();
        (b, empty)
    }

    pub fn heap_bytes(&self) -> usize {
        (self.queue.capacity() + self.incoming.capacity()) * std::mem::size_of::<Pending>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Body, Login, Platform};

    fn ev(ts: i64, id: u64) -> Event {
        Event {
            ts,
            trader: 0,
            id_hash: id,
            body: Body::Login(Login {
                success: true,
                device: 0,
                country: 0,
                platform: Platform::Web,
            }),
        }
    }

    #[test]
    fn releases_in_event_time_then_arrival_order() {
        let mut b = ReleaseBuffer::default();
        for (ts, id) in [(30, 1), (10, 2), (20, 3), (10, 4), (40, 5)] {
            b.push(ev(ts, id));
        }
        let mut got = Vec::new();
        while let Some(e) = b.pop_before(35) {
            got.push(e.id_hash);
        }
        assert_eq!(got, vec![2, 4, 3, 1]);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn arrivals_interleave_with_waiting_events_in_order() {
        let mut b = ReleaseBuffer::default();
        for (ts, id) in [(10, 1), (30, 2), (50, 3)] {
            b.push(ev(ts, id));
        }
        assert!(b.pop_before(0).is_none());
        // Merged into the tail after 10; 30 arrived before the second 30.
        for (ts, id) in [(40, 4), (20, 5), (30, 6), (60, 7)] {
            b.push(ev(ts, id));
        }
        let mut got = Vec::new();
        while let Some(e) = b.pop_before(100) {
            got.push(e.id_hash);
        }
        assert_eq!(got, vec![1, 5, 2, 6, 4, 3, 7]);
    }

    #[test]
    fn a_purge_drops_events_and_rewrites_what_stays() {
        let mut b = ReleaseBuffer::default();
        for (ts, id) in [(10, 1), (20, 2), (30, 3)] {
            b.push(ev(ts, id));
        }
        let (no, new, _) = b.take_changes();
        assert_eq!((no, new.len()), (0, 3));
        b.push(ev(15, 4));
        assert_eq!(b.purge(|e| e.id_hash == 2), 1);
        assert_eq!(b.purge(|e| e.id_hash == 9), 0);
        // Block 0 (saved with event 2 in it) is forgotten; the three events
        // kept are written again, in arrival order, as block 1.
        let (no, new, done) = b.take_changes();
        let ids: Vec<u64> = new.iter().map(|e| e.id_hash).collect();
        assert_eq!((no, ids, done), (1, vec![1, 3, 4], vec![0]));
        let mut got = Vec::new();
        while let Some(e) = b.pop_before(100) {
            got.push(e.id_hash);
        }
        assert_eq!(got, vec![1, 4, 3]);
    }

    #[test]
    fn blocks_are_saved_once_and_forgotten_when_released() {
        let mut b = ReleaseBuffer::default();
        b.push(ev(10, 1));
        b.push(ev(50, 2));
        let (no, new, done) = b.take_changes();
        assert_eq!((no, new.len(), done.len()), (0, 2, 0));
        b.push(ev(20, 3));
        assert!(b.pop_before(30).is_some());
        assert!(b.pop_before(30).is_some());
        // Event 3 came and went between checkpoints: nothing to save, and
        // its block is done.
        let (no, new, done) = b.take_changes();
        assert_eq!((no, new.len()), (1, 0));
        assert_eq!(done, vec![1]);
        // Block 0 still holds the event at 50; a restore keeps it only.
        let (r, empty) = ReleaseBuffer::restore(vec![(0, vec![ev(10, 1), ev(50, 2)])], 30);
        assert_eq!((r.len(), empty.len()), (1, 0));
    }
}
