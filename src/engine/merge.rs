//! Scale-out, second phase: one partials partition's merge. It gathers the
//! closed rows and snapshots every shard sent ([`super::Partial`]) and runs
//! the pipelines it exports once every shard has released past a window,
//! over all shards together: the rows of one instance that held every
//! partition, whichever instances hold them now.

use std::collections::BTreeMap;

use datafusion::arrow::record_batch::RecordBatch;

use super::kpis::Kpis;
use super::partial::Partial;
use crate::alert::KpiDrop;
use crate::event::EventType;
use crate::features::{check_capture, expand_capture};
use crate::pipeline::KpiRow;
use crate::pipeline::columns::expand;
use crate::state::{CodecError, decode_batch};
use crate::window::rows_between;
use crate::window::schema_of;

/// A captured snapshot waiting until every shard passed its boundary.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub source: u32,
    /// Its place among the captures of the same boundary (checkpoint key).
    pub part: u32,
    pub batch: RecordBatch,
    /// Written to the checkpoint already.
    pub saved: bool,
}

/// The merge of one partials partition.
pub struct Merge {
    /// The exported pipelines, their per-shard (here: per source shard)
    /// rows, slices and progress.
    pub kpis: Kpis,
    /// Engine index of each of `kpis`' pipelines.
    pub index: Vec<usize>,
    /// Input partitions in all.
    pub sources: u32,
    /// Per source shard: released up to (complete releases only).
    pub released: Vec<Option<i64>>,
    /// Per source shard: its input ended.
    pub last: Vec<bool>,
    /// Captures by (interval, as of) until every shard passed them.
    pub waiting: BTreeMap<(i64, i64), Vec<Waiting>>,
    /// Saved captures handed to the queries since the last checkpoint:
    /// (source, interval, as of, part).
    pub forgotten: Vec<(u32, i64, i64, u32)>,
    /// The frontier of the last run, and whether it closed the last windows.
    pub ran: Option<(i64, bool)>,
    /// The checkpoint's progress record as last written.
    pub last_meta: Option<Vec<u8>>,
    /// The KPI drop rules over the rows it exports (their series move
    /// with the merge).
    pub kpi: KpiDrop,
    /// When the latest complete partial was sent (wall clock, ms): the
    /// merge delay metric only.
    pub latest_sent_ms: Option<i64>,
}

/// A partial that cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("unreadable partial: {0}")]
    Codec(#[from] CodecError),
    #[error("partial of shard {shard} of {sources}: no such shard")]
    Source { shard: u32, sources: u32 },
    #[error("partial names table {0}; there are 6")]
    Table(u8),
    /// A table's or capture's columns that are not its table's.
    #[error("{0}")]
    Columns(String),
}

impl Merge {
    pub fn new(kpis: Kpis, index: Vec<usize>, kpi: KpiDrop) -> Self {
        Self {
            kpi,
            latest_sent_ms: None,
            kpis,
            index,
            sources: 0,
            released: Vec::new(),
            last: Vec::new(),
            waiting: BTreeMap::new(),
            forgotten: Vec::new(),
            ran: None,
            last_meta: None,
        }
    }

    /// Makes room for `sources` source shards.
    pub fn set_sources(&mut self, sources: u32) {
        if sources > self.sources {
            self.sources = sources;
            self.released.resize(sources as usize, None);
            self.last.resize(sources as usize, false);
            self.kpis.ensure_shard(sources - 1);
        }
    }

