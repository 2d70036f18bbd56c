//! The risk stage: per-trader rules, churn scoring and KPI drop rules,
//! driven by events and by event time, with the model hot-reloaded from
//! its file. Alerts come out deduplicated by id; where they go is the
//! caller's business.
//!
//! Time-based work runs per shard on a fixed grid of event time (`tick`,
//! `score_changed_every`, `rescore_every`), each tick seeing exactly the
//! events before it, so a backlog read at full speed gives the same alerts
//! as a live stream.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::config::AlertRules;
use super::contract::{Alert, AlertKind};
use super::kpi_drop::KpiDrop;
use super::metrics::RiskMetrics;
use super::rules::{Ctx, TraderRules};
use super::sent::SentIds;
use crate::event::{Body, Event, Interner, TraderId, fixed_hasher};
use crate::features::TraderState;
use crate::model::{Model, ModelError, OnlineScorer};

/// Reasons listed in a churn_risk alert.
const REASONS: usize = 3;

/// A model file watched for changes.
struct ModelWatch {
    path: PathBuf,
    stamp: Option<(SystemTime, u64)>,
    last_check: Instant,
    every: Duration,
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Where a shard stands on the grid of event time (part of the checkpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Clock {
    /// The next tick to run; `None` before the shard's first event.
    pub next_tick: Option<i64>,
    /// A reloaded model: everyone is re-scored at the next tick.
    pub rescore_all: bool,
}

/// Rules, scorer and the memory of ids sent.
pub struct Risk {
    pub rules: TraderRules,
    pub kpi: KpiDrop,
    pub scorer: Option<OnlineScorer>,
    /// Per shard.
    pub clocks: Vec<Clock>,
    /// Per shard, the ids of trader alerts sent; `kpi_sent` for kpi_drop.
    pub sent: Vec<SentIds>,
    pub kpi_sent: SentIds,
    /// Alert ids remembered per shard.
    pub dedup_capacity: usize,
    /// Repeats dropped, per kind.
    pub duplicates: [u64; 8],
    pub metrics: Option<RiskMetrics>,
    watch: Option<ModelWatch>,
    pending: Vec<Alert>,
    /// Wall-clock time the model in use was loaded (RFC 3339).
    pub loaded_at: String,
    hasher: ahash::RandomState,
}

impl Default for Risk {
    fn default() -> Self {
        Self::new(AlertRules::default())
    }
}

impl Risk {
    pub fn new(rules: AlertRules) -> Self {
        let capacity = rules.section.dedup_ids.max(1);
        Self {
            kpi: KpiDrop::new(&rules),
            rules: TraderRules::new(rules),
            scorer: None,
            clocks: Vec::new(),
            sent: Vec::new(),
            kpi_sent: SentIds::new(capacity),
            dedup_capacity: capacity,
            duplicates: [0; 8],
            metrics: None,
            watch: None,
            pending: Vec::new(),
            loaded_at: String::new(),
            hasher: fixed_hasher(),
        }
    }

    /// Replaces the rules (the model stays).
    pub fn set_rules(&mut self, rules: AlertRules) {
        let scorer = self.scorer.take();
        let metrics = self.metrics.take();
        let watch = self.watch.take();
        let loaded_at = std::mem::take(&mut self.loaded_at);
        *self = Self::new(rules);
        self.scorer = scorer;
        self.metrics = metrics;
        self.watch = watch;
        self.loaded_at = loaded_at;
    }

    /// Loads the model to score with; with `watch`, the file is checked
    /// that often and a changed file is loaded without a restart.
    pub fn load_model(
        &mut self,
        path: PathBuf,
        symbols: &mut Interner,
        watch: Option<Duration>,
    ) -> Result<(), ModelError> {
        let model = Model::load(&path)?;
        self.use_model(Arc::new(model), symbols, false);
        if let Some(every) = watch {
            self.watch = Some(ModelWatch {
                stamp: stamp(&path),
                path,
                last_check: Instant::now(),
                every,
            });
        }
        Ok(())
    }

    /// Scores with `model` from now on; a reloaded model re-scores
    /// everyone at each shard's next tick.
    pub fn use_model(&mut self, model: Arc<Model>, symbols: &mut Interner, reloaded: bool) {
        if let Some(m) = &self.metrics {
            m.model(&model.name, &model.version, reloaded);
        }
        self.loaded_at =
            crate::event::time::format_rfc3339_ms(chrono::Utc::now().timestamp_millis());
        match &mut self.scorer {
            Some(s) => s.replace(model, symbols),
            None => self.scorer = Some(OnlineScorer::new(model, symbols)),
        }
        if reloaded {
            self.clocks.iter_mut().for_each(|c| c.rescore_all = true);
        }
    }

    /// Live mode: loads the model file again if it changed (checked on the
    /// wall clock: liveness only). A bad file keeps the model in use and
    /// counts an error.
    pub fn maybe_reload(&mut self, symbols: &mut Interner) {
        let Some(w) = &mut self.watch else { return };
        if w.last_check.elapsed() < w.every {
            return;
        }
        w.last_check = Instant::now();
        let now = stamp(&w.path);
        if now == w.stamp {
            return;
        }
        w.stamp = now;
        let path = w.path.clone();
        match Model::load(&path) {
            Ok(model) => {
                tracing::info!(path = %path.display(), version = %model.version, "model reloaded");
                self.use_model(Arc::new(model), symbols, true);
            }
            Err(e) => {
                tracing::error!(error = %e, "model file changed but cannot be loaded; keeping the model in use");
                if let Some(m) = &self.metrics {
                    m.reload_error();
                }
            }
        }
    }

    /// The clock of `shard`.
    pub fn clock(&mut self, shard: u32) -> &mut Clock {
        let s = shard as usize;
        if s >= self.clocks.len() {
            self.clocks.resize(s + 1, Clock::default());
        }
        &mut self.clocks[s]
    }

    /// The id memory of `shard`.
    pub fn sent(&mut self, shard: u32) -> &mut SentIds {
        let s = shard as usize;
        if s >= self.sent.len() {
            let cap = self.dedup_capacity;
            self.sent.resize_with(s + 1, || SentIds::new(cap));
        }
        &mut self.sent[s]
    }

    /// Forgets trader `id` (an erasure): its rule memory and its score.
    pub fn forget(&mut self, id: crate::event::TraderId) {
        self.rules.forget(id);
        if let Some(s) = &mut self.scorer {
            s.forget(id);
        }
    }

    /// Drops one shard's risk state (its partition left this instance).
    pub fn clear_shard(&mut self, shard: u32) {
        self.rules.clear_shard(shard);
        if let Some(s) = &mut self.scorer {
            s.clear_shard(shard);
        }
        *self.clock(shard) = Clock::default();
        let cap = self.dedup_capacity;
        *self.sent(shard) = SentIds::new(cap);
    }

    /// Event rules, and the trader's score marked stale.
    #[inline]
    pub fn on_event(&mut self, shard: u32, e: &Event, ctx: &Ctx, out: &mut Vec<Alert>) {
        if let Some(s) = &mut self.scorer
            && matches!(
                e.body,
                Body::Trade(_) | Body::Deposit(_) | Body::Withdrawal(_) | Body::Login(_)
            )
        {
            s.mark(e.trader);
        }
        self.rules.on_event(e, ctx, &mut self.pending);
        self.flush_pending(Some(shard), out);
    }

    /// Runs every tick of `shard` up to event time `upto` (inclusive):
    /// scoring of changed traders (everyone on the re-score grid) and the
    /// time-based rules. The shard's state must hold exactly the events
    /// before each tick, so the caller runs this before applying an event
    /// at `upto`.
    pub fn advance(&mut self, shard: u32, upto: i64, ctx: &Ctx, out: &mut Vec<Alert>) {
        let tick = self.rules.rules.tick_ms;
        let rescore = self.rules.rules.rescore_ms;
        let changed = self.rules.rules.score_changed_ms;
        let clock = *self.clock(shard);
        let Some(mut t) = clock.next_tick else {
            // The first event of the shard: its traders start here.
            self.clock(shard).next_tick = Some(upto.div_euclid(tick) * tick + tick);
            return;
        };
        let mut rescore_all = clock.rescore_all;
        while t <= upto {
            let everyone = rescore_all || t.rem_euclid(rescore) == 0;
            if everyone || t.rem_euclid(changed) == 0 {
                // Stale: not scored in the last half period, so a trader
                // scored in the afternoon is still re-scored next midnight.
                self.score(shard, t, everyone.then_some(t - rescore / 2), ctx);
            }
            rescore_all = false;
            self.rules.on_tick(shard, t, ctx, &mut self.pending);
            self.flush_pending(Some(shard), out);
            t += tick;
        }
        let c = self.clock(shard);
        c.next_tick = Some(t);
        c.rescore_all = rescore_all;
        if let (Some(s), Some(m)) = (&self.scorer, &self.metrics) {
            m.bands(&s.counts);
        }
    }

    /// Scores the traders of `shard` whose features changed; with
    /// `stale_before`, also everyone not scored since then.
    fn score(&mut self, shard: u32, now: i64, stale_before: Option<i64>, ctx: &Ctx) {
        let Some(scorer) = &mut self.scorer else {
            return;
        };
        let before = scorer.scored;
        let (rules, pending) = (&mut self.rules, &mut self.pending);
        let mut on_score = |scorer: &OnlineScorer, id, s: &TraderState, p| {
            let reasons = || scorer.reasons(s, ctx.traders, now, REASONS);
            rules.on_score(id, p, &scorer.model, reasons, now, ctx, pending);
        };
        let dirty = scorer.take_dirty(shard);
        scorer.score_each(&dirty, ctx.traders, now, &mut on_score);
        // Then everyone not scored recently (the changed traders were just
        // scored, so nobody is scored twice in one tick).
        if let Some(t) = stale_before {
            let stale: Vec<u32> = ctx
                .traders
                .iter_shard(shard)
                .map(|(id, _)| id)
                .filter(|&id| !scorer.scored_after(id, t))
                .collect();
            scorer.score_each(&stale, ctx.traders, now, &mut on_score);
        }
        if let Some(m) = &self.metrics {
            m.scored(scorer.scored - before);
        }
    }

    /// KPI rows of one emission, for the kpi_drop rules.
    pub fn on_kpi_rows(&mut self, rows: &[crate::pipeline::KpiRow], out: &mut Vec<Alert>) {
        self.kpi.on_rows(rows, &mut self.pending);
        self.flush_pending(None, out);
    }

    /// Reads the rule state and scoring state of `ids` ahead of their
    /// events (see [`crate::features::Traders::warm`]).
    pub fn warm(&self, ids: &[TraderId]) -> u64 {
        let scored = self.scorer.as_ref().map_or(0, |s| {
            ids.iter()
                .filter_map(|&id| s.traders.get(id))
                .fold(0, |x, t| x ^ t.last as u64)
        });
        self.rules.warm(ids) ^ scored
    }

    /// Moves new alerts to `out`, dropping ids sent before (per shard for
    /// trader alerts, `None` for KPI alerts). The new ones are kept in
    /// place and appended at once: an alert is moved once, not twice.
    fn flush_pending(&mut self, shard: Option<u32>, out: &mut Vec<Alert>) {
        if self.pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.retain(|a| self.is_new(shard, a));
        out.append(&mut pending);
        self.pending = pending;
    }

    /// Moves one alert to `out` unless its id was sent before (trader
    /// alerts remember ids per shard, `None` for KPI alerts).
    pub fn send(&mut self, shard: Option<u32>, a: Alert, out: &mut Vec<Alert>) {
        if self.is_new(shard, &a) {
            out.push(a);
        }
    }

    /// True for an id not sent before (remembered from now on); a repeat
    /// is counted.
    fn is_new(&mut self, shard: Option<u32>, a: &Alert) -> bool {
        let fingerprint = self.hasher.hash_one(a.alert_id);
        let new = match shard {
            Some(s) if a.kind != AlertKind::KpiDrop => self.sent(s).insert(fingerprint),
            _ => self.kpi_sent.insert(fingerprint),
        };
        if !new {
            self.duplicates[a.kind.index()] += 1;
            if let Some(m) = &self.metrics {
                m.duplicate(a.kind);
            }
        }
        new
    }

    pub fn heap_bytes(&self) -> usize {
        self.rules.heap_bytes()
            + self.scorer.as_ref().map_or(0, OnlineScorer::heap_bytes)
            + self.sent.iter().map(SentIds::heap_bytes).sum::<usize>()
    }
}
