//! `pulse replay`: an NDJSON file through the same pipeline as the service,
//! at full speed, time driven by the events alone.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::dlq::{DeadLetter, DeadLetterSink, Origin};
use super::ingest::{Ingest, IngestConfig, Outcome};
use super::stats::Stats;
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
    #[error("cannot write dead-letter file {path}: {source}")]
    DeadLetter {
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
    pub traders: usize,
}

/// Where dead letters go by default: beside the input, `NAME.dlq.ndjson`.
pub fn default_dlq_path(events: &Path) -> PathBuf {
    let stem = events
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("events");
    events.with_file_name(format!("{stem}.dlq.ndjson"))
}

/// Replays `events` through `ingest`, calling `on_event` for every new valid
/// event (windows and features hang off it), writing refused lines to `dlq`.
pub fn replay_file(
    events: &Path,
    dlq: &Path,
    ingest: &mut Ingest,
    mut on_event: impl FnMut(&Ingest, &crate::event::Event),
) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let file = File::open(events).map_err(|source| ReplayError::Open {
        path: events.to_owned(),
        source,
    })?;
    let dead = |source| ReplayError::DeadLetter {
        path: dlq.to_owned(),
        source,
    };
    let mut sink = DeadLetterSink::create(dlq).map_err(dead)?;
    let limit = ingest.decoder.config.max_line_bytes;
    let mut reader = LineReader::new(BufReader::with_capacity(1 << 20, file), limit);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut bytes = 0u64;
    loop {
        let next = reader.next_line().map_err(|source| ReplayError::Read {
            path: events.to_owned(),
            source,
        })?;
        let Some((line_no, line)) = next else { break };
        match line {
            Line::Text(text) => {
                bytes += text.len() as u64 + 1;
                match ingest.ingest(text, now_ms) {
                    Outcome::Valid(e) => on_event(ingest, &e),
                    Outcome::Duplicate => {}
                    Outcome::Invalid(invalid) => {
                        sink.write(&DeadLetter::new(
                            &Origin::File { line: line_no },
                            &invalid,
                            text,
                        ))
                        .map_err(dead)?;
                    }
                }
            }
            Line::TooLong { prefix, len } => {
                bytes += len as u64 + 1;
                ingest.stats.read += 1;
                ingest.stats.invalid[Reason::TooLong.index()] += 1;
                let invalid = Invalid::new(
                    Reason::TooLong,
                    None,
                    format!(
                        "{len} bytes; at most {limit} are accepted (raw holds the first {limit})"
                    ),
                );
                sink.write(&DeadLetter::new(
                    &Origin::File { line: line_no },
                    &invalid,
                    prefix,
                ))
                .map_err(dead)?;
            }
        }
    }
    sink.flush().map_err(dead)?;
    Ok(ReplayReport {
        stats: ingest.stats.clone(),
        elapsed: started.elapsed(),
        bytes,
        dead_letters: sink.written(),
        dead_letter_path: dlq.to_owned(),
        traders: ingest.traders.len(),
    })
}

/// Replays with default settings and no downstream stages.
pub fn replay(
    events: &Path,
    dlq: Option<&Path>,
    config: IngestConfig,
) -> Result<ReplayReport, ReplayError> {
    let dlq = dlq.map_or_else(|| default_dlq_path(events), Path::to_owned);
    let mut ingest = Ingest::new(config);
    replay_file(events, &dlq, &mut ingest, |_, _| {})
}
