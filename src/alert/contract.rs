//! The alert contract of DESIGN.md (`schemas/alert.schema.json`): what the
//! retention, CRM and compliance teams receive.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::Serialize;
use serde_json::Value;

use super::text::Text;
use crate::event::model::closed_enum;
use crate::event::stable_hash;
use crate::event::time::Rfc3339Ms;

closed_enum!(
    /// What the alert is about.
    AlertKind {
        ChurnRisk = "churn_risk",
        Inactivity = "inactivity",
        Activation = "activation",
        DepositRecovery = "deposit_recovery",
        VipDrop = "vip_drop",
        KpiDrop = "kpi_drop",
        Security = "security",
        Aml = "aml",
    }
);

closed_enum!(
    /// How urgent it is.
    Severity { Info = "info", Warning = "warning", Critical = "critical" }
);

/// One reason behind an alert, strongest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertReason {
    pub feature: Text,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contribution: Option<f64>,
}

impl AlertReason {
    pub fn new(
        feature: impl Into<Text>,
        value: impl Into<Value>,
        baseline: impl Into<Value>,
    ) -> Self {
        Self {
            feature: feature.into(),
            value: value.into(),
            baseline: Some(baseline.into()),
            contribution: None,
        }
    }
}

/// The KPI behind a `kpi_drop` alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiRef {
    pub pipeline: String,
    pub value: String,
    pub labels: serde_json::Map<String, Value>,
    pub latest: f64,
    pub baseline: f64,
    pub drop: f64,
    pub window_start: String,
}

/// One alert as sent (field order as in the contract). Times are kept in
/// epoch ms and the id as its hash; both are written as text only when the
/// alert is serialised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub alert_id: AlertId,
    pub kind: AlertKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trader_id: Option<String>,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<&'static str>,
    pub stage: Text,
    pub reasons: Vec<AlertReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<Text>,
    /// Event time in ms: `event_time` in the contract.
    #[serde(rename = "event_time", serialize_with = "rfc3339")]
    pub event_ms: i64,
    /// Wall-clock time the sink sent it, in ms (`""` until then).
    #[serde(serialize_with = "rfc3339_or_empty")]
    pub emitted_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playbook: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kpi: Option<Box<KpiRef>>,
}

fn rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(Rfc3339Ms::new(*ms).as_str())
}

fn rfc3339_or_empty<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => rfc3339(ms, s),
        None => s.serialize_str(""),
    }
}

impl serde::Serialize for AlertKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl serde::Serialize for Severity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The deterministic id of an alert: kind, subject (trader or KPI), rule
/// (stage) and window (the event time that identifies the situation), so
/// a replay or a restart produces the same id and consumers can drop
/// repeats. Written `<kind>-<16 hex digits of the hash>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlertId {
    kind: AlertKind,
    hash: u64,
}

/// Longest kind (`deposit_recovery`), a dash and 16 hex digits.
const ID_TEXT: usize = 16 + 1 + 16;

impl AlertId {
    pub fn new(kind: AlertKind, subject: &str, rule: &str, window_ms: i64) -> Self {
        let hash = stable_hash(&[
            kind.as_str().as_bytes(),
            subject.as_bytes(),
            rule.as_bytes(),
            &window_ms.to_le_bytes(),
        ]);
        Self { kind, hash }
    }

    /// Calls `f` with the id's text, written on the stack.
    fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let kind = self.kind.as_str().as_bytes();
        let mut buf = [0u8; ID_TEXT];
        let n = kind.len().min(ID_TEXT - 17);
        buf[..n].copy_from_slice(&kind[..n]);
        buf[n] = b'-';
        for (i, b) in buf[n + 1..n + 17].iter_mut().enumerate() {
            *b = HEX[(self.hash >> (60 - 4 * i)) as usize & 15];
        }
        // Only ASCII was written.
        f(std::str::from_utf8(&buf[..n + 17]).unwrap_or_default())
    }
}

/// Hashes as its text does, so the fingerprints of ids already sent (kept
/// in checkpoints) stay what they were when ids were strings.
impl Hash for AlertId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.with_text(|t| t.hash(state));
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|t| f.write_str(t))
    }
}

impl fmt::Debug for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|t| fmt::Debug::fmt(t, f))
    }
}

impl Serialize for AlertId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_text(|t| s.serialize_str(t))
    }
}

impl PartialEq<str> for AlertId {
    fn eq(&self, other: &str) -> bool {
        self.with_text(|t| t == other)
    }
}

impl Alert {
    /// An alert about a trader; `window_ms` identifies the situation.
    pub fn trader(
        kind: AlertKind,
        trader_id: &str,
        stage: Text,
        severity: Severity,
        event_ms: i64,
        window_ms: i64,
    ) -> Self {
        let mut a = Self::new(kind, trader_id, stage, severity, event_ms, window_ms);
        a.trader_id = Some(trader_id.to_string());
        a
    }

    /// An alert about `subject` (a trader id, a KPI) with every optional
    /// field empty; `window_ms` identifies the situation.
    pub fn new(
        kind: AlertKind,
        subject: &str,
        stage: Text,
        severity: Severity,
        event_ms: i64,
        window_ms: i64,
    ) -> Self {
        Self {
            alert_id: AlertId::new(kind, subject, &stage, window_ms),
            kind,
            trader_id: None,
            severity,
            score: None,
            band: None,
            segment: None,
            stage,
            reasons: Vec::new(),
            model_version: None,
            event_ms,
            emitted_at: None,
            channel: None,
            playbook: None,
            kpi: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id's text is what `format!` gave when ids were strings, and it
    /// hashes as that string: fingerprints saved in checkpoints still match.
    #[test]
    fn ids_read_and_hash_as_their_former_strings() {
        let hasher = crate::event::fixed_hasher();
        for (n, &kind) in AlertKind::ALL.iter().enumerate() {
            for window in [i64::MIN, -1, 0, 7, 1_767_225_600_000, i64::MAX] {
                let subject = format!("trader-{n}-{window}");
                let id = AlertId::new(kind, &subject, "inactivity:D+1", window);
                let h = stable_hash(&[
                    kind.as_str().as_bytes(),
                    subject.as_bytes(),
                    b"inactivity:D+1",
                    &window.to_le_bytes(),
                ]);
                let former = format!("{}-{h:016x}", kind.as_str());
                assert_eq!(id.to_string(), former);
                assert!(id == *former.as_str());
                assert_eq!(format!("{id:?}"), format!("{former:?}"));
                assert_eq!(
                    serde_json::to_string(&id).unwrap(),
                    serde_json::to_string(&former).unwrap()
                );
                assert_eq!(hasher.hash_one(id), hasher.hash_one(&former));
            }
        }
    }

    /// Times serialise as RFC 3339 with milliseconds; an alert not yet
    /// sent has an empty `emitted_at`.
    #[test]
    fn times_are_written_as_text() {
        let mut a = Alert::new(
            AlertKind::Inactivity,
            "t1",
            Text::from("inactivity:D+1"),
            Severity::Info,
            1_767_225_600_123,
            0,
        );
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["event_time"], "2026-01-01T00:00:00.123Z");
        assert_eq!(v["emitted_at"], "");
        a.emitted_at = Some(1_767_225_601_000);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["emitted_at"], "2026-01-01T00:00:01.000Z");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(!keys.contains(&"event_ms"), "{keys:?}");
    }
}
