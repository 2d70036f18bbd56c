//! Logistic regression with linfa: the interpretable model, the RFM
//! baseline and the Platt calibration all use it.

use linfa::Dataset;
use linfa::prelude::Fit;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::ModelError;

/// A fitted logistic regression giving P(churn).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub intercept: f64,
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Logistic {
    /// Fits on rows `x` with labels `y` (churned = true); `alpha` is the L2
    /// penalty.
    pub fn fit(x: &[Vec<f64>], y: &[bool], alpha: f64) -> Result<Self, ModelError> {
        let width = x.first().map_or(0, Vec::len);
        if x.is_empty() || width == 0 {
            return Err(ModelError::Training(
                "no rows for the logistic regression".into(),
            ));
        }
        if y.iter().all(|&l| l) || y.iter().all(|&l| !l) {
            return Err(ModelError::Training(
                "every example has the same label (all churned or none): nothing to learn".into(),
            ));
        }
        let records = Array2::from_shape_fn((x.len(), width), |(i, j)| x[i][j]);
        let targets: Array1<bool> = y.iter().copied().collect();
        let fitted = LogisticRegression::default()
            .alpha(alpha)
            .max_iterations(300)
            .gradient_tolerance(1e-6)
            .fit(&Dataset::new(records, targets))
            .map_err(|e| ModelError::Training(format!("logistic regression: {e}")))?;
        // linfa's probability is of the larger class; turn it into P(churn).
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok(Self {
            weights: fitted.params().iter().map(|w| sign * w).collect(),
            intercept: sign * fitted.intercept(),
        })
    }

    /// Log-odds of churn for `x`.
    #[inline]
    pub fn logit(&self, x: &[f64]) -> f64 {
        self.intercept + self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>()
    }

    pub fn predict(&self, x: &[f64]) -> f64 {
        sigmoid(self.logit(x))
    }
}

/// Platt scaling: a one-feature logistic regression on the log-odds of the
/// raw score, fitted on the validation examples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
}

impl Calibration {
    pub const IDENTITY: Calibration = Calibration { a: 1.0, b: 0.0 };

    pub fn fit(raw: &[f64], y: &[bool]) -> Result<Self, ModelError> {
        let x: Vec<Vec<f64>> = raw.iter().map(|&p| vec![logit(p)]).collect();
        // A light penalty: two parameters, thousands of examples.
        let l = Logistic::fit(&x, y, 1e-3)?;
        Ok(Self {
            a: l.weights[0],
            b: l.intercept,
        })
    }

    #[inline]
    pub fn apply(&self, raw: f64) -> f64 {
        sigmoid(self.a * logit(raw) + self.b)
    }
}

/// Log-odds of a probability, clamped away from 0 and 1.
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}
