//! The curves a quant looks at first, from scores and realised churn:
//! ROC, precision-recall, cumulative gains and lift, plus permutation
//! feature importance. Points are thinned to a few hundred per curve,
//! enough to draw and small enough to ship in a report.

use serde::Serialize;

use super::metrics::ranked;

/// Points kept per curve (the ends always are).
const MAX_POINTS: usize = 400;

/// One scorer's curves.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Curves {
    /// (false positive rate, true positive rate) from (0,0) to (1,1).
    pub roc: Vec<(f64, f64)>,
    /// (recall, precision) in order of descending score.
    pub pr: Vec<(f64, f64)>,
    /// (fraction of traders contacted, fraction of churners reached),
    /// highest scores first, from (0,0) to (1,1).
    pub gains: Vec<(f64, f64)>,
}

/// Every `n`-th point and the last.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let step = points.len().div_ceil(MAX_POINTS);
    let last = points.len() - 1;
    points
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i == last)
        .map(|(_, p)| p)
        .collect()
}

/// The curves of `scores` against `labels`.
pub fn curves(scores: &[f64], labels: &[bool]) -> Curves {
    let order = ranked(scores, labels);
    let n = order.len();
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = n - pos;
    let (p, q) = (pos.max(1) as f64, neg.max(1) as f64);
    let mut roc = vec![(0.0, 0.0)];
    let mut pr = Vec::with_capacity(n);
    let mut gains = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    for (rank, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        // A point per distinct score: ties move together.
        let next_differs = order.get(rank + 1).is_none_or(|&j| scores[j] != scores[i]);
        if next_differs {
            roc.push((fp as f64 / q, tp as f64 / p));
        }
        pr.push((tp as f64 / p, tp as f64 / (rank + 1) as f64));
        gains.push(((rank + 1) as f64 / n.max(1) as f64, tp as f64 / p));
    }
    Curves {
        roc: thin(roc),
        pr: thin(pr),
        gains: thin(gains),
    }
}

/// Lift per score decile, highest scores first: the decile's churn rate
/// over the overall rate (1 = no better than contacting at random).
pub fn lift_by_decile(scores: &[f64], labels: &[bool]) -> Vec<f64> {
    let order = ranked(scores, labels);
    let n = order.len();
    let base = labels.iter().filter(|&&l| l).count() as f64 / n.max(1) as f64;
    (0..10)
        .filter_map(|d| {
            let (lo, hi) = (n * d / 10, n * (d + 1) / 10);
            (hi > lo && base > 0.0).then(|| {
                let hits = order[lo..hi].iter().filter(|&&i| labels[i]).count();
                hits as f64 / (hi - lo) as f64 / base
            })
        })
        .collect()
}

/// How much one feature matters: the ROC AUC lost when its column is
/// shuffled among the examples (the model unchanged).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Importance {
    pub feature: String,
    pub auc_drop: f64,
}

/// Permutation importance of each column of `rows` for `score`, most
/// important first. The shuffle is seeded: the same data give the same
/// figures.
pub fn permutation_importance(
    names: &[String],
    rows: &[Vec<f64>],
    labels: &[bool],
    score: &dyn Fn(&[f64]) -> f64,
) -> Vec<Importance> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let base: Vec<f64> = rows.iter().map(|r| score(r)).collect();
    let Some(base_auc) = super::metrics::roc_auc(&base, labels) else {
        return Vec::new();
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut buf = Vec::new();
    let mut out: Vec<Importance> = names
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let mut column: Vec<f64> = rows.iter().map(|r| r[c]).collect();
            column.shuffle(&mut rng);
            let shuffled: Vec<f64> = rows
                .iter()
                .zip(&column)
                .map(|(r, &v)| {
                    buf.clear();
                    buf.extend_from_slice(r);
                    buf[c] = v;
                    score(&buf)
                })
                .collect();
            let auc = super::metrics::roc_auc(&shuffled, labels).unwrap_or(0.5);
            Importance {
                feature: name.clone(),
                auc_drop: base_auc - auc,
            }
        })
        .collect();
    out.sort_by(|a, b| b.auc_drop.total_cmp(&a.auc_drop));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_of_a_perfect_ranking() {
        let scores = [0.9, 0.8, 0.3, 0.2];
        let labels = [true, true, false, false];
        let c = curves(&scores, &labels);
        assert_eq!(c.roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(c.roc.last(), Some(&(1.0, 1.0)));
        assert!(c.roc.contains(&(0.0, 1.0)), "{:?}", c.roc);
        assert_eq!(c.pr[..2], [(0.5, 1.0), (1.0, 1.0)]);
        assert_eq!(c.gains[2], (0.5, 1.0));
        assert_eq!(lift_by_decile(&scores, &labels).first(), Some(&2.0));
    }

    #[test]
    fn tied_scores_move_together_and_long_curves_are_thinned() {
        let c = curves(&[0.5; 4], &[true, false, true, false]);
        assert_eq!(c.roc, vec![(0.0, 0.0), (1.0, 1.0)]);
        let n = 10_000;
        let scores: Vec<f64> = (0..n).map(|i| f64::from(i) / f64::from(n)).collect();
        let labels: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let c = curves(&scores, &labels);
        assert!(c.roc.len() <= MAX_POINTS + 1 && c.gains.len() <= MAX_POINTS + 1);
        assert_eq!(c.gains.last(), Some(&(1.0, 1.0)));
    }

    #[test]
    fn a_feature_the_score_ignores_has_no_importance() {
        let rows: Vec<Vec<f64>> = (0..200).map(|i| vec![f64::from(i), 1.0]).collect();
        let labels: Vec<bool> = (0..200).map(|i| i >= 100).collect();
        let names = ["signal".to_string(), "noise".to_string()];
        let imp = permutation_importance(&names, &rows, &labels, &|r: &[f64]| r[0] + r[1]);
        assert_eq!(imp[0].feature, "signal");
        assert!(imp[0].auc_drop > 0.3, "{imp:?}");
        assert_eq!(imp[1].auc_drop, 0.0);
    }
}
