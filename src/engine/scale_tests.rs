//! Scale-out in process: shards split over two engines, each merging the
//! partials partitions of its own input partitions, export exactly the
//! KPI rows and alert ids of one engine holding every partition, even
//! when a partition and its merge move to the other engine half-way
//! through (checkpointed and restored, as a rebalance does).

use std::collections::BTreeMap;

use super::*;
use crate::state::{Global, Record, checkpoint_shards, restore_shard};

const PARTITIONS: u32 = 4;
/// Partials partition `k` is input `PARTIALS + k`.
const PARTIALS: usize = 100;

fn engine(scale_out: bool) -> Engine {
    let mut e = crate::state::tests::engine();
    if scale_out {
        e.enable_scale_out(PARTITIONS);
    }
    e
}

/// The simulated history, each line with its partition (by trader id, as
/// a keyed producer places it).
fn partitioned() -> Vec<(u32, Vec<u8>)> {
    crate::state::tests::simulated(7)
        .into_iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(&l).unwrap_or_default();
            let id = v["trader_id"].as_str().unwrap_or_default();
            let h = id.bytes().fold(2_166_136_261_u32, |h, b| {
                (h ^ b as u32).wrapping_mul(16_777_619)
            });
            (h % PARTITIONS, l)
        })
        .collect()
}

#[derive(Default)]
struct Seen {
    rows: Vec<String>,
    alerts: Vec<String>,
}

impl Seen {
    /// Takes an engine's outputs; its partials come back as returned.
    fn take(&mut self, e: &mut Engine) -> Vec<(u32, Vec<u8>)> {
        let out = e.take_emitted();
        self.rows.extend(
            out.kpis
                .iter()
                .flat_map(|(_, r)| r.iter().map(|x| serde_json::to_string(&x.json()).unwrap())),
        );
        self.alerts
            .extend(out.alerts.iter().map(|a| a.alert_id.to_string()));
        out.partials
    }
}

/// A group of engines: which engine holds each partition.
struct Group {
    engines: Vec<Engine>,
    owner: Vec<usize>,
    offsets: BTreeMap<usize, i64>,
    seen: Seen,
    /// The changelog: the latest value of each key, per shard.
    changelog: BTreeMap<u32, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Group {
    fn hold(&mut self, engine: usize, k: u32) {
        self.owner[k as usize] = engine;
        let e = &mut self.engines[engine];
        e.open_input(k as usize, k, 0);
        e.open_partials_input(PARTIALS + k as usize, k, 0);
    }

    /// Takes every engine's outputs and hands the partials to the merges
    /// until none are left.
    fn exchange(&mut self) {
        loop {
            let mut sent = Vec::new();
            for e in &mut self.engines {
                sent.extend(self.seen.take(e));
            }
            if sent.is_empty() {
                return;
            }
            self.deliver(sent);
            for e in &mut self.engines {
                e.advance();
            }
        }
    }

    /// Hands partials to the merges of their partitions, as the partials
    /// topic does.
    fn deliver(&mut self, sent: Vec<(u32, Vec<u8>)>) {
        for (k, bytes) in sent {
            let input = PARTIALS + k as usize;
            let offset = self.offsets.entry(input).or_default();
            let e = &mut self.engines[self.owner[k as usize]];
            let r = e.process(&bytes, input, *offset, i64::MAX / 2, None);
            assert!(matches!(r, Processed::Valid), "{r:?}");
            *offset += 1;
        }
    }

    fn feed(&mut self, lines: &[(u32, Vec<u8>)], range: std::ops::Range<usize>) {
        for i in range {
            let (k, line) = &lines[i];
            let e = &mut self.engines[self.owner[*k as usize]];
            e.process(line, *k as usize, i as i64, i64::MAX / 2, None);
            if i % 500 == 499 {
                for e in &mut self.engines {
                    e.advance();
                }
                self.exchange();
            }
        }
    }

    /// Partition `k` and its merge move from their engine to `to`.
    fn move_partition(&mut self, k: u32, to: usize) {
        let from = self.owner[k as usize];
        self.exchange();
        // What settles goes out with the checkpoint, before the move.
        self.engines[from].settle();
        let partials = self.seen.take(&mut self.engines[from]);
        self.deliver(partials);
        let e = &mut self.engines[from];
        let deltas = checkpoint_shards(e, &[k], &|i| ("t".into(), i as i32), Global::default());
        let log = self.changelog.entry(k).or_default();
        for (key, value) in deltas.into_iter().flat_map(|d| d.records) {
            match value {
                Some(v) => log.insert(key, v),
                None => log.remove(&key),
            };
        }
        let records: Vec<Record> = log
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                key: key.clone(),
                value: value.clone(),
                offset: Some(i as i64),
            })
            .collect();
        // Revoked: its inputs close, but the shard and its merge stay in
        // memory (parked) while the engine goes on until the group says
        // where they go; whatever it emits meanwhile goes out too.
        e.close_input(k as usize);
        e.close_input(PARTIALS + k as usize);
        e.park_shard(k, true);
        e.advance();
        let meanwhile = self.seen.take(&mut self.engines[from]);
        self.engines[from].drop_shard(k);
        let to_engine = &mut self.engines[to];
        let r = restore_shard(to_engine, k, records).expect("restores");
        assert!(r.corrupt.is_empty(), "{:?}", r.corrupt);
        self.owner[k as usize] = to;
        for inp in r.inputs {
            let index = inp.partition as usize;
            if index >= PARTIALS {
                to_engine.open_partials_input(index, k, inp.next_offset);
            } else {
                to_engine.open_input(index, k, inp.next_offset);
                if let Some(ts) = inp.max_ts {
                    to_engine.watermarks.restore(index, ts);
                }
            }
        }
        self.deliver(meanwhile);
    }

    fn finish(mut self) -> (Vec<String>, Vec<String>) {
        for e in &mut self.engines {
            e.finish_sources();
        }
        self.exchange();
        for e in &mut self.engines {
            e.finish();
        }
        self.exchange();
        let mut s = self.seen;
        s.rows.sort();
        s.alerts.sort();
        (s.rows, s.alerts)
    }
}

