//! Settings of the window engine.

use serde::Deserialize;

use crate::event::time::{DAY_MS, SECOND_MS};

/// How windows close.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Allowed disorder, ms: a partition's watermark is its latest event time
    /// minus this.
    pub disorder_ms: i64,
    /// Grace after the watermark before windows close, ms. Events behind the
    /// closed frontier are late: counted, sent to the late sink, and still
    /// applied to trader state.
    pub grace_ms: i64,
    /// Live mode: a partition silent this long (wall clock, ms) leaves the
    /// watermark minimum so it cannot hold every window open.
    pub idle_timeout_ms: i64,
    /// Replay: run the pipelines each time the frontier advances this much
    /// event time (larger amortises query start-up over more windows).
    pub emit_every_ms: i64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            disorder_ms: 10 * SECOND_MS,
            grace_ms: 50 * SECOND_MS,
            idle_timeout_ms: 30 * SECOND_MS,
            emit_every_ms: 7 * DAY_MS,
        }
    }
}
