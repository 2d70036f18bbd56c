//! The per-trader alert rules: security and AML on each event; inactivity,
//! activation, deposit recovery and VIP drop on the event-time tick;
//! churn risk on each score. Each fires once per situation.

use std::collections::BTreeMap;

use super::config::AlertRules;
use super::contract::{Alert, AlertKind, AlertReason, Severity};
use super::state::{AlertState, FAILED_RING, remember};
use super::text::{ModelTexts, StageNames, Text, churn_stage};
use crate::event::time::DAY_MS;
use crate::event::{
    Body, DepositStatus, Event, Interner, ShardedNames, TraderId, WithdrawalStatus, shard_of,
};
use crate::features::{NEVER, PerTrader, Segment, TAU_DAYS, TraderState, Traders};
use crate::model::{Band, Model, Reason};

/// What the rules read besides their own state.
pub struct Ctx<'a> {
    pub traders: &'a Traders,
    /// Trader id names.
    pub names: &'a ShardedNames,
    /// Small-set strings (channels).
    pub symbols: &'a Interner,
}

impl Ctx<'_> {
    /// An alert about trader `id`, with its segment and channel.
    fn alert(
        &self,
        kind: AlertKind,
        id: TraderId,
        stage: Text,
        severity: Severity,
        event_ms: i64,
        window_ms: i64,
    ) -> Alert {
        let mut a = Alert::trader(
            kind,
            self.names.name(id),
            stage,
            severity,
            event_ms,
            window_ms,
        );
        if let Some(s) = self.traders.get(id) {
            a.segment = Some(self.traders.segment(s).as_str());
            if s.channel != u32::MAX {
                a.channel = Some(self.symbols.name(s.channel).to_string());
            }
        }
        a.playbook = Some(playbook(kind, &a.stage));
        a
    }
}

/// How often a VIP's trade rate is compared with its baseline.
const VIP_CHECK_MS: i64 = 6 * crate::event::time::HOUR_MS;

/// The suggested next step for the team that receives the alert.
pub(super) fn playbook(kind: AlertKind, stage: &str) -> &'static str {
    match kind {
        AlertKind::ChurnRisk => "retention contact within 48h with an offer for the segment",
        AlertKind::Inactivity if stage.ends_with("D+1") || stage.ends_with("D+3") => {
            "reminder push or e-mail with market news"
        }
        AlertKind::Inactivity if stage.ends_with("D+30") => "winback campaign with a bonus",
        AlertKind::Inactivity => "personal outreach with trade ideas",
        AlertKind::Activation => "onboarding contact: how to make a first deposit",
        AlertKind::DepositRecovery => "help with the payment; suggest another method",
        AlertKind::VipDrop => "account manager calls the trader",
        AlertKind::KpiDrop => "check the channel, campaign and payment providers behind the KPI",
        AlertKind::Security => "verify with the trader; reset the password if not confirmed",
        AlertKind::Aml => "compliance review before releasing withdrawals",
    }
}

/// One trader's turn at a tick: what every time-based rule reads.
#[derive(Clone, Copy)]
struct Visit<'a> {
    cfg: &'a AlertRules,
    names: &'a StageNames,
    id: TraderId,
    s: &'a TraderState,
    now: i64,
    ctx: &'a Ctx<'a>,
}

/// `a / b` rounded up.
fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

/// The time-based checks of one shard: derived from the dues in the
/// per-trader state, so they are rebuilt rather than saved.
#[derive(Debug, Default)]
struct Wheel {
    /// Traders with an event since the last tick.
    touched: Vec<TraderId>,
    /// Scheduled checks by tick (a timer wheel): (due, trader) in the
    /// bucket of the first tick at or after `due`; entries whose due no
    /// longer matches the trader's `next_due` are stale and skipped. Each
    /// tick visits only the traders due, not everyone.
    schedule: BTreeMap<i64, Vec<(i64, TraderId)>>,
    scheduled: usize,
}

