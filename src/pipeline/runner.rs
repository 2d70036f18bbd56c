//! DataFusion side of a pipeline: a query planned once, down to its
//! physical plan, then run again and again over new rows.
//!
//! Each stage has its own session with slot tables (`slot.rs`) whose rows
//! are handed over before every run; the physical plan is kept and only
//! its per-run state reset (DataFusion's `reset_plan_states`), so a run
//! costs execution only. Dynamic filters, the one thing a reset plan may
//! not carry, are switched off; a recursive query is planned again every
//! run.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::columns::Columns;
use super::slot::{Slot, SlotTable, lock};

/// A table a query can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// One of the six event tables (index in `EventType` order).
    Event(usize),
    /// The per-trader snapshot.
    Traders,
    /// Partial rows of a hopping window (the combine query's input).
    Slices,
}

/// One planned query.
pub struct Stage {
    ctx: SessionContext,
    plan: LogicalPlan,
    /// Built once; `None` for a query that must be planned every run.
    physical: Option<Arc<dyn ExecutionPlan>>,
    /// The session's settings, functions and memory pool for a run: built
    /// once, since building one copies every setting and function name
    /// (tens of microseconds a run).
    task: Arc<TaskContext>,
    inputs: Vec<(Input, Slot)>,
    /// The columns read of each input (same order as `inputs`).
    columns: Vec<Columns>,
    pub output: SchemaRef,
}

impl Stage {
    /// Plans `sql` against empty tables of the given names and schemas.
    pub async fn plan(sql: &str, tables: &[(&str, Input, SchemaRef)]) -> Result<Stage> {
        let mut config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(8192);
        // Each kind is read on its own flag; the umbrella flag only sets
        // them when given through `SET`.
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.enable_dynamic_filter_pushdown = false;
        optimizer.enable_topk_dynamic_filter_pushdown = false;
        optimizer.enable_join_dynamic_filter_pushdown = false;
        optimizer.enable_aggregate_dynamic_filter_pushdown = false;
        let ctx = SessionContext::new_with_config(config);
        super::udf::register(&ctx);
        let mut handles = Vec::new();
        for (name, input, schema) in tables {
            let t = Arc::new(SlotTable::new(schema.clone()));
            ctx.register_table(*name, t.clone())?;
            handles.push((*name, *input, t.slot.clone()));
        }
        let df = ctx.sql(sql).await?;
        let output: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let plan = df.into_optimized_plan()?;
        let mut read: Vec<(String, Columns)> = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let columns = Columns::of(scan.projection.as_ref());
                let name = scan.table_name.table();
                match read.iter_mut().find(|(n, _)| n == name) {
                    Some((_, c)) => c.add(&columns),
                    None => read.push((name.to_owned(), columns)),
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let (inputs, columns) = handles
            .into_iter()
            .filter_map(|(name, input, slot)| {
                let (_, c) = read.iter().find(|(r, _)| r == name)?;
                Some(((input, slot), c.clone()))
            })
            .unzip();
        let physical = ctx.state().create_physical_plan(&plan).await?;
        let physical = reusable(&physical)?.then_some(physical);
        let task = ctx.task_ctx();
        Ok(Stage {
            ctx,
            plan,
            physical,
            task,
            inputs,
            columns,
            output,
        })
    }

    /// The tables this query reads.
    pub fn reads(&self) -> impl Iterator<Item = Input> + '_ {
        self.inputs.iter().map(|(i, _)| *i)
    }

    /// The columns this query reads of `input` (none when it does not read
    /// it).
    pub fn columns(&self, input: Input) -> Columns {
        Columns::union(
            self.inputs
                .iter()
                .zip(&self.columns)
                .filter(|((i, _), _)| *i == input)
                .map(|(_, c)| c),
        )
    }

