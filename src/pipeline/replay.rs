//! `pulse replay`: an NDJSON file through the same engine as the service, at
//! full speed, time driven by the events alone.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::dlq::{DeadLetter, LateEvent, NdjsonFile, Origin};
use super::engine::{Engine, Processed};
use super::stats::Stats;
use crate::event::time::format_rfc3339_ms;
use crate::event::{Invalid, Reason};
use crate::source::{Line, LineReader};

/// Failures that stop a replay (bad events never do).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot open events file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read events file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a replay did.
#[derive(Debug)]
pub struct ReplayReport {
    pub stats: Stats,
    pub elapsed: Duration,
    pub bytes: u64,
    pub dead_letters: u64,
    pub dead_letter_path: PathBuf,
    pub late_path: PathBuf,
    pub traders: usize,
    pub kpi_rows: u64,
}

/// Beside the input: `NAME.<suffix>.ndjson`.
fn beside(events: &Path, suffix: &str) -> PathBuf {
    let stem = events
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("events");
    events.with_file_name(format!("{stem}.{suffix}.ndjson"))
}

/// Where dead letters go by default: beside the input, `NAME.dlq.ndjson`.
pub fn default_dlq_path(events: &Path) -> PathBuf {
    beside(events, "dlq")
}

/// How many events between checks of the frontier.
const EMIT_CHECK_EVERY: u64 = 4096;

/// Replays `events` through `engine`; invalid lines go to `dlq`, late events
/// to `late` (default `NAME.late.ndjson`, created only when needed).
pub fn replay_file(
    events: &Path,
    dlq: &Path,
    late: Option<&Path>,
    engine: &mut Engine,
) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let file = File::open(events).map_err(|source| ReplayError::Open {
        path: events.to_owned(),
        source,
    })?;
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ReplayError::Write { path, source }
    };
    let mut dead = NdjsonFile::create(dlq).map_err(write_err(dlq))?;
    let late_path = late.map_or_else(|| beside(events, "late"), Path::to_owned);
    let mut late_sink: Option<NdjsonFile> = None;
    let limit = engine.ingest.decoder.config.max_line_bytes;
    let mut reader = LineReader::new(BufReader::with_capacity(1 << 20, file), limit);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut bytes = 0u64;
    loop {
        let next = reader.next_line().map_err(|source| ReplayError::Read {
            path: events.to_owned(),
            source,
        })?;
        let Some((line_no, line)) = next else { break };
        let (text, outcome) = match line {
            Line::Text(text) => {
                bytes += text.len() as u64 + 1;
                (text, engine.process(text, 0, now_ms))
            }
            Line::TooLong { prefix, len } => {
                bytes += len as u64 + 1;
                engine.ingest.stats.read += 1;
                engine.ingest.stats.invalid[Reason::TooLong.index()] += 1;
                let message = format!(
                    "{len} bytes; at most {limit} are accepted (raw holds the first {limit})"
                );
                (
                    prefix,
                    Processed::Invalid(Invalid::new(Reason::TooLong, None, message)),
                )
            }
        };
        match outcome {
            Processed::Valid | Processed::Duplicate => {}
            Processed::Invalid(invalid) => {
                let origin = Origin::File { line: line_no };
                dead.write(&DeadLetter::new(&origin, &invalid, text))
                    .map_err(write_err(dlq))?;
            }
            Processed::Late { ts, frontier } => {
                if late_sink.is_none() {
                    late_sink =
                        Some(NdjsonFile::create(&late_path).map_err(write_err(&late_path))?);
                }
                let origin = Origin::File { line: line_no };
                let record = LateEvent {
                    origin: &origin,
                    event_time: format_rfc3339_ms(ts),
                    frontier: format_rfc3339_ms(frontier),
                    raw: std::str::from_utf8(text).unwrap_or_default(),
                };
                if let Some(sink) = &mut late_sink {
                    sink.write(&record).map_err(write_err(&late_path))?;
                }
            }
        }
        if engine.ingest.stats.read % EMIT_CHECK_EVERY == 0 {
            engine.maybe_emit();
        }
    }
    engine.finish();
    dead.flush().map_err(write_err(dlq))?;
    if let Some(s) = &mut late_sink {
        s.flush().map_err(write_err(&late_path))?;
    }
    Ok(ReplayReport {
        stats: engine.ingest.stats.clone(),
        elapsed: started.elapsed(),
        bytes,
        dead_letters: dead.written(),
        dead_letter_path: dlq.to_owned(),
        late_path,
        traders: engine.ingest.traders.len(),
        kpi_rows: engine.outputs.rows,
    })
}
