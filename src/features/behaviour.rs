//! Behavioural features of one trader, updated per event in constant time
//! and constant memory: exponentially decayed sums instead of event
//! history, running gap statistics, streaks and a small instrument bitmap.
//!
//! A decayed sum with time constant τ days approximates the count (or
//! amount) over the last τ days at a steady rate, and it is exact under
//! disorder: an event older than the sums' reference time is added with
//! its own decay factor, so the order of events does not change the sums.

use crate::event::time::DAY_MS;
use crate::event::{Body, CampaignAction, DepositStatus, Event, TradeStatus, WithdrawalStatus};

use super::state::NEVER;

/// Sums decayed with τ = 7 days.
pub mod s7 {
    pub const TRADES: usize = 0;
    pub const DEPOSITS: usize = 1;
    pub const LOGINS: usize = 2;
    pub const N: usize = 3;
}

/// Sums decayed with τ = 30 days.
pub mod s30 {
    pub const TRADES: usize = 0;
    pub const STAKE: usize = 1;
    pub const DEPOSITS: usize = 2;
    pub const DEPOSIT_AMOUNT: usize = 3;
    pub const LOGINS: usize = 4;
    pub const DEPOSIT_ATTEMPTS: usize = 5;
    pub const DEPOSIT_FAILED: usize = 6;
    pub const PNL: usize = 7;
    pub const N: usize = 8;
}

/// Sums decayed with τ = 90 days.
pub mod s90 {
    pub const TRADES: usize = 0;
    pub const DEPOSITS: usize = 1;
    pub const DEPOSIT_AMOUNT: usize = 2;
    pub const CAMPAIGN_SENT: usize = 3;
    pub const CAMPAIGN_ENGAGED: usize = 4;
    pub const CAMPAIGN_CONVERTED: usize = 5;
    pub const N: usize = 6;
}

/// Time constants of the three sum groups, in days.
pub const TAU_DAYS: [f64; 3] = [7.0, 30.0, 90.0];

/// Behavioural state of one trader.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Behaviour {
    /// Time the sums are expressed at (the latest event applied so far).
    #[serde(with = "crate::features::time_codec")]
    pub decay_ts: i64,
    pub s7: [f64; s7::N],
    pub s30: [f64; s30::N],
    pub s90: [f64; s90::N],
    /// Earliest event of any kind: tenure when the signup was not seen.
    #[serde(with = "crate::features::time_codec")]
    pub first_seen_ts: i64,
    /// Approved withdrawals, lifetime.
    pub withdrawn: f64,
    /// Realised P&L, lifetime.
    pub pnl_total: f64,
    /// Gaps in days between active days: count, mean, sum of squared
    /// deviations (Welford), so mean and spread need no history.
    pub gap_n: u32,
    pub gap_mean: f64,
    pub gap_m2: f64,
    /// Consecutive losing closed trades, up to the latest one.
    pub loss_streak: u32,
    /// Instruments traded, as bits of a 64-bit map (stable hash of the name).
    pub instruments: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            decay_ts: NEVER,
            s7: [0.0; s7::N],
            s30: [0.0; s30::N],
            s90: [0.0; s90::N],
            first_seen_ts: NEVER,
            withdrawn: 0.0,
            pnl_total: 0.0,
            gap_n: 0,
            gap_mean: 0.0,
            gap_m2: 0.0,
            loss_streak: 0,
            instruments: 0,
        }
    }
}

/// Which group a sum belongs to.
#[derive(Clone, Copy)]
enum Group {
    D7(usize),
    D30(usize),
    D90(usize),
}

fn factor(dt_ms: i64, tau_days: f64) -> f64 {
    (-(dt_ms as f64) / (tau_days * DAY_MS as f64)).exp()
}

