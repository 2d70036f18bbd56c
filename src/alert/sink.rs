//! Where alerts go: the JSONL file, the alert topic, the recent-alerts
//! store of `/api/alerts`, metrics. (Repeats of an id were dropped before,
//! by the risk stage.)

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::contract::{Alert, AlertKind};
use super::metrics::RiskMetrics;
use crate::pipeline::NdjsonFile;
use crate::sink::KafkaSink;

/// Alerts kept for `/api/alerts`.
pub const RECENT_ALERTS: usize = 500;

/// One alert kept for `/api/alerts`: its JSON text, serialised once for
/// the topic and the page alike (a `serde_json::Value` per alert cost a
/// fifth of `pulse run`'s engine thread), and its trader for erasure.
#[derive(Debug, Clone)]
pub struct RecentAlert {
    pub trader_id: Option<String>,
    pub json: String,
}

/// The newest alerts, oldest first.
pub type RecentAlerts = Arc<Mutex<VecDeque<RecentAlert>>>;

/// The alert outputs of one engine.
#[derive(Default)]
pub struct AlertOutputs {
    pub file: Option<NdjsonFile>,
    /// Alert topic (key = trader_id, or the KPI for kpi_drop).
    pub topic: Option<(KafkaSink, String)>,
    /// Every alert, in memory (tests, replay summaries).
    pub keep: Option<Vec<Alert>>,
    pub recent: Option<RecentAlerts>,
    pub metrics: Option<RiskMetrics>,
    /// Latency from event time (live event streams) instead of from the
    /// triggering message's arrival (simulated or replayed time).
    pub latency_from_event_time: bool,
    /// Alerts sent, per kind.
    pub sent: [u64; 8],
    /// First write failure of the file sink.
    pub error: Option<std::io::Error>,
}

impl AlertOutputs {
    /// Sends every alert of `alerts`, stamped with one clock reading;
    /// `trigger` is when the engine produced them.
    pub fn emit_all(&mut self, alerts: &mut [Alert], trigger: Instant) {
        if alerts.is_empty() {
            return;
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        for a in alerts {
            self.emit_at(a, trigger, now_ms);
        }
    }

    /// Sends `a`, emitted at `now_ms` (wall clock).
    pub fn emit_at(&mut self, a: &mut Alert, trigger: Instant, now_ms: i64) {
        a.emitted_at = Some(now_ms);
        self.sent[a.kind.index()] += 1;
        if let Some(m) = &self.metrics {
            let latency = if self.latency_from_event_time {
                (now_ms - a.event_ms) as f64 / 1000.0
            } else {
                trigger.elapsed().as_secs_f64()
            };
            m.alert(a.kind, a.severity, latency);
        }
        if let Some(f) = &mut self.file
            && let Err(e) = f.write(&*a)
        {
            tracing::error!(error = %e, "alert file write failed");
            self.error.get_or_insert(e);
        }
        if self.topic.is_some() || self.recent.is_some() {
            #[expect(
                clippy::expect_used,
                reason = "an alert is plain data (strings, numbers, maps): serialising it cannot fail"
            )]
            let json = serde_json::to_string(&*a).expect("an alert serialises");
            if let Some((sink, topic)) = &self.topic {
                let key = a
                    .trader_id
                    .clone()
                    .or_else(|| {
                        a.kpi
                            .as_ref()
                            .map(|k| format!("{}.{}", k.pipeline, k.value))
                    })
                    .unwrap_or_default();
                sink.send("alerts", topic, key.as_bytes(), json.as_bytes(), &[]);
            }
            if let Some(recent) = &self.recent
                && let Ok(mut r) = recent.lock()
            {
                if r.len() >= RECENT_ALERTS {
                    r.pop_front();
                }
                r.push_back(RecentAlert {
                    trader_id: a.trader_id.clone(),
                    json,
                });
            }
        }
        if let Some(keep) = &mut self.keep {
            keep.push(a.clone());
        }
    }

    /// Alerts sent of `kind`.
    pub fn count(&self, kind: AlertKind) -> u64 {
        self.sent[kind.index()]
    }

    pub fn flush(&mut self) {
        if let Some(f) = &mut self.file
            && let Err(e) = f.flush()
        {
            self.error.get_or_insert(e);
        }
    }
}
