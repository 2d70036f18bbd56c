//! Scale-out, first phase: what one shard (input partition) hands to the
//! instances that export the KPIs, through the group's partials topic.
//!
//! A shard's closed rows and captured `traders` snapshots go, as they
//! close, to the partials partition of every pipeline that reads them
//! (pipeline `i` is exported by partials partition `i % partitions`). The
//! instance Kafka's group protocol gives that partition merges what every
//! shard sent and runs the pipeline's SQL once over all of it
//! ([`super::Merge`]). The partials topic is co-partitioned with the
//! inputs, so partials partition `k` moves with input partition `k`, and
//! its merge state is checkpointed with shard `k`.

use serde::{Deserialize, Serialize};

use crate::pipeline::{Input, Planned};
use crate::state::{CodecError, decode, encode};

/// Rows per message part: a partial stays far below the message size limit.
pub const ROWS_PER_PART: usize = 4_096;

/// One message of the partials topic: part of what shard `source` closed
/// up to `hi`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// The shard (input partition) that closed these rows.
    pub source: u32,
    /// Input partitions in all: the merge waits for each of them.
    pub sources: u32,
    /// The shard has released every event before this.
    pub hi: i64,
    /// More parts of the same release follow: `hi` holds once the last
    /// part is read (a merge never runs on half a release).
    pub more: bool,
    /// The input ended (`--exit-when-idle`): partial windows may close.
    pub last: bool,
    /// Closed rows: (table, from, to, Arrow IPC batch).
    pub tables: Vec<(u8, i64, i64, Vec<u8>)>,
    /// Captured `traders` snapshots: (interval, as of, Arrow IPC batch).
    pub captures: Vec<(i64, i64, Vec<u8>)>,
    /// Wall-clock time it was sent (ms): only for the merge delay metric,
    /// never for an output.
    pub sent_at_ms: i64,
}

impl Partial {
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        decode(bytes)
    }
}

/// What the pipelines exported by one partials partition read.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// Event tables, by index.
    pub tables: [bool; 6],
    /// Snapshot intervals whose `traders` captures they read.
    pub captures: Vec<i64>,
    /// Engine indexes of the pipelines.
    pub pipelines: Vec<usize>,
}

/// Scale-out settings of an engine: how many partitions the inputs (and
/// the partials topic) have, and what each partials partition needs.
#[derive(Debug, Clone)]
pub struct ScaleOut {
    pub partitions: u32,
    pub needs: Vec<Needs>,
}

impl ScaleOut {
    /// Routes the pipelines over `partitions` partials partitions.
    pub fn new<'a>(pipelines: impl Iterator<Item = &'a Planned>, partitions: u32) -> Self {
        let partitions = partitions.max(1);
        let mut needs = vec![Needs::default(); partitions as usize];
        for (i, p) in pipelines.enumerate() {
            let n = &mut needs[i % partitions as usize];
            n.pipelines.push(i);
            let reads = p
                .stage
                .reads()
                .chain(p.combine.iter().flat_map(|c| c.reads()));
            for input in reads {
                match input {
                    Input::Event(t) if t < 6 => n.tables[t] = true,
                    Input::Traders => {
                        if let crate::window::WindowSpec::Snapshot { every_ms } = p.def.window
                            && !n.captures.contains(&every_ms)
                        {
                            n.captures.push(every_ms);
                        }
                    }
                    _ => {}
                }
            }
        }
        Self { partitions, needs }
    }

    /// The partials partition that exports pipeline `i`.
    pub fn partition_of(&self, i: usize) -> u32 {
        (i % self.partitions as usize) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_round_trips() {
        let p = Partial {
            source: 3,
            sources: 4,
            hi: 86_400_000,
            more: true,
            last: false,
            tables: vec![(1, 0, 60_000, vec![1, 2, 3])],
            captures: vec![(86_400_000, 86_400_000, vec![4])],
            sent_at_ms: 1,
        };
        assert_eq!(Partial::from_bytes(&p.to_bytes()).ok(), Some(p));
        assert!(Partial::from_bytes(b"nonsense").is_err());
    }
}
