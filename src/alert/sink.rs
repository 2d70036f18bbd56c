//! Where alerts go: the JSONL file, the alert topic, the recent-alerts
//! store of `/api/alerts`, metrics; repeats of an alert id are dropped.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::contract::{Alert, AlertKind};
use super::metrics::RiskMetrics;
use crate::event::time::format_rfc3339_ms;
use crate::pipeline::NdjsonFile;
use crate::sink::KafkaSink;

/// Alerts kept for `/api/alerts`.
pub const RECENT_ALERTS: usize = 500;

/// The alert outputs of one engine.
#[derive(Default)]
pub struct AlertOutputs {
    pub file: Option<NdjsonFile>,
    /// Alert topic (key = trader_id, or the KPI for kpi_drop).
    pub topic: Option<(KafkaSink, String)>,
    /// Every alert, in memory (tests, replay summaries).
    pub keep: Option<Vec<Alert>>,
    pub recent: Option<Arc<Mutex<VecDeque<serde_json::Value>>>>,
    pub metrics: Option<RiskMetrics>,
    /// Latency from event time (live event streams) instead of from the
    /// triggering message's arrival (simulated or replayed time).
    pub latency_from_event_time: bool,
    /// Alerts sent, per kind.
    pub sent: [u64; 8],
    pub duplicates: u64,
    /// First write failure of the file sink.
    pub error: Option<std::io::Error>,
    /// Fingerprints of the ids sent, oldest first in `order`.
    seen: HashSet<u64, ahash::RandomState>,
    order: VecDeque<u64>,
    /// Ids remembered (0: the default of 200,000).
    pub dedup_capacity: usize,
    hasher: ahash::RandomState,
}

impl AlertOutputs {
    /// Sends `a` unless its id was sent already.
    pub fn emit(&mut self, mut a: Alert, trigger: Instant) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.emit_at(&mut a, trigger, now_ms, &format_rfc3339_ms(now_ms));
    }

    /// Sends `a` with `emitted_at` (one clock reading per batch).
    pub fn emit_at(&mut self, a: &mut Alert, trigger: Instant, now_ms: i64, emitted_at: &str) {
        let fingerprint = self.hasher.hash_one(&a.alert_id);
        if self.seen.contains(&fingerprint) {
            self.duplicates += 1;
            if let Some(m) = &self.metrics {
                m.duplicate(a.kind);
            }
            return;
        }
        let cap = if self.dedup_capacity == 0 {
            200_000
        } else {
            self.dedup_capacity
        };
        if self.order.len() >= cap
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(fingerprint);
        self.order.push_back(fingerprint);
        a.emitted_at = emitted_at.to_string();
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
            let json = serde_json::to_value(&*a).expect("an alert serialises");
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
                sink.send(
                    "alerts",
                    topic,
                    key.as_bytes(),
                    json.to_string().as_bytes(),
                    &[],
                );
            }
            if let Some(recent) = &self.recent
                && let Ok(mut r) = recent.lock()
            {
                if r.len() >= RECENT_ALERTS {
                    r.pop_front();
                }
                r.push_back(json);
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
