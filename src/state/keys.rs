//! Keys of the checkpoint records of one shard. In the changelog topic the
//! shard is the partition, so keys need not name it; compaction keeps the
//! latest value of each key, and a removed piece of state is a tombstone.

/// What a record holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// The shard's progress: offsets, watermarks, frontier, clocks.
    Meta,
    /// What the instance keeps once for all its shards (event counters,
    /// KPI metrics, KPI drop rules); written to its lowest shard.
    Global,
    /// Symbol names as the writer numbered them.
    Symbols,
    /// One trader: its name and state.
    Trader(u32),
    /// Events waiting for the frontier that arrived in one block (block,
    /// part: a block is written in parts of bounded size).
    Pending(u64, u32),
    /// Event ids of one de-duplication bucket added in one checkpoint.
    Dedup(i64, u64),
    /// Closed rows of one table released between two frontiers (table,
    /// from, to, part).
    Rows(u8, i64, i64, u32),
    /// One slice of a hopping window: pipeline, slice start, part.
    Slice(String, i64, u32),
    /// A block of alert ids sent.
    Sent(u64),
    /// Scale-out: a merge's progress (the merge of the partials partition
    /// of the shard's number).
    MergeMeta,
    /// Scale-out: a merge's record of what source shard `.0` sent.
    Merged(u32, Box<Key>),
    /// Inside [`Key::Merged`]: a captured snapshot waiting for the other
    /// shards (interval, as of, part).
    Capture(i64, i64, u32),
}

impl Key {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(24);
        match self {
            Key::Meta => k.push(b'm'),
            Key::Global => k.push(b'g'),
            Key::Symbols => k.push(b'y'),
            Key::Trader(i) => {
                k.push(b't');
                k.extend_from_slice(&i.to_be_bytes());
            }
            Key::Pending(b, part) => {
                k.push(b'e');
                k.extend_from_slice(&b.to_be_bytes());
                k.extend_from_slice(&part.to_be_bytes());
            }
            Key::Dedup(bucket, block) => {
                k.push(b'd');
                k.extend_from_slice(&bucket.to_be_bytes());
                k.extend_from_slice(&block.to_be_bytes());
            }
            Key::Rows(table, lo, hi, part) => {
                k.push(b'r');
                k.push(*table);
                k.extend_from_slice(&lo.to_be_bytes());
                k.extend_from_slice(&hi.to_be_bytes());
                k.extend_from_slice(&part.to_be_bytes());
            }
            Key::Slice(pipeline, start, part) => {
                k.push(b's');
                k.extend_from_slice(&start.to_be_bytes());
                k.extend_from_slice(&part.to_be_bytes());
                k.extend_from_slice(pipeline.as_bytes());
            }
            Key::Sent(b) => {
                k.push(b'a');
                k.extend_from_slice(&b.to_be_bytes());
            }
            Key::MergeMeta => k.push(b'n'),
            Key::Merged(source, inner) => {
                k.push(b'M');
                k.extend_from_slice(&source.to_be_bytes());
                k.extend_from_slice(&inner.to_bytes());
            }
            Key::Capture(every, as_of, part) => {
                k.push(b'c');
                k.extend_from_slice(&every.to_be_bytes());
                k.extend_from_slice(&as_of.to_be_bytes());
                k.extend_from_slice(&part.to_be_bytes());
            }
        }
        k
    }

    pub fn from_bytes(k: &[u8]) -> Option<Key> {
        let (&tag, rest) = k.split_first()?;
        let u32_at = |i: usize| Some(u32::from_be_bytes(rest.get(i..i + 4)?.try_into().ok()?));
        let u64_at = |i: usize| Some(u64::from_be_bytes(rest.get(i..i + 8)?.try_into().ok()?));
        let i64_at = |i: usize| Some(i64::from_be_bytes(rest.get(i..i + 8)?.try_into().ok()?));
        Some(match tag {
            b'm' if rest.is_empty() => Key::Meta,
            b'g' if rest.is_empty() => Key::Global,
            b'y' if rest.is_empty() => Key::Symbols,
            b't' if rest.len() == 4 => Key::Trader(u32_at(0)?),
            b'e' if rest.len() == 12 => Key::Pending(u64_at(0)?, u32_at(8)?),
            b'd' if rest.len() == 16 => Key::Dedup(i64_at(0)?, u64_at(8)?),
            b'r' if rest.len() == 21 => {
                let (&table, r) = rest.split_first()?;
                let lo = i64::from_be_bytes(r.get(0..8)?.try_into().ok()?);
                let hi = i64::from_be_bytes(r.get(8..16)?.try_into().ok()?);
                let part = u32::from_be_bytes(r.get(16..20)?.try_into().ok()?);
                Key::Rows(table, lo, hi, part)
            }
            b's' if rest.len() > 12 => Key::Slice(
                String::from_utf8(rest[12..].to_vec()).ok()?,
                i64_at(0)?,
                u32_at(8)?,
            ),
            b'a' if rest.len() == 8 => Key::Sent(u64_at(0)?),
            b'n' if rest.is_empty() => Key::MergeMeta,
            b'M' if rest.len() > 4 => {
                let inner = Key::from_bytes(&rest[4..])?;
                if matches!(inner, Key::Merged(..)) {
                    return None;
                }
                Key::Merged(u32_at(0)?, Box::new(inner))
            }
            b'c' if rest.len() == 20 => Key::Capture(i64_at(0)?, i64_at(8)?, u32_at(16)?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for k in [
            Key::Meta,
            Key::Global,
            Key::Symbols,
            Key::Trader(7),
            Key::Pending(3, 1),
            Key::Dedup(-5, 9),
            Key::Rows(2, i64::MIN, 42, 3),
            Key::Slice("ab_tests".into(), 86_400_000, 1),
            Key::Sent(11),
            Key::MergeMeta,
            Key::Merged(3, Box::new(Key::Rows(1, 0, 60_000, 2))),
            Key::Merged(0, Box::new(Key::Slice("active_traders".into(), 0, 0))),
            Key::Merged(2, Box::new(Key::Capture(86_400_000, 172_800_000, 4))),
        ] {
            assert_eq!(Key::from_bytes(&k.to_bytes()), Some(k.clone()), "{k:?}");
        }
        assert_eq!(Key::from_bytes(b"zz"), None);
    }
}
