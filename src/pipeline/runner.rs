//! DataFusion side of a pipeline: a query planned once against empty tables,
//! then run again and again over new rows.
//!
//! Each stage has its own session with in-memory tables whose contents are
//! swapped before every run; the optimised logical plan is kept, so a run
//! costs physical planning and execution only.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

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
    inputs: Vec<(Input, Arc<MemTable>)>,
    pub output: SchemaRef,
}

impl Stage {
    /// Plans `sql` against empty tables of the given names and schemas.
    pub async fn plan(sql: &str, tables: &[(&str, Input, SchemaRef)]) -> Result<Stage> {
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(8192);
        let ctx = SessionContext::new_with_config(config);
        super::udf::register(&ctx);
        let mut handles = Vec::new();
        for (name, input, schema) in tables {
            let t = Arc::new(MemTable::try_new(schema.clone(), vec![vec![]])?);
            ctx.register_table(*name, t.clone())?;
            handles.push((*name, *input, t));
        }
        let df = ctx.sql(sql).await?;
        let output: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let plan = df.into_optimized_plan()?;
        let mut read = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                read.push(scan.table_name.table().to_owned());
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let inputs = handles
            .into_iter()
            .filter(|(name, _, _)| read.iter().any(|r| r == name))
            .map(|(_, input, t)| (input, t))
            .collect();
        Ok(Stage {
            ctx,
            plan,
            inputs,
            output,
        })
    }

    /// The tables this query reads.
    pub fn reads(&self) -> impl Iterator<Item = Input> + '_ {
        self.inputs.iter().map(|(i, _)| *i)
    }

    /// Runs the query over the rows `data` gives for each table it reads.
    pub async fn run(
        &self,
        mut data: impl FnMut(Input) -> Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        for (input, table) in &self.inputs {
            *table.batches[0].write().await = data(*input);
        }
        let physical = self.ctx.state().create_physical_plan(&self.plan).await?;
        let out = datafusion::physical_plan::collect(physical, self.ctx.task_ctx()).await;
        for (_, table) in &self.inputs {
            table.batches[0].write().await.clear();
        }
        out
    }
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
