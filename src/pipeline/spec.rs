//! A pipeline file: a short header of `-- key: value` lines, then the SQL.
//!
//! ```sql
//! -- window: tumble 1m
//! -- labels: method, status, currency
//! -- values: count_total counter, amount_total counter, avg_ticket gauge
//! -- help: Deposits by method and status.
//! SELECT window_start, method, status, currency, count(*) AS count_total, ...
//! FROM deposits GROUP BY window_start, method, status, currency
//! ```
//!
//! Hopping windows take two queries split by a `-- combine` line: the first
//! pre-aggregates each slide of raw rows, the second combines the partial
//! rows of every window (table `slices`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::window::WindowSpec;

/// How a value is exported to Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Added up over windows (`_total`); only for tumbling windows, where
    /// each event is counted once.
    Counter,
    /// The value of the latest closed window.
    Gauge,
}

/// A parsed, not yet planned, pipeline file.
#[derive(Debug, Clone)]
pub struct PipelineDef {
    pub name: String,
    pub file: PathBuf,
    pub window: WindowSpec,
    pub labels: Vec<String>,
    pub values: Vec<(String, ValueKind)>,
    /// Line of the `-- values:` header (metric names are made there).
    pub values_line: usize,
    pub help: String,
    /// The query over raw rows (or the snapshot), and its first line.
    pub sql: String,
    pub sql_line: usize,
    /// For hopping windows: the query over `slices`, and its first line.
    pub combine: Option<(String, usize)>,
}

