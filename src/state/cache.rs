//! The optional local cache of the changelog (`[state] dir`): per shard, a
//! file with the records this instance committed (or restored), each batch
//! followed by the changelog offset that everything before it is in the
//! file. A restart on the same machine reads the file and then the
//! changelog only from that offset, instead of from the beginning.
//!
//! Frames: `R` key-length key value-length (-1: a tombstone) value, and `C`
//! offset after each batch. Only batches closed by a `C` count, so a torn
//! tail (a crash mid-write) is ignored. Records read again from the
//! changelog after the offset simply overwrite the cached ones. A file
//! older than [`MAX_AGE`] is not used: Kafka drops tombstones from a
//! compacted topic after `delete.retention.ms` (a day by default), so a
//! stale cache could bring back a removed key.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Oldest cache file used on restore.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 3600);

const MAGIC: &[u8; 4] = b"PSC1";

/// One shard's cached records (latest value per key) and the changelog
/// offset to read on from.
#[derive(Debug, Default, PartialEq)]
pub struct Cached {
    pub records: BTreeMap<Vec<u8>, Vec<u8>>,
    pub next_offset: i64,
    /// Bytes of the file read.
    pub bytes: u64,
}

/// The cache folder of one changelog topic.
#[derive(Debug, Clone)]
pub struct LocalCache {
    dir: PathBuf,
    /// Per shard, the size of the file when last written whole: appends
    /// past twice that (and 8 MiB more) make it written whole again, so a
    /// file stays within a small multiple of the state it holds.
    whole: std::sync::Arc<std::sync::Mutex<BTreeMap<u32, u64>>>,
}

/// Growth allowed past twice the whole size before a file is compacted.
const SLACK: u64 = 8 << 20;

impl LocalCache {
    /// `dir/<changelog topic>/`, created when missing.
    pub fn open(dir: &Path, topic: &str) -> std::io::Result<Self> {
        let dir = dir.join(topic);
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            whole: Default::default(),
        })
    }

    fn path(&self, shard: u32) -> PathBuf {
        self.dir.join(format!("shard-{shard}.cache"))
    }

    /// The shard's cache when there is a usable one.
    pub fn load(&self, shard: u32) -> std::io::Result<Option<Cached>> {
        let path = self.path(shard);
        let Ok(meta) = std::fs::metadata(&path) else {
            return Ok(None);
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok());
        if age.is_none_or(|a| a > MAX_AGE) {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        File::open(&path)?.read_to_end(&mut bytes)?;
        Ok(parse(&bytes))
    }

    /// Writes the shard's whole state anew (after a restore).
    pub fn rewrite<'a>(
        &self,
        shard: u32,
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        next_offset: i64,
    ) -> std::io::Result<()> {
        let path = self.path(shard);
        let tmp = path.with_extension("tmp");
        let mut w = BufWriter::new(File::create(&tmp)?);
        w.write_all(MAGIC)?;
        for (k, v) in records {
            frame(&mut w, k, Some(v))?;
        }
        commit(&mut w, next_offset)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_data()?;
        let size = f.metadata()?.len();
        std::fs::rename(tmp, path)?;
        if let Ok(mut whole) = self.whole.lock() {
            whole.insert(shard, size);
        }
        Ok(())
    }

    /// Writes the shard's file anew with only the latest value of each
    /// key (after an erasure: no older copy of the trader stays on disk).
    pub fn compact(&self, shard: u32) -> std::io::Result<()> {
        if let Some(c) = self.load(shard)? {
            let records = c.records.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
            self.rewrite(shard, records, c.next_offset)?;
        }
        Ok(())
    }

    /// Appends one commit's records of the shard, closed by the changelog
    /// offset everything before is in the file.
    pub fn append(
        &self,
        shard: u32,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
        next_offset: i64,
    ) -> std::io::Result<()> {
        let path = self.path(shard);
        if !path.exists() {
            // Only a restore starts a file: appends alone would miss what
            // came before.
            return Ok(());
        }
        let mut w = BufWriter::new(OpenOptions::new().append(true).open(path)?);
        for (k, v) in records {
            frame(&mut w, k, v.as_deref())?;
        }
        commit(&mut w, next_offset)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        let size = f.metadata()?.len();
        drop(f);
        let whole = self.whole.lock().ok().and_then(|w| w.get(&shard).copied());
        if size > 2 * whole.unwrap_or(size) + SLACK
            && let Some(c) = self.load(shard)?
        {
            let records = c.records.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
            self.rewrite(shard, records, c.next_offset)?;
        }
        Ok(())
    }
}

