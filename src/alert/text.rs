//! Text an alert carries that many alerts share: a rule's stage, a
//! reason's feature, the model version. A literal or one shared string,
//! so building, moving and dropping an alert copies none of it (replays
//! send an alert every few events; their strings were a tenth of the
//! work). The shared ones are written once: stages of configured steps,
//! the scoring model's version and feature names.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::config::AlertRules;
use crate::model::{Band, Model, Reason};

/// A literal, or a string shared by the alerts that carry it.
#[derive(Clone)]
pub enum Text {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Text {
    pub fn as_str(&self) -> &str {
        match self {
            Text::Static(s) => s,
            Text::Shared(s) => s,
        }
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text::Static(s)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text::Shared(s.into())
    }
}

// Equal when the text is, whichever way it is held.
impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The stages of the rules whose steps are configured (`recovery:D+3`,
/// `inactivity:D+7`), written once rather than per alert.
pub(super) struct StageNames {
    pub(super) recovery: Vec<Text>,
    pub(super) inactivity: Vec<Text>,
}

impl StageNames {
    pub(super) fn new(rules: &AlertRules) -> Self {
        let named = |prefix: &str, days: &[u32]| {
            days.iter()
                .map(|d| Text::from(format!("{prefix}:D+{d}")))
                .collect()
        };
        Self {
            recovery: named("recovery", &rules.section.deposit_recovery.steps_days),
            inactivity: named("inactivity", &rules.section.inactivity.tiers_days),
        }
    }
}

/// The model's version and feature names as alert text, kept while the
/// same model scores.
pub(super) struct ModelTexts {
    pub(super) version: Text,
    features: Vec<Text>,
}

impl ModelTexts {
    /// The texts of `model`, written again when another model scores.
    pub(super) fn of<'a>(cache: &'a mut Option<ModelTexts>, model: &Model) -> &'a ModelTexts {
        // A model of the same version and width keeps the texts; a
        // feature whose name differs anyway is caught by `feature`.
        let same = cache.as_ref().is_some_and(|t| {
            *t.version == *model.version && t.features.len() == model.features.len()
        });
        if !same {
            *cache = None;
        }
        cache.get_or_insert_with(|| ModelTexts {
            version: model.version.clone().into(),
            features: model
                .features
                .iter()
                .map(|f| f.name.clone().into())
                .collect(),
        })
    }

    pub(super) fn feature(&self, r: &Reason) -> Text {
        match self.features.get(r.index) {
            Some(t) if **t == *r.feature => t.clone(),
            _ => r.feature.to_string().into(),
        }
    }
}

/// The stage of a churn alert in `band`.
pub(super) fn churn_stage(band: Band) -> &'static str {
    match band {
        Band::Low => "churn_risk:low",
        Band::Medium => "churn_risk:medium",
        Band::High => "churn_risk:high",
        Band::Critical => "churn_risk:critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_its_string_however_held() {
        let a = Text::from("inactivity:D+1");
        let b = Text::from(String::from("inactivity:D+1"));
        assert_eq!(a, b);
        assert_eq!(a, "inactivity:D+1");
        assert_eq!(format!("{b}"), "inactivity:D+1");
        assert_eq!(format!("{b:?}"), "\"inactivity:D+1\"");
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            serde_json::to_string("inactivity:D+1").unwrap()
        );
        assert!(b.ends_with("D+1"));
    }
}
