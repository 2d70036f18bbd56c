//! What the driver loop drives: the engine, its sinks, and the live status.

use std::time::Instant;

use super::message::Message;
use super::sinks::Sinks;
use super::status::publish;
use crate::engine::{Engine, Processed};
use crate::event::{Invalid, Reason};
use crate::http::AppState;

/// The engine with everything around it.
pub struct Core {
    pub engine: Engine,
    pub sinks: Sinks,
    /// Live commands: what `/api/status` and `/metrics` show.
    pub status: Option<AppState>,
    /// Added to the wall clock for the future-timestamp check (the demo's
    /// simulated time runs ahead of it).
    pub clock_ahead_ms: i64,
    /// Live: check the model file for a new version.
    pub reload_model: bool,
    /// `pulse run`: the changelog, transactions and commits.
    pub kafka: Option<super::kafka::KafkaDurability>,
    /// Scale-out: which instance exports each pipeline.
    pub exports: Option<crate::pipeline::Exports>,
    now_ms: i64,
    last_publish: Instant,
    last_read: u64,
}

impl Core {
    pub fn new(engine: Engine, sinks: Sinks) -> Self {
        Self {
            engine,
            sinks,
            status: None,
            clock_ahead_ms: 0,
            reload_model: false,
            kafka: None,
            exports: None,
            now_ms: chrono::Utc::now().timestamp_millis(),
            last_publish: Instant::now(),
            last_read: 0,
        }
    }

    /// Processes one message; a refused or late one goes to its sink.
    #[inline]
    pub fn handle(&mut self, m: &Message) {
        // A message of a partition revoked meanwhile (fetched before the
        // revocation) belongs to its next owner.
        if let Some(d) = &self.kafka
            && d.names.get(m.input).is_none_or(Option::is_none)
        {
            return;
        }
        if let Some(len) = m.too_long {
            let stats = &mut self.engine.ingest.stats;
            stats.read += 1;
            stats.invalid[Reason::TooLong.index()] += 1;
            let limit = m.bytes.len();
            let invalid = Invalid::new(
                Reason::TooLong,
                None,
                format!("{len} bytes; at most {limit} are accepted (raw holds the first {limit})"),
            );
            self.sinks.dead_letter(m, &invalid);
            return;
        }
        let now = self.now_ms + self.clock_ahead_ms;
        match self
            .engine
            .process(m.bytes, m.input, m.offset, now, m.fallback_type)
        {
            Processed::Valid | Processed::Duplicate | Processed::Seen => {}
            Processed::Invalid(invalid) => self.sinks.dead_letter(m, &invalid),
            Processed::Late { ts, frontier } => self.sinks.late_event(m, ts, frontier),
        }
    }

    /// Releases what the frontier passed, runs the pipelines when due and
    /// sends what came out.
    pub fn tick(&mut self) {
        self.now_ms = chrono::Utc::now().timestamp_millis();
        if self.reload_model {
            self.engine
                .risk
                .maybe_reload(&mut self.engine.ingest.decoder.symbols);
        }
        self.engine.advance();
        self.deliver();
    }

    /// Sends the engine's outputs to the sinks.
    pub fn deliver(&mut self) {
        let out = self.engine.take_emitted();
        if !out.is_empty() || out.frontier.is_some() {
            let spare = self.sinks.deliver(out, &self.engine.kpis, Instant::now());
            self.engine.recycle_alerts(spare);
        }
    }

    /// End of input: closes every window and sends everything.
    pub fn finish(&mut self) {
        self.engine.finish();
        self.deliver();
        self.sinks.flush();
    }

    /// Updates `/api/status` and the event metrics (live commands).
    pub fn publish(&mut self, ready: bool) {
        let Some(state) = &self.status else { return };
        let secs = self.last_publish.elapsed().as_secs_f64().max(1e-3);
        let read = self.engine.ingest.stats.read;
        let rate = (read - self.last_read) as f64 / secs;
        state
            .ready
            .store(ready, std::sync::atomic::Ordering::Relaxed);
        publish(
            state,
            &self.engine,
            &self.sinks,
            rate,
            self.exports.as_ref(),
        );
        self.last_read = read;
        self.last_publish = Instant::now();
    }
}
