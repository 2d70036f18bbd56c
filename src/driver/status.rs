//! What the live commands show while they run: `/api/status`, the event
//! counters and state gauges on `/metrics`, the churn bands.

use crate::engine::Engine;
use crate::event::time::format_rfc3339_ms;
use crate::http::{AppState, ModelStatus};
use crate::model::Band;
use crate::pipeline::Exports;

use super::sinks::Sinks;

/// Moves the engine's counters into the metrics and the status.
pub fn publish(
    state: &AppState,
    engine: &Engine,
    sinks: &Sinks,
    events_per_s: f64,
    exports: Option<&Exports>,
) {
    let stats = &engine.ingest.stats;
    let bytes = engine.state_bytes();
    let traders = engine.traders.rows.len();
    if let Ok(mut m) = state.metrics.lock() {
        m.publish(stats);
        m.traders.set(traders as i64);
        m.state_bytes.set(bytes as i64);
        if let Some(x) = exports {
            for name in engine.pipeline_names() {
                m.set_exported(&name, x.here.contains(&name));
            }
        }
    }
    if let Some(x) = exports
        && let Ok(mut b) = state.board.lock()
    {
        // A pipeline exported elsewhere now: its last window here is stale.
        b.pipelines.retain(|name, _| x.here.contains(name));
        b.exports = Some(x.clone());
    }
    let scorer = engine.risk.scorer.as_ref();
    if let Ok(mut s) = state.status.lock() {
        s.events = Some(stats.summary());
        s.events_per_s = events_per_s;
        s.traders = traders;
        s.state_bytes = bytes;
        let wm = engine.watermark();
        s.watermark = wm.map(format_rfc3339_ms);
        s.watermark_lag_s = wm.map(|w| (chrono::Utc::now().timestamp_millis() - w) as f64 / 1000.0);
        s.dead_letters = stats.invalid_total();
        s.alerts_sent = sinks.alerts.sent.iter().sum();
        s.exports = exports.cloned();
        s.model = scorer.map(|sc| ModelStatus {
            name: sc.model.name.clone(),
            version: sc.model.version.clone(),
            estimator: sc.model.validation.chosen.clone(),
            loaded_at: engine.risk.loaded_at.clone(),
        });
        s.churn_bands = scorer
            .filter(|sc| sc.counts.iter().any(|&n| n > 0))
            .map(|sc| {
                Band::ALL
                    .iter()
                    .zip(sc.counts)
                    .map(|(b, n)| (b.as_str(), n))
                    .collect()
            });
    }
}
