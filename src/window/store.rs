//! Closed rows of one table, each batch tagged with the range of event time
//! it covers, kept until every pipeline has read past them.

use datafusion::arrow::array::{BooleanArray, Int64Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::record_batch::RecordBatch;

/// Rows whose event times lie in `[lo, hi)`.
#[derive(Debug, Clone)]
pub struct RangeBatch {
    pub lo: i64,
    pub hi: i64,
    pub batch: RecordBatch,
}

/// The closed rows of one table, oldest first.
#[derive(Debug, Clone, Default)]
pub struct ClosedStore {
    batches: Vec<RangeBatch>,
}

impl ClosedStore {
    /// Adds the rows that closed between two frontiers.
    pub fn push(&mut self, lo: i64, hi: i64, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.batches.push(RangeBatch { lo, hi, batch });
        }
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
            let ts = b
                .batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("ts is Int64");
            let mask: BooleanArray = ts.iter().map(|t| t.map(|t| t >= lo && t < hi)).collect();
            let f = filter_record_batch(&b.batch, &mask).expect("mask matches the batch");
            if f.num_rows() > 0 {
                out.push(f);
            }
        }
        out
    }

    /// Drops batches entirely before `t`.
    pub fn forget_before(&mut self, t: i64) {
        self.batches.retain(|b| b.hi > t);
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
