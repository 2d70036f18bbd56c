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

use crate::event::time::{Rfc3339Ms, format_rfc3339_ms};

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
    /// The NDJSON form: `{"pipeline", "window_start", "window_end", labels...,
    /// values...}`, written straight from the row (no JSON tree: building
    /// one cost a string per key and field).
    pub fn json(&self) -> RowJson<'_> {
        RowJson(self)
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

/// A row's NDJSON object (see [`KpiRow::json`]): keys in sorted order, a
/// label or value named like a key before it replacing that key's value
/// (what a JSON map built in that order holds).
pub struct RowJson<'a>(&'a KpiRow);

/// One field of a row's JSON object: text, or a number (null when missing
/// or not finite).
enum Field<'a> {
    Text(&'a str),
    Number(Option<f64>),
}

impl Serialize for RowJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.0;
        let (start, end) = (Rfc3339Ms::new(r.window_start), Rfc3339Ms::new(r.window_end));
        let mut fields: Vec<(&str, Field)> =
            Vec::with_capacity(3 + r.labels.len() + r.values.len());
        fields.push(("pipeline", Field::Text(&r.pipeline)));
        fields.push(("window_start", Field::Text(start.as_str())));
        fields.push(("window_end", Field::Text(end.as_str())));
        fields.extend(r.labels.iter().map(|(k, v)| (&**k, Field::Text(v))));
        fields.extend(r.values.iter().map(|(k, v)| (&**k, Field::Number(*v))));
        // Stable: of equal keys the one written last comes last, and wins.
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let last = |i: usize| fields.get(i + 1).is_none_or(|next| next.0 != fields[i].0);
        let n = (0..fields.len()).filter(|&i| last(i)).count();
        let mut m = s.serialize_map(Some(n))?;
        for (i, (k, v)) in fields.iter().enumerate() {
            if !last(i) {
                continue;
            }
            match v {
                Field::Text(t) => m.serialize_entry(k, t)?,
                Field::Number(Some(x)) if x.is_finite() => m.serialize_entry(k, x)?,
                Field::Number(_) => m.serialize_entry(k, &())?,
            }
        }
        m.end()
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
            serde_json::to_writer(&mut self.out, &r.json())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON tree the NDJSON form was built as before: what the file's
    /// lines must stay byte for byte.
    fn as_tree(r: &KpiRow) -> Value {
        let mut m = Map::new();
        m.insert("pipeline".into(), Value::from(&*r.pipeline));
        m.insert(
            "window_start".into(),
            format_rfc3339_ms(r.window_start).into(),
        );
        m.insert("window_end".into(), format_rfc3339_ms(r.window_end).into());
        r.fields_into(&mut m);
        Value::Object(m)
    }

    #[test]
    fn rows_are_written_as_their_json_tree_was() {
        let a = |s: &str| Arc::<str>::from(s);
        let rows = [
            KpiRow {
                pipeline: a("deposits"),
                window_start: 1_767_225_600_000,
                window_end: 1_767_225_660_000,
                labels: vec![
                    (a("method"), "pix".into()),
                    (a("status"), "appro\"ved\n\u{e9}".into()),
                    (a("currency"), "BRL".into()),
                ],
                values: vec![
                    (a("count_total"), Some(3.0)),
                    (a("amount_total"), Some(1234.5678)),
                    (a("avg_ticket"), Some(f64::NAN)),
                    (a("zero"), Some(-0.0)),
                    (a("tiny"), Some(1e-300)),
                    (a("inf"), Some(f64::INFINITY)),
                    (a("missing"), None),
                ],
            },
            // Labels and values named like the fixed keys or like each
            // other: the one written last holds the key.
            KpiRow {
                pipeline: a("odd"),
                window_start: -86_400_001,
                window_end: 0,
                labels: vec![
                    (a("pipeline"), "label".into()),
                    (a("b"), "first".into()),
                    (a("b"), "second".into()),
                    (a("window_end"), "label end".into()),
                ],
                values: vec![
                    (a("window_end"), Some(2.5)),
                    (a("b"), None),
                    (a("a"), Some(1.0)),
                ],
            },
            KpiRow {
                pipeline: a("empty"),
                window_start: 0,
                window_end: 0,
                labels: vec![],
                values: vec![],
            },
        ];
        for r in &rows {
            let written = serde_json::to_string(&r.json()).unwrap();
            assert_eq!(written, as_tree(r).to_string(), "{r:?}");
        }
    }
}
