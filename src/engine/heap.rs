//! Giving freed heap back to the operating system after a large transient
//! allocation: a `traders` snapshot holds every trader of a shard as Arrow
//! (about 140 bytes a trader), and glibc keeps freed memory below the top
//! of its heap resident. Without a trim, a daily snapshot of a million
//! traders left some 50 MB resident for good (about 50 bytes a trader in
//! `pulse bench --stages flood`).
//!
//! A trim gives back every free page, not only the snapshot's, and each
//! page given back is faulted in again by the next allocation that takes
//! it. While snapshots come fast (a backlog, a replay: one a few seconds
//! or less apart), the memory one freed is taken again by the next
//! straight away: trimming after each made four of five page faults of a
//! 2M-event replay. So a trim runs at most every [`MIN_TRIM_INTERVAL`]
//! (wall clock: memory only, never an output); one held back runs when
//! the next snapshot is due one or when the input has been quiet a second
//! ([`trim_held_back`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Snapshot captures at least this large are followed by a trim.
pub const TRIM_AFTER_BYTES: usize = 8 << 20;

/// The shortest time between two trims.
pub const MIN_TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// When the last trim ran, and whether one was held back since.
struct Trims {
    last: Option<Instant>,
    held_back: bool,
}

static TRIMS: Mutex<Trims> = Mutex::new(Trims {
    last: None,
    held_back: false,
});

/// After a large transient allocation was freed: trims, unless the last
/// trim was less than [`MIN_TRIM_INTERVAL`] ago (then holds it back).
pub fn give_back_free_heap() {
    let Ok(mut t) = TRIMS.lock() else { return };
    if t.last.is_some_and(|l| l.elapsed() < MIN_TRIM_INTERVAL) {
        t.held_back = true;
        return;
    }
    trim_now(t);
}

/// Runs a trim held back, if any (the input is quiet, or a measurement of
/// resident memory is due).
pub fn trim_held_back() {
    let Ok(t) = TRIMS.lock() else { return };
    if t.held_back {
        trim_now(t);
    }
}

/// Trims and notes it (the lock released first: a trim takes a while).
fn trim_now(mut t: std::sync::MutexGuard<'_, Trims>) {
    t.last = Some(Instant::now());
    t.held_back = false;
    drop(t);
    trim();
}

/// Returns free heap pages to the operating system (glibc's
/// `malloc_trim`); nothing where the allocator is another.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer of ours; it only walks the
    // allocator's own free lists, under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
