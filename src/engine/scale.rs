//! The engine's side of scale-out: shards publish what closed as partials,
//! merges take partials in and run the pipelines they export.

use std::collections::BTreeMap;

use serde_bytes::ByteBuf;

use super::partial::{Partial, ROWS_PER_PART};
use super::{Engine, Processed};
use crate::event::{Invalid, Reason};
use crate::features::capture_for_merge;
use crate::pipeline::columns::cut;
use crate::state::encode_batch;

/// One encoded piece of what a shard closed: rows of a table or a capture.
struct Piece {
    /// Table index, or the capture's interval.
    what: Kind,
    rows: usize,
    bytes: Vec<u8>,
}

enum Kind {
    Table(u8, i64, i64),
    Capture(i64, i64),
}

/// A batch cut into encoded parts of at most [`ROWS_PER_PART`] rows (none
/// for an empty batch).
fn pieces(
    batch: &datafusion::arrow::record_batch::RecordBatch,
    what: impl Fn() -> Kind,
) -> Vec<Piece> {
    let n = batch.num_rows();
    (0..n.div_ceil(ROWS_PER_PART))
        .map(|p| {
            let off = p * ROWS_PER_PART;
            let rows = ROWS_PER_PART.min(n - off);
            Piece {
                what: what(),
                rows,
                bytes: encode_batch(&batch.slice(off, rows)),
            }
        })
        .collect()
}

impl Engine {
    /// A message of the partials topic for merge `k`.
    pub(super) fn take_partial(&mut self, bytes: &[u8], k: u32) -> Processed {
        self.partials_read += 1;
        let applied = match Partial::from_bytes(bytes) {
            Ok(p) => match self.merge_mut(k) {
                Some(m) => m.apply(p).map_err(|e| e.to_string()),
                None => Err("this instance runs no scale-out merge".into()),
            },
            Err(e) => Err(e.to_string()),
        };
        match applied {
            Ok(()) => Processed::Valid,
            Err(message) => Processed::Invalid(Invalid::new(
                Reason::BadValue,
                Some("partial"),
                format!("a message of the partials topic that cannot be merged: {message}"),
            )),
        }
    }

    /// Sends what each shard closed since the last call to the merges that
    /// need it; with `last`, the shards' input ended.
    pub(super) fn publish_partials(&mut self, last: bool) {
        let Some(so) = self.scale_out.take() else {
            return;
        };
        // Tables no exported pipeline reads are dropped, not encoded.
        let mut read = [false; 6];
        for n in &so.needs {
            for (r, t) in read.iter_mut().zip(n.tables) {
                *r |= t;
            }
        }
        let sent_at_ms = chrono::Utc::now().timestamp_millis();
        let mut captures: BTreeMap<u32, Vec<Piece>> = BTreeMap::new();
        for ((every, as_of), v) in std::mem::take(&mut self.kpis.captures) {
            let read = so.capture_columns(every);
            for (s, b) in v {
                let sent = capture_for_merge(&b, &read);
                captures
                    .entry(s)
                    .or_default()
                    .extend(pieces(&sent, || Kind::Capture(every, as_of)));
            }
        }
        for s in self.shard_numbers() {
            let Some(hi) = self.shards[s as usize].as_ref().and_then(|x| x.released) else {
                continue;
            };
            let mut all = captures.remove(&s).unwrap_or_default();
            self.kpis.ensure_shard(s);
            for (t, store) in self.kpis.stores[s as usize].iter_mut().enumerate() {
                let columns = so.table_columns(t);
                for b in store.drain().into_iter().filter(|_| read[t]) {
                    // `ts` always: the merge's windows are cut by it.
                    let sent = cut(&b.batch, &columns, 0, None);
                    all.extend(pieces(&sent, || Kind::Table(t as u8, b.lo, b.hi)));
                }
            }
            let Some(sh) = self.shards[s as usize].as_mut() else {
                continue;
            };
            if all.is_empty() && sh.published == Some((hi, last)) {
                continue;
            }
            sh.published = Some((hi, last));
            for (k, need) in so.needs.iter().enumerate() {
                if need.pipelines.is_empty() {
                    continue;
                }
                let part = || Partial {
                    source: s,
                    sources: so.partitions,
                    hi,
                    more: true,
                    last,
                    sent_at_ms,
                    ..Partial::default()
                };
                let mut cur = part();
                let mut rows = 0;
                // Captures, then tables in order: a part is sent once it
                // holds enough rows; the last one closes the release.
                for p in all.iter().filter(|p| match p.what {
                    Kind::Table(t, ..) => need.tables[t as usize],
                    Kind::Capture(every, _) => need.captures.contains(&every),
                }) {
                    match p.what {
                        Kind::Table(t, lo, hi) => {
                            cur.tables.push((t, lo, hi, ByteBuf::from(p.bytes.clone())))
                        }
                        Kind::Capture(every, as_of) => {
                            cur.captures
                                .push((every, as_of, ByteBuf::from(p.bytes.clone())))
                        }
                    }
                    rows += p.rows;
                    if rows >= ROWS_PER_PART {
                        let full = std::mem::replace(&mut cur, part());
                        self.out.partials.push((k as u32, full.to_bytes()));
                        rows = 0;
                    }
                }
                cur.more = false;
                self.out.partials.push((k as u32, cur.to_bytes()));
            }
        }
        self.scale_out = Some(so);
    }

