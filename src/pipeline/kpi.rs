//! KPI rows: what pipelines produce, and where they go (NDJSON sink,
//! Prometheus, the latest-rows board behind `/api/kpis`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, Float64Array, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::event::time::format_rfc3339_ms;

/// One row of one window of one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiRow {
    pub pipeline: Arc<str>,
    pub window_start: i64,
    pub window_end: i64,
    pub labels: Vec<(Arc<str>, String)>,
    pub values: Vec<(Arc<str>, Option<f64>)>,
}

impl KpiRow {
    /// The NDJSON form: `{"pipeline", "window_start", "window_end", labels..., values...}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("pipeline".into(), Value::from(&*self.pipeline));
        m.insert(
            "window_start".into(),
            format_rfc3339_ms(self.window_start).into(),
        );
        m.insert(
            "window_end".into(),
            format_rfc3339_ms(self.window_end).into(),
        );
        self.fields_into(&mut m);
        Value::Object(m)
    }

    fn fields_into(&self, m: &mut Map<String, Value>) {
        for (k, v) in &self.labels {
            m.insert(k.to_string(), Value::from(v.as_str()));
        }
        for (k, v) in &self.values {
            let v = v
                .filter(|x| x.is_finite())
                .and_then(serde_json::Number::from_f64);
            m.insert(k.to_string(), v.map_or(Value::Null, Value::Number));
        }
    }

    /// Labels and values only (the `/api/kpis` row form).
    pub fn fields_json(&self) -> Value {
        let mut m = Map::new();
        self.fields_into(&mut m);
        Value::Object(m)
    }
}

/// Turns query output into rows. `window_start` comes from the column of
/// that name when present (else `fixed_start`); `window_end` is start + size.
/// Planning checks the label and value types; a batch that still does not
/// convert is an error of this pipeline's run, never a panic.
pub fn rows_from_batches(
    pipeline: &Arc<str>,
    batches: &[RecordBatch],
    labels: &[Arc<str>],
    values: &[Arc<str>],
    fixed_start: i64,
    size_ms: i64,
) -> datafusion::error::Result<Vec<KpiRow>> {
    let mut out = Vec::new();
    for b in batches {
        let starts = b
            .column_by_name("window_start")
            .map(|_| column_as::<Int64Array>(b, "window_start", &DataType::Int64))
            .transpose()?;
        let label_cols = labels
            .iter()
            .map(|l| column_as::<StringArray>(b, l, &DataType::Utf8))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let value_cols = values
            .iter()
            .map(|v| column_as::<Float64Array>(b, v, &DataType::Float64))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        for i in 0..b.num_rows() {
            let start = starts
                .as_ref()
                .filter(|s| s.is_valid(i))
                .map_or(fixed_start, |s| s.value(i));
            out.push(KpiRow {
                pipeline: pipeline.clone(),
                window_start: start,
                window_end: start + size_ms,
                labels: labels
                    .iter()
                    .zip(&label_cols)
                    .map(|(l, c)| {
                        (
                            l.clone(),
                            if c.is_valid(i) {
                                c.value(i).to_owned()
                            } else {
                                String::new()
                            },
                        )
                    })
                    .collect(),
                values: values
                    .iter()
                    .zip(&value_cols)
                    .map(|(v, c)| (v.clone(), c.is_valid(i).then(|| c.value(i))))
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// Column `name` of `b` cast to `to`, as the array type `A` of that type.
fn column_as<A: Array + Clone + 'static>(
    b: &RecordBatch,
    name: &str,
    to: &DataType,
) -> datafusion::error::Result<A> {
    use datafusion::error::DataFusionError;
    let c = b
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Execution(format!("the output has no column `{name}`")))?;
    let c = cast(c, to)?;
    c.as_any()
        .downcast_ref::<A>()
        .cloned()
        .ok_or_else(|| DataFusionError::Execution(format!("column `{name}` does not read as {to}")))
}

/// The KPI NDJSON file (`--kpi-out`).
pub struct KpiSink {
    out: BufWriter<File>,
    pub written: u64,
}

impl KpiSink {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            out: BufWriter::new(File::create(path)?),
            written: 0,
        })
    }

    pub fn write(&mut self, rows: &[KpiRow]) -> std::io::Result<()> {
        for r in rows {
            serde_json::to_writer(&mut self.out, &r.to_json())?;
            self.out.write_all(b"\n")?;
        }
        self.written += rows.len() as u64;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The latest window of each pipeline, for `/api/kpis`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KpiBoard {
    /// Closed frontier of event time (RFC 3339).
    pub as_of: Option<String>,
    pub pipelines: BTreeMap<String, BoardEntry>,
    /// Scale-out: the pipelines exported here and who exports the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exports: Option<Exports>,
}

/// Scale-out: which instance of the group exports each pipeline (its KPI
/// topic rows, `/metrics` series and `/api/kpis` entry).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Exports {
    /// This instance's name in the group.
    pub instance: String,
    /// Pipelines exported here.
    pub here: Vec<String>,
    /// Every pipeline and the instance exporting it, as the group last
    /// said (absent while its partition is being reassigned).
    pub by_pipeline: BTreeMap<String, String>,
}

/// Rows of one pipeline's latest window.
#[derive(Debug, Clone, Serialize)]
pub struct BoardEntry {
    pub window_start: String,
    pub window_end: String,
    pub rows: Vec<Value>,
}

/// Shared handle to the board.
pub type SharedBoard = Arc<Mutex<KpiBoard>>;

/// Rows of the latest window among `rows` (by window end).
pub fn latest_window(rows: &[KpiRow]) -> Vec<&KpiRow> {
    let Some(end) = rows.iter().map(|r| r.window_end).max() else {
        return Vec::new();
    };
    rows.iter().filter(|r| r.window_end == end).collect()
}

impl KpiBoard {
    /// Replaces a pipeline's entry with the latest window among `rows`.
    pub fn update(&mut self, pipeline: &str, rows: &[KpiRow]) {
        let latest = latest_window(rows);
        let Some(first) = latest.first() else { return };
        self.pipelines.insert(
            pipeline.to_owned(),
            BoardEntry {
                window_start: format_rfc3339_ms(first.window_start),
                window_end: format_rfc3339_ms(first.window_end),
                rows: latest.iter().map(|r| r.fields_json()).collect(),
            },
        );
    }
}
