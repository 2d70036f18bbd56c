//! KPI counters: exact in any order, and restored under their own labels.

use std::sync::Arc;

use super::*;
use crate::pipeline::check_pipelines;

fn deposits() -> Planned {
    check_pipelines(None)
        .unwrap()
        .into_iter()
        .find(|p| &*p.name == "deposits")
        .unwrap()
}

/// A `deposits` row (labels method, status, currency: not in name order).
fn row(p: &Planned, start: i64, amount: f64) -> KpiRow {
    KpiRow {
        pipeline: p.name.clone(),
        window_start: start,
        window_end: start + 60_000,
        labels: ["pix", "approved", "BRL"]
            .iter()
            .zip(&p.labels)
            .map(|(v, l)| (l.clone(), v.to_string()))
            .collect(),
        values: p
            .values
            .iter()
            .map(|v: &Arc<str>| {
                let x = match &**v {
                    "count_total" => 1.0,
                    "amount_total" => amount,
                    _ => amount,
                };
                (v.clone(), Some(x))
            })
            .collect(),
    }
}

fn amount_total(m: &Metrics) -> (Vec<String>, f64) {
    let s = m
        .kpi_samples()
        .into_iter()
        .find(|s| s.metric == "pulse_kpi_deposits_amount_total")
        .unwrap();
    (s.labels, s.value)
}

#[test]
fn counters_are_exact_in_any_order_and_continue_under_their_labels() {
    let p = deposits();
    let amounts = [0.1, 1e7 + 0.07, 0.2, 123_456.78, 0.3, 9_999_999.99];
    let totals: Vec<f64> = [false, true]
        .iter()
        .map(|&reversed| {
            let mut m = Metrics::new("test");
            m.register_pipeline(&p).unwrap();
            let mut order: Vec<usize> = (0..amounts.len()).collect();
            if reversed {
                order.reverse();
            }
            for i in order {
                m.record_kpis(&p, &[row(&p, i as i64 * 60_000, amounts[i])]);
            }
            amount_total(&m).1
        })
        .collect();
    // f64 addition in these two orders differs; the exact sum does not.
    let forward = amounts.iter().fold(0.0, |a, b| a + b);
    let backward = amounts.iter().rev().fold(0.0, |a, b| a + b);
    assert_ne!(forward, backward, "the amounts show the rounding");
    assert_eq!(totals[0], totals[1]);
    assert_eq!(totals[0], 20_123_457.44);

    // Saved and restored (a restart, or a merge moving): the same series,
    // labels in the pipeline's order, and the total goes on exactly.
    let mut m = Metrics::new("test");
    m.register_pipeline(&p).unwrap();
    for (i, a) in amounts.iter().enumerate().take(3) {
        m.record_kpis(&p, &[row(&p, i as i64 * 60_000, *a)]);
    }
    let saved = m.kpi_samples();
    let (labels, _) = amount_total(&m);
    assert_eq!(labels, ["pix", "approved", "BRL"]);
    let mut n = Metrics::new("test");
    n.register_pipeline(&p).unwrap();
    n.restore_kpis(&saved);
    for (i, a) in amounts.iter().enumerate().skip(3) {
        n.record_kpis(&p, &[row(&p, i as i64 * 60_000, *a)]);
    }
    assert_eq!(amount_total(&n), (labels, totals[0]));
    assert!(
        n.render()
            .contains(r#"pulse_kpi_deposits_amount_total{currency="BRL",method="pix",status="approved"} 20123457.44"#),
        "{}",
        n.render()
    );
}
