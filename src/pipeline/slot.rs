//! A table whose rows are handed over right before each run, so a query's
//! physical plan is built once and executed again and again.
//!
//! DataFusion's `MemTable` copies its batches into the physical plan when
//! the plan is built, so every run would pay physical planning and
//! optimisation again (about a quarter of the KPI path's time, measured
//! with `pulse bench --stages kpi` under `perf`). A slot table's scan reads
//! the slot when it executes instead.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::memory::{LazyBatchGenerator, LazyMemoryExec};
use parking_lot::RwLock;

/// The rows of the next run.
pub type Slot = Arc<Mutex<Vec<RecordBatch>>>;

/// The slot's rows, or an error if a panic while holding it poisoned it.
pub fn lock(slot: &Slot) -> Result<MutexGuard<'_, Vec<RecordBatch>>> {
    slot.lock()
        .map_err(|_| DataFusionError::Internal("a slot's lock was poisoned".into()))
}

/// A table reading its slot at execution time.
#[derive(Debug)]
pub struct SlotTable {
    schema: SchemaRef,
    pub slot: Slot,
}

impl SlotTable {
    pub fn new(schema: SchemaRef) -> Self {
        Self {
            schema,
            slot: Slot::default(),
        }
    }
}

#[async_trait]
impl TableProvider for SlotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Columns are picked before batches are joined: only the columns
        // the query reads are copied.
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let reader = SlotReader {
            slot: self.slot.clone(),
            projection: projection.cloned().map(Arc::from),
            schema: schema.clone(),
            next: 0,
        };
        let generator: Arc<RwLock<dyn LazyBatchGenerator>> = Arc::new(RwLock::new(reader));
        Ok(Arc::new(LazyMemoryExec::try_new(schema, vec![generator])?))
    }
}

/// Rows a slot's consecutive small batches are joined up to.
const JOIN_ROWS: usize = 8192;

/// Hands out the slot's batches, from the first, once per execution (the
/// plan's `execute` starts from a fresh reader through `reset_state`).
///
/// Consecutive small batches go out joined, in order, up to [`JOIN_ROWS`]
/// rows: DataFusion pays some microseconds per batch whatever its size, and
/// a query's rows came in one small batch per release (a rare event's
/// table) or per slice and window (a hopping window's combine), 14,500
/// batches in a `pulse bench` KPI run. Joined as they are read, so only
/// one joined batch is alive at a time (joining a week's rows up front
/// raised a replay's peak memory by a tenth). Grouped aggregates see the
/// same rows in the same order, so give the same results.
#[derive(Debug)]
struct SlotReader {
    slot: Slot,
    /// The columns read (all when `None`), and their schema.
    projection: Option<Arc<[usize]>>,
    schema: SchemaRef,
    next: usize,
}

impl fmt::Display for SlotReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("slot")
    }
}

impl LazyBatchGenerator for SlotReader {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn generate_next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let slot = lock(&self.slot)?;
        let Some(first) = slot.get(self.next) else {
            return Ok(None);
        };
        let start = self.next;
        let mut rows = first.num_rows();
        self.next += 1;
        while let Some(b) = slot.get(self.next)
            && rows + b.num_rows() <= JOIN_ROWS
        {
            rows += b.num_rows();
            self.next += 1;
        }
        let pick = |b: &RecordBatch| match &self.projection {
            Some(p) => b.project(p),
            None => Ok(b.clone()),
        };
        match &slot[start..self.next] {
            [one] => Ok(Some(pick(one)?)),
            run => {
                let picked = run.iter().map(pick).collect::<Result<Vec<_>, _>>()?;
                Ok(Some(concat_batches(&self.schema, &picked)?))
            }
        }
    }

    fn reset_state(&self) -> Arc<RwLock<dyn LazyBatchGenerator>> {
        Arc::new(RwLock::new(SlotReader {
            slot: self.slot.clone(),
            projection: self.projection.clone(),
            schema: self.schema.clone(),
            next: 0,
        }))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Int64, false),
            Field::new("neg", DataType::Int64, false),
        ]))
    }

    /// Rows `values` with their negation beside them.
    fn batch(values: std::ops::Range<i64>) -> RecordBatch {
        let ts: ArrayRef = Arc::new(Int64Array::from_iter_values(values.clone()));
        let neg: ArrayRef = Arc::new(Int64Array::from_iter_values(values.map(|v| -v)));
        RecordBatch::try_new(schema(), vec![ts, neg]).unwrap()
    }

    fn new_reader(slot: Slot, projection: Option<Vec<usize>>) -> SlotReader {
        let schema = match &projection {
            Some(p) => Arc::new(schema().project(p).unwrap()),
            None => schema(),
        };
        SlotReader {
            slot,
            projection: projection.map(Arc::from),
            schema,
            next: 0,
        }
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                c.values().to_vec()
            })
            .collect()
    }

    /// Small batches go out joined in order up to the row limit; a batch
    /// larger than the limit goes as it is; no row is lost or moved; a
    /// reset reader starts again from the first.
    #[test]
    fn a_reader_joins_small_batches_in_order() {
        let mut input = Vec::new();
        let mut next = 0;
        for size in [3, 5000, 4000, 1, 20_000, 7, 7, 8192, 0, 2] {
            input.push(batch(next..next + size));
            next += size;
        }
        let slot = Slot::new(Mutex::new(input.clone()));
        let mut reader = new_reader(slot.clone(), None);
        let read = |reader: &mut SlotReader| {
            let mut out = Vec::new();
            while let Some(b) = reader.generate_next_batch().unwrap() {
                out.push(b);
            }
            out
        };
        let out = read(&mut reader);
        assert_eq!(values(&out), values(&input));
        let sizes: Vec<usize> = out.iter().map(RecordBatch::num_rows).collect();
        // 3+5000 (4000 more would pass 8192), 4000+1, 20,000 alone, 7+7,
        // 8192+0, then 2.
        assert_eq!(sizes, vec![5003, 4001, 20_000, 14, 8192, 2]);
        let again = reader.reset_state();
        let mut again = again.write();
        let mut n = 0;
        while let Some(b) = again.generate_next_batch().unwrap() {
            n += b.num_rows();
        }
        assert_eq!(n, values(&input).len());
        let mut empty = new_reader(Slot::default(), None);
        assert!(read(&mut empty).is_empty());
        // Only the columns read come out, joined the same way.
        let mut picked = new_reader(slot, Some(vec![1]));
        let out = read(&mut picked);
        assert!(out.iter().all(|b| b.num_columns() == 1));
        let negated: Vec<i64> = values(&input).iter().map(|v| -v).collect();
        assert_eq!(values(&out), negated);
        let sizes: Vec<usize> = out.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, vec![5003, 4001, 20_000, 14, 8192, 2]);
    }
}
