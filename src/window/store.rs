//! Closed rows of one table, each batch tagged with the range of event time
//! it covers, kept until every pipeline has read past them.

use datafusion::arrow::array::{BooleanArray, Int64Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::record_batch::RecordBatch;

/// The rows of an event table's batch with event time (column 0, `ts`)
/// in `[lo, hi)`; none when column 0 is not an event time (a batch that
/// did not come from an event table, e.g. a forged partial).
pub fn rows_between(batch: &RecordBatch, lo: i64, hi: i64) -> RecordBatch {
    let Some(ts) = batch
        .columns()
        .first()
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
    else {
        return batch.slice(0, 0);
    };
    let mask: BooleanArray = ts.iter().map(|t| t.map(|t| t >= lo && t < hi)).collect();
    filter_record_batch(batch, &mask).unwrap_or_else(|_| batch.slice(0, 0))
}

/// Rows whose event times lie in `[lo, hi)`.
#[derive(Debug, Clone)]
pub struct RangeBatch {
    pub lo: i64,
    pub hi: i64,
    pub batch: RecordBatch,
    /// Written to the checkpoint already, as these parts (first, count).
    pub saved: Option<(u32, u32)>,
}

/// The closed rows of one table, oldest first.
#[derive(Debug, Clone, Default)]
pub struct ClosedStore {
    batches: Vec<RangeBatch>,
    /// Saved batches dropped since the last checkpoint: range and parts.
    forgotten: Vec<(i64, i64, u32, u32)>,
}

impl ClosedStore {
    /// Adds the rows that closed between two frontiers.
    pub fn push(&mut self, lo: i64, hi: i64, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.batches.push(RangeBatch {
                lo,
                hi,
                batch,
                saved: None,
            });
        }
    }

    /// Adds part `part` of a batch restored from a checkpoint.
    pub fn restore(&mut self, lo: i64, hi: i64, part: u32, batch: RecordBatch) {
        self.batches.push(RangeBatch {
            lo,
            hi,
            batch,
            saved: Some((part, 1)),
        });
        self.batches.sort_by_key(|b| (b.lo, b.hi, b.saved));
    }

    /// Checkpoint: the batches not saved yet, each cut into parts of at
    /// most `rows` rows (marked saved now); and the saved parts dropped
    /// since the last call.
    #[allow(clippy::type_complexity)]
    pub fn take_changes(
        &mut self,
        rows: usize,
    ) -> (Vec<(i64, i64, u32, RecordBatch)>, Vec<(i64, i64, u32, u32)>) {
        let rows = rows.max(1);
        let mut new = Vec::new();
        for i in 0..self.batches.len() {
            if self.batches[i].saved.is_some() {
                continue;
            }
            // Parts go on after those of batches of the same range (a
            // scale-out merge receives a range in several batches).
            let (lo, hi) = (self.batches[i].lo, self.batches[i].hi);
            let first = self
                .batches
                .iter()
                .filter(|b| b.lo == lo && b.hi == hi)
                .filter_map(|b| b.saved.map(|(f, c)| f + c))
                .max()
                .unwrap_or(0);
            let b = &mut self.batches[i];
            let n = b.batch.num_rows();
            let parts = n.div_ceil(rows).max(1);
            for p in 0..parts {
                let off = p * rows;
                new.push((
                    lo,
                    hi,
                    first + p as u32,
                    b.batch.slice(off, rows.min(n - off)),
                ));
            }
            b.saved = Some((first, parts as u32));
        }
        (new, std::mem::take(&mut self.forgotten))
    }

    /// Rows with event time in `[lo, hi)`; batches straddling a bound are
    /// filtered on `ts` (column 0).
    pub fn rows_in(&self, lo: i64, hi: i64) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        for b in &self.batches {
            if b.hi <= lo || b.lo >= hi {
                continue;
            }
            if b.lo >= lo && b.hi <= hi {
                out.push(b.batch.clone());
                continue;
            }
            let f = rows_between(&b.batch, lo, hi);
            if f.num_rows() > 0 {
                out.push(f);
            }
        }
        out
    }

    /// Drops batches entirely before `t`.
    pub fn forget_before(&mut self, t: i64) {
        let forgotten = &mut self.forgotten;
        self.batches.retain(|b| {
            let keep = b.hi > t;
            if let (false, Some((first, count))) = (keep, b.saved) {
                forgotten.push((b.lo, b.hi, first, count));
            }
            keep
        });
    }

    /// Takes every batch out (scale-out: they go to the partials topic).
    pub fn drain(&mut self) -> Vec<RangeBatch> {
        for b in &self.batches {
            if let Some((first, count)) = b.saved {
                self.forgotten.push((b.lo, b.hi, first, count));
            }
        }
        std::mem::take(&mut self.batches)
    }

    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.batch.num_rows()).sum()
    }

    pub fn bytes(&self) -> usize {
        self.batches
            .iter()
            .map(|b| b.batch.get_array_memory_size())
            .sum()
    }
}
