//! Where outputs go: KPI rows (NDJSON file, KPI topic, `/api/kpis`,
//! Prometheus), alerts (JSONL file, alert topic, `/api/alerts`, metrics),
//! dead letters and late events (a file or a topic).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::message::Message;
use crate::alert::{Alert, AlertOutputs};
use crate::engine::{Emitted, ErasureAudit, Kpis};
use crate::event::Invalid;
use crate::event::time::format_rfc3339_ms;
use crate::metrics::Metrics;
use crate::pipeline::{DeadLetter, KpiRow, KpiSink, LateEvent, NdjsonFile, SharedBoard};
use crate::sink::KafkaSink;

/// A sink of records: a file, or a topic.
#[derive(Default)]
pub enum RecordSink {
    #[default]
    None,
    /// An NDJSON file, created when the first record comes.
    File {
        path: PathBuf,
        file: Option<NdjsonFile>,
    },
    /// A topic; the record keeps the message's key, bytes and headers.
    Topic { sink: KafkaSink, topic: String },
}

impl RecordSink {
    /// An NDJSON file created now (so it exists even when empty).
    pub fn file_now(path: &Path) -> std::io::Result<Self> {
        Ok(RecordSink::File {
            path: path.to_owned(),
            file: Some(NdjsonFile::create(path)?),
        })
    }

    /// An NDJSON file created with its first record.
    pub fn file_later(path: &Path) -> Self {
        RecordSink::File {
            path: path.to_owned(),
            file: None,
        }
    }

    fn file(&mut self) -> std::io::Result<Option<&mut NdjsonFile>> {
        match self {
            RecordSink::File { path, file } => {
                if file.is_none() {
                    *file = Some(NdjsonFile::create(path)?);
                }
                Ok(file.as_mut())
            }
            _ => Ok(None),
        }
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        match self {
            RecordSink::File { file: Some(f), .. } => f.written(),
            _ => 0,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            RecordSink::File { file: Some(f), .. } => f.flush(),
            _ => Ok(()),
        }
    }
}

/// Every output of one run.
#[derive(Default)]
pub struct Sinks {
    pub kpi_file: Option<KpiSink>,
    /// KPI topic (key = pipeline).
    pub kpi_topic: Option<(KafkaSink, String)>,
    pub board: Option<SharedBoard>,
    pub metrics: Option<Arc<Mutex<Metrics>>>,
    /// Keeps every row in memory (tests, bench).
    pub keep_kpis: Option<Vec<KpiRow>>,
    pub kpi_rows: u64,
    pub alerts: AlertOutputs,
    pub dead: RecordSink,
    pub late: RecordSink,
    /// Audit topic of erasures (key = request id).
    pub audit: Option<(KafkaSink, String)>,
    /// Scale-out: the partials topic (partition = the merge's).
    pub partials: Option<(KafkaSink, String)>,
    /// Erasures applied.
    pub erasures: u64,
    /// The first file that failed, with its error; reported when the run ends.
    pub error: Option<(String, std::io::Error)>,
}

impl Sinks {
    fn failed(&mut self, what: &str, e: std::io::Error) {
        if self.error.is_none() {
            tracing::error!(sink = what, error = %e, "write failed");
            self.error = Some((what.to_owned(), e));
        }
    }

    /// Sends one invalid message to the dead-letter sink.
    pub fn dead_letter(&mut self, m: &Message, invalid: &Invalid) {
        match &mut self.dead {
            RecordSink::None => {}
            RecordSink::Topic { sink, topic } => {
                let mut headers: Vec<(&str, Vec<u8>)> = vec![
                    ("pulse.reason", invalid.reason.as_str().as_bytes().to_vec()),
                    (
                        "pulse.field",
                        invalid.field.unwrap_or_default().as_bytes().to_vec(),
                    ),
                    ("pulse.message", invalid.message.as_bytes().to_vec()),
                ];
                source_headers(m, &mut headers);
                send_with_headers(sink, "dead_letters", topic, m, &headers);
            }
            RecordSink::File { .. } => {
                let origin = m.from.origin();
                let record = DeadLetter::new(&origin, invalid, m.bytes);
                let r = self.dead.file().and_then(|f| match f {
                    Some(f) => f.write(&record),
                    None => Ok(()),
                });
                if let Err(e) = r {
                    self.failed("dead letters", e);
                }
            }
        }
    }

    /// Sends one late event to the late sink.
    pub fn late_event(&mut self, m: &Message, ts: i64, frontier: i64) {
        match &mut self.late {
            RecordSink::None => {}
            RecordSink::Topic { sink, topic } => {
                let mut headers: Vec<(&str, Vec<u8>)> = vec![
                    ("pulse.reason", b"late".to_vec()),
                    ("pulse.event_time", format_rfc3339_ms(ts).into_bytes()),
                    ("pulse.frontier", format_rfc3339_ms(frontier).into_bytes()),
                ];
                source_headers(m, &mut headers);
                send_with_headers(sink, "late", topic, m, &headers);
            }
            RecordSink::File { .. } => {
                let origin = m.from.origin();
                let record = LateEvent {
                    origin: &origin,
                    event_time: format_rfc3339_ms(ts),
                    frontier: format_rfc3339_ms(frontier),
                    raw: std::str::from_utf8(m.bytes).unwrap_or_default(),
                };
                let r = self.late.file().and_then(|f| match f {
                    Some(f) => f.write(&record),
                    None => Ok(()),
                });
                if let Err(e) = r {
                    self.failed("late events", e);
                }
            }
        }
    }

