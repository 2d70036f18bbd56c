//! Watermarks per source partition.

use std::time::{Duration, Instant};

/// Tracks the latest event time of each partition; the watermark is the
/// minimum over active partitions of (latest event time − disorder).
#[derive(Debug, Clone)]
pub struct Watermarks {
    disorder_ms: i64,
    /// Wall-clock silence after which a partition stops holding the
    /// watermark back (live mode only; `None` in replay).
    idle_timeout: Option<Duration>,
    parts: Vec<Option<Part>>,
}

#[derive(Debug, Clone, Copy)]
struct Part {
    max_ts: i64,
    /// Only tracked in live mode (a clock read per event costs in replay).
    last_seen: Option<Instant>,
}

impl Watermarks {
    pub fn new(disorder_ms: i64, idle_timeout: Option<Duration>) -> Self {
        Self {
            disorder_ms,
            idle_timeout,
            parts: Vec::new(),
        }
    }

    /// Records an event of `partition` at event time `ts`.
    #[inline]
    pub fn observe(&mut self, partition: usize, ts: i64) {
        if partition >= self.parts.len() {
            self.parts.resize(partition + 1, None);
        }
        let now = self.idle_timeout.map(|_| Instant::now());
        match &mut self.parts[partition] {
            Some(p) => {
                p.max_ts = p.max_ts.max(ts);
                p.last_seen = now;
            }
            slot => {
                *slot = Some(Part {
                    max_ts: ts,
                    last_seen: now,
                })
            }
        }
    }

    /// Registers a partition that has not delivered yet: it holds the
    /// watermark back until it does (or, live, until it is idle).
    pub fn assign(&mut self, partition: usize) {
        if partition >= self.parts.len() {
            self.parts.resize(partition + 1, None);
        }
        let now = self.idle_timeout.map(|_| Instant::now());
        self.parts[partition].get_or_insert(Part {
            max_ts: i64::MIN,
            last_seen: now,
        });
    }

    /// Forgets a partition (revoked from this consumer).
    pub fn remove(&mut self, partition: usize) {
        if let Some(p) = self.parts.get_mut(partition) {
            *p = None;
        }
    }

    /// The overall watermark, `None` before any event.
    pub fn watermark(&self) -> Option<i64> {
        let now = self.idle_timeout.map(|_| Instant::now());
        let active = |p: &&Part| match (self.idle_timeout, p.last_seen, now) {
            (Some(t), Some(seen), Some(now)) => now.duration_since(seen) < t,
            _ => true,
        };
        let parts = || self.parts.iter().flatten();
        let min_active = parts().filter(active).map(|p| p.max_ts).min();
        // When every partition is idle nothing new is arriving, so the
        // slowest still holds the watermark: a quiet spell never makes the
        // next events late. A partition assigned but silent (max_ts = MIN)
        // holds everything back.
        min_active
            .or_else(|| parts().map(|p| p.max_ts).min())
            .filter(|t| *t != i64::MIN)
            .map(|t| t.saturating_sub(self.disorder_ms))
    }

    /// The latest event time of a partition (`None` before its first event).
    pub fn max_of(&self, partition: usize) -> Option<i64> {
        self.parts
            .get(partition)?
            .as_ref()
            .map(|p| p.max_ts)
            .filter(|t| *t != i64::MIN)
    }

    /// Sets a partition's latest event time (a restored checkpoint).
    pub fn restore(&mut self, partition: usize, max_ts: i64) {
        self.assign(partition);
        if let Some(p) = &mut self.parts[partition] {
            p.max_ts = p.max_ts.max(max_ts);
        }
    }

    /// Latest event time seen on any partition.
    pub fn max_event_time(&self) -> Option<i64> {
        self.parts
            .iter()
            .flatten()
            .map(|p| p.max_ts)
            .filter(|t| *t != i64::MIN)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_partition_holds_the_watermark() {
        let mut w = Watermarks::new(10, None);
        assert_eq!(w.watermark(), None);
        w.observe(0, 100);
        w.observe(1, 50);
        assert_eq!(w.watermark(), Some(40));
        w.observe(1, 200);
        assert_eq!(w.watermark(), Some(90));
        w.remove(0);
        assert_eq!(w.watermark(), Some(190));
    }

    #[test]
    fn idle_partitions_stop_holding_it_back() {
        let mut w = Watermarks::new(0, Some(Duration::from_millis(50)));
        w.observe(0, 100);
        w.observe(1, 10);
        assert_eq!(w.watermark(), Some(10));
        std::thread::sleep(Duration::from_millis(60));
        // Both idle at once: nothing new arrives, the slowest still holds it.
        assert_eq!(w.watermark(), Some(10));
        // Partition 0 goes on, 1 stays silent: 1 no longer holds it back.
        w.observe(0, 120);
        assert_eq!(w.watermark(), Some(120));
    }

    #[test]
    fn an_assigned_silent_partition_holds_it_back() {
        let mut w = Watermarks::new(10, None);
        w.assign(1);
        w.observe(0, 100);
        assert_eq!(w.watermark(), None);
        w.observe(1, 50);
        assert_eq!(w.watermark(), Some(40));
    }
}
