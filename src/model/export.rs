//! `pulse features`: the exact feature vectors the trainer and the scorer
//! compute (one code path, `snapshots`), with the churn label and, given a
//! model, its score, as a Parquet file (snappy) or an Arrow IPC file
//! (Feather v2) that pandas, polars and pyarrow open directly.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::TimestampMillisecondArray;
use datafusion::arrow::array::{ArrayRef, BooleanBuilder, Float64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use super::artifact::Model;
use super::dataset::{History, Population, snapshots};
use super::evaluate::space_for;
use crate::features::FeatureSpace;

/// What to export.
#[derive(Debug, Clone, Copy)]
pub struct ExportConfig {
    pub at: i64,
    /// Labels from (at, at + horizon]; `None`: no `churned` column.
    pub horizon_ms: Option<i64>,
    pub population: Population,
}

/// Why the export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Model(#[from] super::ModelError),
    #[error("cannot build the feature table: {0}")]
    Arrow(#[from] ArrowError),
    #[error("cannot write {path} as Parquet: {source}")]
    Parquet { path: String, source: ParquetError },
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The feature table: `trader_id`, `at`, one `f64` column per feature (the
/// model's order with `model`, else the trainer's for this history),
/// `churned` with a horizon, `churn_score` with a model.
pub fn feature_table(
    history: &History,
    model: Option<&Model>,
    max_channels: usize,
    cfg: ExportConfig,
) -> Result<RecordBatch, ExportError> {
    if let Some(h) = cfg.horizon_ms {
        history.check_horizon(cfg.at, h)?;
    }
    let space = match model {
        Some(m) => space_for(m, history),
        None => {
            let mut s = FeatureSpace::new(history.channels(max_channels));
            s.resolve(&mut history.ingest.decoder.symbols.clone());
            s
        }
    };
    let names = space.names();
    let snap = snapshots(history, &space, &[cfg.at], cfg.horizon_ms, cfg.population)
        .pop()
        .unwrap_or_else(|| super::dataset::Snapshot {
            at: cfg.at,
            traders: Vec::new(),
            x: Vec::new(),
            width: names.len(),
            churned: Vec::new(),
        });
    let n = snap.len();
    let mut fields = vec![
        Field::new("trader_id", DataType::Utf8, false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            snap.traders.iter().map(|&t| history.trader_name(t)),
        )),
        Arc::new(TimestampMillisecondArray::from(vec![cfg.at; n]).with_timezone("UTC")),
    ];
    for (c, name) in names.iter().enumerate() {
        fields.push(Field::new(name, DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from_iter_values(
            (0..n).map(|i| snap.row(i)[c]),
        )));
    }
    if cfg.horizon_ms.is_some() {
        let mut b = BooleanBuilder::with_capacity(n);
        for &l in &snap.churned {
            b.append_value(l);
        }
        fields.push(Field::new("churned", DataType::Boolean, false));
        columns.push(Arc::new(b.finish()));
    }
    if let Some(m) = model {
        let mut buf = Vec::with_capacity(snap.width);
        let scores = (0..n).map(|i| {
            buf.clear();
            buf.extend_from_slice(snap.row(i));
            m.score(&mut buf)
        });
        fields.push(Field::new("churn_score", DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from_iter_values(scores)));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The file formats `pulse features` writes, chosen by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `.parquet`: snappy-compressed, one row group.
    Parquet,
    /// `.arrow`, `.feather`, `.ipc`: Arrow IPC file (Feather v2).
    Ipc,
}

impl ExportFormat {
    /// What `--out` accepts, for error messages.
    pub const ACCEPTED: &str =
        ".parquet (Parquet), .arrow, .feather or .ipc (Arrow IPC / Feather v2)";

    pub fn for_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "parquet" => Some(Self::Parquet),
            "arrow" | "feather" | "ipc" => Some(Self::Ipc),
            _ => None,
        }
    }
}

/// Writes `batch` to `path` in `format`.
pub fn write_table(
    batch: &RecordBatch,
    path: &Path,
    format: ExportFormat,
) -> Result<(), ExportError> {
    let file = std::fs::File::create(path).map_err(|source| ExportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let out = std::io::BufWriter::new(file);
    match format {
        ExportFormat::Ipc => {
            let mut w = FileWriter::try_new(out, &batch.schema())?;
            w.write(batch)?;
            w.finish()?;
        }
        ExportFormat::Parquet => {
            let parquet = |source| ExportError::Parquet {
                path: path.display().to_string(),
                source,
            };
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build();
            let mut w = ArrowWriter::try_new(out, batch.schema(), Some(props)).map_err(parquet)?;
            w.write(batch).map_err(parquet)?;
            w.close().map_err(parquet)?;
        }
    }
    Ok(())
}
