//! Loading pipeline files and planning them, reporting every problem of
//! every file at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::runner::{Input, Stage, is_numeric, locate};
use super::spec::{PipelineDef, PipelineError, UNBOUNDED_COLUMNS, ValueKind, parse};
use crate::event::EventType;
use crate::features::traders_schema;
use crate::window::{WindowSpec, schema_of, table_name};

/// The catalogue shipped in `pipelines/`, built in so that the binary works
/// from any directory; a pipelines folder given on the command line (or
/// `./pipelines` when present) replaces it.
pub const BUILTIN: &[(&str, &str)] = &[
    ("deposits", include_str!("../../pipelines/deposits.sql")),
    (
        "first_deposits",
        include_str!("../../pipelines/first_deposits.sql"),
    ),
    ("signups", include_str!("../../pipelines/signups.sql")),
    (
        "withdrawals",
        include_str!("../../pipelines/withdrawals.sql"),
    ),
    (
        "net_deposits",
        include_str!("../../pipelines/net_deposits.sql"),
    ),
    ("trading", include_str!("../../pipelines/trading.sql")),
    ("logins", include_str!("../../pipelines/logins.sql")),
    ("campaigns", include_str!("../../pipelines/campaigns.sql")),
    ("ab_tests", include_str!("../../pipelines/ab_tests.sql")),
    (
        "active_traders",
        include_str!("../../pipelines/active_traders.sql"),
    ),
    ("funnel", include_str!("../../pipelines/funnel.sql")),
    ("inactivity", include_str!("../../pipelines/inactivity.sql")),
    ("segments", include_str!("../../pipelines/segments.sql")),
];

/// A pipeline ready to run.
pub struct Planned {
    pub def: PipelineDef,
    pub name: Arc<str>,
    pub labels: Vec<Arc<str>>,
    pub values: Vec<Arc<str>>,
    pub kinds: Vec<ValueKind>,
    /// The query over raw rows (tumble, hop slices) or the snapshot.
    pub stage: Stage,
    /// Hopping windows: the query over `slices`.
    pub combine: Option<Stage>,
}

impl Planned {
    pub fn reads_traders(&self) -> bool {
        self.stage.reads().any(|i| i == Input::Traders)
    }
}

/// Parses every `*.sql` file of `dir` (sorted by name), or the built-in
/// catalogue when `dir` is `None`: the files that parse, and every problem
/// of those that do not.
pub fn load(dir: Option<&Path>) -> (Vec<PipelineDef>, Vec<PipelineError>) {
    match read_files(dir) {
        Err(errors) => (Vec::new(), errors),
        Ok(files) => {
            let mut defs = Vec::new();
            let mut errors = Vec::new();
            for (path, text) in files {
                match parse(&path, &text) {
                    Ok(d) => defs.push(d),
                    Err(e) => errors.extend(e),
                }
            }
            (defs, errors)
        }
    }
}

fn read_files(dir: Option<&Path>) -> Result<Vec<(PathBuf, String)>, Vec<PipelineError>> {
    let files: Vec<(PathBuf, String)> = match dir {
        None => BUILTIN
            .iter()
            .map(|(n, t)| (PathBuf::from(format!("pipelines/{n}.sql")), (*t).to_owned()))
            .collect(),
        Some(dir) => {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                vec![PipelineError {
                    file: dir.to_owned(),
                    line: 0,
                    message: format!("cannot read the pipelines folder: {e}"),
                }]
            })?;
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sql"))
                .collect();
            paths.sort();
            let mut files = Vec::new();
            let mut errors = Vec::new();
            for p in paths {
                match std::fs::read_to_string(&p) {
                    Ok(t) => files.push((p, t)),
                    Err(e) => errors.push(PipelineError {
                        file: p,
                        line: 0,
                        message: format!("cannot read: {e}"),
                    }),
                }
            }
            if files.is_empty() && errors.is_empty() {
                errors.push(PipelineError {
                    file: dir.to_owned(),
                    line: 0,
                    message: "no *.sql pipeline files".into(),
                });
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            files
        }
    };
    Ok(files)
}