fn group(engines: usize, scale_out: bool) -> Group {
    let mut g = Group {
        engines: (0..engines).map(|_| engine(scale_out)).collect(),
        owner: vec![0; PARTITIONS as usize],
        offsets: BTreeMap::new(),
        seen: Seen::default(),
        changelog: BTreeMap::new(),
    };
    for k in 0..PARTITIONS {
        let e = k as usize * engines / PARTITIONS as usize;
        if scale_out {
            g.hold(e, k);
        } else {
            g.owner[k as usize] = e;
            g.engines[e].open_input(k as usize, k, 0);
        }
    }
    g
}

fn golden(lines: &[(u32, Vec<u8>)]) -> (Vec<String>, Vec<String>) {
    let mut g = group(1, false);
    g.feed(lines, 0..lines.len());
    g.engines[0].finish();
    g.exchange();
    let mut s = g.seen;
    s.rows.sort();
    s.alerts.sort();
    (s.rows, s.alerts)
}

fn assert_same(what: &str, got: &[String], want: &[String]) {
    let missing: Vec<&String> = want.iter().filter(|r| !got.contains(r)).collect();
    let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && got == want,
        "{what}: {} got, {} golden; missing {}: {:?}\nextra {}: {:?}",
        got.len(),
        want.len(),
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)]
    );
}

#[test]
fn two_engines_merging_their_partials_export_what_one_engine_does() {
    let lines = partitioned();
    let (want_rows, want_alerts) = golden(&lines);
    assert!(want_rows.len() > 1000 && want_alerts.len() > 50);
    let mut g = group(2, true);
    g.feed(&lines, 0..lines.len());
    let (rows, alerts) = g.finish();
    assert_same("KPI rows", &rows, &want_rows);
    assert_same("alert ids", &alerts, &want_alerts);
}

#[test]
fn partitions_and_their_merges_moving_between_engines_change_nothing() {
    let lines = partitioned();
    let (want_rows, want_alerts) = golden(&lines);
    let n = lines.len();
    // One engine, then two, then three, then one again.
    let mut g = group(1, true);
    g.engines.push(engine(true));
    g.engines.push(engine(true));
    g.feed(&lines, 0..n / 4);
    g.move_partition(2, 1);
    g.move_partition(3, 1);
    g.feed(&lines, n / 4..n / 2);
    g.move_partition(1, 2);
    g.move_partition(3, 2);
    g.feed(&lines, n / 2..3 * n / 4);
    for k in 1..PARTITIONS {
        g.move_partition(k, 0);
    }
    g.feed(&lines, 3 * n / 4..n);
    let (rows, alerts) = g.finish();
    assert_same("KPI rows", &rows, &want_rows);
    assert_same("alert ids", &alerts, &want_alerts);
}
