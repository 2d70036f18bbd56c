//! The alert contract as a JSON Schema (`schemas/alert.schema.json`, built
//! into the binary), checked in-process by the `jsonschema` crate: `pulse
//! validate-alerts` for files a consumer holds, and the tests for every
//! alert Pulse emits. Formats are annotations only (not checked); the
//! schema's timestamp patterns are.

use std::io::BufRead;

use jsonschema::Validator;
use jsonschema::paths::LocationSegment;
use serde_json::Value;

/// The bundled alert schema, as shipped in `schemas/`.
pub const ALERT_SCHEMA: &str = include_str!("../../schemas/alert.schema.json");

/// Why a schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a valid Draft 2020-12 schema: {0}")]
    Invalid(String),
}

/// One way an alert breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// `$`-rooted JSON path of the offending value, e.g. `$.reasons[0].feature`.
    pub path: String,
    pub message: String,
}

/// What one line of a JSONL file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineCheck {
    Blank,
    NotJson(String),
    /// An alert, with its violations (none: valid), sorted by path.
    Alert(Vec<Violation>),
}

/// A compiled alert schema.
pub struct AlertSchema {
    validator: Validator,
}

impl AlertSchema {
    /// The schema built into the binary.
    pub fn bundled() -> Result<Self, SchemaError> {
        Self::from_json(ALERT_SCHEMA)
    }

    pub fn from_json(text: &str) -> Result<Self, SchemaError> {
        let schema: Value = serde_json::from_str(text)?;
        let validator = jsonschema::draft202012::new(&schema)
            .map_err(|e| SchemaError::Invalid(e.to_string()))?;
        Ok(Self { validator })
    }

    /// Every violation of `alert`, sorted by path and message.
    pub fn check(&self, alert: &Value) -> Vec<Violation> {
        let mut found: Vec<Violation> = self
            .validator
            .iter_errors(alert)
            .map(|e| Violation {
                path: json_path(e.instance_path().iter()),
                message: e.to_string(),
            })
            .collect();
        found.sort();
        found
    }

    /// One line of a JSONL file (line ends already removed or not).
    pub fn check_line(&self, line: &[u8]) -> LineCheck {
        if line.trim_ascii().is_empty() {
            return LineCheck::Blank;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(alert) => LineCheck::Alert(self.check(&alert)),
            Err(e) => LineCheck::NotJson(e.to_string()),
        }
    }

    /// Every line of `input`, numbered from 1, blank lines left out.
    pub fn check_lines(&self, input: impl BufRead) -> std::io::Result<Vec<(usize, LineCheck)>> {
        let mut out = Vec::new();
        for (i, line) in input.split(b'\n').enumerate() {
            let line = line?;
            match self.check_line(&line) {
                LineCheck::Blank => {}
                c => out.push((i + 1, c)),
            }
        }
        Ok(out)
    }
}

/// `$.a.b[0]["odd key"]`: identifiers as `.name`, indices as `[n]`, other
/// keys quoted.
fn json_path<'a>(segments: impl Iterator<Item = LocationSegment<'a>>) -> String {
    let mut out = String::from("$");
    for s in segments {
        match s {
            LocationSegment::Index(i) => out.push_str(&format!("[{i}]")),
            LocationSegment::Property(p) if is_identifier(&p) => {
                out.push('.');
                out.push_str(&p);
            }
            LocationSegment::Property(p) => {
                out.push('[');
                out.push_str(&Value::String(p.into_owned()).to_string());
                out.push(']');
            }
        }
    }
    out
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "alert_id": "inactivity-a1b2c3d4e5f60718",
            "kind": "inactivity",
            "severity": "warning",
            "trader_id": "t1",
            "segment": "vip",
            "stage": "inactivity:D+14",
            "reasons": [{"feature": "days_since_activity", "value": 15.0, "baseline": 14.0}],
            "event_time": "2026-05-01T00:00:00.000Z",
            "emitted_at": "2026-05-01T00:00:01.000Z"
        })
    }

    #[test]
    fn the_bundled_schema_compiles_and_takes_a_valid_alert() {
        let schema = AlertSchema::bundled().unwrap();
        let v = schema.check(&good());
        assert!(v.is_empty(), "{v:?}");
    }

    /// Each violation names where it is: a forbidden property by its own
    /// path, a bad element of an array by its index.
    #[test]
    fn violations_name_the_offending_value() {
        let schema = AlertSchema::bundled().unwrap();
        let mut a = good();
        a["kind"] = json!("kpi_drop");
        a["reasons"][0]["feature"] = json!(3);
        let v = schema.check(&a);
        let paths: Vec<&str> = v.iter().map(|x| x.path.as_str()).collect();
        assert!(paths.contains(&"$.trader_id"), "{v:?}");
        assert!(paths.contains(&"$.reasons[0].feature"), "{v:?}");
        assert!(v.iter().any(|x| x.message.contains("kpi")), "{v:?}");

        let mut b = good();
        b["severity"] = json!("panic");
        b.as_object_mut().unwrap().remove("stage");
        let v = schema.check(&b);
        assert!(v.iter().any(|x| x.path == "$.severity"), "{v:?}");
        assert!(v.iter().any(|x| x.message.contains("stage")), "{v:?}");
    }

    #[test]
    fn lines_that_are_not_json_or_blank_are_told_apart() {
        let schema = AlertSchema::bundled().unwrap();
        let text = format!("{}\n\n{{\"x\": NaN}}\n{{\"kind\": 1}}\n", good());
        let checks = schema.check_lines(text.as_bytes()).unwrap();
        assert_eq!(checks.len(), 3, "{checks:?}");
        assert_eq!(checks[0], (1, LineCheck::Alert(Vec::new())));
        assert!(
            matches!(checks[1], (3, LineCheck::NotJson(_))),
            "{checks:?}"
        );
        assert!(
            matches!(&checks[2], (4, LineCheck::Alert(v)) if !v.is_empty()),
            "{checks:?}"
        );
    }

    #[test]
    fn paths_quote_keys_that_are_not_identifiers() {
        let segs = vec![
            LocationSegment::Property("a".into()),
            LocationSegment::Index(2),
            LocationSegment::Property("odd key".into()),
        ];
        assert_eq!(json_path(segs.into_iter()), r#"$.a[2]["odd key"]"#);
        assert!(AlertSchema::from_json("{").is_err());
        assert!(AlertSchema::from_json(r#"{"type": 5}"#).is_err());
    }
}