    /// Runs the merges held over what every shard released.
    pub(super) fn run_merges(&mut self) {
        let started = std::time::Instant::now();
        let mut frontier: Option<i64> = None;
        let mut ran = false;
        // The merge of a parked shard stands still with it.
        let parked: Vec<u32> = self
            .merges
            .keys()
            .copied()
            .filter(|&k| self.is_parked(k))
            .collect();
        for (k, m) in self.merges.iter_mut().filter(|(k, _)| !parked.contains(k)) {
            let before = m.ran;
            let rows = m.run();
            if m.ran != before {
                tracing::debug!(partition = k, ran = ?m.ran, released = ?m.released, rows = rows.iter().map(|(_, r)| r.len()).sum::<usize>(), "merge ran");
                ran = true;
                if let Some((f, _)) = m.ran {
                    frontier = Some(frontier.map_or(f, |x| x.min(f)));
                }
                if let Some(sent) = m.latest_sent_ms {
                    let ms = (chrono::Utc::now().timestamp_millis() - sent).max(0);
                    self.merge_delays.record(ms);
                    if let Some(mx) = &self.metrics
                        && let Ok(mx) = mx.lock()
                    {
                        mx.observe_merge_delay(ms as f64 / 1000.0);
                    }
                }
            }
            let mut drops = Vec::new();
            for (_, r) in &rows {
                m.kpi.on_rows(r, &mut drops);
            }
            for a in drops {
                self.risk.send(None, a, &mut self.out.alerts);
            }
            self.out.kpis.extend(rows);
        }
        if !ran {
            return;
        }
        self.cycles += 1;
        self.out.frontier = frontier;
        if let (Some(m), Some(f)) = (&self.metrics, frontier)
            && let Ok(mut m) = m.lock()
        {
            m.observe_cycle(started.elapsed().as_secs_f64(), f);
        }
    }

    /// End of input for the shards held: every event released, the last
    /// partials (marked so) sent. Once only.
    pub fn finish_sources(&mut self) {
        if self.scale_out.is_none() || self.sources_finished {
            return;
        }
        self.sources_finished = true;
        if self.release_to_end() {
            self.publish_partials(true);
        }
    }

    /// Scale-out: the shards' input ended but their last partials may not
    /// have come back through the partials topic yet.
    pub fn awaiting_last_partials(&self) -> bool {
        self.scale_out.is_some() && !self.sources_finished
    }
}

/// Merge delays seen (ms), for the quantiles `pulse run` reports when it
/// stops (the newest 100,000).
#[derive(Debug, Default)]
pub struct Delays(std::collections::VecDeque<i64>);

impl Delays {
    const KEEP: usize = 100_000;

    fn record(&mut self, ms: i64) {
        if self.0.len() == Self::KEEP {
            self.0.pop_front();
        }
        self.0.push_back(ms);
    }

    /// The `q` quantile (0..=1), nearest rank; `None` before any.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        let mut v: Vec<i64> = self.0.iter().copied().collect();
        v.sort_unstable();
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len().max(1)) - 1;
        v.get(i).copied()
    }
}
