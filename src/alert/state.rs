//! What the alert rules remember per trader: a few flags and times, fixed
//! size, so memory stays bounded however long a trader lives.

use crate::event::{Money, Sym};
use crate::features::NEVER;

/// Devices and countries remembered per trader for the security rule.
pub const KNOWN_DEVICES: usize = 4;
pub const KNOWN_COUNTRIES: usize = 3;
/// Failed-login times remembered (the largest burst size accepted).
pub const FAILED_RING: usize = 8;

/// Per-trader alert state.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertState {
    /// churn_risk: armed until it fires; re-armed below the hysteresis.
    pub risk_armed: bool,
    #[serde(with = "crate::features::time_codec")]
    pub last_risk_alert: i64,
    /// inactivity: the activity time the fired tiers belong to.
    #[serde(with = "crate::features::time_codec")]
    pub idle_spell: i64,
    pub idle_fired: u8,
    /// activation steps fired.
    pub activation_fired: u8,
    /// deposit_recovery: start of the current unrecovered failure, steps fired.
    #[serde(with = "crate::features::time_codec")]
    pub failed_since: i64,
    pub recovery_fired: u8,
    /// vip_drop.
    pub vip_armed: bool,
    #[serde(with = "crate::features::time_codec")]
    pub last_vip_alert: i64,
    /// security.
    #[serde(with = "crate::features::time_codec::array")]
    pub failed_ring: [i64; FAILED_RING],
    pub failed_next: u8,
    #[serde(with = "crate::features::time_codec")]
    pub last_burst_alert: i64,
    pub logins_seen: u32,
    pub devices: [u64; KNOWN_DEVICES],
    pub countries: [Sym; KNOWN_COUNTRIES],
    /// aml: the last approved deposit and whether a trade followed it.
    #[serde(with = "crate::features::time_codec")]
    pub last_deposit_ts: i64,
    pub last_deposit_amount: Money,
    pub traded_since_deposit: bool,
    /// aml structuring: UTC day and count of near-threshold deposits.
    #[serde(with = "crate::features::time_codec")]
    pub near_day: i64,
    pub near_count: u32,
    /// The earliest event time a time-based rule could fire without a new
    /// event (`i64::MAX`: never; `i64::MIN`: at the next tick, already
    /// queued as touched).
    #[serde(with = "crate::features::time_codec")]
    pub next_due: i64,
}

impl Default for AlertState {
    fn default() -> Self {
        Self {
            risk_armed: true,
            last_risk_alert: NEVER,
            idle_spell: NEVER,
            idle_fired: 0,
            activation_fired: 0,
            failed_since: NEVER,
            recovery_fired: 0,
            vip_armed: true,
            last_vip_alert: NEVER,
            failed_ring: [NEVER; FAILED_RING],
            failed_next: 0,
            last_burst_alert: NEVER,
            logins_seen: 0,
            devices: [0; KNOWN_DEVICES],
            countries: [u32::MAX; KNOWN_COUNTRIES],
            last_deposit_ts: NEVER,
            last_deposit_amount: Money(0),
            next_due: i64::MAX,
            traded_since_deposit: false,
            near_day: NEVER,
            near_count: 0,
        }
    }
}

/// Remembers `v` in a small set, replacing the oldest slot when full;
/// true when it was new.
pub fn remember<T: Copy + PartialEq>(slots: &mut [T], empty: T, v: T, seen: u32) -> bool {
    if slots.contains(&v) {
        return false;
    }
    let i = slots
        .iter()
        .position(|s| *s == empty)
        .unwrap_or(seen as usize % slots.len());
    slots[i] = v;
    true
}