fn frame(w: &mut impl Write, key: &[u8], value: Option<&[u8]>) -> std::io::Result<()> {
    w.write_all(b"R")?;
    w.write_all(&(key.len() as u32).to_le_bytes())?;
    w.write_all(key)?;
    match value {
        Some(v) => {
            w.write_all(&(v.len() as i32).to_le_bytes())?;
            w.write_all(v)
        }
        None => w.write_all(&(-1_i32).to_le_bytes()),
    }
}

fn commit(w: &mut impl Write, next_offset: i64) -> std::io::Result<()> {
    w.write_all(b"C")?;
    w.write_all(&next_offset.to_le_bytes())
}

/// The committed content of a cache file; `None` when it is not one.
fn parse(bytes: &[u8]) -> Option<Cached> {
    let mut rest = bytes.strip_prefix(MAGIC)?;
    let mut done: Option<Cached> = None;
    let mut records: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        *rest = tail;
        Some(head)
    }
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        match tag {
            b'R' => {
                let Some(klen) = take(&mut rest, 4).and_then(|b| b.try_into().ok()) else {
                    break;
                };
                let Some(key) = take(&mut rest, u32::from_le_bytes(klen) as usize) else {
                    break;
                };
                let Some(vlen) = take(&mut rest, 4).and_then(|b| b.try_into().ok()) else {
                    break;
                };
                match i32::from_le_bytes(vlen) {
                    n if n < 0 => {
                        records.remove(key);
                    }
                    n => {
                        let Some(value) = take(&mut rest, n as usize) else {
                            break;
                        };
                        records.insert(key.to_vec(), value.to_vec());
                    }
                }
            }
            b'C' => {
                let Some(offset) = take(&mut rest, 8).and_then(|b| b.try_into().ok()) else {
                    break;
                };
                done = Some(Cached {
                    records: records.clone(),
                    next_offset: i64::from_le_bytes(offset),
                    bytes: (bytes.len() - rest.len()) as u64,
                });
            }
            _ => break,
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pulse-cache-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_restore_and_commits_read_back_and_a_torn_tail_is_ignored() {
        let d = dir();
        let c = LocalCache::open(&d, "g.state").unwrap();
        assert_eq!(c.load(0).unwrap(), None);
        c.append(0, &[(b"a".to_vec(), Some(b"1".to_vec()))], 5)
            .unwrap();
        assert_eq!(c.load(0).unwrap(), None, "appends alone start no file");
        let base: BTreeMap<Vec<u8>, Vec<u8>> = [
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
        ]
        .into();
        c.rewrite(
            0,
            base.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
            10,
        )
        .unwrap();
        c.append(
            0,
            &[(b"a".to_vec(), None), (b"c".to_vec(), Some(b"3".to_vec()))],
            14,
        )
        .unwrap();
        let got = c.load(0).unwrap().unwrap();
        assert_eq!(got.next_offset, 14);
        assert_eq!(
            got.records,
            [
                (b"b".to_vec(), b"2".to_vec()),
                (b"c".to_vec(), b"3".to_vec())
            ]
            .into()
        );
        // A crash in the middle of an append: that batch does not count.
        let path = d.join("g.state").join("shard-0.cache");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"R\x01\x00\x00\x00dX").unwrap();
        drop(f);
        let again = c.load(0).unwrap().unwrap();
        assert_eq!(again.records, got.records);
        assert_eq!(again.next_offset, 14);
        // Appends past twice the whole size (and the slack) compact it.
        let big = vec![7u8; 1 << 20];
        for i in 0..10_i64 {
            c.append(0, &[(b"big".to_vec(), Some(big.clone()))], 20 + i)
                .unwrap();
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 4 << 20, "compacted: {size} bytes");
        let last = c.load(0).unwrap().unwrap();
        assert_eq!(last.next_offset, 29);
        assert_eq!(last.records.len(), 3);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
