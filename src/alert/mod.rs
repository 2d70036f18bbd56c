//! Risk alerts: the contract (`schemas/alert.schema.json`), the rules of
//! `[alerts]` in `pulse.toml`, their per-trader state, churn scoring on
//! event time, the KPI drop rules, and the outputs (JSONL, alert topic,
//! `/api/alerts`, metrics) with repeats dropped by alert id.

mod config;
mod contract;
mod kpi_drop;
mod metrics;
mod risk;
mod rules;
mod sink;
mod state;

pub use config::{AlertRules, AlertsSection, KpiAgg, KpiDropRule};
pub use contract::{Alert, AlertKind, AlertReason, KpiRef, Severity, alert_id};
pub use metrics::RiskMetrics;
pub use risk::Risk;
pub use rules::{Ctx, TraderRules};
pub use sink::{AlertOutputs, RECENT_ALERTS};
