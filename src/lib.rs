//! Veloc Pulse: real-time analytics and churn scoring for an online brokerage.
//!
//! Layout, in the direction events flow (see `../shared/DESIGN.md`):
//!
//! - [`event`]: the event contract: typed events, decoding, validation,
//!   interning of trader ids and small-set strings, timestamps.
//! - [`config`]: the `pulse.toml` of `pulse run`, validated up front.
//! - [`source`]: where bytes come from: NDJSON files line by line, a Kafka
//!   consumer group.
//! - [`sink`]: the Kafka producer behind the dead-letter, late, KPI,
//!   alert and changelog topics (transactional under exactly-once).
//! - [`sim`]: the deterministic synthetic brokerage behind `simulate`,
//!   `demo` and `bench`, with its ground truth.
//! - [`pipeline`]: the pieces of the pipeline: ingest (decode, validate,
//!   account for every event), de-duplication, dead letters, the DataFusion
//!   SQL pipelines of `pipelines/*.sql` and their KPI rows.
//! - [`window`]: event-time windows: watermarks per partition, the release
//!   buffer that hands events over in event-time order, the Arrow event
//!   tables and their closed rows.
//! - [`engine`]: the deterministic core every command shares: ingest, then
//!   per shard (input partition) release in event-time order into trader
//!   state, alert rules and tables; ticks and snapshots on event-time
//!   boundaries; the pipelines over what closed. Scale-out: shards send
//!   what closed as partials, and the merge of each partials partition
//!   runs its pipelines over every shard's rows.
//! - [`state`]: durable state: versioned checkpoint records per shard,
//!   written incrementally, restored into an engine; the optional local
//!   cache of the changelog.
//! - [`driver`]: the one loop of `replay`, `demo` and `run`: a source (file,
//!   simulator, Kafka) in, the engine, sinks out; commits with checkpoints
//!   (Kafka changelog, transactions), restores on assignment.
//! - [`features`]: per-trader state, constant time per event, in a `Vec`
//!   indexed by trader id: the basic state, behaviour (decayed sums, gaps,
//!   streaks) and the feature vector the churn model reads offline and
//!   online; segments; the `traders` snapshot table.
//! - [`model`]: the churn model: offline examples from history, linfa
//!   training, evaluation against baselines, the artifact, scoring, the
//!   feature export (Parquet or Arrow IPC).
//! - [`alert`]: risk alerts: per-trader rules (churn risk, inactivity,
//!   activation, deposit recovery, VIP drop, security, AML), KPI drops,
//!   online churn scoring on event time, the alert sinks, and the alert
//!   JSON Schema checked in-process.
//! - [`metrics`]: the Prometheus registry and the product's metric names.
//! - [`http`]: axum routes: `/metrics`, `/healthz`, `/readyz`, `/api/*`, the
//!   live page; the optional bearer token.
//! - [`bench`]: in-process throughput measurements behind `pulse bench`.
//!
//! The `pulse` binary (`src/main.rs`, `src/cli/`) is the only place that
//! turns errors into messages; the library returns typed errors.
//!
//! No data or configuration path may panic: `unwrap`, `expect` and `panic!`
//! are refused by clippy in the library (tests excepted, see `clippy.toml`);
//! each remaining one carries an `#[expect]` with the reason it cannot fail
//! (clippy then also flags an exception that is no longer needed).

#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod alert;
pub mod bench;
pub mod config;
pub mod driver;
pub mod engine;
pub mod event;
pub mod features;
pub mod http;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod sim;
pub mod sink;
pub mod source;
pub mod state;
pub mod window;
