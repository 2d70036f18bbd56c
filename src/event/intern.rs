//! String interning: trader ids become dense integers (state lives in a `Vec`
//! indexed by them) and small-set strings (channel, currency, ...) become
//! symbols that are cheap to copy, compare and group by.

use ahash::RandomState;
use hashbrown::HashTable;

/// A trader: the state partition (shard) its events come from in the top
/// 8 bits, its dense index within that shard (in order of first
/// appearance) in the low 24. Ids are stable for a shard's lifetime, so a
/// shard's state (bitmaps of trader sets included) can move between
/// instances.
pub type TraderId = u32;

/// Shards (input partitions) an instance can hold.
pub const MAX_SHARDS: u32 = 256;
/// Traders one shard can hold.
pub const MAX_TRADERS_PER_SHARD: u32 = (1 << 24) - 1;

/// The id of the `local`-th trader of `shard`.
#[inline]
pub fn trader_id(shard: u32, local: u32) -> TraderId {
    (shard << 24) | local
}

/// The shard of a trader.
#[inline]
pub fn shard_of(id: TraderId) -> u32 {
    id >> 24
}

/// A trader's index within its shard.
#[inline]
pub fn local_of(id: TraderId) -> u32 {
    id & MAX_TRADERS_PER_SHARD
}
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
///
/// The texts live back to back in one buffer and the table holds each id
/// with its text's place: a million trader ids would otherwise be two heap
/// strings each (the map's key and the name list's), about 100 bytes per
/// trader of allocator headers, pointers and wider table slots. The place
/// beside the id spares a lookup the id's span (a cache miss of its own
/// per event once the traders outgrow the caches).
#[derive(Debug, Clone)]
pub struct Interner {
    /// Every id's text, back to back (a vacated id's placeholder appended).
    text: String,
    /// Where each id's text lies in `text`: start and length.
    spans: Vec<(u32, u32)>,
    /// Ids with their text's place, found by the hash of their text.
    ids: HashTable<Entry>,
    hasher: RandomState,
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
            text: String::new(),
            spans: Vec::new(),
            ids: HashTable::new(),
            hasher: fixed_hasher(),
            capacity,
            overflow: None,
        }
    }

    /// The id of `s`, adding it when new.
    #[inline]
    pub fn intern(&mut self, s: &str) -> u32 {
        let hash = self.hasher.hash_one(s);
        if let Some(id) = self.find(hash, s) {
            return id;
        }
        // The text buffer is addressed with u32: past TEXT_LIMIT new strings
        // go to the overflow id too (trader ids cannot get there: 2^24 per
        // shard of at most 128 bytes; small-set values of up to a line's
        // length could).
        if self.spans.len() >= self.capacity || self.text.len() + s.len() > TEXT_LIMIT {
            if let Some(id) = self.overflow {
                return id;
            }
            let id = self.push(self.hasher.hash_one(Self::OVERFLOW), Self::OVERFLOW);
            self.overflow = Some(id);
            return id;
        }
        self.push(hash, s)
    }

    /// Adds `s`, whose hash is `hash`, as a new id.
    fn push(&mut self, hash: u64, s: &str) -> u32 {
        let id = self.push_text(s);
        let (start, len) = self.spans[id as usize];
        let (text, hasher) = (&self.text, &self.hasher);
        self.ids.insert_unique(hash, Entry { id, start, len }, |e| {
            hasher.hash_one(e.text(text))
        });
        id
    }

    /// Appends `s` as the text of a new id (no table entry).
    fn push_text(&mut self, s: &str) -> u32 {
        #[expect(
            clippy::expect_used,
            reason = "2^32 names per shard would need far more memory than any host has; ids are u32 by design"
        )]
        let id = u32::try_from(self.spans.len()).expect("fewer than 2^32 interned strings");
        let span = self.append(s);
        self.spans.push(span);
        id
    }

    /// Appends `s` to the text buffer; its span.
    fn append(&mut self, s: &str) -> (u32, u32) {
        #[expect(
            clippy::expect_used,
            reason = "small-set interners stop at TEXT_LIMIT (then only the 6-byte overflow text follows); a trader interner holds at most 2^24 ids of at most 128 bytes and one placeholder of under 32 bytes per id: under 2.6 GiB"
        )]
        let span = (
            u32::try_from(self.text.len()).expect("interned text below 4 GiB"),
            u32::try_from(s.len()).expect("interned text below 4 GiB"),
        );
        self.text.push_str(s);
        span
    }

    /// The id of `s` if it was interned before.
    #[inline]
    pub fn get(&self, s: &str) -> Option<u32> {
        self.find(self.hasher.hash_one(s), s)
    }

    /// The id of `s`, whose hash is `hash`, if it was interned before.
    #[inline]
    fn find(&self, hash: u64, s: &str) -> Option<u32> {
        let text = self.text.as_bytes();
        self.ids
            .find(hash, |e| {
                e.len as usize == s.len()
                    && text.get(e.start as usize..(e.start + e.len) as usize) == Some(s.as_bytes())
            })
            .map(|e| e.id)
    }

    /// The text of an id.
    #[inline]
    pub fn name(&self, id: u32) -> &str {
        span_text(&self.text, &self.spans, id)
    }

    /// Replaces the text of `id` with `placeholder` (an erased trader):
    /// the old text no longer maps to any id, and the ids after it stay.
    /// (The old text stays in the buffer, unreachable, until the shard is
    /// restored from its checkpoint.)
    pub fn vacate(&mut self, id: u32, placeholder: &str) {
        if id as usize >= self.spans.len() {
            return;
        }
        let (text, spans) = (&self.text, &self.spans);
        let old = span_text(text, spans, id);
        if let Ok(entry) = self
            .ids
            .find_entry(self.hasher.hash_one(old), |e| e.id == id)
        {
            entry.remove();
        }
        let span = self.append(placeholder);
        self.spans[id as usize] = span;
    }

    /// Adds a slot holding `placeholder` that no text maps to (a trader
    /// whose record is missing from a restored checkpoint).
    pub fn push_vacant(&mut self, placeholder: &str) -> u32 {
        self.push_text(placeholder)
    }

    /// How many distinct strings are held.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when nothing was interned yet.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Approximate heap bytes held, for the state-size gauge.
    pub fn heap_bytes(&self) -> usize {
        // A table slot is an entry plus one control byte.
        self.text.capacity()
            + self.spans.capacity() * 8
            + self.ids.capacity() * (std::mem::size_of::<Entry>() + 1)
    }
}