    /// Takes in one partial. What a source shard sent before (a repeat
    /// after an at-least-once restart) is skipped: rows before its
    /// released point, captures at or before it.
    pub fn apply(&mut self, p: Partial) -> Result<(), MergeError> {
        if p.source >= p.sources.max(self.sources) {
            return Err(MergeError::Source {
                shard: p.source,
                sources: p.sources,
            });
        }
        self.set_sources(p.sources);
        let s = p.source as usize;
        let from = self.released[s];
        for (table, lo, hi, bytes) in p.tables {
            if table >= 6 {
                return Err(MergeError::Table(table));
            }
            if from.is_some_and(|f| hi <= f) {
                continue;
            }
            // Sent with the columns read only: back in the table's schema.
            let schema = schema_of(EventType::ALL[table as usize]);
            let mut batch = expand(&schema, &decode_batch(&bytes)?, "table", |_, _| None)
                .map_err(MergeError::Columns)?;
            let mut lo = lo;
            if let Some(f) = from.filter(|f| lo < *f) {
                batch = rows_between(&batch, f, i64::MAX);
                lo = f;
            }
            self.kpis.stores[s][table as usize].push(lo, hi, batch);
        }
        for (every, as_of, bytes) in p.captures {
            if from.is_some_and(|f| as_of <= f) {
                continue;
            }
            let batch = decode_batch(&bytes)?;
            check_capture(&batch.schema()).map_err(MergeError::Columns)?;
            let v = self.waiting.entry((every, as_of)).or_default();
            v.push(Waiting {
                source: p.source,
                part: v.len() as u32,
                batch,
                saved: false,
            });
        }
        if !p.more {
            self.released[s] = Some(from.map_or(p.hi, |f| f.max(p.hi)));
            self.last[s] |= p.last;
            self.latest_sent_ms = Some(
                self.latest_sent_ms
                    .map_or(p.sent_at_ms, |t| t.max(p.sent_at_ms)),
            );
        }
        Ok(())
    }

    /// Where every source shard stands: the smallest released point, once
    /// each has sent one; and whether all inputs ended.
    pub fn frontier(&self) -> Option<(i64, bool)> {
        if self.sources == 0 {
            return None;
        }
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for r in &self.released {
            min = min.min((*r)?);
            max = max.max((*r)?);
        }
        // At the end every shard released all it had: the latest end is
        // the end of the input (each shard's own end may be earlier).
        let last = self.last.iter().all(|l| *l);
        Some((if last { max } else { min }, last))
    }

    /// Runs the exported pipelines over what every shard released: the rows
    /// of each pipeline that produced any, by engine index.
    pub fn run(&mut self) -> Vec<(usize, Vec<KpiRow>)> {
        let Some((frontier, last)) = self.frontier() else {
            return Vec::new();
        };
        if self.ran == Some((frontier, last)) {
            return Vec::new();
        }
        // Snapshots every shard passed (all of them at the end).
        let due: Vec<(i64, i64)> = self
            .waiting
            .keys()
            .filter(|(_, as_of)| last || *as_of <= frontier)
            .copied()
            .collect();
        for key in due {
            let Some(mut v) = self.waiting.remove(&key) else {
                continue;
            };
            v.sort_by_key(|w| (w.source, w.part));
            for w in v {
                if w.saved {
                    self.forgotten.push((w.source, key.0, key.1, w.part));
                }
                // Sent with the columns read only; checked when taken in.
                match expand_capture(&w.batch, key.1) {
                    Ok(batch) => self
                        .kpis
                        .captures
                        .entry(key)
                        .or_default()
                        .push((w.source, batch)),
                    Err(e) => {
                        tracing::error!(source = w.source, as_of = key.1, error = %e, "a capture that does not fit the traders table is left out");
                    }
                }
            }
        }
        let released: Vec<(u32, i64)> = (0..self.sources).map(|s| (s, frontier)).collect();
        self.ran = Some((frontier, last));
        self.kpis
            .run(&released, last)
            .into_iter()
            .map(|(i, rows)| (self.index[i], rows))
            .collect()
    }

    /// The `/metrics` KPI series of the pipelines it exports.
    pub fn kpi_samples(&self) -> Vec<crate::metrics::KpiSample> {
        let Some(Ok(m)) = self.kpis.metrics.as_ref().map(|m| m.lock()) else {
            return Vec::new();
        };
        self.kpis
            .pipelines
            .iter()
            .flat_map(|p| m.kpi_samples_of(&p.p.name))
            .collect()
    }

    /// Hands its pipelines' `/metrics` series over: restored ones in,
    /// or (`None`) all of them out, when the merge leaves.
    pub fn set_kpi_samples(&self, samples: Option<&[crate::metrics::KpiSample]>) {
        let Some(Ok(mut m)) = self.kpis.metrics.as_ref().map(|m| m.lock()) else {
            return;
        };
        for p in &self.kpis.pipelines {
            m.forget_pipeline(&p.p.name);
        }
        if let Some(s) = samples {
            m.restore_kpis(s);
        }
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.kpis.bytes()
            + self
                .waiting
                .values()
                .flatten()
                .map(|w| w.batch.get_array_memory_size())
                .sum::<usize>()
    }
}
