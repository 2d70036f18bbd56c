//! Offline examples from an event history: the history sorted by event
//! time, replayed through the same per-trader state as the live service,
//! with a snapshot of every trader's features at each cutoff and its label
//! from the events after it.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::ModelError;
use crate::event::time::format_rfc3339_ms;
use crate::event::{Body, DepositStatus, Event, TraderId};
use crate::features::{FeatureSpace, Traders};
use crate::pipeline::{Dedup, Ingest, IngestConfig};
use crate::source::{Line, LineReader};

/// An event history loaded for training, evaluation or scoring.
pub struct History {
    pub path: PathBuf,
    /// Valid, de-duplicated events in event-time order (stable for ties).
    pub events: Vec<Event>,
    /// Decoder state: trader id and symbol names.
    pub ingest: Ingest,
    /// Lines refused (invalid or duplicate); they are left out.
    pub skipped: u64,
}

impl History {
    /// Reads an NDJSON history. Bad lines are counted and skipped (the
    /// replay command reports them one by one).
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        Self::load_with_progress(path, &mut |_, _| {})
    }

    /// As [`History::load`]; `progress` hears (bytes read, events kept)
    /// every 65,536 lines.
    pub fn load_with_progress(
        path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self, ModelError> {
        let io = |source| ModelError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let config = IngestConfig::default();
        let mut dedup = Dedup::new(config.dedup_window_ms, config.dedup_max_ids);
        let mut ingest = Ingest::new(config);
        let limit = ingest.decoder.config.max_line_bytes;
        let mut reader = LineReader::new(BufReader::with_capacity(1 << 20, file), limit);
        // History is old by definition: no event is "in the future".
        let now_ms = i64::MAX / 2;
        let mut events = Vec::new();
        let mut skipped = 0;
        let (mut bytes, mut lines) = (0u64, 0u64);
        while let Some((_, line)) = reader.next_line().map_err(io)? {
            lines += 1;
            if lines % 65_536 == 0 {
                progress(bytes, events.len() as u64);
            }
            match line {
                Line::Text(text) => {
                    bytes += text.len() as u64 + 1;
                    match ingest.decode(text, now_ms, None, 0) {
                        Ok(e) if !dedup.is_duplicate(e.id_hash, e.ts) => events.push(e),
                        _ => skipped += 1,
                    }
                }
                Line::TooLong { len, .. } => {
                    bytes += len as u64 + 1;
                    skipped += 1;
                }
            }
        }
        progress(bytes, events.len() as u64);
        if events.is_empty() {
            return Err(ModelError::NoEvents(path.to_owned()));
        }
        events.sort_by_key(|e| e.ts);
        Ok(Self {
            path: path.to_owned(),
            events,
            ingest,
            skipped,
        })
    }

    pub fn first_ts(&self) -> i64 {
        self.events.first().map_or(0, |e| e.ts)
    }

    pub fn last_ts(&self) -> i64 {
        self.events.last().map_or(0, |e| e.ts)
    }

    /// The trader's pseudonymous id.
    pub fn trader_name(&self, id: TraderId) -> &str {
        self.ingest.decoder.traders.name(id)
    }

    /// Acquisition channels of the signups, most frequent first (ties by
    /// name), at most `max`: the channel vocabulary of a model.
    pub fn channels(&self, max: usize) -> Vec<String> {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for e in &self.events {
            if let Body::Signup(s) = &e.body {
                *counts
                    .entry(self.ingest.decoder.symbols.name(s.channel))
                    .or_default() += 1;
            }
        }
        let mut v: Vec<(&str, usize)> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.into_iter()
            .take(max)
            .map(|(c, _)| c.to_string())
            .collect()
    }

    /// Refuses a cutoff whose label horizon runs past the end of the data.
    pub fn check_horizon(&self, cutoff: i64, horizon_ms: i64) -> Result<(), ModelError> {
        let end = self.last_ts();
        if cutoff + horizon_ms > end {
            return Err(ModelError::HorizonPastData {
                cutoff: format_rfc3339_ms(cutoff),
                horizon_end: format_rfc3339_ms(cutoff + horizon_ms),
                data_end: format_rfc3339_ms(end),
            });
        }
        if cutoff <= self.first_ts() {
            return Err(ModelError::CutoffBeforeData {
                cutoff: format_rfc3339_ms(cutoff),
                data_start: format_rfc3339_ms(self.first_ts()),
            });
        }
        Ok(())
    }
}

/// Churn means no trade and no approved deposit in the horizon.
pub fn is_activity(e: &Event) -> bool {
    match &e.body {
        Body::Trade(_) => true,
        Body::Deposit(d) => d.status == DepositStatus::Approved,
        _ => false,
    }
}

/// Which traders become examples of a snapshot.
#[derive(Debug, Clone, Copy)]
pub enum Population {
    /// Traders whose latest trade or approved deposit is within this many
    /// ms before the cutoff (training and evaluation).
    ActiveWithin(i64),
    /// Every trader seen up to the cutoff (scoring).
    Everyone,
}

/// The features of the selected traders at one cutoff, with labels.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: i64,
    pub traders: Vec<TraderId>,
    /// Row-major features, `traders.len() × width`.
    pub x: Vec<f64>,
    pub width: usize,
    /// Churned in (at, at + horizon]; empty without a horizon.
    pub churned: Vec<bool>,
}

impl Snapshot {
    pub fn len(&self) -> usize {
        self.traders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.traders.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.width..(i + 1) * self.width]
    }
}

/// Snapshots at each of `cutoffs` (ascending), built strictly from events
/// up to the cutoff; labels from `(cutoff, cutoff + horizon]` when a
/// horizon is given.
pub fn snapshots(
    history: &History,
    space: &FeatureSpace,
    cutoffs: &[i64],
    horizon_ms: Option<i64>,
    population: Population,
) -> Vec<Snapshot> {
    let mut traders = Traders::default();
    let events = &history.events;
    let mut next = 0;
    let mut out = Vec::with_capacity(cutoffs.len());
    let mut v = Vec::with_capacity(space.len());
    for &at in cutoffs {
        while next < events.len() && events[next].ts <= at {
            traders.apply(&events[next]);
            next += 1;
        }
        let mut snap = Snapshot {
            at,
            traders: Vec::new(),
            x: Vec::new(),
            width: space.len(),
            churned: Vec::new(),
        };
        for (id, s) in traders.iter() {
            let include = match population {
                Population::ActiveWithin(ms) => {
                    let last = s.last_activity_ts();
                    last != crate::features::NEVER && last > at - ms
                }
                Population::Everyone => s.last_event_ts() != crate::features::NEVER,
            };
            if include {
                space.vector(s, &traders.thresholds, at, &mut v);
                snap.traders.push(id);
                snap.x.extend_from_slice(&v);
            }
        }
        if let Some(h) = horizon_ms {
            let mut active = vec![false; traders.len().max(history.ingest.decoder.traders.len())];
            for e in events[next..].iter().take_while(|e| e.ts <= at + h) {
                if is_activity(e) {
                    active[e.trader as usize] = true;
                }
            }
            snap.churned = snap.traders.iter().map(|&t| !active[t as usize]).collect();
        }
        out.push(snap);
    }
    out
}
