//! Second decoding stage: from flat raw fields to a typed [`Event`], checking
//! every rule of the contract.

use serde::Deserializer;
use serde_json::error::Category;

use super::intern::{Interner, MAX_TRADERS_PER_SHARD, ShardedNames, fixed_hasher, stable_hash};
use super::model::*;
use super::money::Money;
use super::raw::{BStr, RawEvent, RawTs, RawVisitor};
use super::reason::{Invalid, Reason, quote};
use super::scan::scan_into;
use super::time::{DAY_MS, HOUR_MS, parse_rfc3339_ms};

/// Validation limits of the decoder.
#[derive(Clone, Debug)]
pub struct DecodeConfig {
    /// Longest accepted line, bytes.
    pub max_line_bytes: usize,
    /// How far an event may lie in the future of the reference clock, ms.
    pub max_future_ms: i64,
    /// Earliest accepted event time, epoch ms (earlier is almost always epoch
    /// seconds sent as milliseconds).
    pub min_ts_ms: i64,
    /// Largest plausible amount or stake.
    pub max_amount: f64,
    /// Longest accepted id (event_id, trader_id, device_id).
    pub max_id_len: usize,
    /// Distinct values kept per small-set field before new ones map to `~other`.
    pub max_symbols: usize,
    /// Traders tracked per partition: an event of a new trader beyond it
    /// is refused with reason `state_full` (memory bound; per partition, so
    /// which events are refused does not depend on how partitions are
    /// spread over instances).
    pub max_traders_per_partition: u32,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self {
            max_line_bytes: 64 * 1024,
            max_future_ms: DAY_MS,
            min_ts_ms: 946_684_800_000, // 2000-01-01
            max_amount: 1e12,
            max_id_len: 128,
            max_symbols: 4096,
            max_traders_per_partition: MAX_TRADERS_PER_SHARD,
        }
    }
}

/// Decodes and validates events, interning trader ids and small-set strings.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub config: DecodeConfig,
    /// Trader id strings per shard, dense ids in order of first appearance.
    pub traders: ShardedNames,
    /// Small-set strings: channel, country, currency, method, instrument,
    /// campaign id, variant.
    pub symbols: Interner,
    hasher: ahash::RandomState,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DecodeConfig::default())
    }
}

impl Decoder {
    pub fn new(config: DecodeConfig) -> Self {
        let symbols = Interner::with_capacity_limit(config.max_symbols);
        Self {
            config,
            traders: ShardedNames::default(),
            symbols,
            hasher: fixed_hasher(),
        }
    }

    /// Fingerprint used for event ids and device ids.
    #[inline]
    pub fn fingerprint(&self, s: &str) -> u64 {
        self.hasher.hash_one(s)
    }

    /// Decodes one message. `now_ms` is the reference clock for the
    /// future-timestamp check.
    pub fn decode(&mut self, bytes: &[u8], now_ms: i64) -> Result<Event, Invalid> {
        self.decode_typed(bytes, now_ms, None, 0)
    }

