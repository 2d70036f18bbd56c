//! Dead letters: every invalid event, with its original bytes, where it came
//! from and why it was refused.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::event::Invalid;

/// Where an event was read from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Origin {
    /// A line of an NDJSON file (1-based).
    File { line: u64 },
    /// A Kafka message.
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// The built-in simulator (sequence number).
    Simulator { seq: u64 },
}

/// One dead-letter record, one NDJSON line in the sink.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter<'a> {
    #[serde(flatten)]
    pub origin: &'a Origin,
    /// Closed-set reason code (also the metric label).
    pub reason: &'static str,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// What was wrong and what would be accepted.
    pub message: &'a str,
    /// The original bytes as text (invalid UTF-8 replaced by U+FFFD).
    pub raw: String,
    /// The original bytes in hex, only when they are not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_hex: Option<String>,
}

impl<'a> DeadLetter<'a> {
    pub fn new(origin: &'a Origin, invalid: &'a Invalid, bytes: &[u8]) -> Self {
        let (raw, raw_hex) = match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_owned(), None),
            Err(_) => (
                String::from_utf8_lossy(bytes).into_owned(),
                Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
            ),
        };
        Self {
            origin,
            reason: invalid.reason.as_str(),
            field: invalid.field,
            message: &invalid.message,
            raw,
            raw_hex,
        }
    }
}

/// An NDJSON file of records (dead letters, late events).
pub struct NdjsonFile {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
}

/// The dead-letter file of `replay`.
pub type DeadLetterSink = NdjsonFile;

impl NdjsonFile {
    /// Creates (truncates) the file.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            out: BufWriter::new(File::create(path)?),
            written: 0,
        })
    }

    /// Appends one record.
    pub fn write<T: Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Flushes buffered records to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn written(&self) -> u64 {
        self.written
    }
}

/// One late event, one NDJSON line in the late sink.
#[derive(Debug, Clone, Serialize)]
pub struct LateEvent<'a> {
    #[serde(flatten)]
    pub origin: &'a Origin,
    /// Event time of the late event.
    pub event_time: String,
    /// The closed frontier it arrived behind.
    pub frontier: String,
    pub raw: &'a str,
}
