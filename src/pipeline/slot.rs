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
        let reader = SlotReader {
            slot: self.slot.clone(),
            next: 0,
        };
        let generator: Arc<RwLock<dyn LazyBatchGenerator>> = Arc::new(RwLock::new(reader));
        Ok(Arc::new(
            LazyMemoryExec::try_new(self.schema.clone(), vec![generator])?
                .with_projection(projection.cloned()),
        ))
    }
}

/// Hands out the slot's batches, from the first, once per execution (the
/// plan's `execute` starts from a fresh reader through `reset_state`).
#[derive(Debug)]
struct SlotReader {
    slot: Slot,
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
        let batch = lock(&self.slot)?.get(self.next).cloned();
        self.next += 1;
        Ok(batch)
    }

    fn reset_state(&self) -> Arc<RwLock<dyn LazyBatchGenerator>> {
        Arc::new(RwLock::new(SlotReader {
            slot: self.slot.clone(),
            next: 0,
        }))
    }
}
