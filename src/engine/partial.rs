//! Scale-out, first phase: what one shard (input partition) hands to the
//! instances that export the KPIs, through the group's partials topic.
//!
//! A shard's closed rows and captured `traders` snapshots go, as they
//! close, to the partials partition of every pipeline that reads them
//! (pipelines that read a common table are exported by one partials
//! partition, so each row travels once: [`ScaleOut::new`]). The
//! instance Kafka's group protocol gives that partition merges what every
//! shard sent and runs the pipeline's SQL once over all of it
//! ([`super::Merge`]). The partials topic is co-partitioned with the
//! inputs, so partials partition `k` moves with input partition `k`, and
//! its merge state is checkpointed with shard `k`.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::pipeline::{Columns, Input, Planned};
use crate::state::{CodecError, decode, encode_sized};

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
    /// Closed rows: (table, from, to, Arrow IPC batch). The batches are
    /// byte strings to serde (`ByteBuf`): postcard copies them whole, where
    /// a `Vec<u8>` went element by element (the same bytes on the wire).
    pub tables: Vec<(u8, i64, i64, ByteBuf)>,
    /// Captured `traders` snapshots: (interval, as of, Arrow IPC batch).
    pub captures: Vec<(i64, i64, ByteBuf)>,
    /// Wall-clock time it was sent (ms): only for the merge delay metric,
    /// never for an output.
    pub sent_at_ms: i64,
}

impl Partial {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Each entry's numbers take at most 30 bytes.
        let batches: usize = self.tables.iter().map(|t| t.3.len() + 30).sum::<usize>()
            + self.captures.iter().map(|c| c.2.len() + 30).sum::<usize>();
        encode_sized(self, 64 + batches)
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
    /// The columns of `traders` they read: a capture travels with these
    /// only.
    pub traders_columns: Columns,
    /// The columns of each event table they read: closed rows travel
    /// with these only.
    pub table_columns: [Columns; 6],
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
    /// Pipelines that read a common event table or the same snapshot
    /// interval go to one partition, so a closed row or a capture travels
    /// to one partition, not to every one whose pipelines read it: the
    /// groups (connected by what they read) go, largest first, to the
    /// partition with the fewest pipelines so far. Every instance derives
    /// the same routing from the same pipelines.
    pub fn new<'a>(pipelines: impl Iterator<Item = &'a Planned>, partitions: u32) -> Self {
        let partitions = partitions.max(1);
        let reads: Vec<(usize, Needs)> = pipelines
            .enumerate()
            .map(|(i, p)| (i, Needs::of(i, p)))
            .collect();
        // Groups of pipelines connected by a common read (union-find).
        let mut group: Vec<usize> = (0..reads.len()).collect();
        fn root(group: &mut [usize], mut i: usize) -> usize {
            while group[i] != i {
                group[i] = group[group[i]];
                i = group[i];
            }
            i
        }
        for a in 0..reads.len() {
            for b in a + 1..reads.len() {
                if reads[a].1.shares(&reads[b].1) {
                    let (ra, rb) = (root(&mut group, a), root(&mut group, b));
                    group[ra.max(rb)] = ra.min(rb);
                }
            }
        }
        let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for i in 0..reads.len() {
            let r = root(&mut group, i);
            groups.entry(r).or_default().push(i);
        }
        let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
        // Largest first; ties by the first pipeline (deterministic).
        groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
        let mut needs = vec![Needs::default(); partitions as usize];
        for g in groups {
            let Some(n) = needs.iter_mut().min_by_key(|n| n.pipelines.len()) else {
                break;
            };
            for i in g {
                n.merge(&reads[i].1);
            }
        }
        for n in &mut needs {
            n.pipelines.sort_unstable();
        }
        Self { partitions, needs }
    }

    /// The columns of `traders` read by the pipelines of snapshot
    /// interval `every`.
    pub fn capture_columns(&self, every: i64) -> Columns {
        Columns::union(
            self.needs
                .iter()
                .filter(|n| n.captures.contains(&every))
                .map(|n| &n.traders_columns),
        )
    }

    /// The columns of event table `t` read by the pipelines that read it.
    pub fn table_columns(&self, t: usize) -> Columns {
        Columns::union(
            self.needs
                .iter()
                .filter(|n| n.tables.get(t).copied().unwrap_or(false))
                .map(|n| &n.table_columns[t]),
        )
    }

    /// The partials partition that exports pipeline `i`.
    pub fn partition_of(&self, i: usize) -> u32 {
        self.needs
            .iter()
            .position(|n| n.pipelines.contains(&i))
            .unwrap_or(0) as u32
    }
}

impl Needs {
    /// What pipeline `i` reads.
    fn of(i: usize, p: &Planned) -> Self {
        let mut n = Needs {
            pipelines: vec![i],
            ..Needs::default()
        };
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
        for stage in std::iter::once(&p.stage).chain(&p.combine) {
            n.traders_columns.add(&stage.columns(Input::Traders));
            for (t, c) in n.table_columns.iter_mut().enumerate() {
                c.add(&stage.columns(Input::Event(t)));
            }
        }
        n
    }

