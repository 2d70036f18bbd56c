//! The risk stage of the engine: per-trader rules, churn scoring and KPI
//! drop rules, driven by events and by event time, with the model
//! hot-reloaded from its file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::config::AlertRules;
use super::contract::Alert;
use super::kpi_drop::KpiDrop;
use super::rules::{Ctx, TraderRules};
use super::sink::AlertOutputs;
use crate::event::{Body, Event};
use crate::model::{Model, ModelError, OnlineScorer};
use crate::pipeline::{Ingest, KpiRow};

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

/// Rules, scorer and outputs.
pub struct Risk {
    pub rules: TraderRules,
    kpi: KpiDrop,
    pub scorer: Option<OnlineScorer>,
    pub outputs: AlertOutputs,
    next_tick: Option<i64>,
    next_rescore: Option<i64>,
    watch: Option<ModelWatch>,
    pending: Vec<Alert>,
    /// Wall-clock time the model in use was loaded (RFC 3339).
    pub loaded_at: String,
}

impl Default for Risk {
    fn default() -> Self {
        Self::new(AlertRules::default())
    }
}

impl Risk {
    /// Replaces the rules (the model and outputs stay).
    pub fn set_rules(&mut self, rules: AlertRules) {
        self.kpi = KpiDrop::new(&rules);
        self.rules = TraderRules::new(rules);
    }

    pub fn new(rules: AlertRules) -> Self {
        Self {
            kpi: KpiDrop::new(&rules),
            rules: TraderRules::new(rules),
            scorer: None,
            outputs: AlertOutputs::default(),
            next_tick: None,
            next_rescore: None,
            watch: None,
            pending: Vec::new(),
            loaded_at: String::new(),
        }
    }

    /// Loads the model to score with; with `watch`, the file is checked
    /// that often and a changed file is loaded without a restart.
    pub fn load_model(
        &mut self,
        path: PathBuf,
        ingest: &mut Ingest,
        watch: Option<Duration>,
    ) -> Result<(), ModelError> {
        let model = Model::load(&path)?;
        self.use_model(Arc::new(model), ingest, false);
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

    /// Scores with `model` from now on.
    pub fn use_model(&mut self, model: Arc<Model>, ingest: &mut Ingest, reloaded: bool) {
        if let Some(m) = &self.outputs.metrics {
            m.model(&model.name, &model.version, reloaded);
        }
        self.loaded_at =
            crate::event::time::format_rfc3339_ms(chrono::Utc::now().timestamp_millis());
        match &mut self.scorer {
            Some(s) => s.replace(model, &mut ingest.decoder.symbols),
            None => self.scorer = Some(OnlineScorer::new(model, &mut ingest.decoder.symbols)),
        }
        // Everyone is re-scored with the new model at the next tick.
        self.next_rescore = None;
    }

    /// Live mode: loads the model file again if it changed. A bad file
    /// keeps the model in use and counts an error.
    pub fn maybe_reload(&mut self, ingest: &mut Ingest) {
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
                self.use_model(Arc::new(model), ingest, true);
            }
            Err(e) => {
                tracing::error!(error = %e, "model file changed but cannot be loaded; keeping the model in use");
                if let Some(m) = &self.outputs.metrics {
                    m.reload_error();
                }
            }
        }
    }

    /// Event rules, and the trader's score marked stale.
    #[inline]
    pub fn on_event(&mut self, e: &Event, ingest: &Ingest) {
        if let Some(s) = &mut self.scorer
            && matches!(
                e.body,
                Body::Trade(_) | Body::Deposit(_) | Body::Withdrawal(_) | Body::Login(_)
            )
        {
            s.mark(e.trader);
        }
        let ctx = ctx(ingest);
        self.rules.on_event(e, &ctx, &mut self.pending);
        self.flush_pending();
    }

    /// When the next time-based check is due (event time).
    #[inline]
    pub fn due(&self) -> i64 {
        self.next_tick.unwrap_or(i64::MIN)
    }

    /// Runs every tick up to event time `now`: scoring of changed traders
    /// (everyone on the re-score tick) and the time-based rules.
    pub fn advance(&mut self, now: i64, ingest: &Ingest) {
        let tick = self.rules.rules.tick_ms;
        let rescore = self.rules.rules.rescore_ms;
        let changed = self.rules.rules.score_changed_ms;
        let Some(mut t) = self.next_tick else {
            self.next_tick = Some(now.div_euclid(tick) * tick + tick);
            return;
        };
        let ctx = ctx(ingest);
        while t <= now {
            let everyone = self.next_rescore.is_none_or(|r| t >= r);
            if everyone {
                self.next_rescore = Some(t.div_euclid(rescore) * rescore + rescore);
            }
            if everyone || t.rem_euclid(changed) == 0 {
                // Stale: not scored in the last half period, so a trader
                // scored in the afternoon is still re-scored next midnight.
                self.score(t, everyone.then_some(t - rescore / 2), &ctx);
            }
            self.rules.on_tick(t, &ctx, &mut self.pending);
            t += tick;
        }
        self.next_tick = Some(t);
        if let (Some(s), Some(m)) = (&self.scorer, &self.outputs.metrics) {
            m.bands(&s.counts);
        }
        self.flush_pending();
    }

    /// Scores the traders whose features changed; with `stale_before`,
    /// also everyone not scored since then.
    fn score(&mut self, now: i64, stale_before: Option<i64>, ctx: &Ctx) {
        let Some(scorer) = &mut self.scorer else {
            return;
        };
        let before = scorer.scored;
        for id in scorer.take_dirty() {
            score_one(scorer, &mut self.rules, &mut self.pending, id, now, ctx);
        }
        // Then everyone not scored recently (the changed traders were just
        // scored, so nobody is scored twice in one tick).
        if let Some(t) = stale_before {
            let stale: Vec<u32> = (0..ctx.traders.len() as u32)
                .filter(|&id| !scorer.scored_after(id, t))
                .collect();
            for id in stale {
                score_one(scorer, &mut self.rules, &mut self.pending, id, now, ctx);
            }
        }
        if let Some(m) = &self.outputs.metrics {
            m.scored(scorer.scored - before);
        }
    }

    /// KPI rows of one cycle, for the kpi_drop rules.
    pub fn on_kpi_rows(&mut self, rows: &[KpiRow]) {
        self.kpi.on_rows(rows, &mut self.pending);
        self.flush_pending();
    }

    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let trigger = Instant::now();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let emitted_at = crate::event::time::format_rfc3339_ms(now_ms);
        for mut a in self.pending.drain(..) {
            self.outputs.emit_at(&mut a, trigger, now_ms, &emitted_at);
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.rules.heap_bytes() + self.scorer.as_ref().map_or(0, OnlineScorer::heap_bytes)
    }
}

/// Scores trader `id` and runs the churn_risk rule on the score.
fn score_one(
    scorer: &mut OnlineScorer,
    rules: &mut TraderRules,
    pending: &mut Vec<Alert>,
    id: u32,
    now: i64,
    ctx: &Ctx,
) {
    let Some(s) = ctx.traders.get(id) else {
        return;
    };
    let Some(p) = scorer.score(id, s, ctx.traders, now) else {
        return;
    };
    let model = scorer.model.clone();
    let scorer = &*scorer;
    let reasons = || scorer.reasons(s, ctx.traders, now, REASONS);
    rules.on_score(id, p, &model, reasons, now, ctx, pending);
}

fn ctx(ingest: &Ingest) -> Ctx<'_> {
    Ctx {
        traders: &ingest.traders,
        names: &ingest.decoder.traders,
        symbols: &ingest.decoder.symbols,
    }
}
