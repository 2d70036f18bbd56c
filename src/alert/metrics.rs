//! Metrics of the churn model and the alerts.

use crate::metrics::register;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::contract::{AlertKind, Severity};
use crate::model::Band;

/// Registered on the service's registry next to the pipeline metrics.
#[derive(Clone)]
pub struct RiskMetrics {
    alerts: IntCounterVec,
    duplicates: IntCounterVec,
    latency: Histogram,
    churn_traders: IntGaugeVec,
    model_info: IntGaugeVec,
    reload_errors: IntCounter,
    reloads: IntCounter,
    scores: IntCounter,
}

impl RiskMetrics {
    pub fn new(r: &Registry) -> Self {
        let alerts = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "pulse_alerts_total",
                    "Alerts emitted, by kind and severity.",
                ),
                &["kind", "severity"],
            ),
        );
        let duplicates = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "pulse_alerts_duplicate_total",
                    "Alerts not sent again because their alert_id was sent already, by kind.",
                ),
                &["kind"],
            ),
        );
        for k in AlertKind::ALL {
            duplicates.with_label_values(&[k.as_str()]);
            for s in Severity::ALL {
                alerts.with_label_values(&[k.as_str(), s.as_str()]);
            }
        }
        let latency = register(
            r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "pulse_alerts_latency_seconds",
                    "From the alert's event time to its emission (pulse run); from the triggering \
                     message's arrival to emission when event time is simulated or replayed.",
                )
                .buckets(vec![
                    0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0,
                ]),
            ),
        );
        let churn_traders = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "pulse_churn_traders",
                    "Traders in each churn-risk band of the loaded model.",
                ),
                &["band"],
            ),
        );
        let model_info = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "pulse_model_info",
                    "The churn model in use (1); name and version as labels.",
                ),
                &["name", "version"],
            ),
        );
        let reload_errors = register(
            r,
            IntCounter::new(
                "pulse_model_reload_errors_total",
                "Model files that changed but could not be loaded; the previous model stays.",
            ),
        );
        let reloads = register(
            r,
            IntCounter::new(
                "pulse_model_reloads_total",
                "Models loaded without a restart.",
            ),
        );
        let scores = register(
            r,
            IntCounter::new(
                "pulse_model_scores_total",
                "Traders scored by the churn model.",
            ),
        );
        Self {
            alerts,
            duplicates,
            latency,
            churn_traders,
            model_info,
            reload_errors,
            reloads,
            scores,
        }
    }

    pub fn alert(&self, kind: AlertKind, severity: Severity, latency_s: f64) {
        self.alerts
            .with_label_values(&[kind.as_str(), severity.as_str()])
            .inc();
        self.latency.observe(latency_s.max(0.0));
    }

    pub fn duplicate(&self, kind: AlertKind) {
        self.duplicates.with_label_values(&[kind.as_str()]).inc();
    }

    pub fn bands(&self, counts: &[i64; 4]) {
        for (b, n) in Band::ALL.iter().zip(counts) {
            self.churn_traders.with_label_values(&[b.as_str()]).set(*n);
        }
    }

    pub fn model(&self, name: &str, version: &str, reloaded: bool) {
        self.model_info.reset();
        self.model_info.with_label_values(&[name, version]).set(1);
        if reloaded {
            self.reloads.inc();
        }
    }

    pub fn reload_error(&self) {
        self.reload_errors.inc();
    }

    pub fn scored(&self, n: u64) {
        self.scores.inc_by(n);
    }
}
