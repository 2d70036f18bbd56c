//! Online scoring in the live service: the same feature vector as
//! training, scored when a trader's features change (batched per
//! event-time tick) and for everyone on a slower tick, so a trader who
//! goes quiet gets riskier without any new event.

use std::sync::Arc;

use super::artifact::{Band, Model, Reason};
use crate::event::time::DAY_MS;
use crate::event::{Interner, TraderId, shard_of};
use crate::features::{FeatureSpace, NEVER, PerTrader, TraderState, Traders};

/// What the scorer remembers per trader (part of the checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scored {
    /// 0 = not in a band, else 1 + band index.
    pub band: u8,
    /// Features changed since the last scoring.
    pub dirty: bool,
    /// Event time of the latest scoring.
    #[serde(with = "crate::features::time_codec")]
    pub last: i64,
}

impl Default for Scored {
    fn default() -> Self {
        Self {
            band: 0,
            dirty: false,
            last: NEVER,
        }
    }
}

/// The model in use with the band of every trader it scored.
pub struct OnlineScorer {
    pub model: Arc<Model>,
    space: FeatureSpace,
    /// Traders whose latest activity is older than this are not scored
    /// (the model was not trained on them).
    active_within_ms: i64,
    /// Per trader: band, dirty flag, latest scoring.
    pub traders: PerTrader<Scored>,
    /// Per shard, the traders marked dirty since its last scoring tick.
    dirty_lists: Vec<Vec<TraderId>>,
    /// Traders per band (low, medium, high, critical).
    pub counts: [i64; 4],
    pub scored: u64,
    buf: Vec<f64>,
    /// A block's standardised feature rows and raw scores (`score_each`).
    rows: Vec<f64>,
    raw: Vec<f64>,
    /// The model's scaling as (mean, 1 / std): a multiply per feature on
    /// the hot path instead of a divide.
    scale: Vec<(f64, f64)>,
}

