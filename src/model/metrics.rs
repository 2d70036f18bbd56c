//! Ranking and calibration metrics of churn scores against realised churn.

use serde::Serialize;

/// Area under the ROC curve: the chance that a random churner scores above
/// a random stayer (ties count half). `None` when one class is missing.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Mann-Whitney U with average ranks for ties.
    let (mut rank_sum, mut pos) = (0.0, 0usize);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg_rank;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = scores.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Area under the precision-recall curve as average precision (the mean of
/// the precision at each churner's rank, ties broken pessimistically).
pub fn pr_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let order = ranked(scores, labels);
    let total = labels.iter().filter(|&&l| l).count();
    if total == 0 {
        return None;
    }
    let (mut hits, mut sum) = (0usize, 0.0);
    for (rank, &k) in order.iter().enumerate() {
        if labels[k] {
            hits += 1;
            sum += hits as f64 / (rank + 1) as f64;
        }
    }
    Some(sum / total as f64)
}

/// Indices by descending score; among equal scores, stayers first (so a
/// constant score earns no credit).
pub(super) fn ranked(scores: &[f64], labels: &[bool]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        scores[b]
            .total_cmp(&scores[a])
            .then(labels[a].cmp(&labels[b]))
    });
    idx
}

/// Precision and recall among the top `fraction` of scores.
pub fn top_fraction(scores: &[f64], labels: &[bool], fraction: f64) -> (f64, f64) {
    let order = ranked(scores, labels);
    let k = ((scores.len() as f64 * fraction).round() as usize).clamp(1, scores.len().max(1));
    let total = labels.iter().filter(|&&l| l).count();
    let hits = order.iter().take(k).filter(|&&i| labels[i]).count();
    let precision = if order.is_empty() {
        0.0
    } else {
        hits as f64 / k as f64
    };
    let recall = if total == 0 {
        0.0
    } else {
        hits as f64 / total as f64
    };
    (precision, recall)
}

/// The cut-offs of `precision_at` / `recall_at`, as (key, fraction).
pub const TOP: [(&str, f64); 3] = [("top_5", 0.05), ("top_10", 0.10), ("top_20", 0.20)];

/// One row of a calibration table: mean predicted against realised churn.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct CalibrationRow {
    /// Decile (1 = lowest scores) or band name.
    pub group: String,
    pub traders: usize,
    pub predicted: f64,
    pub realised: f64,
}

/// Calibration by score decile (1 = lowest tenth of scores).
pub fn deciles(scores: &[f64], labels: &[bool]) -> Vec<CalibrationRow> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n = idx.len();
    (0..10)
        .filter_map(|d| {
            let (lo, hi) = (n * d / 10, n * (d + 1) / 10);
            (hi > lo).then(|| row(format!("{}", d + 1), &idx[lo..hi], scores, labels))
        })
        .collect()
}

/// Calibration of the members `idx` of one group.
pub fn row(group: String, idx: &[usize], scores: &[f64], labels: &[bool]) -> CalibrationRow {
    let n = idx.len().max(1) as f64;
    CalibrationRow {
        group,
        traders: idx.len(),
        predicted: idx.iter().map(|&i| scores[i]).sum::<f64>() / n,
        realised: idx.iter().filter(|&&i| labels[i]).count() as f64 / n,
    }
}

/// Mean squared error of probabilities (lower is better).
pub fn brier(scores: &[f64], labels: &[bool]) -> f64 {
    let n = scores.len().max(1) as f64;
    scores
        .iter()
        .zip(labels)
        .map(|(s, &l)| (s - f64::from(u8::from(l))).powi(2))
        .sum::<f64>()
        / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_constant_scores() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(roc_auc(&[0.5; 4], &labels), Some(0.5));
        assert_eq!(roc_auc(&[0.5; 2], &[true, true]), None);
        assert_eq!(pr_auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        // Constant scores: churners ranked last, so AP = (1/3 + 2/4) / 2.
        let ap = pr_auc(&[0.5; 4], &labels).unwrap();
        assert!((ap - (1.0 / 3.0 + 0.5) / 2.0).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn auc_matches_pairwise_count_with_ties() {
        let scores = [0.3, 0.3, 0.7, 0.1, 0.7, 0.5];
        let labels = [true, false, true, false, false, true];
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for i in 0..6 {
            for j in 0..6 {
                if labels[i] && !labels[j] {
                    pairs += 1.0;
                    wins += if scores[i] > scores[j] {
                        1.0
                    } else if scores[i] == scores[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((roc_auc(&scores, &labels).unwrap() - wins / pairs).abs() < 1e-12);
    }

    #[test]
    fn top_fraction_and_deciles() {
        let scores: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        let labels: Vec<bool> = (0..100).map(|i| i >= 90).collect();
        assert_eq!(top_fraction(&scores, &labels, 0.10), (1.0, 1.0));
        assert_eq!(top_fraction(&scores, &labels, 0.20), (0.5, 1.0));
        let d = deciles(&scores, &labels);
        assert_eq!(d.len(), 10);
        assert_eq!(d[9].realised, 1.0);
        assert_eq!(d[0].realised, 0.0);
        assert!((brier(&[1.0, 0.0], &[true, false])).abs() < 1e-12);
    }
}
