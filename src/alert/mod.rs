//! Risk alerts: the contract (`schemas/alert.schema.json`), the rules of
//! `[alerts]` in `pulse.toml`, their per-trader state, churn scoring on
//! event time, the KPI drop rules, and the outputs (JSONL, alert topic,
//! `/api/alerts`, metrics); repeats are dropped by alert id. `schema`
//! checks alerts against the contract's JSON Schema in-process.

mod config;
mod contract;
mod kpi_drop;
mod metrics;
mod risk;
mod rules;
mod schema;
mod sent;
mod sink;
mod state;
mod text;

pub use config::{AlertRules, AlertsSection, KpiAgg, KpiDropRule};
pub use contract::{Alert, AlertId, AlertKind, AlertReason, KpiRef, Severity};
pub use kpi_drop::{KpiDrop, KpiDropState, Series};
pub use metrics::RiskMetrics;
pub use risk::{Clock, Risk};
pub use rules::{Ctx, TraderRules};
pub use schema::{ALERT_SCHEMA, AlertSchema, LineCheck, SchemaError, Violation};
pub use sent::{SentBlock, SentIds};
pub use sink::{AlertOutputs, RECENT_ALERTS, RecentAlert, RecentAlerts};
pub use state::AlertState;
pub use text::Text;
