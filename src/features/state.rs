//! The basic state of each trader: what the `traders` table and the alert
//! rules read.

use crate::event::{Body, DepositStatus, Event, Money, Sym, TradeStatus, TraderId};

use super::per_trader::PerTrader;

use super::behaviour::Behaviour;
use super::segment::{Segment, SegmentThresholds};

/// "Never" for optional times, so that the state stays plain integers.
pub const NEVER: i64 = i64::MIN;

/// Basic state of one trader.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TraderState {
    #[serde(with = "crate::features::time_codec")]
    pub signup_ts: i64,
    /// Acquisition channel (symbol), `u32::MAX` when the signup was not seen.
    pub channel: Sym,
    #[serde(with = "crate::features::time_codec")]
    pub first_deposit_ts: i64,
    #[serde(with = "crate::features::time_codec")]
    pub second_deposit_ts: i64,
    /// Approved deposits.
    pub deposit_count: u32,
    /// Sum of approved deposits, as a float (features and segments; per
    /// trader the order of events is fixed, so this is deterministic). The
    /// trained model reads it: summing it exactly instead moves a fresh
    /// training's weights by up to 3e-5, so it stays until a model change.
    pub deposit_sum: f64,
    /// Sum of approved deposits, exact (the `traders` table).
    pub deposit_total: Money,
    #[serde(with = "crate::features::time_codec")]
    pub last_trade_ts: i64,
    #[serde(with = "crate::features::time_codec")]
    pub last_deposit_ts: i64,
    #[serde(with = "crate::features::time_codec")]
    pub last_login_ts: i64,
    pub trade_count: u32,
    /// Decayed activity sums, gaps and streaks: what the model reads.
    pub behaviour: Behaviour,
}

impl Default for TraderState {
    fn default() -> Self {
        Self {
            signup_ts: NEVER,
            channel: u32::MAX,
            first_deposit_ts: NEVER,
            second_deposit_ts: NEVER,
            deposit_count: 0,
            deposit_sum: 0.0,
            deposit_total: Money(0),
            last_trade_ts: NEVER,
            last_deposit_ts: NEVER,
            last_login_ts: NEVER,
            trade_count: 0,
            behaviour: Behaviour::default(),
        }
    }
}

impl TraderState {
    /// A value read from fields across the whole record (times, sums, the
    /// behaviour's decayed sums and gaps), for [`Traders::warm`].
    fn touch(&self) -> u64 {
        let b = &self.behaviour;
        (self.signup_ts ^ self.last_trade_ts ^ self.last_login_ts ^ b.decay_ts) as u64
            ^ self.deposit_sum.to_bits()
            ^ b.s7.first().map_or(0, |x| x.to_bits())
            ^ b.s30.first().map_or(0, |x| x.to_bits())
            ^ b.s90.first().map_or(0, |x| x.to_bits())
            ^ b.s90.last().map_or(0, |x| x.to_bits())
            ^ b.gap_mean.to_bits()
            ^ b.instruments
    }

    /// Latest trade or approved deposit: what "active" means for churn.
    pub fn last_activity_ts(&self) -> i64 {
        self.last_trade_ts.max(self.last_deposit_ts)
    }

    /// Latest event time of any kind (`NEVER` before the first): the time
    /// the decayed sums are expressed at, which is the same.
    pub fn last_event_ts(&self) -> i64 {
        self.behaviour.decay_ts
    }
}

/// State of every trader, by [`TraderId`] (grouped by shard).
#[derive(Debug, Clone, Default)]
pub struct Traders {
    pub rows: PerTrader<TraderState>,
    pub thresholds: SegmentThresholds,
}

impl Traders {
    /// Reads the records of `ids` ahead of their use. These loads do not
    /// wait on each other, so the cache misses of traders scattered over
    /// the state overlap instead of coming one use at a time. The value is
    /// only there to keep the loads.
    pub fn warm(&self, ids: &[TraderId]) -> u64 {
        ids.iter()
            .filter_map(|&id| self.get(id))
            .fold(0, |x, s| x ^ s.touch())
    }

    /// Applies one event. Events may arrive out of order: times keep the
    /// earliest (signup, deposits) or latest (last_*) seen.
    #[inline]
    pub fn apply(&mut self, e: &Event) {
        let s = self.rows.get_mut(e.trader);
        let last_activity = s.last_activity_ts();
        s.behaviour.apply(e, last_activity);
        match &e.body {
            Body::Signup(x) => {
                if s.signup_ts == NEVER || e.ts < s.signup_ts {
                    s.signup_ts = e.ts;
                    s.channel = x.channel;
                }
            }
            Body::Login(_) => s.last_login_ts = s.last_login_ts.max(e.ts),
            Body::Deposit(d) if d.status == DepositStatus::Approved => {
                s.deposit_count += 1;
                s.deposit_sum += d.amount.as_f64();
                s.deposit_total = s.deposit_total.plus(d.amount);
                s.last_deposit_ts = s.last_deposit_ts.max(e.ts);
                if s.first_deposit_ts == NEVER || e.ts < s.first_deposit_ts {
                    s.second_deposit_ts = s.first_deposit_ts;
                    s.first_deposit_ts = e.ts;
                } else if s.second_deposit_ts == NEVER || e.ts < s.second_deposit_ts {
                    s.second_deposit_ts = e.ts;
                }
            }
            Body::Trade(t) => {
                if t.status == TradeStatus::Opened {
                    s.trade_count += 1;
                }
                s.last_trade_ts = s.last_trade_ts.max(e.ts);
            }
            Body::Deposit(_) | Body::Withdrawal(_) | Body::Campaign(_) => {}
        }
    }

    pub fn get(&self, id: TraderId) -> Option<&TraderState> {
        self.rows.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (TraderId, &TraderState)> {
        self.rows.iter()
    }

    /// The traders of one shard.
    pub fn iter_shard(&self, shard: u32) -> impl Iterator<Item = (TraderId, &TraderState)> {
        self.rows.iter_shard(shard)
    }

    pub fn segment(&self, s: &TraderState) -> Segment {
        self.thresholds.classify(s.deposit_count, s.deposit_sum)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.rows.heap_bytes()
    }
}