/// A table entry: an id and where its text lies.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u32,
    start: u32,
    len: u32,
}

impl Entry {
    /// The entry's text in `text`.
    #[inline]
    fn text<'a>(&self, text: &'a str) -> &'a str {
        &text[self.start as usize..(self.start + self.len) as usize]
    }
}

/// Text bytes an interner takes new strings into (see [`Interner::intern`]).
const TEXT_LIMIT: usize = u32::MAX as usize - (1 << 20);

/// The text of id `i`: a slice of the buffer.
#[inline]
fn span_text<'a>(text: &'a str, spans: &[(u32, u32)], i: u32) -> &'a str {
    let (start, len) = spans[i as usize];
    &text[start as usize..(start + len) as usize]
}

/// The name a trader slot holds when its trader is unknown: erased, or
/// its checkpoint record is missing. No text maps to such a slot, so a
/// trader really named like this gets an id of its own.
pub fn placeholder_name(shard: u32, local: u32) -> String {
    format!("~vacant-{shard}-{local}")
}

/// Trader id strings, one interner per shard.
#[derive(Debug, Clone, Default)]
pub struct ShardedNames {
    shards: Vec<Interner>,
}

impl ShardedNames {
    /// The id of trader `name` in `shard`, adding it when new; `None` when
    /// the shard holds `cap` traders already (at most
    /// [`MAX_TRADERS_PER_SHARD`], the id space).
    #[inline]
    pub fn intern(&mut self, shard: u32, name: &str, cap: u32) -> Option<TraderId> {
        let s = shard as usize;
        if s >= self.shards.len() {
            self.shards.resize_with(s + 1, Interner::new);
        }
        let names = &mut self.shards[s];
        if let Some(local) = names.get(name) {
            return Some(trader_id(shard, local));
        }
        if names.len() >= cap.min(MAX_TRADERS_PER_SHARD) as usize {
            return None;
        }
        Some(trader_id(shard, names.intern(name)))
    }

    /// The name of a trader.
    #[inline]
    pub fn name(&self, id: TraderId) -> &str {
        self.shards[shard_of(id) as usize].name(local_of(id))
    }

    /// The names of one shard, in id order.
    pub fn shard(&self, shard: u32) -> Option<&Interner> {
        self.shards.get(shard as usize)
    }

    /// Forgets the name of trader `local` of `shard` (an erasure): its slot
    /// keeps [`placeholder_name`], as a restore without its record gives.
    pub fn vacate(&mut self, shard: u32, local: u32) {
        if let Some(names) = self.shards.get_mut(shard as usize) {
            names.vacate(local, &placeholder_name(shard, local));
        }
    }

    /// Replaces one shard's names (a restored checkpoint).
    pub fn set_shard(&mut self, shard: u32, names: Interner) {
        let s = shard as usize;
        if s >= self.shards.len() {
            self.shards.resize_with(s + 1, Interner::new);
        }
        self.shards[s] = names;
    }

    /// Traders across shards.
    pub fn len(&self) -> usize {
        self.shards.iter().map(Interner::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.shards.iter().map(Interner::heap_bytes).sum()
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
    fn trader_ids_carry_their_shard() {
        let mut n = ShardedNames::default();
        let a = n.intern(3, "a", MAX_TRADERS_PER_SHARD).unwrap();
        let b = n.intern(0, "a", MAX_TRADERS_PER_SHARD).unwrap();
        assert_ne!(a, b);
        assert_eq!((shard_of(a), local_of(a)), (3, 0));
        assert_eq!(n.name(a), "a");
        assert_eq!(
            n.intern(3, "b", MAX_TRADERS_PER_SHARD),
            Some(trader_id(3, 1))
        );
    }

    #[test]
    fn a_full_partition_refuses_new_traders_only() {
        let mut n = ShardedNames::default();
        assert!(n.intern(0, "a", 2).is_some() && n.intern(0, "b", 2).is_some());
        assert_eq!(n.intern(0, "c", 2), None, "a third trader is one too many");
        assert_eq!(
            n.intern(0, "a", 2),
            Some(trader_id(0, 0)),
            "known ones go on"
        );
        assert!(n.intern(1, "c", 2).is_some(), "the limit is per partition");
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

    #[test]
    fn a_vacated_id_keeps_its_place_and_loses_its_text() {
        let mut i = Interner::new();
        for n in ["a", "b", "c"] {
            i.intern(n);
        }
        i.vacate(1, "~vacant");
        assert_eq!(
            (i.name(1), i.get("b"), i.get("~vacant")),
            ("~vacant", None, None)
        );
        assert_eq!((i.get("a"), i.get("c")), (Some(0), Some(2)));
        assert_eq!(i.intern("b"), 3, "the old text is new again");
        assert_eq!(i.push_vacant("~v2"), 4);
        assert_eq!((i.name(4), i.get("~v2"), i.len()), ("~v2", None, 5));
    }
}
