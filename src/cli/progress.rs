//! Progress bars (indicatif) for commands that can run longer than a
//! moment: drawn on stderr only when it is a terminal and `--quiet` was not
//! given, so pipes, logs and tests see nothing of them.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: no progress at all.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

fn shown() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

fn new_bar(total: Option<u64>, template: &str) -> ProgressBar {
    if !shown() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Bytes of an input file: done, total, rate, ETA; the message carries the
/// events (see [`events`]).
pub fn bytes(what: &str, total: u64) -> ProgressBar {
    let bar = new_bar(
        Some(total),
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {msg} ({elapsed}, ETA {eta})",
    );
    bar.set_prefix(what.to_owned());
    bar
}

/// Steps of a known count (simulated days, say).
pub fn steps(what: &str, total: u64, unit: &str) -> ProgressBar {
    let bar = new_bar(
        Some(total),
        &format!(
            "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}}, ETA {{eta}})"
        ),
    );
    bar.set_prefix(what.to_owned());
    bar
}

/// A phase of unknown length: a spinner with its name and the time spent.
pub fn phase(what: &str) -> ProgressBar {
    let bar = new_bar(None, "{spinner} {msg} ({elapsed})");
    bar.set_message(what.to_owned());
    bar
}

/// "N events, R/s" for a bar's message.
pub fn events(bar: &ProgressBar, events: u64) {
    if bar.is_hidden() {
        return;
    }
    let secs = bar.elapsed().as_secs_f64().max(1e-3);
    bar.set_message(format!("{events} events, {:.0}/s", events as f64 / secs));
}
