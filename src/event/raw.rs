//! First decoding stage: the JSON object into flat optional fields, borrowing
//! from the input where the JSON has no escapes.
//!
//! A hand-written map visitor rather than `#[derive(Deserialize)]` so that a
//! field of the wrong type is reported by its name, unknown fields are skipped
//! without buffering, and strings are borrowed.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

use super::reason::Invalid;

/// A string borrowed from the input when possible.
#[derive(Debug, PartialEq)]
pub(crate) struct BStr<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> de::Deserialize<'de> for BStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = BStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// `ts` as it appears in the JSON: epoch milliseconds or a string.
#[derive(Debug, PartialEq)]
pub(crate) enum RawTs<'a> {
    Millis(i64),
    Text(Cow<'a, str>),
    /// A number that is not an integral millisecond count in i64 range.
    BadNumber(f64),
}

impl RawTs<'_> {
    /// A `ts` the JSON gives as a double: milliseconds when integral.
    pub(crate) fn from_f64(v: f64) -> Self {
        let integral = v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15;
        if integral {
            RawTs::Millis(v as i64)
        } else {
            RawTs::BadNumber(v)
        }
    }
}

impl<'de: 'a, 'a> de::Deserialize<'de> for RawTs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawTs<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 string or epoch milliseconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawTs::Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(RawTs::BadNumber(v as f64), RawTs::Millis))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RawTs::from_f64(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawTs::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawTs::Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Every field of the contract, each optional; which are required depends on
/// `type` and is checked in the second stage.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RawEvent<'a> {
    pub event_id: Option<BStr<'a>>,
    pub kind: Option<BStr<'a>>,
    pub trader_id: Option<BStr<'a>>,
    pub ts: Option<RawTs<'a>>,
    pub channel: Option<BStr<'a>>,
    pub country: Option<BStr<'a>>,
    pub campaign_id: Option<BStr<'a>>,
    pub success: Option<bool>,
    pub device_id: Option<BStr<'a>>,
    pub platform: Option<BStr<'a>>,
    pub amount: Option<f64>,
    pub currency: Option<BStr<'a>>,
    pub method: Option<BStr<'a>>,
    pub status: Option<BStr<'a>>,
    pub instrument: Option<BStr<'a>>,
    pub side: Option<BStr<'a>>,
    pub stake: Option<f64>,
    pub pnl: Option<f64>,
    pub variant: Option<BStr<'a>>,
    pub action: Option<BStr<'a>>,
}

/// Visits the top-level object; a field of the wrong type is recorded in
/// `fault` (serde's own error does not name the field).
pub(crate) struct RawVisitor<'s> {
    pub fault: &'s mut Option<Invalid>,
}

impl<'de> Visitor<'de> for RawVisitor<'_> {
    type Value = RawEvent<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw = RawEvent::default();
        while let Some(key) = map.next_key::<BStr<'de>>()? {
            // Reads the value into `raw.$field`, naming the field on a type error.
            macro_rules! take {
                ($field:ident, $name:literal, $expected:literal) => {
                    match map.next_value() {
                        Ok(v) => raw.$field = v,
                        Err(e) => {
                            *self.fault = Some(Invalid::wrong_type($name, $expected));
                            return Err(e);
                        }
                    }
                };
            }
            match key.0.as_ref() {
                "event_id" => take!(event_id, "event_id", "a string"),
                "type" => take!(kind, "type", "a string"),
                "trader_id" => take!(trader_id, "trader_id", "a string"),
                "ts" => take!(ts, "ts", "an RFC 3339 string or epoch milliseconds"),
                "channel" => take!(channel, "channel", "a string"),
                "country" => take!(country, "country", "a string"),
                "campaign_id" => take!(campaign_id, "campaign_id", "a string"),
                "success" => take!(success, "success", "a boolean"),
                "device_id" => take!(device_id, "device_id", "a string"),
                "platform" => take!(platform, "platform", "a string"),
                "amount" => take!(amount, "amount", "a number"),
                "currency" => take!(currency, "currency", "a string"),
                "method" => take!(method, "method", "a string"),
                "status" => take!(status, "status", "a string"),
                "instrument" => take!(instrument, "instrument", "a string"),
                "side" => take!(side, "side", "a string"),
                "stake" => take!(stake, "stake", "a number"),
                "pnl" => take!(pnl, "pnl", "a number"),
                "variant" => take!(variant, "variant", "a string"),
                "action" => take!(action, "action", "a string"),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}
