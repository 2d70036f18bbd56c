//! Trader segments of the CRM plan: new, low volume, moderate, VIP.

use crate::event::model::closed_enum;

closed_enum!(
    /// Segment of a trader, from its approved deposit volume.
    Segment { New = "new", LowVolume = "low_volume", Moderate = "moderate", Vip = "vip" }
);

/// Deposit-volume thresholds between segments (sum of approved deposits,
/// any currency: the simulator's and most brokers' books are in one currency).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentThresholds {
    /// Approved deposit volume from which a trader is `moderate`.
    pub moderate_from: f64,
    /// Approved deposit volume from which a trader is `vip`.
    pub vip_from: f64,
}

impl Default for SegmentThresholds {
    fn default() -> Self {
        Self {
            moderate_from: 2_000.0,
            vip_from: 25_000.0,
        }
    }
}

impl SegmentThresholds {
    /// The segment of a trader with `approved_deposits` deposits summing to
    /// `volume`: `new` until the first approved deposit.
    pub fn classify(&self, approved_deposits: u32, volume: f64) -> Segment {
        if approved_deposits == 0 {
            Segment::New
        } else if volume >= self.vip_from {
            Segment::Vip
        } else if volume >= self.moderate_from {
            Segment::Moderate
        } else {
            Segment::LowVolume
        }
    }
}
