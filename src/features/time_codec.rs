//! How event times are written into checkpoints: `#[serde(with = ...)]`
//! helpers for `i64` times whose sentinels ([`NEVER`](super::NEVER) =
//! `i64::MIN`, `i64::MAX`) are common in trader state.
//!
//! Checkpoints use postcard, which writes an `i64` as a zig-zag varint: a
//! sentinel takes 10 bytes there, a real millisecond time 6. Shifting the
//! zig-zag value by two (wrapping) maps `i64::MIN` to 1 and `i64::MAX` to 0,
//! so a sentinel takes one byte and every other value keeps its size; the
//! map is a bijection on `i64`, so any value round-trips.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn encode(v: i64) -> u64 {
    (((v << 1) ^ (v >> 63)) as u64).wrapping_add(2)
}

fn decode(u: u64) -> i64 {
    let z = u.wrapping_sub(2);
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    encode(*v).serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    u64::deserialize(d).map(decode)
}

/// The same for a fixed array of times.
pub mod array {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(v: &[i64; N], s: S) -> Result<S::Ok, S::Error>
    where
        [u64; N]: Serialize,
    {
        v.map(encode).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[i64; N], D::Error>
    where
        [u64; N]: Deserialize<'de>,
    {
        <[u64; N]>::deserialize(d).map(|a| a.map(decode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_round_trips_and_sentinels_are_small() {
        for v in [
            i64::MIN,
            i64::MIN + 1,
            -2,
            -1,
            0,
            1,
            2,
            1_767_225_600_000,
            i64::MAX - 1,
            i64::MAX,
        ] {
            assert_eq!(decode(encode(v)), v, "{v}");
        }
        assert_eq!(encode(i64::MIN), 1);
        assert_eq!(encode(i64::MAX), 0);
        let time = postcard::to_stdvec(&encode(1_767_225_600_000)).unwrap();
        let plain = postcard::to_stdvec(&1_767_225_600_000_i64).unwrap();
        assert_eq!(time.len(), plain.len());
    }
}
