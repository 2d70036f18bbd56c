//! Exact money: amounts held as integer millionths of their currency unit,
//! so sums are exact and do not depend on the order events arrive in.

use serde::{Deserialize, Serialize};

/// An amount in millionths of its currency unit (6 decimal places).
///
/// Contract amounts arrive as JSON numbers; an amount with up to 6 decimal
/// places and below 10^9 in size converts exactly (larger ones to the
/// nearest millionth a double can tell apart).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Money(pub i64);

impl Money {
    /// Decimal places kept.
    pub const DECIMALS: i8 = 6;
    /// Millionths per unit.
    pub const SCALE: f64 = 1e6;

    /// The nearest millionth of `v`.
    #[inline]
    pub fn from_f64(v: f64) -> Self {
        Money((v * Self::SCALE).round() as i64)
    }

    /// As a float, for features and ratios (never for sums).
    #[inline]
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / Self::SCALE
    }

    /// Exact sum; saturates instead of wrapping.
    #[inline]
    pub fn plus(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_amounts_convert_exactly_and_back() {
        for v in [0.1, 100.5, 123.45, 9_999.99, 0.000_001, 987_654_321.123_456] {
            let m = Money::from_f64(v);
            assert_eq!(m.as_f64(), v, "{v}");
        }
        assert_eq!(Money::from_f64(0.1).0, 100_000);
        assert_eq!(Money::from_f64(-2.5).0, -2_500_000);
    }

    #[test]
    fn sums_do_not_depend_on_order() {
        let xs = [0.1, 0.2, 0.3, 1e6, 3.64, 0.07];
        let fwd = xs.iter().fold(Money(0), |a, &x| a.plus(Money::from_f64(x)));
        let back = xs
            .iter()
            .rev()
            .fold(Money(0), |a, &x| a.plus(Money::from_f64(x)));
        assert_eq!(fwd, back);
        assert_eq!(fwd.0, 1_000_004_310_000);
    }
}
