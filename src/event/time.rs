//! Event timestamps: RFC 3339 text or epoch milliseconds in, epoch
//! milliseconds inside, RFC 3339 with milliseconds out.

use chrono::DateTime;

/// Milliseconds in a second, minute, hour and day.
pub const SECOND_MS: i64 = 1_000;
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Parses RFC 3339 text (`2026-11-23T10:00:00.123Z`, any offset) to epoch ms.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Writes `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ` into `out`, by hand because the
/// simulator formats millions of them a second.
pub fn write_rfc3339_ms(out: &mut Vec<u8>, ms: i64) {
    out.extend_from_slice(&Rfc3339Ms::new(ms).0);
}

/// `ms` as an RFC 3339 string with milliseconds.
pub fn format_rfc3339_ms(ms: i64) -> String {
    Rfc3339Ms::new(ms).as_str().to_owned()
}

/// `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, on the stack (alerts and KPI rows
/// write their times without a heap string each).
#[derive(Clone, Copy)]
pub struct Rfc3339Ms([u8; 24]);

impl Rfc3339Ms {
    pub fn new(ms: i64) -> Self {
        let days = ms.div_euclid(DAY_MS);
        let rem = ms.rem_euclid(DAY_MS);
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss, milli) = (
            rem / HOUR_MS,
            rem / MINUTE_MS % 60,
            rem / SECOND_MS % 60,
            rem % 1000,
        );
        let mut buf = *b"0000-00-00T00:00:00.000Z";
        let put = |buf: &mut [u8; 24], at: usize, v: i64, width: usize| {
            let mut v = v;
            for i in (0..width).rev() {
                buf[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(&mut buf, 0, y.clamp(0, 9999), 4);
        put(&mut buf, 5, m, 2);
        put(&mut buf, 8, d, 2);
        put(&mut buf, 11, hh, 2);
        put(&mut buf, 14, mm, 2);
        put(&mut buf, 17, ss, 2);
        put(&mut buf, 20, milli, 3);
        Self(buf)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Proleptic Gregorian date from days since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses a duration such as `500ms`, `90s`, `15m`, `6h`, `30d`, `2w` (or a
/// combination like `1h30m`) to milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; expected for example 30s, 15m, 6h, 30d".into());
    }
    // humantime takes months and years as 30.44 and 365.25 days: event-time
    // windows want exact lengths.
    let calendar = s
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|unit| matches!(unit, "M" | "month" | "months" | "y" | "year" | "years"));
    if calendar {
        return Err(format!(
            "duration {s:?}: months and years have no fixed length; use days or weeks"
        ));
    }
    let d = humantime::parse_duration(s).map_err(|e| {
        format!("bad duration {s:?} ({e}); expected for example 30s, 15m, 6h, 30d, 1h30m")
    })?;
    i64::try_from(d.as_millis()).map_err(|_| format!("duration {s:?} is too large"))
}

/// Parses a point in time given as RFC 3339, a bare date (`2026-03-01`, UTC
/// midnight) or epoch milliseconds.
pub fn parse_instant_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Some(ms) = parse_rfc3339_ms(s) {
        return Ok(ms);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    Err(format!(
        "bad time {s:?}; expected RFC 3339 (2026-03-01T00:00:00Z), a date (2026-03-01) or epoch milliseconds"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        for ms in [0, 1_764_000_000_123, 951_782_400_000, 4_102_444_799_999] {
            let s = format_rfc3339_ms(ms);
            assert_eq!(parse_rfc3339_ms(&s), Some(ms), "{s}");
        }
        assert_eq!(
            format_rfc3339_ms(1_795_428_000_123),
            "2026-11-23T10:00:00.123Z"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30d"), Ok(30 * DAY_MS));
        assert_eq!(parse_duration_ms("1h30m"), Ok(90 * MINUTE_MS));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert!(parse_duration_ms("5x").is_err());
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("99999999999999999999d").is_err());
        assert_eq!(parse_duration_ms("2h 30min"), Ok(150 * MINUTE_MS));
        assert_eq!(parse_duration_ms("1w"), Ok(7 * DAY_MS));
        assert!(
            parse_duration_ms("1M").is_err(),
            "months have no fixed length"
        );
        assert!(parse_duration_ms("-5s").is_err());
    }

    #[test]
    fn instants() {
        assert_eq!(parse_instant_ms("1970-01-02"), Ok(DAY_MS));
        assert_eq!(parse_instant_ms("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_instant_ms("12345"), Ok(12345));
        assert!(parse_instant_ms("yesterday").is_err());
    }
}
