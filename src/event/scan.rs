//! Fast path of the first decoding stage: one pass over the bytes of a flat
//! JSON object in the form producers write it, filling the same
//! [`RawEvent`] the serde path ([`super::raw::RawVisitor`]) would.
//!
//! It reads only what it can read exactly as serde_json does: strings
//! without escapes, scalar values, numbers a double holds after one rounding
//! (a significand up to 2^53 and a power of ten up to 22, where every
//! correct parser agrees). Anything else (an escape, a nested value of an
//! unknown field, a value of the wrong type, a syntax error) returns `None`
//! and the serde path reads the line, so unusual lines decode, and bad ones
//! are refused with their reason, exactly as before.

use std::borrow::Cow;

use super::raw::{BStr, RawEvent, RawTs};

/// The fields of `text`, or `None` when the serde path has to decide.
#[cfg(test)]
pub(crate) fn scan(text: &str) -> Option<RawEvent<'_>> {
    let mut raw = RawEvent::default();
    scan_into(text, &mut raw).map(|()| raw)
}

/// Fills `raw` (default on entry) with the fields of `text`; `None` when the
/// serde path has to decide, `raw` then partly filled. Filled in place: the
/// raw fields are a few hundred bytes, which a returned value would copy.
pub(crate) fn scan_into<'a>(text: &'a str, raw: &mut RawEvent<'a>) -> Option<()> {
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.b.get(s.i) == Some(&b'}') {
        s.i += 1;
    } else {
        loop {
            s.eat(b'"')?;
            let key = s.string_body()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            // A later duplicate overwrites an earlier one, as in the serde path.
            match key {
                "event_id" => raw.event_id = s.text()?,
                "type" => raw.kind = s.text()?,
                "trader_id" => raw.trader_id = s.text()?,
                "ts" => raw.ts = s.ts()?,
                "channel" => raw.channel = s.text()?,
                "country" => raw.country = s.text()?,
                "campaign_id" => raw.campaign_id = s.text()?,
                "success" => raw.success = s.boolean()?,
                "device_id" => raw.device_id = s.text()?,
                "platform" => raw.platform = s.text()?,
                "amount" => raw.amount = s.float()?,
                "currency" => raw.currency = s.text()?,
                "method" => raw.method = s.text()?,
                "status" => raw.status = s.text()?,
                "instrument" => raw.instrument = s.text()?,
                "side" => raw.side = s.text()?,
                "stake" => raw.stake = s.float()?,
                "pnl" => raw.pnl = s.float()?,
                "variant" => raw.variant = s.text()?,
                "action" => raw.action = s.text()?,
                _ => s.skip_scalar()?,
            }
            s.ws();
            match s.b.get(s.i)? {
                b',' => {
                    s.i += 1;
                    s.ws();
                }
                b'}' => {
                    s.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == s.b.len()).then_some(())
}

/// Powers of ten a double holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Largest significand converted to a double without rounding.
const MAX_EXACT: u64 = 1 << 53;

/// A JSON number split as serde_json splits it: `significand * 10^exponent`.
struct Number {
    negative: bool,
    significand: u64,
    exponent: i32,
    /// Written without fraction or exponent.
    integer: bool,
}

impl Number {
    /// The double serde_json reads (one rounding of an exact product or
    /// quotient, the same in both of its float modes within these bounds).
    fn to_f64(&self) -> f64 {
        let mut f = self.significand as f64;
        let pow = POW10[self.exponent.unsigned_abs() as usize];
        if self.exponent >= 0 {
            f *= pow;
        } else {
            f /= pow;
        }
        if self.negative { -f } else { f }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// High bits set at the bytes of `word` (little-endian) that are `"`, `\\`
/// or below 0x20. Only the lowest set bit is exact (a borrow may flag a byte
/// above it), which is the only one read.
#[inline]
pub(super) fn special_bytes(word: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    zero(word ^ (ONES * u64::from(b'"')))
        | zero(word ^ (ONES * u64::from(b'\\')))
        | (word.wrapping_sub(ONES * 0x20) & !word & HIGH)
}

/// `Some(value)` read; the outer `None` of each reader means "not here".
type Read<T> = Option<Option<T>>;

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// Consumes `word` (a literal) if the input continues with it.
    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// The rest of a string whose opening quote is consumed; `None` on an
    /// escape or a control character (serde's to judge).
    #[inline]
    fn string_body(&mut self) -> Option<&'a str> {
        let start = self.i;
        // Eight bytes at a time up to the first byte that ends or escapes
        // the string, which the byte loop below then judges.
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let word = u64::from_le_bytes(chunk.try_into().ok()?);
            let special = special_bytes(word);
            if special != 0 {
                self.i += (special.trailing_zeros() / 8) as usize;
                break;
            }
            self.i += 8;
        }
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let s = &self.text[start..self.i];
        self.i += 1;
        Some(s)
    }

    /// A string field: a string or `null`.
    #[inline]
    fn text(&mut self) -> Read<BStr<'a>> {
        match *self.b.get(self.i)? {
            b'"' => {
                self.i += 1;
                Some(Some(BStr(Cow::Borrowed(self.string_body()?))))
            }
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    /// A number field: a number or `null`.
    #[inline]
    fn float(&mut self) -> Read<f64> {
        match *self.b.get(self.i)? {
            b'n' => self.literal(b"null").map(|()| None),
            _ => Some(Some(self.number()?.to_f64())),
        }
    }

    fn boolean(&mut self) -> Read<bool> {
        match *self.b.get(self.i)? {
            b't' => self.literal(b"true").map(|()| Some(true)),
            b'f' => self.literal(b"false").map(|()| Some(false)),
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    /// `ts`: an RFC 3339 string, epoch milliseconds or `null`, read as
    /// [`RawTs`]'s visitor reads serde_json's value.
    fn ts(&mut self) -> Read<RawTs<'a>> {
        match *self.b.get(self.i)? {
            b'"' => {
                self.i += 1;
                Some(Some(RawTs::Text(Cow::Borrowed(self.string_body()?))))
            }
            b'n' => self.literal(b"null").map(|()| None),
            _ => {
                let n = self.number()?;
                // serde_json gives `-0` as the double -0.0, every other
                // integer as an integer.
                if n.integer && !(n.negative && n.significand == 0) {
                    let v = n.significand as i64;
                    return Some(Some(RawTs::Millis(if n.negative { -v } else { v })));
                }
                Some(Some(RawTs::from_f64(n.to_f64())))
            }
        }
    }

    /// The value of a field the contract does not name: a scalar, skipped.
    fn skip_scalar(&mut self) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => {
                self.i += 1;
                self.string_body().map(|_| ())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(|_| ()),
        }
    }

    /// A number in JSON's grammar within the exact bounds.
    fn number(&mut self) -> Option<Number> {
        let negative = self.b.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let mut significand = 0u64;
        let mut exponent = 0i32;
        // Integer part: `0` or a digit 1-9 and more digits.
        match *self.b.get(self.i)? {
            b'0' => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
            }
            b'1'..=b'9' => self.digits(&mut significand, &mut 0)?,
            _ => return None,
        }
        let mut integer = true;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            integer = false;
            let before = self.i;
            self.digits(&mut significand, &mut exponent)?;
            if self.i == before {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            integer = false;
            let positive = match self.b.get(self.i) {
                Some(b'+') => {
                    self.i += 1;
                    true
                }
                Some(b'-') => {
                    self.i += 1;
                    false
                }
                _ => true,
            };
            let start = self.i;
            let mut e = 0i32;
            while let Some(&c @ b'0'..=b'9') = self.b.get(self.i) {
                // Longer exponents are outside the bounds anyway.
                if self.i - start >= 4 {
                    return None;
                }
                e = e * 10 + i32::from(c - b'0');
                self.i += 1;
            }
            if self.i == start {
                return None;
            }
            exponent += if positive { e } else { -e };
        }
        if exponent.unsigned_abs() as usize >= POW10.len() {
            return None;
        }
        Some(Number {
            negative,
            significand,
            exponent,
            integer,
        })
    }

    /// Appends a run of digits to `significand`, one step of `scale` per
    /// digit (for a fraction); `None` once the significand leaves the
    /// exact range.
    #[inline]
    fn digits(&mut self, significand: &mut u64, scale: &mut i32) -> Option<()> {
        while let Some(&c @ b'0'..=b'9') = self.b.get(self.i) {
            *significand = *significand * 10 + u64::from(c - b'0');
            if *significand > MAX_EXACT {
                return None;
            }
            *scale -= 1;
            self.i += 1;
        }
        Some(())
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
