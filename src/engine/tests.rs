//! Window slicing (proptest): a hopping window combined from its per-slide
//! partial aggregates counts and sums exactly what a direct count over the
//! window's raw events gives, whatever the events.

use std::collections::BTreeSet;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;
use crate::event::time::{DAY_MS, format_rfc3339_ms};
use crate::pipeline::KpiRow;

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const SIZE: i64 = 3 * DAY_MS;

const HOP: &str = "-- window: hop 3d every 1d
-- values: n gauge, amount gauge, traders gauge
SELECT window_start, count(*) AS n, sum(amount) AS amount, trader_set(trader) AS traders
FROM deposits GROUP BY window_start
-- combine
SELECT window_start, CAST(sum(n) AS DOUBLE) AS n, CAST(sum(amount) AS DOUBLE) AS amount,
       CAST(union_count(traders) AS DOUBLE) AS traders
FROM slices GROUP BY window_start
";

/// An engine running only the hop pipeline; its folder is removed once the
/// plans are read, so test runs leave nothing behind in the temp dir.
fn hop_engine() -> Engine {
    let dir: PathBuf = std::env::temp_dir().join(format!("pulse-hop-props-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("hop.sql"), HOP).expect("pipeline file");
    let engine = Engine::new(EngineConfig::default(), Some(&dir)).expect("plans");
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
    engine
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn hop_slices_combine_to_direct_counts(
        mut events in proptest::collection::vec((0..10 * DAY_MS, 1_i64..5_000_000_000, 0_u8..20), 1..200),
    ) {
        events.sort();
        let mut e = hop_engine();
        for (i, (at, micros, trader)) in events.iter().enumerate() {
            let line = format!(
                r#"{{"event_id":"e{i}","type":"deposit","trader_id":"t{trader}","ts":"{}","amount":{}.{:06},"currency":"BRL","method":"pix","status":"approved"}}"#,
                format_rfc3339_ms(T0 + at),
                micros / 1_000_000,
                micros % 1_000_000
            );
            e.process(line.as_bytes(), 0, i as i64, i64::MAX / 2, None);
        }
        e.finish();
        let rows: Vec<KpiRow> = e.take_emitted().kpis.into_iter().flat_map(|(_, r)| r).collect();
        prop_assert!(!rows.is_empty());
        let mut ends = BTreeSet::new();
        for r in &rows {
            prop_assert_eq!(r.window_end - r.window_start, SIZE);
            prop_assert!(ends.insert(r.window_end), "one row per window");
            let inside: Vec<&(i64, i64, u8)> = events
                .iter()
                .filter(|(at, _, _)| T0 + at >= r.window_start && T0 + at < r.window_end)
                .collect();
            let value = |name: &str| r.values.iter().find(|(v, _)| &**v == name).and_then(|(_, x)| *x);
            prop_assert_eq!(value("n"), Some(inside.len() as f64));
            let micros: i64 = inside.iter().map(|(_, m, _)| m).sum();
            let amount = value("amount").unwrap_or(f64::NAN);
            // The exact decimal sum, read as a float once.
            prop_assert!((amount - micros as f64 / 1e6).abs() <= 1e-9 * amount.abs().max(1.0), "{} vs {}", amount, micros);
            let traders: BTreeSet<u8> = inside.iter().map(|(_, _, t)| *t).collect();
            prop_assert_eq!(value("traders"), Some(traders.len() as f64));
        }
        // Every window on the day grid that holds an event is there, up to
        // the last one emitted.
        let last = *ends.iter().next_back().unwrap_or(&i64::MIN);
        let want: BTreeSet<i64> = events
            .iter()
            .flat_map(|(at, _, _)| {
                let first_end = (T0 + at).div_euclid(DAY_MS) * DAY_MS + DAY_MS;
                (0..3).map(move |k| first_end + k * DAY_MS)
            })
            .filter(|end| *end <= last)
            .collect();
        prop_assert_eq!(ends, want);
    }
}