    /// As [`Decoder::decode`]; a message without `type` takes
    /// `fallback_type` (the type named by its topic); its trader belongs
    /// to `shard` (the input partition).
    pub fn decode_typed(
        &mut self,
        bytes: &[u8],
        now_ms: i64,
        fallback_type: Option<EventType>,
        shard: u32,
    ) -> Result<Event, Invalid> {
        if bytes.len() > self.config.max_line_bytes {
            return Err(Invalid::new(
                Reason::TooLong,
                None,
                format!(
                    "{} bytes; at most {} are accepted",
                    bytes.len(),
                    self.config.max_line_bytes
                ),
            ));
        }
        // One check of the whole line is cheaper than serde_json's check of
        // every string in it (a call per string), which reading from a
        // `str` skips.
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Err(Invalid::new(
                Reason::NotUtf8,
                None,
                "bytes are not valid UTF-8",
            ));
        };
        let mut raw = RawEvent::default();
        if scan_into(text, &mut raw).is_none() {
            raw = read_with_serde(text)?;
        }
        self.validate(&raw, now_ms, fallback_type, shard)
    }

    fn validate(
        &mut self,
        raw: &RawEvent<'_>,
        now_ms: i64,
        fallback_type: Option<EventType>,
        shard: u32,
    ) -> Result<Event, Invalid> {
        let kind_text = match (&raw.kind, fallback_type) {
            (None, Some(t)) => t.as_str(),
            _ => required(&raw.kind, "type")?,
        };
        let Some(kind) = EventType::parse(kind_text) else {
            return Err(Invalid::new(
                Reason::UnknownType,
                Some("type"),
                format!(
                    "unknown event type {}; expected one of {}",
                    quote(kind_text),
                    EventType::NAMES.join(", ")
                ),
            ));
        };
        let event_id = self.id(&raw.event_id, "event_id")?;
        let id_hash = self.fingerprint(event_id);
        let trader_text = self.id(&raw.trader_id, "trader_id")?;
        let ts = self.timestamp(raw.ts.as_ref(), now_ms)?;
        let body = match kind {
            EventType::Signup => Body::Signup(Signup {
                channel: self.sym(&raw.channel, "channel")?,
                country: self.sym(&raw.country, "country")?,
                campaign: match &raw.campaign_id {
                    Some(c) if !c.0.is_empty() => Some(self.symbols.intern(&c.0)),
                    _ => None,
                },
            }),
            EventType::Login => Body::Login(Login {
                success: raw.success.ok_or_else(|| Invalid::missing("success"))?,
                device: self.fingerprint(self.id(&raw.device_id, "device_id")?),
                country: self.sym(&raw.country, "country")?,
                platform: closed(&raw.platform, "platform", Platform::parse, Platform::NAMES)?,
            }),
            EventType::Deposit => Body::Deposit(Deposit {
                amount: self.amount(raw.amount, "amount")?,
                currency: self.sym(&raw.currency, "currency")?,
                method: self.sym(&raw.method, "method")?,
                status: closed(
                    &raw.status,
                    "status",
                    DepositStatus::parse,
                    DepositStatus::NAMES,
                )?,
            }),
            EventType::Withdrawal => Body::Withdrawal(Withdrawal {
                amount: self.amount(raw.amount, "amount")?,
                currency: self.sym(&raw.currency, "currency")?,
                status: closed(
                    &raw.status,
                    "status",
                    WithdrawalStatus::parse,
                    WithdrawalStatus::NAMES,
                )?,
            }),
            EventType::Trade => {
                let status = closed(
                    &raw.status,
                    "status",
                    TradeStatus::parse,
                    TradeStatus::NAMES,
                )?;
                let pnl = match raw.pnl {
                    Some(p) if !p.is_finite() || p.abs() > self.config.max_amount => {
                        return Err(Invalid::bad_value(
                            "pnl",
                            "must be a finite number of plausible size",
                        ));
                    }
                    p => p.map(Money::from_f64),
                };
                let instrument_name = required(&raw.instrument, "instrument")?;
                Body::Trade(Trade {
                    instrument_bit: instrument_bit(instrument_name),
                    instrument: self.sym(&raw.instrument, "instrument")?,
                    side: closed(&raw.side, "side", Side::parse, Side::NAMES)?,
                    stake: self.amount(raw.stake, "stake")?,
                    currency: self.sym(&raw.currency, "currency")?,
                    status,
                    pnl,
                })
            }
            EventType::Campaign => Body::Campaign(CampaignTouch {
                campaign: self.sym(&raw.campaign_id, "campaign_id")?,
                variant: self.sym(&raw.variant, "variant")?,
                action: closed(
                    &raw.action,
                    "action",
                    CampaignAction::parse,
                    CampaignAction::NAMES,
                )?,
                channel: closed(
                    &raw.channel,
                    "channel",
                    ContactChannel::parse,
                    ContactChannel::NAMES,
                )?,
            }),
        };
        // Interned last, so that an invalid event never creates a trader.
        let cap = self.config.max_traders_per_partition;
        let Some(trader) = self.traders.intern(shard, trader_text, cap) else {
            return Err(Invalid::new(
                Reason::StateFull,
                Some("trader_id"),
                format!(
                    "partition {shard} already tracks {} traders, the limit (state.max_traders_per_partition); a new trader is refused until the limit is raised or traders are spread over more partitions",
                    cap.min(MAX_TRADERS_PER_SHARD)
                ),
            ));
        };
        Ok(Event {
            ts,
            trader,
            id_hash,
            body,
        })
    }

    fn id<'r>(&self, v: &'r Option<BStr<'_>>, field: &'static str) -> Result<&'r str, Invalid> {
        let s = required(v, field)?;
        if s.len() > self.config.max_id_len {
            return Err(Invalid::bad_value(
                field,
                format!(
                    "{} bytes long; at most {} are accepted",
                    s.len(),
                    self.config.max_id_len
                ),
            ));
        }
        Ok(s)
    }

    fn sym(&mut self, v: &Option<BStr<'_>>, field: &'static str) -> Result<u32, Invalid> {
        let s = required(v, field)?;
        if s.len() > self.config.max_id_len {
            return Err(Invalid::bad_value(
                field,
                format!("longer than {} bytes", self.config.max_id_len),
            ));
        }
        Ok(self.symbols.intern(s))
    }

    fn amount(&self, v: Option<f64>, field: &'static str) -> Result<Money, Invalid> {
        let a = v.ok_or_else(|| Invalid::missing(field))?;
        if a.is_nan() || a <= 0.0 || a.is_infinite() {
            return Err(Invalid::bad_value(
                field,
                format!("must be a number > 0, got {a}"),
            ));
        }
        if a > self.config.max_amount {
            return Err(Invalid::bad_value(
                field,
                format!(
                    "{a} is implausibly large; at most {} is accepted",
                    self.config.max_amount
                ),
            ));
        }
        Ok(Money::from_f64(a))
    }

    fn timestamp(&self, v: Option<&RawTs<'_>>, now_ms: i64) -> Result<i64, Invalid> {
        let ts = match v {
            None => return Err(Invalid::missing("ts")),
            Some(RawTs::Millis(ms)) => *ms,
            Some(RawTs::BadNumber(n)) => {
                return Err(Invalid::new(
                    Reason::BadTimestamp,
                    Some("ts"),
                    format!("{n} is not an integral count of epoch milliseconds"),
                ));
            }
            Some(RawTs::Text(s)) => parse_rfc3339_ms(s).ok_or_else(|| {
                Invalid::new(
                    Reason::BadTimestamp,
                    Some("ts"),
                    format!(
                        "{} is not RFC 3339 (like 2026-11-23T10:00:00.123Z) nor epoch milliseconds",
                        quote(s)
                    ),
                )
            })?,
        };
        if ts < self.config.min_ts_ms {
            return Err(Invalid::new(
                Reason::BadTimestamp,
                Some("ts"),
                format!("{ts} is before 2000-01-01; epoch milliseconds are expected, not seconds"),
            ));
        }
        if ts > now_ms.saturating_add(self.config.max_future_ms) {
            return Err(Invalid::new(
                Reason::FutureTimestamp,
                Some("ts"),
                format!(
                    "{ts} is {:.1} h ahead of the clock; at most {:.1} h is accepted",
                    (ts - now_ms) as f64 / HOUR_MS as f64,
                    self.config.max_future_ms as f64 / HOUR_MS as f64
                ),
            ));
        }
        Ok(ts)
    }
}