/// Traders scored together by [`OnlineScorer::score_each`]: their feature
/// rows (a few hundred bytes each) stay in cache while each tree is walked.
const BLOCK: usize = 256;

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
            traders: PerTrader::default(),
            dirty_lists: Vec::new(),
            counts: [0; 4],
            scored: 0,
            buf: Vec::new(),
            rows: Vec::new(),
            raw: Vec::new(),
            scale,
        }
    }

    /// Swaps in a new model; bands stay until the next scoring of each trader.
    pub fn replace(&mut self, model: Arc<Model>, symbols: &mut Interner) {
        let mut fresh = Self::new(model, symbols);
        fresh.traders = std::mem::take(&mut self.traders);
        fresh.dirty_lists = std::mem::take(&mut self.dirty_lists);
        // Latest scorings are forgotten: everyone is scored by the new model.
        for shard in 0..fresh.traders.shard_count() {
            let mut v = fresh.traders.shard(shard).to_vec();
            v.iter_mut().for_each(|s| s.last = NEVER);
            fresh.traders.set_shard(shard, v);
        }
        fresh.counts = self.counts;
        fresh.scored = self.scored;
        *self = fresh;
    }

    /// Trader `id`'s features changed: score it at the next tick.
    #[inline]
    pub fn mark(&mut self, id: TraderId) {
        let s = self.traders.get_mut(id);
        if !s.dirty {
            s.dirty = true;
            let shard = shard_of(id) as usize;
            if shard >= self.dirty_lists.len() {
                self.dirty_lists.resize_with(shard + 1, Vec::new);
            }
            self.dirty_lists[shard].push(id);
        }
    }

    /// The traders of `shard` marked since the last call.
    pub fn take_dirty(&mut self, shard: u32) -> Vec<TraderId> {
        let list = self
            .dirty_lists
            .get_mut(shard as usize)
            .map(std::mem::take)
            .unwrap_or_default();
        for &id in &list {
            self.traders.get_mut(id).dirty = false;
        }
        list
    }

    /// Replaces one shard's per-trader memory (a restored checkpoint).
    pub fn set_shard(&mut self, shard: u32, traders: Vec<Scored>) {
        self.clear_shard(shard);
        let dirty: Vec<TraderId> = traders
            .iter()
            .enumerate()
            .filter(|(_, s)| s.dirty)
            .map(|(i, _)| crate::event::trader_id(shard, i as u32))
            .collect();
        for s in &traders {
            if s.band > 0 {
                self.counts[s.band as usize - 1] += 1;
            }
        }
        self.traders.set_shard(shard, traders);
        let i = shard as usize;
        if i >= self.dirty_lists.len() {
            self.dirty_lists.resize_with(i + 1, Vec::new);
        }
        self.dirty_lists[i] = dirty;
    }

    /// Drops one shard's memory (its partition left this instance).
    pub fn clear_shard(&mut self, shard: u32) {
        for s in self.traders.shard(shard) {
            if s.band > 0 {
                self.counts[s.band as usize - 1] -= 1;
            }
        }
        self.traders.clear_shard(shard);
        if let Some(l) = self.dirty_lists.get_mut(shard as usize) {
            l.clear();
        }
    }

    /// Forgets trader `id` (an erasure): out of its band, no score kept.
    pub fn forget(&mut self, id: TraderId) {
        if self.traders.get(id).is_some() {
            self.set_band(id, None);
            self.traders.reset(id);
        }
    }

    fn set_band(&mut self, id: TraderId, band: Option<Band>) {
        let new = band.map_or(0, |b| b as u8 + 1);
        let s = self.traders.get_mut(id);
        let old = s.band;
        if old != new {
            s.band = new;
            if old > 0 {
                self.counts[old as usize - 1] -= 1;
            }
            if new > 0 {
                self.counts[new as usize - 1] += 1;
            }
        }
    }

    /// Scores `ids` as of `now`, in order, handing each score to `each`
    /// with the trader's state. A trader outside the model's population
    /// (never active, or inactive for too long) loses its band and is
    /// skipped. Traders go in blocks: the features of a block first, then
    /// the forest walked tree by tree over the block
    /// ([`crate::model::forest::predict_rows`]), with scores bit for bit
    /// those of one trader at a time.
    pub fn score_each(
        &mut self,
        ids: &[TraderId],
        traders: &Traders,
        now: i64,
        mut each: impl FnMut(&Self, TraderId, &TraderState, f64),
    ) {
        let mut buf = std::mem::take(&mut self.buf);
        let mut rows = std::mem::take(&mut self.rows);
        let mut raw = std::mem::take(&mut self.raw);
        let mut kept: Vec<(TraderId, &TraderState)> = Vec::with_capacity(BLOCK.min(ids.len()));
        let mut width = 0;
        for block in ids.chunks(BLOCK) {
            rows.clear();
            kept.clear();
            for &id in block {
                let Some(s) = traders.get(id) else {
                    continue;
                };
                let last = s.last_activity_ts();
                if last == NEVER || now - last > self.active_within_ms {
                    self.set_band(id, None);
                    continue;
                }
                self.space.vector(s, &traders.thresholds, now, &mut buf);
                for (v, (mean, inv)) in buf.iter_mut().zip(&self.scale) {
                    *v = (*v - mean) * inv;
                }
                width = buf.len();
                rows.extend_from_slice(&buf);
                kept.push((id, s));
            }
            self.model.estimator.predict_rows(&rows, width, &mut raw);
            for (&(id, s), &r) in kept.iter().zip(&raw) {
                let p = self.model.calibration.apply(r);
                self.scored += 1;
                self.traders.get_mut(id).last = now;
                self.set_band(id, Some(self.model.bands.band(p)));
                each(self, id, s, p);
            }
        }
        self.buf = buf;
        self.rows = rows;
        self.raw = raw;
    }

    /// Whether trader `id` was scored after `t`.
    pub fn scored_after(&self, id: TraderId, t: i64) -> bool {
        self.traders.get(id).is_some_and(|s| s.last > t)
    }

    /// The strongest reasons behind `s`'s score at `now`.
    pub fn reasons(
        &self,
        s: &TraderState,
        traders: &Traders,
        now: i64,
        n: usize,
    ) -> Vec<Reason<'_>> {
        let mut v = Vec::new();
        self.space.vector(s, &traders.thresholds, now, &mut v);
        self.model.reasons(&v, n)
    }

    pub fn heap_bytes(&self) -> usize {
        self.traders.heap_bytes()
            + self
                .dirty_lists
                .iter()
                .map(|l| l.capacity() * 4)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Ingest, IngestConfig};
    use crate::sim::{SimConfig, Simulator};

    /// Traders scored together (in blocks, the forest walked tree by tree
    /// over each) get the bits each gets scored alone, and the scorer ends
    /// with the same bands, counts and skips.
    #[test]
    fn traders_scored_together_score_as_one_at_a_time() {
        let text = Simulator::to_ndjson(SimConfig {
            traders: 700,
            days: 40,
            ..SimConfig::default()
        });
        let mut ingest = Ingest::new(IngestConfig::default());
        let mut traders = Traders::default();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(e) = ingest.decode(line, i64::MAX / 2, None, 0) {
                traders.apply(&e);
            }
        }
        let now = traders
            .iter()
            .map(|(_, s)| s.last_event_ts())
            .max()
            .unwrap()
            + 1;
        let ids: Vec<TraderId> = traders.iter().map(|(id, _)| id).collect();
        let model = Arc::new(Model::bundled());
        let symbols = &mut ingest.decoder.symbols;
        let mut together = OnlineScorer::new(model.clone(), symbols);
        let mut got = Vec::new();
        together.score_each(&ids, &traders, now, |_, id, _, p| {
            got.push((id, p.to_bits()))
        });
        let mut alone = OnlineScorer::new(model, symbols);
        let mut want = Vec::new();
        for id in &ids {
            let one = std::slice::from_ref(id);
            alone.score_each(one, &traders, now, |_, id, _, p| {
                want.push((id, p.to_bits()))
            });
        }
        assert_eq!(got, want);
        // More than one block of 256, and some traders outside the model's
        // population (skipped, no band).
        assert!(got.len() > BLOCK, "{} scored", got.len());
        assert!(got.len() < ids.len(), "all {} scored", ids.len());
        assert_eq!(together.counts, alone.counts);
        assert_eq!(together.scored, alone.scored);
        for id in ids {
            assert_eq!(together.traders.get(id), alone.traders.get(id));
        }
    }
}