impl Behaviour {
    /// Applies one event (any order of events gives the same sums).
    /// `last_activity` is the trader's latest trade or approved deposit
    /// before this event (`NEVER`: none), which the gap statistics count
    /// from.
    #[inline]
    pub fn apply(&mut self, e: &Event, last_activity: i64) {
        let t = e.ts;
        if self.first_seen_ts == NEVER || t < self.first_seen_ts {
            self.first_seen_ts = t;
        }
        if self.decay_ts == NEVER {
            self.decay_ts = t;
        } else if t > self.decay_ts {
            self.decay_to(t);
        }
        match &e.body {
            Body::Signup(_) => {}
            Body::Login(l) => {
                if l.success {
                    self.add(t, &[Group::D7(s7::LOGINS), Group::D30(s30::LOGINS)], 1.0);
                }
            }
            Body::Deposit(d) => {
                self.add(t, &[Group::D30(s30::DEPOSIT_ATTEMPTS)], 1.0);
                match d.status {
                    DepositStatus::Approved => {
                        let count = [
                            Group::D7(s7::DEPOSITS),
                            Group::D30(s30::DEPOSITS),
                            Group::D90(s90::DEPOSITS),
                        ];
                        self.add(t, &count, 1.0);
                        let amount = [
                            Group::D30(s30::DEPOSIT_AMOUNT),
                            Group::D90(s90::DEPOSIT_AMOUNT),
                        ];
                        self.add(t, &amount, d.amount.as_f64());
                        self.active_on(t, last_activity);
                    }
                    DepositStatus::Failed => self.add(t, &[Group::D30(s30::DEPOSIT_FAILED)], 1.0),
                    DepositStatus::Pending => {}
                }
            }
            Body::Withdrawal(w) => {
                if w.status == WithdrawalStatus::Approved {
                    self.withdrawn += w.amount.as_f64();
                }
            }
            Body::Trade(tr) => {
                match tr.status {
                    TradeStatus::Opened => {
                        let count = [
                            Group::D7(s7::TRADES),
                            Group::D30(s30::TRADES),
                            Group::D90(s90::TRADES),
                        ];
                        self.add(t, &count, 1.0);
                        self.add(t, &[Group::D30(s30::STAKE)], tr.stake.as_f64());
                        self.instruments |= 1u64 << tr.instrument_bit;
                    }
                    TradeStatus::Closed => {
                        let pnl = tr.pnl.map_or(0.0, |p| p.as_f64());
                        self.pnl_total += pnl;
                        self.add(t, &[Group::D30(s30::PNL)], pnl);
                        self.loss_streak = if pnl < 0.0 { self.loss_streak + 1 } else { 0 };
                    }
                }
                self.active_on(t, last_activity);
            }
            Body::Campaign(c) => {
                let group = match c.action {
                    CampaignAction::Sent => s90::CAMPAIGN_SENT,
                    CampaignAction::Opened | CampaignAction::Clicked => s90::CAMPAIGN_ENGAGED,
                    CampaignAction::Converted => s90::CAMPAIGN_CONVERTED,
                    CampaignAction::Delivered => return,
                };
                self.add(t, &[Group::D90(group)], 1.0);
            }
        }
    }

    /// Moves every sum forward to `t` (> `decay_ts`).
    fn decay_to(&mut self, t: i64) {
        let dt = t - self.decay_ts;
        let f = TAU_DAYS.map(|tau| factor(dt, tau));
        self.s7.iter_mut().for_each(|v| *v *= f[0]);
        self.s30.iter_mut().for_each(|v| *v *= f[1]);
        self.s90.iter_mut().for_each(|v| *v *= f[2]);
        self.decay_ts = t;
    }

    /// Adds `v` at time `t` to each sum of `groups`; an event older than the
    /// reference time is added already decayed.
    fn add(&mut self, t: i64, groups: &[Group], v: f64) {
        let back = (self.decay_ts - t).max(0);
        for g in groups {
            let (slot, tau) = match *g {
                Group::D7(i) => (&mut self.s7[i], TAU_DAYS[0]),
                Group::D30(i) => (&mut self.s30[i], TAU_DAYS[1]),
                Group::D90(i) => (&mut self.s90[i], TAU_DAYS[2]),
            };
            *slot += if back == 0 { v } else { v * factor(back, tau) };
        }
    }

    /// A trade or approved deposit at `t`: updates the gap statistics once
    /// per new active day (an older day is ignored: gaps need order). The
    /// latest active day is the day of `last_activity`, kept by the
    /// trader's state, so it is not stored twice.
    fn active_on(&mut self, t: i64, last_activity: i64) {
        if last_activity == NEVER {
            return;
        }
        let (day, last_day) = (t.div_euclid(DAY_MS), last_activity.div_euclid(DAY_MS));
        if day <= last_day {
            return;
        }
        let gap = (day - last_day) as f64;
        self.gap_n += 1;
        let delta = gap - self.gap_mean;
        self.gap_mean += delta / f64::from(self.gap_n);
        self.gap_m2 += delta * (gap - self.gap_mean);
    }

    /// The 7-, 30- and 90-day sums as of `now`.
    pub fn sums_at(&self, now: i64) -> ([f64; s7::N], [f64; s30::N], [f64; s90::N]) {
        if self.decay_ts == NEVER {
            return ([0.0; s7::N], [0.0; s30::N], [0.0; s90::N]);
        }
        let dt = now - self.decay_ts;
        let f = TAU_DAYS.map(|tau| factor(dt, tau));
        (
            self.s7.map(|v| v * f[0]),
            self.s30.map(|v| v * f[1]),
            self.s90.map(|v| v * f[2]),
        )
    }

    /// The usual gap between active days and its spread, in days (1 day
    /// and 0 until there are two active days).
    pub fn usual_gap(&self) -> (f64, f64) {
        if self.gap_n == 0 {
            return (1.0, 0.0);
        }
        let var = if self.gap_n > 1 {
            self.gap_m2 / f64::from(self.gap_n - 1)
        } else {
            0.0
        };
        (self.gap_mean, var.max(0.0).sqrt())
    }
}