/// The bit of an instrument in a 64-bit instrument map: bits 10..16 of the
/// FNV-1a hash of its name (stable across runs, builds and arrival orders).
pub fn instrument_bit(name: &str) -> u8 {
    ((stable_hash(&[name.as_bytes()]) >> 10) % 64) as u8
}

/// A required non-empty string field.
fn required<'r>(v: &'r Option<BStr<'_>>, field: &'static str) -> Result<&'r str, Invalid> {
    match v {
        None => Err(Invalid::missing(field)),
        Some(s) if s.0.is_empty() => Err(Invalid::bad_value(field, "must not be empty")),
        Some(s) => Ok(&s.0),
    }
}

/// A required field of a closed set.
fn closed<T>(
    v: &Option<BStr<'_>>,
    field: &'static str,
    parse: fn(&str) -> Option<T>,
    names: &[&str],
) -> Result<T, Invalid> {
    let s = required(v, field)?;
    parse(s).ok_or_else(|| {
        Invalid::bad_value(
            field,
            format!("{} is not one of {}", quote(s), names.join(", ")),
        )
    })
}

/// The first decoding stage through serde_json: every line the fast path
/// ([`scan_into`]) leaves, and the judge of every error.
pub(super) fn read_with_serde(text: &str) -> Result<RawEvent<'_>, Invalid> {
    let mut fault = None;
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(RawVisitor { fault: &mut fault })
        .and_then(|raw| de.end().map(|()| raw))
        .map_err(|e| classify(e, fault))
}

/// Turns a serde_json failure into a reason.
fn classify(e: serde_json::Error, fault: Option<Invalid>) -> Invalid {
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Data => match fault {
            Some(f) => f,
            None => Invalid::new(
                Reason::NotObject,
                None,
                format!("expected a JSON object ({e})"),
            ),
        },
        Category::Eof => Invalid::new(Reason::Truncated, None, format!("JSON ends early at {at}")),
        Category::Syntax | Category::Io => {
            if let Some(f) = fault.filter(|_| e.to_string().contains("number out of range")) {
                Invalid::new(
                    Reason::WrongType,
                    f.field,
                    format!("{}: number out of range", f.message),
                )
            } else {
                Invalid::new(Reason::NotJson, None, format!("not valid JSON: {e}"))
            }
        }
    }
}
