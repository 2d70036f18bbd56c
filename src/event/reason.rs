//! Why an event is invalid: a closed set of reasons (a metric label) plus the
//! field at fault and a message naming what would be accepted.

use std::fmt;

use super::model::closed_enum;

closed_enum!(
    /// Closed set of invalid-event reasons; the label of
    /// `pulse_events_invalid_total{reason}`.
    Reason {
        NotJson = "not_json",
        Truncated = "truncated",
        NotObject = "not_object",
        NotUtf8 = "not_utf8",
        TooLong = "too_long",
        MissingField = "missing_field",
        WrongType = "wrong_type",
        BadValue = "bad_value",
        UnknownType = "unknown_type",
        BadTimestamp = "bad_timestamp",
        FutureTimestamp = "future_timestamp",
        StateFull = "state_full",
    }
);

/// An invalid event: the reason, the field at fault (if one is) and a
/// human-readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub reason: Reason,
    pub field: Option<&'static str>,
    pub message: String,
}

impl Invalid {
    pub fn new(reason: Reason, field: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            reason,
            field,
            message: message.into(),
        }
    }

    pub(crate) fn missing(field: &'static str) -> Self {
        Self::new(
            Reason::MissingField,
            Some(field),
            format!("required field `{field}` is missing or null"),
        )
    }

    pub(crate) fn wrong_type(field: &'static str, expected: &str) -> Self {
        Self::new(
            Reason::WrongType,
            Some(field),
            format!("field `{field}` has the wrong type: expected {expected}"),
        )
    }

    pub(crate) fn bad_value(field: &'static str, problem: impl fmt::Display) -> Self {
        Self::new(
            Reason::BadValue,
            Some(field),
            format!("field `{field}`: {problem}"),
        )
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for Invalid {}

/// Shortens untrusted text quoted in a message (on a char boundary).
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 40;
    if s.len() <= MAX {
        return format!("{s:?}");
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}…", &s[..end])
}