/// A problem in a pipeline file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Column names that identify one trader or event: never labels.
pub const UNBOUNDED_COLUMNS: &[&str] = &["trader", "trader_id", "event_id", "device_id", "ts"];

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Parses one pipeline file's text, reporting every header problem.
pub fn parse(file: &Path, text: &str) -> Result<PipelineDef, Vec<PipelineError>> {
    let mut errors = Vec::new();
    let err = |line: usize, message: String| PipelineError {
        file: file.to_owned(),
        line,
        message,
    };
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let (mut name, mut window, mut labels, mut values, mut help) =
        (None, None, None, None, String::new());
    let mut sql = String::new();
    let mut sql_line = 0;
    let mut combine: Option<(String, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = raw.trim();
        if trimmed == "-- combine" || trimmed == "-- combine:" {
            combine = Some((String::new(), line_no + 1));
            continue;
        }
        let header = sql.trim().is_empty() && combine.is_none();
        if header && let Some(rest) = trimmed.strip_prefix("--") {
            // `-- key: value`; any other comment line is just a comment.
            let Some((key, value)) = rest.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || key.contains(char::is_whitespace) {
                continue;
            }
            match key {
                "pipeline" => name = Some((value.to_owned(), line_no)),
                "window" => match WindowSpec::parse(value) {
                    Ok(w) => window = Some((w, line_no)),
                    Err(e) => errors.push(err(line_no, e)),
                },
                "labels" => {
                    let ls: Vec<String> =
                        value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
                    for (n, l) in ls.iter().enumerate() {
                        if ls[..n].contains(l) {
                            errors.push(err(line_no, format!("label `{l}` is listed twice")));
                        } else if UNBOUNDED_COLUMNS.contains(&l.as_str()) {
                            errors.push(err(
                                line_no,
                                format!("label `{l}` is unbounded (one series per trader or event); labels must come from small closed sets"),
                            ));
                        } else if !is_identifier(l) {
                            errors.push(err(line_no, format!("label `{l}` must be lower_snake_case")));
                        }
                    }
                    labels = Some(ls);
                }
                "values" => {
                    let mut vs = Vec::new();
                    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let mut words = item.split_whitespace();
                        let (Some(v), kind, None) = (words.next(), words.next(), words.next()) else {
                            errors.push(err(line_no, format!("value `{item}`: expected `NAME counter` or `NAME gauge`")));
                            continue;
                        };
                        let kind = match kind {
                            Some("counter") => ValueKind::Counter,
                            Some("gauge") | None => ValueKind::Gauge,
                            Some(k) => {
                                errors.push(err(line_no, format!("value `{v}`: unknown kind `{k}`; use counter or gauge")));
                                continue;
                            }
                        };
                        if vs.iter().any(|(seen, _)| seen == v) {
                            errors.push(err(line_no, format!("value `{v}` is listed twice")));
                            continue;
                        }
                        if !is_identifier(v) {
                            errors.push(err(line_no, format!("value `{v}` must be lower_snake_case")));
                        } else if kind == ValueKind::Counter && !v.ends_with("_total") {
                            errors.push(err(line_no, format!("counter `{v}` must end in `_total`")));
                        } else if kind == ValueKind::Gauge && v.ends_with("_total") {
                            errors.push(err(line_no, format!("gauge `{v}` must not end in `_total` (reserved for counters)")));
                        }
                        vs.push((v.to_owned(), kind));
                    }
                    values = Some((vs, line_no));
                }
                "help" => help = value.to_owned(),
                other => errors.push(err(
                    line_no,
                    format!("unknown header `{other}`; expected pipeline, window, labels, values or help"),
                )),
            }
            continue;
        }
        let target = match &mut combine {
            Some((c, _)) => c,
            None => {
                if sql.trim().is_empty() && !trimmed.is_empty() {
                    sql_line = line_no;
                }
                &mut sql
            }
        };
        target.push_str(raw);
        target.push('\n');
    }
    if let Some((n, line)) = &name
        && *n != stem
    {
        errors.push(err(
            *line,
            format!("pipeline name `{n}` differs from the file name `{stem}.sql`"),
        ));
    }
    if !is_identifier(&stem) {
        errors.push(err(
            1,
            format!("file name `{stem}` must be lower_snake_case (it is the pipeline name)"),
        ));
    }
    let Some((window, window_line)) = window else {
        if !errors.iter().any(|e| e.message.contains("window")) {
            errors.push(err(
                1,
                "missing `-- window:` header (tumble 1m, hop 15d every 1d or snapshot 1d)".into(),
            ));
        }
        return Err(errors);
    };
    let Some((values, values_line)) = values.filter(|(v, _)| !v.is_empty()) else {
        errors.push(err(
            1,
            "missing `-- values:` header naming at least one value column".into(),
        ));
        return Err(errors);
    };
    if sql.trim().is_empty() {
        errors.push(err(
            text.lines().count().max(1),
            "no SQL query after the header".into(),
        ));
    }
    let hop = matches!(window, WindowSpec::Hop { .. });
    match (&combine, hop) {
        (None, true) => errors.push(err(
            window_line,
            "a hopping window needs a slice query, a `-- combine` line, then a query over `slices`"
                .into(),
        )),
        (Some((_, line)), false) => errors.push(err(
            line - 1,
            "`-- combine` is only for hopping windows".into(),
        )),
        _ => {}
    }
    if !matches!(window, WindowSpec::Tumble { .. })
        && let Some((v, _)) = values.iter().find(|(_, k)| *k == ValueKind::Counter)
    {
        errors.push(err(
            values_line,
            format!("counter `{v}` needs a tumbling window (overlapping or snapshot windows would count events twice)"),
        ));
    }
    let labels = labels.unwrap_or_default();
    for (v, _) in values.iter().filter(|(v, _)| labels.contains(v)) {
        errors.push(err(
            values_line,
            format!("`{v}` is both a label and a value; a column can be one of them"),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(PipelineDef {
        name: stem,
        file: file.to_owned(),
        window,
        labels,
        values,
        values_line,
        help,
        sql,
        sql_line,
        combine,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_tumbling_pipeline() {
        let text = "-- window: tumble 1m\n-- labels: method, status\n-- values: count_total counter, avg gauge\n-- help: x\nSELECT window_start, method, status, count(*) AS count_total, avg(amount) AS avg FROM deposits GROUP BY 1, 2, 3\n";
        let d = parse(Path::new("p/deposits.sql"), text).unwrap();
        assert_eq!(d.name, "deposits");
        assert_eq!(d.labels, ["method", "status"]);
        assert_eq!(d.values[0], ("count_total".to_owned(), ValueKind::Counter));
        assert_eq!(d.sql_line, 5);
    }

    #[test]
    fn reports_every_header_problem_with_its_line() {
        let text = "-- window: tumble 1m\n-- labels: trader_id, Method\n-- values: count counter, n_total gauge\n-- colour: red\nSELECT 1\n";
        let errs = parse(Path::new("bad.sql"), text).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 2, 3, 3, 4], "{errs:?}");
    }

    #[test]
    fn a_name_listed_twice_is_refused_with_its_line() {
        let text = "-- window: tumble 1m\n-- labels: method, method\n-- values: n_total counter, n_total counter, method gauge\nSELECT 1\n";
        let errs = parse(Path::new("twice.sql"), text).unwrap_err();
        let found: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(
            found,
            [
                (2, "label `method` is listed twice"),
                (3, "value `n_total` is listed twice"),
                (
                    3,
                    "`method` is both a label and a value; a column can be one of them"
                ),
            ],
        );
    }

    #[test]
    fn hop_needs_a_combine_query_and_no_counters() {
        let text = "-- window: hop 15d every 1d\n-- values: n_total counter\nSELECT 1\n";
        let errs = parse(Path::new("h.sql"), text).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn names() -> impl Strategy<Value = Vec<String>> {
            proptest::collection::btree_set("[a-z][a-z0-9_]{0,10}", 0..5).prop_map(|s| {
                s.into_iter()
                    .filter(|n| !UNBOUNDED_COLUMNS.contains(&n.as_str()))
                    .collect()
            })
        }

        proptest! {
            #[test]
            fn any_text_parses_or_is_refused_with_lines_inside_the_file(text in "(-- [a-z]{0,8}:[ -~]{0,30}\n|[ -~]{0,40}\n){0,8}") {
                if let Err(errs) = parse(Path::new("p/x.sql"), &text) {
                    let lines = text.lines().count().max(1);
                    for e in errs {
                        prop_assert!(!e.message.is_empty());
                        prop_assert!(e.line <= lines + 1, "{e} in {text:?}");
                    }
                }
            }

            #[test]
            fn a_valid_header_round_trips(
                labels in names(),
                values in names(),
                kinds in proptest::collection::vec(any::<bool>(), 5),
                help in "[A-Za-z0-9 ,.]{0,40}",
            ) {
                let values: Vec<(String, ValueKind)> = values
                    .into_iter()
                    .filter(|v| !labels.contains(v))
                    .zip(kinds)
                    .map(|(v, counter)| {
                        if counter {
                            (format!("{}_total", v.trim_end_matches("_total")), ValueKind::Counter)
                        } else {
                            (format!("{}_v", v.trim_end_matches("_total")), ValueKind::Gauge)
                        }
                    })
                    .collect();
                let mut seen = std::collections::BTreeSet::new();
                let values: Vec<(String, ValueKind)> = values
                    .into_iter()
                    .filter(|(v, _)| seen.insert(v.clone()) && !labels.contains(v))
                    .collect();
                prop_assume!(!values.is_empty());
                let listed: Vec<String> = values
                    .iter()
                    .map(|(v, k)| format!("{v} {}", if *k == ValueKind::Counter { "counter" } else { "gauge" }))
                    .collect();
                let text = format!(
                    "-- window: tumble 1m\n-- labels: {}\n-- values: {}\n-- help: {help}\nSELECT 1\n",
                    labels.join(", "),
                    listed.join(", ")
                );
                let d = parse(Path::new("p/x.sql"), &text);
                prop_assert!(d.is_ok(), "{text}: {d:?}");
                let Ok(d) = d else { unreachable!() };
                prop_assert_eq!(d.labels, labels);
                prop_assert_eq!(d.values, values);
                prop_assert_eq!(d.help, help.trim());
                prop_assert_eq!(d.values_line, 3);
                prop_assert_eq!(d.sql_line, 5);
            }
        }
    }
}
