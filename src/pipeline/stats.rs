//! Counts of every event read. The invariant
//! `read = valid + invalid + duplicate + late` holds at every instant (late
//! events are new and well-formed, and still update trader state, but their
//! window had closed).

use serde::Serialize;

use crate::event::{EventType, Reason};

const TYPES: usize = 6;
const REASONS: usize = Reason::ALL.len();

/// Event accounting, kept in plain integers on the hot path and published to
/// Prometheus in batches.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub read: u64,
    pub valid: [u64; TYPES],
    pub invalid: [u64; REASONS],
    pub duplicate: [u64; TYPES],
    pub late: [u64; TYPES],
}

impl Stats {
    pub fn valid_total(&self) -> u64 {
        self.valid.iter().sum()
    }
    pub fn invalid_total(&self) -> u64 {
        self.invalid.iter().sum()
    }
    pub fn duplicate_total(&self) -> u64 {
        self.duplicate.iter().sum()
    }
    pub fn late_total(&self) -> u64 {
        self.late.iter().sum()
    }

    /// True when every event read is accounted for exactly once.
    pub fn balanced(&self) -> bool {
        self.read
            == self.valid_total()
                + self.invalid_total()
                + self.duplicate_total()
                + self.late_total()
    }

    /// A serialisable summary for `replay --json` and the API.
    pub fn summary(&self) -> Summary {
        let by_type = |a: &[u64; TYPES]| {
            EventType::ALL
                .iter()
                .map(|t| (t.as_str(), a[t.index()]))
                .filter(|(_, n)| *n > 0)
                .collect()
        };
        Summary {
            read: self.read,
            valid: self.valid_total(),
            invalid: self.invalid_total(),
            duplicate: self.duplicate_total(),
            late: self.late_total(),
            valid_by_type: by_type(&self.valid),
            duplicate_by_type: by_type(&self.duplicate),
            late_by_type: by_type(&self.late),
            invalid_by_reason: Reason::ALL
                .iter()
                .map(|r| (r.as_str(), self.invalid[r.index()]))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// Event accounting as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub read: u64,
    pub valid: u64,
    pub invalid: u64,
    pub duplicate: u64,
    pub late: u64,
    pub valid_by_type: std::collections::BTreeMap<&'static str, u64>,
    pub duplicate_by_type: std::collections::BTreeMap<&'static str, u64>,
    pub late_by_type: std::collections::BTreeMap<&'static str, u64>,
    pub invalid_by_reason: std::collections::BTreeMap<&'static str, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_sizes_match_the_closed_sets() {
        assert_eq!(EventType::ALL.len(), TYPES);
        assert_eq!(Reason::ALL.len(), REASONS);
    }
}