    /// Sends what the engine produced: KPI rows and alerts.
    /// Gives back the alerts' vector, empty, for the engine to fill again.
    pub fn deliver(&mut self, mut out: Emitted, kpis: &Kpis, created: Instant) -> Vec<Alert> {
        for (i, rows) in &out.kpis {
            let planned = &kpis.pipelines[*i].p;
            let name = &planned.name;
            self.kpi_rows += rows.len() as u64;
            if let Some(sink) = &mut self.kpi_file
                && let Err(e) = sink.write(rows)
            {
                self.failed("KPI file", e);
            }
            if let Some((sink, topic)) = &self.kpi_topic {
                for r in rows {
                    #[expect(
                        clippy::expect_used,
                        reason = "a KPI row is text and numbers: serialising it cannot fail"
                    )]
                    let payload = serde_json::to_string(&r.json()).expect("a KPI row serialises");
                    sink.send("kpis", topic, name.as_bytes(), payload.as_bytes(), &[]);
                }
            }
            if let Some(board) = &self.board
                && let Ok(mut b) = board.lock()
            {
                b.update(name, rows);
            }
            if let Some(m) = &self.metrics
                && let Ok(mut m) = m.lock()
            {
                m.record_kpis(planned, rows);
            }
        }
        if let Some(keep) = &mut self.keep_kpis {
            keep.extend(out.kpis.iter().flat_map(|(_, r)| r.iter().cloned()));
        }
        if let (Some(board), Some(frontier)) = (&self.board, out.frontier)
            && let Ok(mut b) = board.lock()
        {
            b.as_of = Some(format_rfc3339_ms(frontier));
        }
        self.alerts.emit_all(&mut out.alerts, created);
        if let Some(e) = self.alerts.error.take() {
            self.failed("alerts file", e);
        }
        for a in out.erasures {
            self.erased(&a);
        }
        if let Some((sink, topic)) = &self.partials {
            for (k, bytes) in &out.partials {
                let key = k.to_string();
                if let Err(e) = sink.send_to(
                    "partials",
                    topic,
                    Some(*k as i32),
                    key.as_bytes(),
                    Some(bytes),
                    &[],
                ) {
                    tracing::error!(error = %e, partition = k, "cannot send a partial");
                }
            }
        }
        out.alerts.clear();
        out.alerts
    }

    /// Sends the audit record of an erasure and forgets the trader's
    /// recent alerts. The log names the request, never the trader.
    fn erased(&mut self, a: &ErasureAudit) {
        self.erasures += 1;
        tracing::info!(request = %a.request_id, partition = a.partition, found = a.found, events_dropped = a.events_dropped, "erasure applied");
        if let Some((sink, topic)) = &self.audit
            && let Ok(payload) = serde_json::to_vec(a)
        {
            sink.send("audit", topic, a.request_id.as_bytes(), &payload, &[]);
        }
        if let Some(recent) = &self.alerts.recent
            && let Ok(mut r) = recent.lock()
        {
            r.retain(|x| x.trader_id.as_deref() != Some(a.trader_id.as_str()));
        }
        if let Some(m) = &self.metrics
            && let Ok(m) = m.lock()
        {
            m.erasure(a.found);
        }
    }

    /// Flushes the file sinks.
    pub fn flush(&mut self) {
        if let Some(s) = &mut self.kpi_file
            && let Err(e) = s.flush()
        {
            self.failed("KPI file", e);
        }
        self.alerts.flush();
        if let Some(e) = self.alerts.error.take() {
            self.failed("alerts file", e);
        }
        for (what, sink) in [("dead letters", 0), ("late events", 1)] {
            let s = if sink == 0 {
                &mut self.dead
            } else {
                &mut self.late
            };
            if let Err(e) = s.flush() {
                self.failed(what, e);
            }
        }
    }
}

/// Where the message came from, then its own headers.
fn source_headers<'a>(m: &Message<'a>, headers: &mut Vec<(&'a str, Vec<u8>)>) {
    if let super::message::From::Kafka {
        topic,
        partition,
        offset,
    } = m.from
    {
        headers.push(("pulse.source.topic", topic.as_bytes().to_vec()));
        headers.push(("pulse.source.partition", partition.to_string().into_bytes()));
        headers.push(("pulse.source.offset", offset.to_string().into_bytes()));
    }
    for (k, v) in m.headers.read() {
        headers.push((k, v.to_vec()));
    }
}

fn send_with_headers(
    sink: &KafkaSink,
    name: &'static str,
    topic: &str,
    m: &Message,
    headers: &[(&str, Vec<u8>)],
) {
    let refs: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    sink.send(name, topic, m.key, m.bytes, &refs);
}
