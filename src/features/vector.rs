//! The feature vector of a trader at a point in event time: the one code
//! path that both `pulse train` (offline snapshots) and the live service
//! (online scoring) read, so a model sees the same numbers in both.

use super::behaviour::{s7, s30, s90};
use super::segment::{Segment, SegmentThresholds};
use super::state::{NEVER, TraderState};
use crate::event::Interner;
use crate::event::Sym;
use crate::event::time::DAY_MS;

/// "Days since" for something that never happened, and the cap of every
/// duration feature: a year and a bit, so one old trader cannot stretch
/// the scale of the others.
pub const MAX_DAYS: f64 = 400.0;

/// Names of the numeric features, in vector order (channel indicators
/// follow them, one per channel of the model's vocabulary).
pub const NUMERIC: &[&str] = &[
    "days_since_activity",
    "days_since_trade",
    "days_since_deposit",
    "days_since_login",
    "tenure_days",
    "trades_7d",
    "trades_30d",
    "trades_90d",
    "log_stake_30d",
    "deposits_7d",
    "deposits_30d",
    "deposits_90d",
    "log_deposit_amount_30d",
    "log_deposit_amount_90d",
    "logins_7d",
    "logins_30d",
    "trade_trend",
    "login_trend",
    "gap_mean_days",
    "gap_clumpiness",
    "gap_ratio",
    "failed_deposit_share_30d",
    "withdrawn_share",
    "pnl_30d",
    "balance",
    "loss_streak",
    "instruments",
    "campaigns_sent_90d",
    "campaign_response_90d",
    "campaign_conversions_90d",
    "log_deposit_count",
    "segment_low_volume",
    "segment_moderate",
    "segment_vip",
];

/// Index of `days_since_activity`: the recency baseline reads it.
pub const DAYS_SINCE_ACTIVITY: usize = 0;

/// The features of a model: the numeric ones plus one indicator per
/// acquisition channel of its vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpace {
    channels: Vec<String>,
    /// The channels as symbols of the live interner (`u32::MAX`: unseen).
    channel_syms: Vec<Sym>,
}

/// Sign-preserving log scale for money that can be negative.
fn slog(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

fn days(now: i64, then: i64) -> f64 {
    if then == NEVER {
        MAX_DAYS
    } else {
        ((now - then) as f64 / DAY_MS as f64).clamp(0.0, MAX_DAYS)
    }
}

/// Rate over the short horizon against the rate over the long one: 1 is
/// steady, below 1 falling. The small constant keeps quiet traders at 1
/// rather than dividing by zero.
fn trend(short: f64, short_days: f64, long: f64, long_days: f64) -> f64 {
    const EPS: f64 = 0.05;
    (short / short_days + EPS) / (long / long_days + EPS)
}

impl FeatureSpace {
    /// A space over `channels` (the acquisition channels the model knows).
    pub fn new(channels: Vec<String>) -> Self {
        let n = channels.len();
        Self {
            channels,
            channel_syms: vec![u32::MAX; n],
        }
    }

    /// Maps the channel names to the symbols of `symbols` (interning them,
    /// so a channel seen only later still matches).
    pub fn resolve(&mut self, symbols: &mut Interner) {
        self.channel_syms = self.channels.iter().map(|c| symbols.intern(c)).collect();
    }

    /// The acquisition channels of the vocabulary.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// Feature names, in vector order.
    pub fn names(&self) -> Vec<String> {
        NUMERIC
            .iter()
            .map(|n| n.to_string())
            .chain(self.channels.iter().map(|c| format!("channel_{c}")))
            .collect()
    }

    pub fn len(&self) -> usize {
        NUMERIC.len() + self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The features of `s` as of `now`, written into `out` (cleared first).
    pub fn vector(
        &self,
        s: &TraderState,
        thresholds: &SegmentThresholds,
        now: i64,
        out: &mut Vec<f64>,
    ) {
        let b = &s.behaviour;
        let (a7, a30, a90) = b.sums_at(now);
        let start = if s.signup_ts == NEVER {
            b.first_seen_ts
        } else {
            s.signup_ts.min(b.first_seen_ts)
        };
        let since_activity = days(now, s.last_activity_ts());
        let (gap_mean, gap_sd) = b.usual_gap();
        let attempts = a30[s30::DEPOSIT_ATTEMPTS];
        let sent = a90[s90::CAMPAIGN_SENT];
        let segment = thresholds.classify(s.deposit_count, s.deposit_sum);
        out.clear();
        out.extend_from_slice(&[
            since_activity,
            days(now, s.last_trade_ts),
            days(now, s.last_deposit_ts),
            days(now, s.last_login_ts),
            days(now, start),
            a7[s7::TRADES],
            a30[s30::TRADES],
            a90[s90::TRADES],
            a30[s30::STAKE].max(0.0).ln_1p(),
            a7[s7::DEPOSITS],
            a30[s30::DEPOSITS],
            a90[s90::DEPOSITS],
            a30[s30::DEPOSIT_AMOUNT].max(0.0).ln_1p(),
            a90[s90::DEPOSIT_AMOUNT].max(0.0).ln_1p(),
            a7[s7::LOGINS],
            a30[s30::LOGINS],
            trend(a7[s7::TRADES], 7.0, a30[s30::TRADES], 30.0),
            trend(a7[s7::LOGINS], 7.0, a30[s30::LOGINS], 30.0),
            gap_mean.min(MAX_DAYS),
            if gap_mean > 0.0 {
                gap_sd / gap_mean
            } else {
                0.0
            },
            (since_activity / gap_mean.max(1.0)).min(MAX_DAYS),
            if attempts > 0.0 {
                a30[s30::DEPOSIT_FAILED] / attempts
            } else {
                0.0
            },
            if s.deposit_sum > 0.0 {
                (b.withdrawn / s.deposit_sum).min(5.0)
            } else {
                0.0
            },
            slog(a30[s30::PNL]),
            slog(s.deposit_sum - b.withdrawn + b.pnl_total),
            f64::from(b.loss_streak.min(50)),
            f64::from(b.instruments.count_ones()),
            sent,
            if sent > 0.0 {
                (a90[s90::CAMPAIGN_ENGAGED] / sent).min(2.0)
            } else {
                0.0
            },
            a90[s90::CAMPAIGN_CONVERTED],
            f64::from(s.deposit_count).ln_1p(),
            f64::from(u8::from(segment == Segment::LowVolume)),
            f64::from(u8::from(segment == Segment::Moderate)),
            f64::from(u8::from(segment == Segment::Vip)),
        ]);
        out.extend(
            self.channel_syms
                .iter()
                .map(|&c| f64::from(u8::from(c != u32::MAX && c == s.channel))),
        );
    }
}
