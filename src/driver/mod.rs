//! The one driver loop of `replay`, `demo` and `run`, as Kafka Streams'
//! stream thread: poll the source, hand each message to the engine, and
//! every so often release what the frontier passed (rules, windows,
//! pipelines) and send the outputs to the sinks; at each commit point, a
//! checkpoint of the state goes out with the outputs and the source
//! offsets. The source and the sinks differ by command; the loop,
//! commits, shutdown and metrics exist once.

mod core;
mod kafka;
mod message;
mod sinks;
mod source;
mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use self::core::Core;
pub use kafka::{
    Admin, Delivery, KafkaDurability, KafkaError, StateSettings, create_erasure_topic,
    create_partials_topic, install_hook,
};
pub use message::{From, Headers, Message};
pub use sinks::{RecordSink, Sinks};
pub use source::{FileSource, Polled, ReadError, SimSource, Source};
pub use status::publish;

/// Failures that stop the driver (bad events never do).
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Stopped {
    /// The input ended (a file).
    End,
    /// Caught up and quiet for `exit_when_idle`.
    Idle,
    /// A signal (SIGTERM, Ctrl-C) or the demo's time limit.
    Signal,
}

impl Stopped {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How a run is controlled from outside.
pub struct Control<'a> {
    pub stop: &'a AtomicBool,
    /// Stop once caught up and quiet this long (tests, backfills).
    pub exit_when_idle: Option<Duration>,
    /// Hears (messages, bytes read) at every release of a file source.
    pub progress: Option<&'a dyn Fn(u64, u64)>,
}

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    pub messages: u64,
    pub seconds: f64,
    /// From the first event to the last one.
    pub busy_seconds: f64,
    pub stopped_by: Stopped,
}

/// Messages between releases when reading a file.
const FILE_TICK_EVERY: u64 = 4096;
/// Wall-clock time between releases of a live source.
const LIVE_TICK: Duration = Duration::from_millis(250);
/// Wall-clock time between looks at which instance exports what.
const EXPORTS_EVERY: Duration = Duration::from_secs(5);
/// Input quiet this long: a heap trim held back while snapshots came fast
/// runs (`engine::trim_held_back`).
const QUIET_FOR_TRIM: Duration = Duration::from_secs(1);

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `source` through `core` until the input ends, the source is
/// caught up and idle, or `stop` is set. A Kafka source restores and
/// commits through the core's Kafka durability.
pub fn run(
    source: &mut Source,
    core: &Arc<Mutex<Core>>,
    ctl: &Control,
) -> Result<RunReport, DriverError> {
    let started = Instant::now();
    let live = source.live();
    let mut messages = 0u64;
    let mut first: Option<Instant> = None;
    let mut last_event = Instant::now();
    let mut last_message = Instant::now();
    let mut last_tick = Instant::now();
    let mut since_tick = 0u64;
    let mut last_exports: Option<Instant> = None;
    let mut exports_for: Vec<u32> = Vec::new();
    // Kafka's callbacks take the core inside `poll`: never hold it then.
    let polls_unlocked = matches!(source, Source::Kafka(_));
    let mut guard = Some(lock(core));
    let stopped = loop {
        if ctl.stop.load(Ordering::Relaxed) {
            break Stopped::Signal;
        }
        if let Source::Kafka(k) = &*source {
            guard = None;
            kafka::sync(k, core)?;
        }
        if polls_unlocked {
            guard = None;
        }
        let timeout = Duration::from_millis(100);
        let polled = match &mut *source {
            Source::Kafka(k) => {
                let m = k.poll(timeout);
                // Partitions assigned inside this poll come first: the
                // message may be the first of one, to be restored before.
                kafka::sync(k, core)?;
                match m {
                    Some(m) => Polled::Kafka(source::KafkaMessage::new(k, m)),
                    None => Polled::Quiet,
                }
            }
            other => other.poll(timeout)?,
        };
        let g = guard.get_or_insert_with(|| lock(core));
        // One clock read per message at most, none for a file: the times
        // below serve liveness only (ticks, idleness, the busy time).
        let mut now = None;
        match polled {
            Polled::Message(m) => {
                g.handle(&m);
                messages += 1;
                since_tick += 1;
                if live {
                    let t = *now.insert(Instant::now());
                    last_message = t;
                    last_event = t;
                    first.get_or_insert(t);
                }
            }
            Polled::Kafka(m) => {
                let partials = g.engine.partials_read;
                g.handle(&m.as_message());
                messages += 1;
                since_tick += 1;
                last_message = *now.insert(Instant::now());
                // Busy time counts events: partials read back (scale-out)
                // keep the loop awake but are not input.
                if g.engine.partials_read == partials {
                    last_event = last_message;
                    first.get_or_insert(last_message);
                }
            }
            Polled::Quiet => {}
            Polled::End => break Stopped::End,
        }
        let due = if live {
            now.unwrap_or_else(Instant::now).duration_since(last_tick) >= LIVE_TICK
        } else {
            since_tick >= FILE_TICK_EVERY
        };
        if due {
            g.tick();
            if let (Some(p), Source::File(f)) = (ctl.progress, &*source) {
                p(messages, f.bytes);
            }
            since_tick = 0;
            last_tick = Instant::now();
            if let Source::Kafka(k) = &*source {
                kafka::maybe_commit(k, g)?;
            }
            if live {
                if let Source::Kafka(k) = &*source {
                    // At once when the merges held change, else now and then.
                    let held: Vec<u32> = g.engine.merges.keys().copied().collect();
                    if held != exports_for
                        || last_exports.is_none_or(|t: Instant| t.elapsed() >= EXPORTS_EVERY)
                    {
                        kafka::refresh_exports(k, g);
                        last_exports = Some(Instant::now());
                        exports_for = held;
                    }
                }
                let ready = match &*source {
                    Source::Kafka(_) => kafka::ready(g),
                    _ => true,
                };
                g.publish(ready);
                if last_message.elapsed() >= QUIET_FOR_TRIM {
                    crate::engine::trim_held_back();
                }
            }
        }
        if let (Some(idle), Source::Kafka(k)) = (ctl.exit_when_idle, &*source)
            && last_message.elapsed() >= idle
            && kafka::caught_up(k, g)
        {
            if !g.engine.awaiting_last_partials() {
                break Stopped::Idle;
            }
            // Scale-out: the shards' last partials go out first, and the
            // merges read them back before the last windows close.
            g.engine.finish_sources();
            g.deliver();
            kafka::commit(k, g, false)?;
            last_message = Instant::now();
        }
    };
    let mut g = guard.unwrap_or_else(|| lock(core));
    match stopped {
        Stopped::End | Stopped::Idle => g.finish(),
        // Stopped mid-stream: open windows are not emitted; the checkpoint
        // keeps them for the next start.
        Stopped::Signal => {
            g.tick();
            g.sinks.flush();
        }
    }
    if let Source::Kafka(k) = &*source {
        kafka::commit(k, &mut g, true)?;
    }
    g.publish(false);
    Ok(RunReport {
        messages,
        seconds: started.elapsed().as_secs_f64(),
        busy_seconds: first.map_or(0.0, |f| last_event.duration_since(f).as_secs_f64()),
        stopped_by: stopped,
    })
}
