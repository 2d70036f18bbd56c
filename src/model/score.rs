//! `pulse score`: every trader seen up to a time, with score, band and the
//! reasons behind the score, as CSV.

use std::io::Write;

use super::artifact::Model;
use super::dataset::{History, Population, snapshots};
use super::evaluate::space_for;

/// How many reasons each row lists.
const REASONS: usize = 3;

/// Writes `trader_id,churn_score,band,reasons` for every trader seen up to
/// `at` and returns how many rows were written.
pub fn write_scores(
    history: &History,
    model: &Model,
    at: i64,
    out: &mut impl Write,
) -> Result<usize, std::io::Error> {
    let space = space_for(model, history);
    #[expect(
        clippy::expect_used,
        reason = "snapshots returns one snapshot per instant asked (one here)"
    )]
    let snap = snapshots(history, &space, &[at], None, Population::Everyone)
        .pop()
        .expect("one snapshot");
    let mut w = csv::Writer::from_writer(out);
    let csv_error = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    };
    w.write_record(["trader_id", "churn_score", "band", "reasons"])
        .map_err(csv_error)?;
    let mut buf = Vec::with_capacity(snap.width);
    for i in 0..snap.len() {
        buf.clear();
        buf.extend_from_slice(snap.row(i));
        let score = model.score(&mut buf);
        let reasons = model
            .reasons(snap.row(i), REASONS)
            .iter()
            .map(|r| format!("{}={} (baseline {})", r.feature, r.value, r.baseline))
            .collect::<Vec<_>>()
            .join("; ");
        w.write_record([
            history.trader_name(snap.traders[i]),
            &format!("{score:.6}"),
            model.bands.band(score).as_str(),
            &reasons,
        ])
        .map_err(csv_error)?;
    }
    w.flush()?;
    Ok(snap.len())
}
