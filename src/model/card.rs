//! The human-readable model card written beside each artifact.

use super::artifact::{Estimator, Model};

/// The model card of `model` as Markdown.
pub fn model_card(model: &Model) -> String {
    let t = &model.training;
    let v = &model.validation;
    let estimator = match &model.estimator {
        Estimator::Logistic(_) => "logistic regression on standardised features".to_string(),
        Estimator::Forest { trees } => format!(
            "bagged forest of {} linfa decision trees on standardised features, \
             node churn shares as probabilities",
            trees.len()
        ),
        Estimator::Blend { trees, .. } => format!(
            "mean of a logistic regression and a bagged forest of {} linfa decision trees, \
             on standardised features",
            trees.len()
        ),
    };
    let mut s = format!(
        "# Churn model card: {name} {version}\n\n\
         ## What it predicts\n\n\
         The probability that a trader who traded or made an approved deposit in the \
         {aw} days before the scoring time makes **no trade and no approved deposit** in the \
         following {h} days. Scores are calibrated (Platt scaling on the validation \
         snapshot) and mapped to bands: medium from {m}, high from {hi}, critical from {c}.\n\n\
         Intended use: ranking traders for retention contact and the `churn_risk` alerts of \
         the live service. Not for decisions about individual credit, pricing or access.\n\n\
         ## Estimator\n\n{estimator}; chosen among the candidates by ROC AUC + PR AUC on a \
         validation snapshot later in time than all training data.\n\n\
         | candidate | validation ROC AUC | validation PR AUC |\n|---|---|---|\n",
        name = model.name,
        version = model.version,
        aw = t.active_within_days,
        h = t.horizon_days,
        m = model.bands.medium,
        hi = model.bands.high,
        c = model.bands.critical,
    );
    for c in &v.candidates {
        s += &format!("| {} | {:.4} | {:.4} |\n", c.name, c.roc_auc, c.pr_auc);
    }
    s += &format!(
        "\nBrier score of the calibrated probabilities on the validation snapshot: {:.4} \
         (optimistic: the calibration was fitted there).\n\n\
         ## Training data\n\n\
         - events file: `{}` ({} valid events, {} to {})\n\
         - training cutoffs: {}\n\
         - validation cutoff: {}\n\
         - training examples: {} ({:.1}% churned); validation examples: {} ({:.1}% churned)\n\n\
         ## Features ({})\n\n\
         Computed per event in constant time by `src/features` (decayed 7/30/90-day sums, \
         gap statistics, streaks), the same code online and offline. \
         Mean and spread are of the training examples.\n\n\
         | feature | mean | std |\n|---|---|---|\n",
        v.brier,
        t.events_file,
        t.events,
        t.first_event,
        t.last_event,
        t.training_cutoffs.join(", "),
        t.validation_cutoff,
        t.training_examples,
        100.0 * t.training_churn_rate,
        t.validation_examples,
        100.0 * t.validation_churn_rate,
        model.features.len(),
    );
    for f in &model.features {
        s += &format!("| {} | {:.4} | {:.4} |\n", f.name, f.mean, f.std);
    }
    s += "\n## Limitations\n\n\
          - Trained on the history given; a change in product, market or marketing \
          (new channels, campaigns) shifts the base rate: re-train and re-evaluate with \
          `pulse evaluate` at a later time before loading a new model.\n\
          - Traders with no trade and no approved deposit in the active window are not \
          scored for churn (they are activation targets).\n\
          - Channels outside the model's vocabulary get no channel feature.\n";
    s
}
