//! The hidden state of a simulated trader: what drives its behaviour, never
//! written out except through `--truth`.

use rand::Rng;
use rand::rngs::StdRng;

use super::catalog::{CHANNELS, COUNTRIES, PLATFORMS, pick};
use crate::event::time::{DAY_MS, HOUR_MS, MINUTE_MS};

/// True segment of a simulated trader (what the observed segment estimates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum TrueSegment {
    LowVolume,
    Moderate,
    Vip,
}

impl TrueSegment {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Median deposit ticket, log-normal spread of tickets.
    pub fn ticket(self) -> (f64, f64) {
        match self {
            TrueSegment::LowVolume => (120.0, 0.7),
            TrueSegment::Moderate => (900.0, 0.7),
            TrueSegment::Vip => (9_000.0, 0.9),
        }
    }

    /// P(active on a given day) at full engagement.
    pub fn activity(self) -> f64 {
        match self {
            TrueSegment::LowVolume => 0.22,
            TrueSegment::Moderate => 0.45,
            TrueSegment::Vip => 0.80,
        }
    }

    /// Mean trades on an active day.
    pub fn trades_per_day(self) -> f64 {
        match self {
            TrueSegment::LowVolume => 1.2,
            TrueSegment::Moderate => 3.0,
            TrueSegment::Vip => 9.0,
        }
    }

    /// Base daily churn hazard.
    pub fn hazard(self) -> f64 {
        match self {
            TrueSegment::LowVolume => 0.012,
            TrueSegment::Moderate => 0.006,
            TrueSegment::Vip => 0.003,
        }
    }
}

/// Anti-money-laundering pattern a few traders follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmlPattern {
    None,
    /// Deposit, then withdraw (almost) all of it within hours, no trade between.
    Flip,
    /// Several deposits just under the reporting threshold in one day.
    Structuring,
}

/// Hidden state of one trader.
#[derive(Clone, Debug)]
pub struct Trader {
    pub signup_ts: i64,
    pub signup_day: u32,
    pub channel: usize,
    pub country: usize,
    pub platform: usize,
    pub segment: TrueSegment,
    pub will_deposit: bool,
    /// Day of the first deposit attempt (relative to the period start).
    pub ftd_day: u32,
    /// Engagement in (0, 1]: scales daily activity, decays over time.
    pub engagement: f64,
    /// Daily multiplicative decay of engagement.
    pub decay: f64,
    pub deposits: u32,
    pub balance: f64,
    pub loss_streak: u32,
    /// Recent failed or abandoned deposits (decays daily).
    pub recent_failures: f64,
    pub devices: u32,
    pub aml: AmlPattern,
    pub aml_done: bool,
    /// Currently churned (no trades, no deposits).
    pub churned: bool,
    /// First churn, for the ground truth.
    pub churned_at: Option<i64>,
    /// First reactivation after a churn, for the ground truth.
    pub reactivated_at: Option<i64>,
    pub last_activity_day: u32,
    /// Non-depositors who will try once and give up (abandoned deposit).
    pub abandons: bool,
}

impl Trader {
    /// A new trader signing up on a day of the period.
    pub fn new(rng: &mut StdRng, start_ms: i64, days: u32) -> Self {
        // Signups grow over the period (marketing ramps up), bounded to it.
        let signup_day = ((rng.random::<f64>().powf(0.85)) * f64::from(days)) as u32;
        let signup_day = signup_day.min(days.saturating_sub(1));
        let signup_ts = start_ms + i64::from(signup_day) * DAY_MS + daytime_offset(rng);
        let channel = pick(CHANNELS, |c| c.1, rng.random());
        let country = pick(COUNTRIES, |c| c.1, rng.random());
        let platform = pick(PLATFORMS, |p| p.1, rng.random());
        let u: f64 = rng.random();
        let segment = if u < 0.06 {
            TrueSegment::Vip
        } else if u < 0.30 {
            TrueSegment::Moderate
        } else {
            TrueSegment::LowVolume
        };
        let will_deposit = rng.random::<f64>()
            < CHANNELS[channel].2
                + if segment == TrueSegment::Vip {
                    0.3
                } else {
                    0.0
                };
        // Most first deposits come on the signup day or within a week; a tail waits weeks.
        let delay = if rng.random::<f64>() < 0.45 {
            0
        } else {
            (rng.random::<f64>().powi(3) * 30.0) as u32 + 1
        };
        let aml_u: f64 = rng.random();
        let aml = if !will_deposit {
            AmlPattern::None
        } else if aml_u < 0.004 {
            AmlPattern::Flip
        } else if aml_u < 0.007 {
            AmlPattern::Structuring
        } else {
            AmlPattern::None
        };
        Self {
            signup_ts,
            signup_day,
            channel,
            country,
            platform,
            segment,
            will_deposit,
            ftd_day: signup_day + delay,
            engagement: 0.75 + 0.25 * rng.random::<f64>(),
            decay: 1.0 - 0.012 * rng.random::<f64>().powi(2),
            deposits: 0,
            balance: 0.0,
            loss_streak: 0,
            recent_failures: 0.0,
            devices: 1 + u32::from(rng.random::<f64>() < 0.3),
            aml,
            aml_done: false,
            churned: false,
            churned_at: None,
            reactivated_at: None,
            last_activity_day: signup_day,
            abandons: !will_deposit && rng.random::<f64>() < 0.35,
        }
    }
}

/// A time of day, weighted towards the waking hours of Brazil (UTC-3).
pub fn daytime_offset(rng: &mut StdRng) -> i64 {
    let hour = if rng.random::<f64>() < 0.9 {
        11 + (rng.random::<f64>() * 14.0) as i64 // 08:00-22:00 local
    } else {
        (rng.random::<f64>() * 24.0) as i64
    };
    (hour % 24) * HOUR_MS
        + (rng.random::<f64>() * 60.0) as i64 * MINUTE_MS
        + rng.random_range(0..60_000)
}
