//! The checkpoint round trip: an engine stopped half-way, saved, restored
//! into a fresh engine and run to the end gives exactly what one engine
//! running through gives; every state type round-trips; a record of
//! another format version is refused; a corrupted one is reported and
//! skipped.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::alert::Alert;
use crate::engine::{Engine, EngineConfig};
use crate::model::Model;
use crate::sim::{SimConfig, Simulator};

/// An engine over the built-in catalogue with the bundled model.
pub(crate) fn engine() -> Engine {
    let mut e = Engine::new(EngineConfig::default(), None).expect("the catalogue plans");
    e.risk.use_model(
        Arc::new(Model::bundled()),
        &mut e.ingest.decoder.symbols,
        false,
    );
    e
}

fn lines() -> Vec<Vec<u8>> {
    simulated(3)
}

/// The NDJSON lines of a simulated history of 300 traders over 20 days.
pub(crate) fn simulated(seed: u64) -> Vec<Vec<u8>> {
    let bytes = Simulator::to_ndjson(SimConfig {
        seed,
        traders: 300,
        days: 20,
        ..SimConfig::default()
    });
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Feeds lines `range` of `lines` (input 0, shard 0), releasing every 500.
fn feed(e: &mut Engine, lines: &[Vec<u8>], range: std::ops::Range<usize>, out: &mut Outputs) {
    for i in range {
        e.process(&lines[i], 0, i as i64, i64::MAX / 2, None);
        if i % 500 == 499 {
            e.advance();
            out.take(e);
        }
    }
}

#[derive(Default)]
struct Outputs {
    rows: Vec<String>,
    alerts: Vec<String>,
}

impl Outputs {
    fn take(&mut self, e: &mut Engine) {
        let out = e.take_emitted();
        self.rows.extend(
            out.kpis
                .iter()
                .flat_map(|(_, r)| r.iter().map(|r| serde_json::to_string(&r.json()).unwrap())),
        );
        self.alerts
            .extend(out.alerts.iter().map(|a: &Alert| a.alert_id.to_string()));
    }
    fn sorted(mut self) -> (Vec<String>, Vec<String>) {
        self.rows.sort();
        self.alerts.sort();
        (self.rows, self.alerts)
    }
}

/// The latest value of every key of the deltas, per shard, as records.
fn compact(deltas: &[ShardDelta]) -> BTreeMap<u32, Vec<Record>> {
    let mut latest: BTreeMap<(u32, Vec<u8>), Vec<u8>> = BTreeMap::new();
    for d in deltas {
        for (k, v) in &d.records {
            match v {
                Some(v) => latest.insert((d.shard, k.clone()), v.clone()),
                None => latest.remove(&(d.shard, k.clone())),
            };
        }
    }
    let mut out: BTreeMap<u32, Vec<Record>> = BTreeMap::new();
    for (offset, ((shard, key), value)) in latest.into_iter().enumerate() {
        out.entry(shard).or_default().push(Record {
            key,
            value,
            offset: Some(offset as i64),
        });
    }
    out
}

/// Settles the engine (its outputs go to `out`) and checkpoints it.
fn save_into(e: &mut Engine, out: &mut Outputs) -> Vec<ShardDelta> {
    e.settle();
    out.take(e);
    checkpoint(e, &|_| ("events".into(), 0), Global::default())
}

fn save(e: &mut Engine) -> Vec<ShardDelta> {
    save_into(e, &mut Outputs::default())
}

#[test]
fn stopping_saving_and_restoring_changes_no_output() {
    let lines = lines();
    let n = lines.len();
    // One engine through.
    let mut whole = engine();
    let mut want = Outputs::default();
    feed(&mut whole, &lines, 0..n, &mut want);
    whole.finish();
    want.take(&mut whole);
    let (want_rows, want_alerts) = want.sorted();
    assert!(want_rows.len() > 1000 && want_alerts.len() > 50);

    // Stopped twice, each time saved (incrementally) and restored into a
    // fresh engine.
    let mut got = Outputs::default();
    let mut first = engine();
    feed(&mut first, &lines, 0..n / 3, &mut got);
    let mut deltas = save_into(&mut first, &mut got);
    feed(&mut first, &lines, n / 3..n / 2, &mut got);
    first.advance();
    got.take(&mut first);
    deltas.extend(save_into(&mut first, &mut got));
    drop(first);
    let mut second = engine();
    for (shard, records) in compact(&deltas) {
        let r = restore_shard(&mut second, shard, records).expect("restores");
        assert!(r.corrupt.is_empty(), "{:?}", r.corrupt);
        assert_eq!(r.inputs[0].next_offset, (n / 2) as i64);
        second.open_input(0, shard, r.inputs[0].next_offset);
        if let Some(ts) = r.inputs[0].max_ts {
            second.watermarks.restore(0, ts);
        }
    }
    feed(&mut second, &lines, n / 2..2 * n / 3, &mut got);
    deltas.extend(save_into(&mut second, &mut got));
    drop(second);
    let mut third = engine();
    for (shard, records) in compact(&deltas) {
        let r = restore_shard(&mut third, shard, records).expect("restores");
        third.open_input(0, shard, r.inputs[0].next_offset);
        if let Some(ts) = r.inputs[0].max_ts {
            third.watermarks.restore(0, ts);
        }
    }
    feed(&mut third, &lines, 2 * n / 3..n, &mut got);
    third.finish();
    got.take(&mut third);
    let (rows, alerts) = got.sorted();
    let missing: Vec<&String> = want_rows.iter().filter(|r| !rows.contains(r)).collect();
    let extra: Vec<&String> = rows.iter().filter(|r| !want_rows.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {}: {:?}\nextra {}: {:?}",
        missing.len(),
        &missing[..missing.len().min(8)],
        extra.len(),
        &extra[..extra.len().min(8)]
    );
    assert!(rows == want_rows, "KPI rows differ after two restores");
    assert_eq!(alerts, want_alerts);
}

#[test]
fn every_state_type_round_trips() {
    let lines = lines();
    let mut e = engine();
    let mut out = Outputs::default();
    feed(&mut e, &lines, 0..lines.len() / 2, &mut out);
    // Some events still wait for the frontier, some rows wait for windows.
    assert!(e.pending() > 0);
    let records = compact(&save(&mut e));
    let mut r = engine();
    for (shard, recs) in records.clone() {
        restore_shard(&mut r, shard, recs).expect("restores");
    }
    // A restored engine knows what is saved: its next checkpoint holds
    // only its progress (and the symbol table, numbered its own way).
    let again: Vec<u8> = save(&mut r)
        .iter()
        .flat_map(|d| d.records.iter().map(|(k, _)| k[0]))
        .collect();
    assert!(
        again.iter().all(|k| [b'm', b'g', b'y'].contains(k)),
        "{:?}",
        again.iter().map(|&k| k as char).collect::<String>()
    );
    assert!(!records.is_empty());
    let shard = 0;
    assert_eq!(
        e.traders.rows.shard(shard),
        r.traders.rows.shard(shard),
        "trader state"
    );
    assert_eq!(
        e.risk.rules.states.shard(shard),
        r.risk.rules.states.shard(shard),
        "alert rule state"
    );
    let (es, rs) = (
        e.risk.scorer.as_ref().unwrap(),
        r.risk.scorer.as_ref().unwrap(),
    );
    assert_eq!(es.traders.shard(shard), rs.traders.shard(shard), "scoring");
    assert_eq!(es.counts, rs.counts, "churn bands");
    assert_eq!(e.pending(), r.pending(), "waiting events");
    assert_eq!(e.frontier(), r.frontier(), "frontier");
    assert_eq!(e.risk.clocks, r.risk.clocks, "clocks");
    assert_eq!(e.risk.sent[0].len(), r.risk.sent[0].len(), "alert ids sent");
    let sh = |x: &Engine| x.shards[0].as_ref().unwrap().dedup.len();
    assert_eq!(sh(&e), sh(&r), "de-duplication ids");
    assert_eq!(e.kpis.bytes() > 0, r.kpis.bytes() > 0, "window rows");
    for (a, b) in e.kpis.pipelines.iter().zip(&r.kpis.pipelines) {
        assert_eq!(a.progress, b.progress, "progress of {}", a.p.name);
        assert_eq!(
            a.slices[0].len(),
            b.slices[0].len(),
            "slices of {}",
            a.p.name
        );
    }
    assert_eq!(e.names().len(), r.names().len(), "trader names");
}

#[test]
fn another_format_version_is_refused_before_anything_loads() {
    let lines = lines();
    let mut e = engine();
    feed(&mut e, &lines, 0..2000, &mut Outputs::default());
    let mut records = compact(&save(&mut e)).remove(&0).unwrap();
    // A record as a future version would write it.
    records[1].value[2..4].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let mut r = engine();
    let err = restore_shard(&mut r, 0, records).unwrap_err().to_string();
    assert!(
        err.contains(&format!("format version {}", FORMAT_VERSION + 1))
            && err.contains(&format!("reads version {FORMAT_VERSION}")),
        "{err}"
    );
    assert_eq!(r.names().len(), 0, "nothing was loaded");
}

#[test]
fn a_corrupted_record_is_reported_with_its_offset_and_skipped() {
    let lines = lines();
    let mut e = engine();
    feed(&mut e, &lines, 0..2000, &mut Outputs::default());
    let mut records = compact(&save(&mut e)).remove(&0).unwrap();
    let t = records
        .iter()
        .position(|r| r.key[0] == b't')
        .expect("a trader record");
    records[t].value.truncate(6);
    let offset = records[t].offset;
    let mut r = engine();
    let restored = restore_shard(&mut r, 0, records).expect("goes on");
    assert_eq!(restored.corrupt.len(), 1);
    assert_eq!(restored.corrupt[0].offset, offset);
    assert!(restored.corrupt[0].key.contains("Trader"));
    // The other traders are there, ids in place.
    assert_eq!(r.names().len(), e.names().len());
}

/// Properties of stopping anywhere (proptest): the committed offset is
/// exactly the next message not applied (never past one still to apply,
/// never short of one applied), and a restore there, whatever the release
/// cadence before and after, continues to exactly the uninterrupted output.
mod properties {
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    /// The history's lines and the uninterrupted run's sorted rows and alerts.
    type Fixture = (Vec<Vec<u8>>, (Vec<String>, Vec<String>));

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| {
            let lines = lines();
            let mut whole = engine();
            let mut want = Outputs::default();
            feed(&mut whole, &lines, 0..lines.len(), &mut want);
            whole.finish();
            want.take(&mut whole);
            (lines, want.sorted())
        })
    }

    /// Feeds `range`, releasing every `every` messages.
    fn feed_every(
        e: &mut Engine,
        lines: &[Vec<u8>],
        range: std::ops::Range<usize>,
        every: usize,
        out: &mut Outputs,
    ) {
        for i in range {
            e.process(&lines[i], 0, i as i64, i64::MAX / 2, None);
            if i % every == every - 1 {
                e.advance();
                out.take(e);
            }
        }
    }

    proptest! {
        // Each case runs the engine over the whole history: few cases.
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn a_stop_anywhere_commits_the_next_unapplied_offset_and_changes_nothing(
            cut in 0.0_f64..1.0,
            every_before in 1_usize..3000,
            every_after in 1_usize..3000,
        ) {
            let (lines, (want_rows, want_alerts)) = fixture();
            let n = lines.len();
            let cut = ((n as f64) * cut) as usize;
            let mut got = Outputs::default();
            let mut first = engine();
            feed_every(&mut first, lines, 0..cut, every_before, &mut got);
            let deltas = save_into(&mut first, &mut got);
            drop(first);
            let mut second = engine();
            for (shard, records) in compact(&deltas) {
                let r = restore_shard(&mut second, shard, records).expect("restores");
                prop_assert!(r.corrupt.is_empty());
                prop_assert_eq!(r.inputs[0].next_offset, cut as i64);
                second.open_input(0, shard, r.inputs[0].next_offset);
                if let Some(ts) = r.inputs[0].max_ts {
                    second.watermarks.restore(0, ts);
                }
            }
            feed_every(&mut second, lines, cut..n, every_after, &mut got);
            second.finish();
            got.take(&mut second);
            let (rows, alerts) = got.sorted();
            prop_assert!(&rows == want_rows, "KPI rows differ after a stop at {}", cut);
            prop_assert!(&alerts == want_alerts, "alerts differ after a stop at {}", cut);
        }
    }
}

