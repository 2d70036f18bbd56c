//! The Prometheus registry and the product's own metrics. Names follow
//! DESIGN.md: `pulse_<area>_<name>_<unit>`, `_total` on counters, labels from
//! small closed sets only.
//!
//! The hot path counts in plain integers ([`Stats`]); [`Metrics::publish`]
//! moves the increments into Prometheus counters in batches.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::event::{EventType, Reason};
use crate::pipeline::Stats;

/// Metrics of one running pipeline.
pub struct Metrics {
    pub registry: Registry,
    read: IntCounterVec,
    valid: IntCounterVec,
    invalid: IntCounterVec,
    duplicate: IntCounterVec,
    late: IntCounterVec,
    pub traders: IntGauge,
    pub state_bytes: IntGauge,
    published: Stats,
    source: &'static str,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

impl Metrics {
    /// Registers every metric; `source` labels events read (`file`,
    /// `simulator`, `kafka`).
    pub fn new(source: &'static str) -> Self {
        let registry = Registry::new();
        let read = counter(
            &registry,
            "pulse_events_read_total",
            "Messages read, valid or not.",
            &["source"],
        );
        let valid = counter(
            &registry,
            "pulse_events_valid_total",
            "Valid new events, by type.",
            &["type"],
        );
        let invalid = counter(
            &registry,
            "pulse_events_invalid_total",
            "Messages refused and sent to the dead-letter sink, by reason.",
            &["reason"],
        );
        let duplicate = counter(
            &registry,
            "pulse_events_duplicate_total",
            "Events whose event_id was already seen, by type.",
            &["type"],
        );
        let late = counter(
            &registry,
            "pulse_events_late_total",
            "Valid events behind the watermark by more than the grace period, by type.",
            &["type"],
        );
        // Zero-valued series exist from the start, so rate() works at once.
        read.with_label_values(&[source]);
        for t in EventType::ALL {
            valid.with_label_values(&[t.as_str()]);
            duplicate.with_label_values(&[t.as_str()]);
            late.with_label_values(&[t.as_str()]);
        }
        for r in Reason::ALL {
            invalid.with_label_values(&[r.as_str()]);
        }
        let traders = gauge(&registry, "pulse_state_traders", "Traders with state held.");
        let state_bytes = gauge(
            &registry,
            "pulse_state_bytes",
            "Approximate bytes of per-trader and de-duplication state.",
        );
        let build = IntGaugeVec::new(
            Opts::new("pulse_build_info", "Build of the running binary; always 1."),
            &["version"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(build.clone()))
            .expect("metric registered once");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Self {
            registry,
            read,
            valid,
            invalid,
            duplicate,
            late,
            traders,
            state_bytes,
            published: Stats::default(),
            source,
        }
    }

    /// Adds what `stats` counted since the last call.
    pub fn publish(&mut self, stats: &Stats) {
        let p = &self.published;
        self.read
            .with_label_values(&[self.source])
            .inc_by(stats.read - p.read);
        for t in EventType::ALL {
            let i = t.index();
            let label = [t.as_str()];
            self.valid
                .with_label_values(&label)
                .inc_by(stats.valid[i] - p.valid[i]);
            self.duplicate
                .with_label_values(&label)
                .inc_by(stats.duplicate[i] - p.duplicate[i]);
            self.late
                .with_label_values(&label)
                .inc_by(stats.late[i] - p.late[i]);
        }
        for r in Reason::ALL {
            let i = r.index();
            self.invalid
                .with_label_values(&[r.as_str()])
                .inc_by(stats.invalid[i] - p.invalid[i]);
        }
        self.published = stats.clone();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}