/// The rules with their per-trader state.
pub struct TraderRules {
    pub rules: AlertRules,
    /// Stage names of `rules` (set once, with them).
    names: StageNames,
    model_texts: Option<ModelTexts>,
    /// Per-trader memory of the rules (part of the checkpoint).
    pub states: PerTrader<AlertState>,
    wheels: Vec<Wheel>,
}

impl TraderRules {
    pub fn new(rules: AlertRules) -> Self {
        Self {
            names: StageNames::new(&rules),
            model_texts: None,
            rules,
            states: PerTrader::default(),
            wheels: Vec::new(),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.states.heap_bytes()
            + self
                .wheels
                .iter()
                .map(|w| w.touched.capacity() * 4 + w.scheduled * 16)
                .sum::<usize>()
    }

    fn wheel(&mut self, shard: u32) -> &mut Wheel {
        let s = shard as usize;
        if s >= self.wheels.len() {
            self.wheels.resize_with(s + 1, Wheel::default);
        }
        &mut self.wheels[s]
    }

    /// Reads the rule state of `ids` ahead of their use (see
    /// [`crate::features::Traders::warm`]).
    pub fn warm(&self, ids: &[TraderId]) -> u64 {
        ids.iter()
            .filter_map(|&id| self.states.get(id))
            .fold(0, |x, st| {
                x ^ (st.next_due ^ st.idle_spell ^ st.failed_since) as u64
            })
    }

    /// Replaces one shard's per-trader state (a restored checkpoint) and
    /// rebuilds its checks from the dues.
    pub fn set_shard(&mut self, shard: u32, states: Vec<AlertState>) {
        self.states.set_shard(shard, states);
        self.rebuild(shard);
    }

    /// Forgets trader `id` (an erasure): its rule memory is the default
    /// (nothing due) and no pending check of it runs.
    pub fn forget(&mut self, id: TraderId) {
        self.states.reset(id);
        self.wheel(shard_of(id)).touched.retain(|&t| t != id);
    }

    /// Drops one shard's state (its partition left this instance).
    pub fn clear_shard(&mut self, shard: u32) {
        self.states.clear_shard(shard);
        *self.wheel(shard) = Wheel::default();
    }

    /// Rebuilds a shard's wheel from the dues of its traders.
    fn rebuild(&mut self, shard: u32) {
        let tick = self.rules.tick_ms;
        let mut w = Wheel::default();
        for (id, st) in self.states.iter_shard(shard) {
            match st.next_due {
                i64::MAX => {}
                i64::MIN => w.touched.push(id),
                due => {
                    w.schedule
                        .entry(ceil_div(due, tick))
                        .or_default()
                        .push((due, id));
                    w.scheduled += 1;
                }
            }
        }
        *self.wheel(shard) = w;
    }

    /// Rules that fire on an event (security, AML, recovery bookkeeping).
    pub fn on_event(&mut self, e: &Event, ctx: &Ctx, out: &mut Vec<Alert>) {
        let st = self.states.get_mut(e.trader);
        // Anything may have changed: the time-based rules look again.
        let touched = st.next_due != i64::MIN;
        st.next_due = i64::MIN;
        if touched {
            self.wheel(shard_of(e.trader)).touched.push(e.trader);
        }
        let cfg = &self.rules;
        let (sec, aml) = (&cfg.section.security, &cfg.section.aml);
        let st = self.states.get_mut(e.trader);
        match &e.body {
            Body::Login(l) if sec.enabled => {
                if !l.success {
                    let r = st.rare_mut();
                    r.failed_ring[r.failed_next as usize % FAILED_RING] = e.ts;
                    r.failed_next = r.failed_next.wrapping_add(1);
                    let lo = e.ts - cfg.burst_window_ms;
                    let n = r
                        .failed_ring
                        .iter()
                        .filter(|&&t| t != NEVER && t > lo && t <= e.ts)
                        .count() as u32;
                    if n >= sec.burst_failures && r.last_burst_alert <= lo {
                        r.last_burst_alert = e.ts;
                        let mut a = ctx.alert(
                            AlertKind::Security,
                            e.trader,
                            "security:failed_login_burst".into(),
                            Severity::Warning,
                            e.ts,
                            e.ts.div_euclid(cfg.burst_window_ms),
                        );
                        a.reasons
                            .push(AlertReason::new("failed_logins", n, sec.burst_failures));
                        a.reasons.push(AlertReason::new(
                            "country",
                            ctx.symbols.name(l.country),
                            serde_json::Value::Null,
                        ));
                        out.push(a);
                    }
                    return;
                }
                let first = st.logins_seen == 0;
                let seen = st.logins_seen;
                st.logins_seen = st.logins_seen.saturating_add(1);
                let new_country = remember(&mut st.countries, u32::MAX, l.country, seen);
                let new_device = remember(&mut st.devices, 0, l.device, seen);
                if first {
                    return;
                }
                let (stage, severity, feature, value) = if new_country && sec.new_country {
                    (
                        "security:new_country",
                        Severity::Warning,
                        "country",
                        ctx.symbols.name(l.country).to_string(),
                    )
                } else if new_device && sec.new_device {
                    (
                        "security:new_device",
                        Severity::Info,
                        "platform",
                        l.platform.as_str().to_string(),
                    )
                } else {
                    return;
                };
                let mut a = ctx.alert(
                    AlertKind::Security,
                    e.trader,
                    stage.into(),
                    severity,
                    e.ts,
                    e.ts,
                );
                a.reasons
                    .push(AlertReason::new(feature, value, serde_json::Value::Null));
                out.push(a);
            }
            Body::Deposit(d) => {
                match d.status {
                    DepositStatus::Approved => {
                        st.failed_since = NEVER;
                        st.recovery_fired = 0;
                        st.last_deposit_ts = e.ts;
                        st.last_deposit_amount = d.amount;
                        st.traded_since_deposit = false;
                    }
                    DepositStatus::Failed | DepositStatus::Pending => {
                        if st.failed_since == NEVER {
                            st.failed_since = e.ts;
                            st.recovery_fired = 0;
                        }
                        return;
                    }
                }
                let near = aml.threshold * aml.near_share;
                let amount = d.amount.as_f64();
                if !aml.enabled || amount < near || amount >= aml.threshold {
                    return;
                }
                let day = e.ts.div_euclid(DAY_MS);
                let r = st.rare_mut();
                if r.near_day != day {
                    r.near_day = day;
                    r.near_count = 0;
                }
                r.near_count += 1;
                if r.near_count == aml.structuring_count {
                    let mut a = ctx.alert(
                        AlertKind::Aml,
                        e.trader,
                        "aml:structuring".into(),
                        Severity::Critical,
                        e.ts,
                        day,
                    );
                    a.reasons.push(AlertReason::new(
                        "deposits_just_under_threshold_today",
                        r.near_count,
                        aml.structuring_count,
                    ));
                    a.reasons
                        .push(AlertReason::new("threshold", aml.threshold, near));
                    out.push(a);
                }
            }
            Body::Withdrawal(w) if aml.enabled && w.status == WithdrawalStatus::Requested => {
                let recent = st.last_deposit_ts != NEVER
                    && e.ts >= st.last_deposit_ts
                    && e.ts - st.last_deposit_ts <= cfg.flip_within_ms;
                if recent
                    && !st.traded_since_deposit
                    && w.amount.as_f64() >= aml.flip_share * st.last_deposit_amount.as_f64()
                {
                    let deposit_ts = st.last_deposit_ts;
                    let deposit = st.last_deposit_amount.as_f64();
                    // One alert per deposit.
                    st.last_deposit_ts = NEVER;
                    let mut a = ctx.alert(
                        AlertKind::Aml,
                        e.trader,
                        "aml:flip".into(),
                        Severity::Critical,
                        e.ts,
                        deposit_ts,
                    );
                    a.reasons.push(AlertReason::new(
                        "withdrawal_amount",
                        w.amount.as_f64(),
                        deposit,
                    ));
                    a.reasons.push(AlertReason::new(
                        "hours_since_deposit",
                        ((e.ts - deposit_ts) as f64 / 3.6e6 * 100.0).round() / 100.0,
                        cfg.flip_within_ms as f64 / 3.6e6,
                    ));
                    a.reasons.push(AlertReason::new("trades_in_between", 0, 1));
                    out.push(a);
                }
            }
            Body::Trade(_) => st.traded_since_deposit = true,
            _ => {}
        }
    }

    /// Time-based rules for the traders of `shard` that are due, as of
    /// event time `now` (their state holds every event before `now`).
    pub fn on_tick(&mut self, shard: u32, now: i64, ctx: &Ctx, out: &mut Vec<Alert>) {
        let s = &self.rules.section;
        if !(s.activation.enabled
            || s.deposit_recovery.enabled
            || s.inactivity.enabled
            || s.vip_drop.enabled)
        {
            return;
        }
        let tick = self.rules.tick_ms;
        let traders_in_shard = self.states.shard(shard).len();
        // Stale entries pile up for traders who keep coming back; rebuild
        // from the dues when they outnumber the traders, so memory stays
        // bounded by the number of traders.
        if self.wheel(shard).scheduled > 4 * traders_in_shard + 1024 {
            self.rebuild(shard);
            // Touched traders were queued again by the rebuild.
        }
        let w = self.wheel(shard);
        let mut due_now = std::mem::take(&mut w.touched);
        let mut later = Vec::new();
        while let Some(entry) = w.schedule.first_entry() {
            if entry.key().saturating_mul(tick) > now {
                break;
            }
            let bucket = entry.remove();
            w.scheduled -= bucket.len();
            later.extend(bucket);
        }
        // Each trader's due first, then the decisions: the loads do not
        // wait on a branch, so their cache misses overlap.
        let current: Vec<i64> = later
            .iter()
            .map(|&(_, id)| self.states.get(id).map_or(i64::MAX, |st| st.next_due))
            .collect();
        for ((due, id), current) in later.into_iter().zip(current) {
            if due <= now && current == due {
                due_now.push(id);
            } else if due > now {
                // Not yet (a tick off the grid): keep it.
                let w = self.wheel(shard);
                w.schedule
                    .entry(ceil_div(due, tick) + 1)
                    .or_default()
                    .push((due, id));
                w.scheduled += 1;
            }
        }
        let cfg = &self.rules;
        let mut scheduled = Vec::with_capacity(due_now.len());
        for (i, &id) in due_now.iter().enumerate() {
            if i % WARM == 0 {
                // The next traders' misses overlap instead of coming one
                // visit at a time (see `Traders::warm`).
                let ids = &due_now[i..due_now.len().min(i + WARM)];
                std::hint::black_box(ctx.traders.warm(ids) ^ self.warm(ids));
            }
            let Some(s) = ctx.traders.get(id) else {
                continue;
            };
            let st = self.states.get_mut(id);
            let visit = Visit {
                cfg,
                names: &self.names,
                id,
                s,
                now,
                ctx,
            };
            // Each rule says when it could fire next without a new event.
            let mut due = i64::MAX;
            if cfg.section.activation.enabled {
                due = due.min(activation(&visit, st, out));
            }
            if cfg.section.deposit_recovery.enabled {
                due = due.min(recovery(&visit, st, out));
            }
            if cfg.section.inactivity.enabled {
                due = due.min(inactivity(&visit, st, out));
            }
            if cfg.section.vip_drop.enabled && ctx.traders.segment(s) == Segment::Vip {
                vip_drop(&visit, st, out);
                // Rates move over days: look again in a few hours.
                due = due.min(now + VIP_CHECK_MS);
            }
            st.next_due = due;
            if due != i64::MAX {
                scheduled.push((due, id));
            }
        }
        let w = self.wheel(shard);
        for (due, id) in scheduled {
            w.schedule
                .entry(ceil_div(due, tick))
                .or_default()
                .push((due, id));
            w.scheduled += 1;
        }
        // The touched list is given back emptied: grown anew from nothing
        // every tick, its pushes (one per event) reallocated all the way.
        due_now.clear();
        if w.touched.is_empty() {
            w.touched = due_now;
        }
    }

    /// `churn_risk` for a trader just scored at `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_score<'m>(
        &mut self,
        id: TraderId,
        score: f64,
        model: &Model,
        reasons: impl FnOnce() -> Vec<Reason<'m>>,
        now: i64,
        ctx: &Ctx,
        out: &mut Vec<Alert>,
    ) {
        let cfg = &self.rules;
        if !cfg.section.churn_risk.enabled {
            return;
        }
        let st = self.states.get_mut(id);
        let high = model.bands.high;
        if score < high - cfg.section.churn_risk.hysteresis {
            st.risk_armed = true;
            return;
        }
        let band = model.bands.band(score);
        let last = st.rare().last_risk_alert;
        let cooled = last == NEVER || now - last >= cfg.churn_cooldown_ms;
        if band < Band::High || !st.risk_armed || !cooled {
            return;
        }
        st.risk_armed = false;
        st.rare_mut().last_risk_alert = now;
        let severity = if band == Band::Critical {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let mut a = ctx.alert(
            AlertKind::ChurnRisk,
            id,
            churn_stage(band).into(),
            severity,
            now,
            now.div_euclid(DAY_MS),
        );
        a.score = Some(crate::model::round6(score));
        a.band = Some(band.as_str());
        let texts = ModelTexts::of(&mut self.model_texts, model);
        a.model_version = Some(texts.version.clone());
        a.reasons = reasons()
            .into_iter()
            .map(|r| AlertReason {
                feature: texts.feature(&r),
                value: r.value.into(),
                baseline: Some(r.baseline.into()),
                contribution: Some(r.contribution),
            })
            .collect();
        out.push(a);
    }
}

/// Traders due warmed at a time: few enough that their state stays in
/// cache until visited.
const WARM: usize = 32;

/// Activation steps: (stage, offset after signup); D+0's offset is configured.
fn activation_steps(d0: i64) -> [(&'static str, i64); 4] {
    [
        ("activation:D+0", d0),
        ("activation:D+1..3", DAY_MS),
        ("activation:D+5..7", 5 * DAY_MS),
        ("activation:D+10", 10 * DAY_MS),
    ]
}

/// Steps due at `start + offset` that fire once each (bit i of `fired`):
/// calls `fire(i, due)` for every step now due and returns when the next
/// one will be (`i64::MAX`: none left).
fn steps(
    start: i64,
    offsets: impl Iterator<Item = i64>,
    fired: &mut u8,
    now: i64,
    mut fire: impl FnMut(usize, i64),
) -> i64 {
    let mut next = i64::MAX;
    for (i, offset) in offsets.enumerate() {
        let bit = 1u8 << i;
        if *fired & bit != 0 {
            continue;
        }
        let due = start + offset;
        if now < due {
            next = next.min(due);
            continue;
        }
        *fired |= bit;
        fire(i, due);
    }
    next
}

fn activation(v: &Visit, st: &mut AlertState, out: &mut Vec<Alert>) -> i64 {
    let Visit {
        cfg,
        id,
        s,
        now,
        ctx,
        ..
    } = *v;
    if s.signup_ts == NEVER || s.deposit_count > 0 {
        return i64::MAX;
    }
    let plan = activation_steps(cfg.activation_d0_ms);
    steps(
        s.signup_ts,
        plan.iter().map(|p| p.1),
        &mut st.activation_fired,
        now,
        |i, due| {
            let (stage, offset) = plan[i];
            let severity = if i == 3 {
                Severity::Warning
            } else {
                Severity::Info
            };
            let mut a = ctx.alert(
                AlertKind::Activation,
                id,
                stage.into(),
                severity,
                due,
                s.signup_ts,
            );
            a.reasons.push(AlertReason::new(
                "hours_since_signup",
                ((now - s.signup_ts) as f64 / 3.6e6).round(),
                offset as f64 / 3.6e6,
            ));
            a.reasons.push(AlertReason::new("approved_deposits", 0, 1));
            out.push(a);
        },
    )
}

fn recovery(v: &Visit, st: &mut AlertState, out: &mut Vec<Alert>) -> i64 {
    let Visit {
        cfg,
        names,
        id,
        now,
        ctx,
        ..
    } = *v;
    if st.failed_since == NEVER {
        return i64::MAX;
    }
    let days = &cfg.section.deposit_recovery.steps_days;
    let since = st.failed_since;
    let next = steps(
        since,
        days.iter().map(|&d| i64::from(d) * DAY_MS),
        &mut st.recovery_fired,
        now,
        |i, due| {
            let severity = if i == 0 {
                Severity::Info
            } else {
                Severity::Warning
            };
            let stage = names.recovery[i].clone();
            let mut a = ctx.alert(AlertKind::DepositRecovery, id, stage, severity, due, since);
            a.reasons.push(AlertReason::new(
                "days_since_failed_deposit",
                days[i],
                serde_json::Value::Null,
            ));
            out.push(a);
        },
    );
    if next == i64::MAX {
        // Every step sent: a later failure starts a new recovery.
        st.failed_since = NEVER;
    }
    next
}

fn inactivity(v: &Visit, st: &mut AlertState, out: &mut Vec<Alert>) -> i64 {
    let Visit {
        cfg,
        id,
        s,
        now,
        ctx,
        ..
    } = *v;
    let last = s.last_activity_ts();
    if last == NEVER {
        return i64::MAX;
    }
    if st.idle_spell != last {
        st.idle_spell = last;
        st.idle_fired = 0;
    }
    let (mean, sd) = s.behaviour.usual_gap();
    let rule = &cfg.section.inactivity;
    let usual = mean + rule.spread_factor * sd;
    let tiers = &rule.tiers_days;
    let vip = ctx.traders.segment(s) == Segment::Vip;
    steps(
        last,
        tiers
            .iter()
            .map(|&k| ((usual + f64::from(k)) * DAY_MS as f64).ceil() as i64),
        &mut st.idle_fired,
        now,
        |i, due| {
            let tier = tiers[i];
            let mut severity = match tier {
                0..=3 => Severity::Info,
                4..=14 => Severity::Warning,
                _ => Severity::Critical,
            };
            if vip && severity == Severity::Info {
                severity = Severity::Warning;
            }
            let stage = v.names.inactivity[i].clone();
            let mut a = ctx.alert(AlertKind::Inactivity, id, stage, severity, due, last);
            let idle_days = (now - last) as f64 / DAY_MS as f64;
            a.reasons.push(AlertReason::new(
                "days_since_activity",
                (idle_days * 100.0).round() / 100.0,
                (usual * 100.0).round() / 100.0,
            ));
            out.push(a);
        },
    )
}

fn vip_drop(v: &Visit, st: &mut AlertState, out: &mut Vec<Alert>) {
    let Visit {
        cfg,
        id,
        s,
        now,
        ctx,
        ..
    } = *v;
    let rule = &cfg.section.vip_drop;
    let (a7, _, a90) = s.behaviour.sums_at(now);
    let recent = a7[0] / TAU_DAYS[0];
    let baseline = a90[0] / TAU_DAYS[2];
    if baseline * 7.0 < rule.min_trades_per_week {
        return;
    }
    if recent >= rule.rearm_share * baseline {
        st.vip_armed = true;
        return;
    }
    let last = st.rare().last_vip_alert;
    let cooled = last == NEVER || now - last >= cfg.vip_cooldown_ms;
    if recent >= rule.share * baseline || !st.vip_armed || !cooled {
        return;
    }
    st.vip_armed = false;
    st.rare_mut().last_vip_alert = now;
    let mut a = ctx.alert(
        AlertKind::VipDrop,
        id,
        "vip_drop:trade_frequency".into(),
        Severity::Critical,
        now,
        now.div_euclid(DAY_MS),
    );
    a.reasons.push(AlertReason::new(
        "trades_per_week_7d",
        (recent * 7.0 * 100.0).round() / 100.0,
        (baseline * 7.0 * 100.0).round() / 100.0,
    ));
    out.push(a);
}