#[test]
fn an_erasure_survives_a_restore_and_leaves_nothing_of_the_trader() {
    let lines = lines();
    let n = lines.len();
    let half = n / 2;
    // The trader of the last event fed: it still waits for the frontier.
    let last: serde_json::Value = serde_json::from_slice(&lines[half - 1]).expect("json");
    let name = last["trader_id"].as_str().expect("trader_id").to_owned();
    let erase = |e: &mut Engine| {
        let dropped = e
            .forget_trader(0, &name)
            .expect("the shard holds the trader");
        assert!(dropped > 0, "its latest events were still waiting");
        assert_eq!(e.forget_trader(0, &name), None, "forgotten already");
    };

    // Erased and run through.
    let mut whole = engine();
    let mut want = Outputs::default();
    feed(&mut whole, &lines, 0..half, &mut want);
    erase(&mut whole);
    feed(&mut whole, &lines, half..n, &mut want);
    whole.finish();
    want.take(&mut whole);

    // Erased, saved, restored into a fresh engine, run on.
    let mut got = Outputs::default();
    let mut first = engine();
    let mut deltas = save_into(&mut first, &mut got);
    feed(&mut first, &lines, 0..half, &mut got);
    deltas.extend(save_into(&mut first, &mut got));
    erase(&mut first);
    deltas.extend(save_into(&mut first, &mut got));
    drop(first);
    let kept = compact(&deltas);
    let held: Vec<&Record> = kept
        .values()
        .flatten()
        .filter(|r| r.value.windows(name.len()).any(|w| w == name.as_bytes()))
        .collect();
    assert!(
        held.is_empty(),
        "{} records still hold the trader",
        held.len()
    );
    let mut second = engine();
    for (shard, records) in kept {
        let r = restore_shard(&mut second, shard, records).expect("restores");
        second.open_input(0, shard, r.inputs[0].next_offset);
        if let Some(ts) = r.inputs[0].max_ts {
            second.watermarks.restore(0, ts);
        }
    }
    assert_eq!(second.forget_trader(0, &name), None, "not restored");
    feed(&mut second, &lines, half..n, &mut got);
    second.finish();
    got.take(&mut second);
    let (rows, alerts) = got.sorted();
    let (want_rows, want_alerts) = want.sorted();
    assert!(rows == want_rows, "KPI rows differ after the restore");
    assert_eq!(alerts, want_alerts);
}
