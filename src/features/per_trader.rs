//! Per-trader values stored by shard: a `Vec` per shard indexed by the
//! trader's index within it, so that one shard's values can be saved,
//! dropped or restored on their own (a partition moving between instances).

use crate::event::{TraderId, local_of, shard_of, trader_id};

/// One value of type `T` per trader, grouped by shard. Every mutable
/// access marks the trader changed, so a checkpoint saves only those.
#[derive(Debug, Clone)]
pub struct PerTrader<T> {
    shards: Vec<Vec<T>>,
    /// Per shard, a bit per trader: changed since the last checkpoint. A
    /// bit rather than a list of ids: an eighth of a byte per trader
    /// however many change between checkpoints (a replay takes none).
    changed: Vec<Vec<u64>>,
}

impl<T> Default for PerTrader<T> {
    fn default() -> Self {
        Self {
            shards: Vec::new(),
            changed: Vec::new(),
        }
    }
}

impl<T: Clone + Default> PerTrader<T> {
    /// The value of trader `id`, when it has one.
    #[inline]
    pub fn get(&self, id: TraderId) -> Option<&T> {
        self.shards
            .get(shard_of(id) as usize)?
            .get(local_of(id) as usize)
    }

    /// The value of trader `id`, created with the default when missing;
    /// the trader counts as changed.
    #[inline]
    pub fn get_mut(&mut self, id: TraderId) -> &mut T {
        let (s, i) = (shard_of(id) as usize, local_of(id) as usize);
        if s >= self.shards.len() {
            self.shards.resize_with(s + 1, Vec::new);
            self.changed.resize_with(s + 1, Vec::new);
        }
        let shard = &mut self.shards[s];
        if i >= shard.len() {
            shard.resize(i + 1, T::default());
        }
        let bits = &mut self.changed[s];
        if i / 64 >= bits.len() {
            bits.resize(i / 64 + 1, 0);
        }
        bits[i / 64] |= 1 << (i % 64);
        &mut shard[i]
    }

    /// Sets trader `id`'s value back to the default, when it has one (an
    /// erasure); it does not count as changed.
    pub fn reset(&mut self, id: TraderId) {
        if let Some(v) = self
            .shards
            .get_mut(shard_of(id) as usize)
            .and_then(|s| s.get_mut(local_of(id) as usize))
        {
            *v = T::default();
        }
    }

    /// The traders of `shard` changed since the last call (local indexes,
    /// ascending).
    pub fn take_changed(&mut self, shard: u32) -> Vec<u32> {
        let Some(bits) = self.changed.get_mut(shard as usize) else {
            return Vec::new();
        };
        let mut list = Vec::new();
        for (w, word) in bits.iter_mut().enumerate() {
            let mut b = std::mem::take(word);
            while b != 0 {
                list.push(w as u32 * 64 + b.trailing_zeros());
                b &= b - 1;
            }
        }
        list
    }

    /// The values of one shard, in trader order.
    pub fn shard(&self, shard: u32) -> &[T] {
        self.shards.get(shard as usize).map_or(&[], Vec::as_slice)
    }

    /// Every value of one shard, with its trader id.
    pub fn iter_shard(&self, shard: u32) -> impl Iterator<Item = (TraderId, &T)> {
        self.shard(shard)
            .iter()
            .enumerate()
            .map(move |(i, v)| (trader_id(shard, i as u32), v))
    }

    /// Every value, shard by shard.
    pub fn iter(&self) -> impl Iterator<Item = (TraderId, &T)> {
        self.shards.iter().enumerate().flat_map(|(s, v)| {
            v.iter()
                .enumerate()
                .map(move |(i, x)| (trader_id(s as u32, i as u32), x))
        })
    }

    /// Replaces one shard's values (nothing counts as changed).
    pub fn set_shard(&mut self, shard: u32, values: Vec<T>) {
        let s = shard as usize;
        if s >= self.shards.len() {
            self.shards.resize_with(s + 1, Vec::new);
            self.changed.resize_with(s + 1, Vec::new);
        }
        self.changed[s].clear();
        self.shards[s] = values;
    }

    /// Drops one shard's values.
    pub fn clear_shard(&mut self, shard: u32) {
        let s = shard as usize;
        if let Some(v) = self.shards.get_mut(s) {
            *v = Vec::new();
            self.changed[s] = Vec::new();
        }
    }

    /// Values held, every shard.
    pub fn len(&self) -> usize {
        self.shards.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shard slots (some may be empty).
    pub fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    /// Heap bytes of the values.
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|v| v.capacity() * std::mem::size_of::<T>())
            .sum::<usize>()
            + self.changed.iter().map(|v| v.capacity() * 8).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_independent() {
        let mut p: PerTrader<u8> = PerTrader::default();
        *p.get_mut(trader_id(2, 3)) = 7;
        *p.get_mut(trader_id(0, 0)) = 1;
        assert_eq!(p.get(trader_id(2, 3)), Some(&7));
        assert_eq!(p.get(trader_id(2, 4)), None);
        assert_eq!(p.shard(2), &[0, 0, 0, 7]);
        assert_eq!(p.take_changed(2), vec![3]);
        assert!(p.take_changed(2).is_empty());
        *p.get_mut(trader_id(2, 130)) = 2;
        *p.get_mut(trader_id(2, 64)) = 3;
        *p.get_mut(trader_id(2, 130)) = 4;
        assert_eq!(p.take_changed(2), vec![64, 130], "once each, ascending");
        p.clear_shard(2);
        assert_eq!(p.get(trader_id(2, 3)), None);
        assert_eq!(p.len(), 1);
    }
}
