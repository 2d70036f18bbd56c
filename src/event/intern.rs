//! String interning: trader ids become dense integers (state lives in a `Vec`
//! indexed by them) and small-set strings (channel, currency, ...) become
//! symbols that are cheap to copy, compare and group by.

use ahash::RandomState;
use std::collections::HashMap;

/// Dense index of a trader, in order of first appearance.
pub type TraderId = u32;
/// Interned string of a small set (channel, country, currency, method, ...).
pub type Sym = u32;

/// Fixed seeds so that hashes (and everything ordered by them) are the same
/// in every run.
pub(crate) fn fixed_hasher() -> RandomState {
    RandomState::with_seeds(
        0x005e_ed0f_be11_c0de,
        0x0ddb_a11c_afef_00d1,
        0x7e57_ab1e_dead_beef,
        0x0123_4567_89ab_cdef,
    )
}

/// FNV-1a, 64 bits: a hash that never changes between builds or crate
/// versions, for ids that leave the process (alert ids, model versions).
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A two-way map between strings and dense integer ids.
///
/// With a `capacity`, strings past it all map to one overflow id whose text
/// is [`Interner::OVERFLOW`]: a stream of ever-new values (a bug or an attack
/// upstream) cannot grow memory or metric label sets without bound.
#[derive(Debug, Clone)]
pub struct Interner {
    ids: HashMap<Box<str>, u32, RandomState>,
    names: Vec<Box<str>>,
    capacity: usize,
    overflow: Option<u32>,
}

impl Default for Interner {
    fn default() -> Self {
        Self::new()
    }
}

impl Interner {
    /// Text of the id every string past the capacity maps to.
    pub const OVERFLOW: &'static str = "~other";

    /// An interner without a capacity limit (trader ids).
    pub fn new() -> Self {
        Self::with_capacity_limit(usize::MAX)
    }

    /// An interner that holds at most `capacity` distinct strings.
    pub fn with_capacity_limit(capacity: usize) -> Self {
        Self {
            ids: HashMap::with_hasher(fixed_hasher()),
            names: Vec::new(),
            capacity,
            overflow: None,
        }
    }

    /// The id of `s`, adding it when new.
    #[inline]
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        if self.names.len() >= self.capacity {
            if let Some(id) = self.overflow {
                return id;
            }
            let id = self.push(Self::OVERFLOW);
            self.overflow = Some(id);
            return id;
        }
        self.push(s)
    }

    fn push(&mut self, s: &str) -> u32 {
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 interned strings");
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    /// The id of `s` if it was interned before.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// The text of an id.
    #[inline]
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// How many distinct strings are held.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when nothing was interned yet.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Approximate heap bytes held, for the state-size gauge.
    pub fn heap_bytes(&self) -> usize {
        let text: usize = self.names.iter().map(|n| n.len()).sum();
        // Each string is stored twice (map key and name list) plus table overhead.
        2 * text + self.names.capacity() * 16 + self.ids.capacity() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_and_stable() {
        let mut i = Interner::new();
        assert_eq!(i.intern("a"), 0);
        assert_eq!(i.intern("b"), 1);
        assert_eq!(i.intern("a"), 0);
        assert_eq!(i.name(1), "b");
        assert_eq!(i.get("c"), None);
    }

    #[test]
    fn capacity_maps_the_rest_to_overflow() {
        let mut i = Interner::with_capacity_limit(2);
        i.intern("a");
        i.intern("b");
        let o = i.intern("c");
        assert_eq!(i.intern("d"), o);
        assert_eq!(i.name(o), Interner::OVERFLOW);
        assert_eq!(i.intern("a"), 0);
    }
}
