//! Veloc Pulse: real-time analytics and churn scoring for an online brokerage.
//!
//! Layout, in the direction events flow (see `../shared/DESIGN.md`):
//!
//! - [`event`]: the event contract: typed events, decoding, validation,
//!   interning of trader ids and small-set strings, timestamps.
//! - [`config`]: the `pulse.toml` of `pulse run`, validated up front.
//! - [`source`]: where bytes come from: NDJSON files line by line, a Kafka
//!   consumer group (at-least-once commits).
//! - [`sink`]: the Kafka producer behind the dead-letter, late, KPI and
//!   alert topics.
//! - [`sim`]: the deterministic synthetic brokerage behind `simulate`,
//!   `demo` and `bench`, with its ground truth.
//! - [`pipeline`]: the engine every command shares: ingest (decode,
//!   validate, de-duplicate, account for every event, dead-letter the bad
//!   ones), then the DataFusion SQL pipelines of `pipelines/*.sql` and their
//!   KPI outputs; replay of a file.
//! - [`window`]: event-time windows: watermarks per partition, the closed
//!   frontier, late events, the Arrow event tables and their closed rows.
//! - [`features`]: per-trader state, constant time per event, in a `Vec`
//!   indexed by trader id: the basic state, behaviour (decayed sums, gaps,
//!   streaks) and the feature vector the churn model reads offline and
//!   online; segments; the `traders` snapshot table.
//! - [`model`]: the churn model: offline examples from history, linfa
//!   training, evaluation against baselines, the artifact, scoring.
//! - [`alert`]: risk alerts: per-trader rules (churn risk, inactivity,
//!   activation, deposit recovery, VIP drop, security, AML), KPI drops,
//!   online churn scoring on event time, the alert sinks.
//! - [`metrics`]: the Prometheus registry and the product's metric names.
//! - [`http`]: axum routes: `/metrics`, `/healthz`, `/readyz`, `/api/*`, the
//!   live page.
//! - [`bench`]: in-process throughput measurements behind `pulse bench`.
//!
//! The `pulse` binary (`src/main.rs`, `src/cli/`) is the only place that
//! turns errors into messages; the library returns typed errors.

pub mod alert;
pub mod bench;
pub mod config;
pub mod event;
pub mod features;
pub mod http;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod sim;
pub mod sink;
pub mod source;
pub mod window;
