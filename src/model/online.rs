//! Online scoring in the live service: the same feature vector as
//! training, scored when a trader's features change (batched per
//! event-time tick) and for everyone on a slower tick, so a trader who
//! goes quiet gets riskier without any new event.

use std::sync::Arc;

use super::artifact::{Band, Model, Reason};
use crate::event::time::DAY_MS;
use crate::event::{Interner, TraderId};
use crate::features::{FeatureSpace, NEVER, TraderState, Traders};

/// The model in use with the band of every trader it scored.
pub struct OnlineScorer {
    pub model: Arc<Model>,
    space: FeatureSpace,
    /// Traders whose latest activity is older than this are not scored
    /// (the model was not trained on them).
    active_within_ms: i64,
    /// Per trader: 0 = not in a band, else 1 + band index.
    band: Vec<u8>,
    /// Per trader: event time of the latest scoring.
    last_scored: Vec<i64>,
    dirty: Vec<bool>,
    dirty_list: Vec<TraderId>,
    /// Traders per band (low, medium, high, critical).
    pub counts: [i64; 4],
    pub scored: u64,
    buf: Vec<f64>,
    /// The model's scaling as (mean, 1 / std): a multiply per feature on
    /// the hot path instead of a divide.
    scale: Vec<(f64, f64)>,
}

fn model_scale(model: &Model) -> Vec<(f64, f64)> {
    model
        .features
        .iter()
        .map(|f| (f.mean, 1.0 / f.std))
        .collect()
}

impl OnlineScorer {
    pub fn new(model: Arc<Model>, symbols: &mut Interner) -> Self {
        let mut space = model.space();
        space.resolve(symbols);
        let active_within_ms = (model.training.active_within_days * DAY_MS as f64) as i64;
        let scale = model_scale(&model);
        Self {
            model,
            space,
            active_within_ms,
            band: Vec::new(),
            last_scored: Vec::new(),
            dirty: Vec::new(),
            dirty_list: Vec::new(),
            counts: [0; 4],
            scored: 0,
            buf: Vec::new(),
            scale,
        }
    }

    /// Swaps in a new model; bands stay until the next scoring of each trader.
    pub fn replace(&mut self, model: Arc<Model>, symbols: &mut Interner) {
        let mut fresh = Self::new(model, symbols);
        fresh.band = std::mem::take(&mut self.band);
        // last_scored is dropped: everyone is scored by the new model.
        fresh.counts = self.counts;
        fresh.scored = self.scored;
        *self = fresh;
    }

    /// Trader `id`'s features changed: score it at the next tick.
    #[inline]
    pub fn mark(&mut self, id: TraderId) {
        let i = id as usize;
        if i >= self.dirty.len() {
            self.dirty.resize(i + 1, false);
        }
        if !self.dirty[i] {
            self.dirty[i] = true;
            self.dirty_list.push(id);
        }
    }

    /// The traders marked since the last call.
    pub fn take_dirty(&mut self) -> Vec<TraderId> {
        for &id in &self.dirty_list {
            self.dirty[id as usize] = false;
        }
        std::mem::take(&mut self.dirty_list)
    }

    fn set_band(&mut self, id: TraderId, band: Option<Band>) {
        let i = id as usize;
        if i >= self.band.len() {
            self.band.resize(i + 1, 0);
        }
        let old = self.band[i];
        let new = band.map_or(0, |b| b as u8 + 1);
        if old != new {
            if old > 0 {
                self.counts[old as usize - 1] -= 1;
            }
            if new > 0 {
                self.counts[new as usize - 1] += 1;
            }
            self.band[i] = new;
        }
    }

    /// Scores trader `id` as of `now`; `None` when it is outside the
    /// model's population (never active, or inactive for too long).
    pub fn score(
        &mut self,
        id: TraderId,
        s: &TraderState,
        traders: &Traders,
        now: i64,
    ) -> Option<f64> {
        let last = s.last_activity_ts();
        if last == NEVER || now - last > self.active_within_ms {
            self.set_band(id, None);
            return None;
        }
        let mut buf = std::mem::take(&mut self.buf);
        self.space.vector(s, &traders.thresholds, now, &mut buf);
        for (v, (mean, inv)) in buf.iter_mut().zip(&self.scale) {
            *v = (*v - mean) * inv;
        }
        let p = self
            .model
            .calibration
            .apply(self.model.estimator.predict(&buf));
        self.buf = buf;
        self.scored += 1;
        let i = id as usize;
        if i >= self.last_scored.len() {
            self.last_scored.resize(i + 1, NEVER);
        }
        self.last_scored[i] = now;
        self.set_band(id, Some(self.model.bands.band(p)));
        Some(p)
    }

    /// Whether trader `id` was scored after `t`.
    pub fn scored_after(&self, id: TraderId, t: i64) -> bool {
        self.last_scored.get(id as usize).is_some_and(|&s| s > t)
    }

    /// The strongest reasons behind `s`'s score at `now`.
    pub fn reasons(&self, s: &TraderState, traders: &Traders, now: i64, n: usize) -> Vec<Reason> {
        let mut v = Vec::new();
        self.space.vector(s, &traders.thresholds, now, &mut v);
        self.model.reasons(&v, n)
    }

    pub fn heap_bytes(&self) -> usize {
        self.band.capacity()
            + self.last_scored.capacity() * 8
            + self.dirty.capacity()
            + self.dirty_list.capacity() * 4
    }
}