fn with_window_columns(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("window_start", DataType::Int64, false));
    fields.push(Field::new("window_end", DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// Schema of `slices`: the slice query's output with its `window_start`
/// renamed `slice_start`, plus the hopping window's bounds.
pub fn slices_schema(slice_output: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = slice_output
        .fields()
        .iter()
        .map(|f| {
            if f.name() == "window_start" {
                Field::new("slice_start", DataType::Int64, true)
            } else {
                f.as_ref().clone()
            }
        })
        .filter(|f| f.name() != "window_end")
        .collect();
    fields.push(Field::new("window_start", DataType::Int64, false));
    fields.push(Field::new("window_end", DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// Tables every first-stage query can read, with window columns.
pub fn source_tables() -> Vec<(&'static str, Input, SchemaRef)> {
    let mut v: Vec<(&'static str, Input, SchemaRef)> = EventType::ALL
        .iter()
        .map(|t| {
            (
                table_name(*t),
                Input::Event(t.index()),
                with_window_columns(&schema_of(*t)),
            )
        })
        .collect();
    v.push(("traders", Input::Traders, traders_schema()));
    v
}

/// Whether a column of this type can label a series: its values must read
/// as short text (nested, binary and floating-point columns cannot).
fn can_be_label(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Boolean | DataType::Date32 | DataType::Date64 => true,
        DataType::Dictionary(_, values) => can_be_label(values),
        other => other.is_integer(),
    }
}

/// Plans every pipeline; all problems of all files are returned together.
pub async fn plan_all(defs: Vec<PipelineDef>) -> Result<Vec<Planned>, Vec<PipelineError>> {
    let sources = source_tables();
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for def in defs {
        match plan_one(def, &sources).await {
            Ok(p) => planned.push(p),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(planned)
    } else {
        Err(errors)
    }
}

async fn plan_one(
    def: PipelineDef,
    sources: &[(&'static str, Input, SchemaRef)],
) -> Result<Planned, Vec<PipelineError>> {
    let err = |line: usize, message: String| {
        vec![PipelineError {
            file: def.file.clone(),
            line,
            message,
        }]
    };
    let stage = Stage::plan(&def.sql, sources).await.map_err(|e| {
        err(
            locate(&def.sql, def.sql_line, &e.to_string()),
            e.to_string(),
        )
    })?;
    let needs_start = !matches!(def.window, WindowSpec::Snapshot { .. });
    let combine = match &def.combine {
        None => None,
        Some((sql, line)) => {
            if stage.output.field_with_name("window_start").is_err() {
                return Err(err(
                    def.sql_line,
                    "the slice query must select `window_start`".into(),
                ));
            }
            let slices = [("slices", Input::Slices, slices_schema(&stage.output))];
            Some(
                Stage::plan(sql, &slices)
                    .await
                    .map_err(|e| err(locate(sql, *line, &e.to_string()), e.to_string()))?,
            )
        }
    };
    let (output, out_sql, out_line) = match (&combine, &def.combine) {
        (Some(c), Some((sql, line))) => (c.output.clone(), sql.as_str(), *line),
        _ => (stage.output.clone(), def.sql.as_str(), def.sql_line),
    };
    let mut errors = Vec::new();
    let line_of = |name: &str| locate(out_sql, out_line, &format!("No field named {name}."));
    if needs_start && output.field_with_name("window_start").is_err() {
        errors.push(PipelineError {
            file: def.file.clone(),
            line: out_line,
            message: "the query must select `window_start` (the window each row belongs to)".into(),
        });
    }
    for l in &def.labels {
        match output.field_with_name(l) {
            Err(_) => errors.push(PipelineError {
                file: def.file.clone(),
                line: out_line,
                message: format!("label `{l}` is not a column of the query's output"),
            }),
            Ok(f) if !can_be_label(f.data_type()) => errors.push(PipelineError {
                file: def.file.clone(),
                line: line_of(l),
                message: format!(
                    "label `{l}` must be a string, integer, boolean or date column; the query gives {}",
                    f.data_type()
                ),
            }),
            Ok(f)
                if is_numeric(f.data_type())
                    && !matches!(f.data_type(), DataType::Boolean)
                    && l.ends_with("_id") =>
            {
                errors.push(PipelineError {
                    file: def.file.clone(),
                    line: line_of(l),
                    message: format!("label `{l}` looks unbounded"),
                })
            }
            Ok(_) => {}
        }
    }
    for (v, _) in &def.values {
        match output.field_with_name(v) {
            Err(_) => errors.push(PipelineError {
                file: def.file.clone(),
                line: out_line,
                message: format!("value `{v}` is not a column of the query's output"),
            }),
            Ok(f) if !is_numeric(f.data_type()) => errors.push(PipelineError {
                file: def.file.clone(),
                line: line_of(v),
                message: format!(
                    "value `{v}` must be numeric, the query gives {}",
                    f.data_type()
                ),
            }),
            Ok(_) => {}
        }
    }
    for f in output.fields() {
        if UNBOUNDED_COLUMNS.contains(&f.name().as_str()) && def.labels.contains(f.name()) {
            errors.push(PipelineError {
                file: def.file.clone(),
                line: line_of(f.name()),
                message: format!("`{}` cannot be a label", f.name()),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Planned {
        name: def.name.as_str().into(),
        labels: def.labels.iter().map(|l| l.as_str().into()).collect(),
        values: def.values.iter().map(|(v, _)| v.as_str().into()).collect(),
        kinds: def.values.iter().map(|(_, k)| *k).collect(),
        def,
        stage,
        combine,
    })
}