    /// Runs the query over the rows `data` gives for each table it reads.
    pub async fn run(
        &self,
        mut data: impl FnMut(Input) -> Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        for (input, slot) in &self.inputs {
            *lock(slot)? = data(*input);
        }
        let physical = match &self.physical {
            Some(p) => reset_plan_states(p.clone()),
            None => self.ctx.state().create_physical_plan(&self.plan).await,
        };
        let out = match physical {
            Ok(p) => datafusion::physical_plan::collect(p, self.task.clone()).await,
            Err(e) => Err(e),
        };
        for (_, slot) in &self.inputs {
            lock(slot)?.clear();
        }
        out
    }
}

/// True when the plan may be reset and executed again: no recursive query,
/// whose work table lives in the plan.
fn reusable(plan: &Arc<dyn ExecutionPlan>) -> Result<bool> {
    let mut ok = true;
    plan.apply(|node| {
        if node.name() == "RecursiveQueryExec" {
            ok = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(ok)
}

/// True when `column` of `schema` holds numbers.
pub fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric() || matches!(dt, DataType::Boolean)
}

/// Finds the line of a planning error in a query starting at `sql_line`.
pub fn locate(sql: &str, sql_line: usize, message: &str) -> usize {
    if let Some(rest) = message.split("Line: ").nth(1) {
        let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = n.parse::<usize>() {
            return sql_line + n.saturating_sub(1);
        }
    }
    for marker in [
        "No field named ",
        "column '",
        "table '",
        "Invalid function '",
        "function '",
    ] {
        if let Some(rest) = message.split(marker).nth(1) {
            let ident: String = rest
                .trim_start_matches(['"', '\''])
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let ident = ident.rsplit('.').next().unwrap_or(&ident).to_owned();
            if !ident.is_empty()
                && let Some(i) = sql.lines().position(|l| l.contains(&ident))
            {
                return sql_line + i;
            }
        }
    }
    sql_line
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{Field, Schema};

    /// A kept plan sees each run's rows only: joins (whose build side a
    /// plan caches), top-k and aggregates give what fresh planning would.
    #[test]
    fn a_kept_plan_runs_again_over_new_rows() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch = |v: &[i64]| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(v.to_vec())) as _],
            )
            .unwrap()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let tables = [("t", Input::Event(0), schema.clone())];
        let values = |out: &[RecordBatch]| -> Vec<i64> {
            out.iter()
                .flat_map(|b| {
                    let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                    // A null (max of nothing) is left out.
                    c.iter().flatten().collect::<Vec<_>>()
                })
                .collect()
        };
        for sql in [
            "SELECT count(*) AS n FROM t a JOIN t b ON a.k = b.k",
            "SELECT k FROM t ORDER BY k DESC LIMIT 2",
            "SELECT max(k) FROM t",
        ] {
            let stage = rt.block_on(Stage::plan(sql, &tables)).unwrap();
            assert!(stage.physical.is_some(), "{sql}: the plan is kept");
            let runs: Vec<Vec<i64>> = [vec![1, 2, 2, 3], vec![7, 7, 7], vec![]]
                .iter()
                .map(|rows| {
                    let out = rt.block_on(stage.run(|_| vec![batch(rows)])).unwrap();
                    values(&out)
                })
                .collect();
            let want: Vec<Vec<i64>> = match sql.split(' ').nth(1) {
                Some("count(*)") => vec![vec![6], vec![9], vec![0]],
                Some("k") => vec![vec![3, 2], vec![7, 7], vec![]],
                _ => vec![vec![3], vec![7], vec![]],
            };
            assert_eq!(runs, want, "{sql}");
        }
    }

    #[test]
    fn locates_errors_by_identifier() {
        let sql = "SELECT a,\n  bogus\nFROM t";
        assert_eq!(
            locate(
                sql,
                10,
                "Schema error: No field named bogus. Valid fields are a."
            ),
            11
        );
        assert_eq!(
            locate(
                sql,
                10,
                "sql parser error: Expected end, found x at Line: 3, Column: 1"
            ),
            12
        );
    }
}