    /// Whether two read a common table or snapshot interval.
    fn shares(&self, other: &Needs) -> bool {
        self.tables.iter().zip(&other.tables).any(|(a, b)| *a && *b)
            || self.captures.iter().any(|c| other.captures.contains(c))
    }

    fn merge(&mut self, other: &Needs) {
        for (a, b) in self.tables.iter_mut().zip(&other.tables) {
            *a |= *b;
        }
        for c in &other.captures {
            if !self.captures.contains(c) {
                self.captures.push(*c);
            }
        }
        self.traders_columns.add(&other.traders_columns);
        for (a, b) in self.table_columns.iter_mut().zip(&other.table_columns) {
            a.add(b);
        }
        self.pipelines.extend(&other.pipelines);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue's pipelines that share a table share a partition:
    /// every table and the daily snapshot go to one partition each.
    #[test]
    fn pipelines_reading_a_common_table_share_a_partition() {
        let planned = crate::pipeline::check_pipelines(None).unwrap();
        let s = ScaleOut::new(planned.iter(), 4);
        let all: usize = s.needs.iter().map(|n| n.pipelines.len()).sum();
        assert_eq!(all, planned.len(), "every pipeline once");
        for t in 0..6 {
            let readers = s.needs.iter().filter(|n| n.tables[t]).count();
            assert!(readers <= 1, "table {t} goes to {readers} partitions");
        }
        let snapshot = s.needs.iter().filter(|n| !n.captures.is_empty()).count();
        assert_eq!(snapshot, 1);
        let by_name = |name: &str| {
            let i = planned.iter().position(|p| &*p.name == name).unwrap();
            s.partition_of(i)
        };
        assert_eq!(by_name("trading"), by_name("active_traders"));
        assert_eq!(by_name("funnel"), by_name("segments"));
        assert_eq!(by_name("ab_tests"), by_name("campaigns"));
        // A capture carries the columns the snapshot pipelines read.
        let names = |schema: datafusion::arrow::datatypes::SchemaRef, read: Columns| {
            (0..schema.fields().len())
                .filter(|&i| read.contains(i))
                .map(|i| schema.field(i).name().clone())
                .collect::<Vec<String>>()
        };
        assert_eq!(
            names(
                crate::features::traders_schema(),
                s.capture_columns(86_400_000)
            ),
            [
                "signup_ts",
                "channel",
                "first_deposit_ts",
                "second_deposit_ts",
                "deposit_sum",
                "last_activity_ts",
                "segment",
                "as_of"
            ]
        );
        assert_eq!(s.capture_columns(3_600_000), Columns::default());
        // Closed trades travel without the columns no pipeline reads.
        let trades = crate::event::EventType::Trade;
        assert_eq!(
            names(
                crate::window::schema_of(trades),
                s.table_columns(trades.index())
            ),
            ["trader", "segment", "stake", "currency", "status", "pnl"]
        );
        // One partition: everything there, as before.
        let one = ScaleOut::new(planned.iter(), 1);
        assert_eq!(
            one.needs[0].pipelines,
            (0..planned.len()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_partial_round_trips() {
        let p = Partial {
            source: 3,
            sources: 4,
            hi: 86_400_000,
            more: true,
            last: false,
            tables: vec![(1, 0, 60_000, ByteBuf::from(vec![1, 2, 3]))],
            captures: vec![(86_400_000, 86_400_000, ByteBuf::from(vec![4]))],
            sent_at_ms: 1,
        };
        assert_eq!(Partial::from_bytes(&p.to_bytes()).ok(), Some(p));
        assert!(Partial::from_bytes(b"nonsense").is_err());
    }

    /// The layout before the batches became byte strings, kept to show
    /// that records written by either read by the other.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct PartialWithVecs {
        source: u32,
        sources: u32,
        hi: i64,
        more: bool,
        last: bool,
        tables: Vec<(u8, i64, i64, Vec<u8>)>,
        captures: Vec<(i64, i64, Vec<u8>)>,
        sent_at_ms: i64,
    }

    #[test]
    fn byte_strings_keep_the_wire_format_of_byte_vectors() {
        let batch: Vec<u8> = (0..=255).chain(0..300).map(|b| b as u8).collect();
        let new = Partial {
            source: 1,
            sources: 2,
            hi: 5,
            more: false,
            last: true,
            tables: vec![(2, -1, 9, ByteBuf::from(batch.clone()))],
            captures: vec![(7, 8, ByteBuf::from(vec![0x80; 200]))],
            sent_at_ms: 3,
        };
        let old = PartialWithVecs {
            source: 1,
            sources: 2,
            hi: 5,
            more: false,
            last: true,
            tables: vec![(2, -1, 9, batch)],
            captures: vec![(7, 8, vec![0x80; 200])],
            sent_at_ms: 3,
        };
        let bytes = new.to_bytes();
        assert_eq!(bytes, crate::state::encode(&old));
        assert_eq!(
            crate::state::decode::<PartialWithVecs>(&bytes).ok(),
            Some(old)
        );
    }
}
