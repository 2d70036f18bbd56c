//! The alert contract of DESIGN.md (`schemas/alert.schema.json`): what the
//! retention, CRM and compliance teams receive.

use serde::Serialize;
use serde_json::Value;

use crate::event::model::closed_enum;
use crate::event::stable_hash;
use crate::event::time::format_rfc3339_ms;

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
    pub feature: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contribution: Option<f64>,
}

impl AlertReason {
    pub fn new(feature: &str, value: impl Into<Value>, baseline: impl Into<Value>) -> Self {
        Self {
            feature: feature.to_string(),
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

/// One alert as sent (field order as in the contract).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub alert_id: String,
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
    pub stage: String,
    pub reasons: Vec<AlertReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    pub event_time: String,
    pub emitted_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playbook: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kpi: Option<KpiRef>,
    /// Event time in ms (not serialised; ordering and latency).
    #[serde(skip)]
    pub event_ms: i64,
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
/// repeats.
pub fn alert_id(kind: AlertKind, subject: &str, rule: &str, window_ms: i64) -> String {
    let h = stable_hash(&[
        kind.as_str().as_bytes(),
        subject.as_bytes(),
        rule.as_bytes(),
        &window_ms.to_le_bytes(),
    ]);
    format!("{}-{h:016x}", kind.as_str())
}

impl Alert {
    /// An alert about a trader; `window_ms` identifies the situation.
    pub fn trader(
        kind: AlertKind,
        trader_id: &str,
        stage: String,
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
        stage: String,
        severity: Severity,
        event_ms: i64,
        window_ms: i64,
    ) -> Self {
        Self {
            alert_id: alert_id(kind, subject, &stage, window_ms),
            kind,
            trader_id: None,
            severity,
            score: None,
            band: None,
            segment: None,
            stage,
            reasons: Vec::new(),
            model_version: None,
            event_time: format_rfc3339_ms(event_ms),
            emitted_at: String::new(),
            channel: None,
            playbook: None,
            kpi: None,
            event_ms,
        }
    }
}
