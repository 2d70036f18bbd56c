//! Reads NDJSON line by line with bounded memory: a line longer than the limit
//! is cut, reported as too long and skipped, never buffered whole.

use std::io::{self, BufRead};

/// One line read.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A whole line without its `\n` (and `\r`).
    Text(&'a [u8]),
    /// A line longer than the limit: its first `limit` bytes and its length.
    TooLong { prefix: &'a [u8], len: usize },
}

/// Splits a reader into lines of at most `limit` bytes.
pub struct LineReader<R> {
    inner: R,
    limit: usize,
    line: Vec<u8>,
    line_no: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        Self {
            inner,
            limit,
            line: Vec::with_capacity(1024),
            line_no: 0,
        }
    }

    /// The next non-empty line and its 1-based number, `None` at the end.
    /// Empty lines carry no event and are skipped (they still count for
    /// line numbers).
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        loop {
            self.line.clear();
            let mut len = 0usize;
            let mut saw_any = false;
            loop {
                let buf = self.inner.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                saw_any = true;
                let (chunk, used, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (&buf[..i], i + 1, true),
                    None => (buf, buf.len(), false),
                };
                let room = (self.limit + 1).saturating_sub(self.line.len());
                self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                len += chunk.len();
                self.inner.consume(used);
                if done {
                    break;
                }
            }
            if !saw_any {
                return Ok(None);
            }
            self.line_no += 1;
            if self.line.last() == Some(&b'\r') && len <= self.limit {
                self.line.pop();
                len -= 1;
            }
            if len == 0 {
                continue;
            }
            if len > self.limit {
                self.line.truncate(self.limit);
                return Ok(Some((
                    self.line_no,
                    Line::TooLong {
                        prefix: &self.line,
                        len,
                    },
                )));
            }
            return Ok(Some((self.line_no, Line::Text(&self.line))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], limit: usize) -> Vec<(u64, String)> {
        let mut r = LineReader::new(io::BufReader::with_capacity(4, input), limit);
        let mut out = Vec::new();
        while let Some((n, l)) = r.next_line().unwrap() {
            out.push((
                n,
                match l {
                    Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    Line::TooLong { prefix, len } => {
                        format!("LONG {} {len}", String::from_utf8_lossy(prefix))
                    }
                },
            ));
        }
        out
    }

    #[test]
    fn splits_lines_across_buffer_refills() {
        let got = lines(b"abc\r\n\ndefghij\nk", 100);
        assert_eq!(
            got,
            vec![(1, "abc".into()), (3, "defghij".into()), (4, "k".into())]
        );
    }

    #[test]
    fn cuts_long_lines_without_holding_them() {
        let got = lines(b"0123456789abcdef\nok\n", 5);
        assert_eq!(got, vec![(1, "LONG 01234 16".into()), (2, "ok".into())]);
    }
}
