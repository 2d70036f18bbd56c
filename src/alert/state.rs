//! What the alert rules remember per trader: a few flags and times, fixed
//! size, so memory stays bounded however long a trader lives.

use crate::event::{Money, Sym};
use crate::features::NEVER;

/// Devices and countries remembered per trader for the security rule.
pub const KNOWN_DEVICES: usize = 4;
pub const KNOWN_COUNTRIES: usize = 3;
/// Failed-login times remembered (the largest burst size accepted).
pub const FAILED_RING: usize = 8;

/// Per-trader alert state. What most traders never need (failed logins,
/// near-threshold deposits, alerts that fired) is in [`RareAlerts`],
/// allocated for a trader the first time it is written: with it inline
/// every tracked trader carried 200 bytes here, now 112.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertState {
    /// churn_risk: armed until it fires; re-armed below the hysteresis.
    pub risk_armed: bool,
    /// inactivity: the activity time the fired tiers belong to.
    #[serde(with = "crate::features::time_codec")]
    pub idle_spell: i64,
    pub idle_fired: u8,
    /// activation steps fired.
    pub activation_fired: u8,
    /// deposit_recovery: start of the current unrecovered failure, steps
    /// fired (inline: a pending deposit counts, and most traders have one).
    #[serde(with = "crate::features::time_codec")]
    pub failed_since: i64,
    pub recovery_fired: u8,
    /// vip_drop.
    pub vip_armed: bool,
    /// security: successful logins, devices and countries seen.
    pub logins_seen: u32,
    pub devices: [u64; KNOWN_DEVICES],
    pub countries: [Sym; KNOWN_COUNTRIES],
    /// aml: the last approved deposit and whether a trade followed it.
    #[serde(with = "crate::features::time_codec")]
    pub last_deposit_ts: i64,
    pub last_deposit_amount: Money,
    pub traded_since_deposit: bool,
    /// The earliest event time a time-based rule could fire without a new
    /// event (`i64::MAX`: never; `i64::MIN`: at the next tick, already
    /// queued as touched).
    #[serde(with = "crate::features::time_codec")]
    pub next_due: i64,
    rare: Option<Box<RareAlerts>>,
}

/// The part of [`AlertState`] few traders ever write.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RareAlerts {
    /// churn_risk and vip_drop: when each last fired.
    #[serde(with = "crate::features::time_codec")]
    pub last_risk_alert: i64,
    #[serde(with = "crate::features::time_codec")]
    pub last_vip_alert: i64,
    /// security: the latest failed-login times, the next slot, the last
    /// burst alert.
    #[serde(with = "crate::features::time_codec::array")]
    pub failed_ring: [i64; FAILED_RING],
    pub failed_next: u8,
    #[serde(with = "crate::features::time_codec")]
    pub last_burst_alert: i64,
    /// aml structuring: UTC day and count of near-threshold deposits.
    #[serde(with = "crate::features::time_codec")]
    pub near_day: i64,
    pub near_count: u32,
}

impl RareAlerts {
    /// Nothing happened yet.
    pub const NONE: RareAlerts = RareAlerts {
        last_risk_alert: NEVER,
        last_vip_alert: NEVER,
        failed_ring: [NEVER; FAILED_RING],
        failed_next: 0,
        last_burst_alert: NEVER,
        near_day: NEVER,
        near_count: 0,
    };
}

impl Default for AlertState {
    fn default() -> Self {
        Self {
            risk_armed: true,
            idle_spell: NEVER,
            idle_fired: 0,
            activation_fired: 0,
            failed_since: NEVER,
            recovery_fired: 0,
            vip_armed: true,
            logins_seen: 0,
            devices: [0; KNOWN_DEVICES],
            countries: [u32::MAX; KNOWN_COUNTRIES],
            last_deposit_ts: NEVER,
            last_deposit_amount: Money(0),
            next_due: i64::MAX,
            traded_since_deposit: false,
            rare: None,
        }
    }
}

impl AlertState {
    /// The rarely written part, read (nothing happened when never written).
    pub fn rare(&self) -> &RareAlerts {
        self.rare.as_deref().unwrap_or(&RareAlerts::NONE)
    }

    /// The rarely written part, to write: allocated on the first write.
    pub fn rare_mut(&mut self) -> &mut RareAlerts {
        self.rare.get_or_insert_with(|| Box::new(RareAlerts::NONE))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rare_part_is_allocated_on_its_first_write_and_survives_a_checkpoint() {
        let mut st = AlertState::default();
        assert_eq!(st.rare(), &RareAlerts::NONE);
        assert!(st.rare.is_none(), "reading allocates nothing");
        let plain = postcard::to_stdvec(&st).expect("encodes");
        st.rare_mut().near_count = 2;
        st.rare_mut().failed_ring[3] = 1_767_225_600_000;
        assert!(st.rare.is_some());
        let rare = postcard::to_stdvec(&st).expect("encodes");
        assert!(plain.len() < rare.len());
        let back: AlertState = postcard::from_bytes(&rare).expect("decodes");
        assert_eq!(back, st);
        let back: AlertState = postcard::from_bytes(&plain).expect("decodes");
        assert_eq!(back, AlertState::default());
        // What every tracked trader carries inline.
        assert!(std::mem::size_of::<AlertState>() <= 112);
    }
}
