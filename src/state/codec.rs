//! The encoding of checkpoint records: a 4-byte header (magic `PS` and the
//! format version) before a postcard body, or an Arrow IPC stream for
//! tables of rows. A record of another format version is refused, never
//! half-read.

use std::io::Cursor;

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format version of the records this build writes and reads (5:
/// the `traders` captures in merge checkpoints and scale-out partials
/// carry `channel` and `segment` as Utf8View).
pub const FORMAT_VERSION: u16 = 5;

const MAGIC: &[u8; 2] = b"PS";

/// A record that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(
        "checkpoint record of format version {found}; this pulse reads version {FORMAT_VERSION} only (restore with the pulse that wrote it, or start the group afresh)"
    )]
    Version { found: u16 },
    #[error("not a checkpoint record (no PS header)")]
    NotARecord,
    #[error("corrupted record body: {0}")]
    Body(String),
}

fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
}

/// The body of a record, after checking its header.
pub fn body(bytes: &[u8]) -> Result<&[u8], CodecError> {
    if bytes.len() < 4 || &bytes[..2] != MAGIC {
        return Err(CodecError::NotARecord);
    }
    let found = u16::from_le_bytes([bytes[2], bytes[3]]);
    if found != FORMAT_VERSION {
        return Err(CodecError::Version { found });
    }
    Ok(&bytes[4..])
}

/// Encodes a value.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    encode_sized(v, 64)
}

/// As [`encode`], into a buffer of `capacity` bytes at first (the size of
/// what `v` holds, when it holds large byte strings: growing the buffer
/// step by step copied them several times).
pub fn encode_sized<T: Serialize>(v: &T, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    header(&mut out);
    // Serialising plain data into a Vec cannot fail.
    postcard::to_extend(v, out).unwrap_or_default()
}

/// Decodes a value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    postcard::from_bytes(body(bytes)?).map_err(|e| CodecError::Body(e.to_string()))
}

/// Encodes a batch of rows as an Arrow IPC stream.
pub fn encode_batch(batch: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 2 + 64);
    header(&mut out);
    let written = (|| {
        let mut w = StreamWriter::try_new(&mut out, &batch.schema())?;
        w.write(batch)?;
        w.finish()
    })();
    if let Err(e) = written {
        // Only an out-of-memory vector could fail; say so rather than
        // writing a record that will not read back.
        tracing::error!(error = %e, "cannot encode a batch for the checkpoint");
    }
    out
}

/// Decodes a batch of rows.
pub fn decode_batch(bytes: &[u8]) -> Result<RecordBatch, CodecError> {
    let reader = StreamReader::try_new(Cursor::new(body(bytes)?), None)
        .map_err(|e| CodecError::Body(e.to_string()))?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| CodecError::Body(e.to_string()))?);
    }
    match batches.len() {
        1 => Ok(batches.remove(0)),
        n => Err(CodecError::Body(format!(
            "{n} batches where one was written"
        ))),
    }
}
