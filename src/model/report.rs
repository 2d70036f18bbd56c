//! `pulse evaluate --report DIR`: the evaluation as one self-contained
//! HTML page (`DIR/index.html`) with inline SVG charts drawn by plotters:
//! ROC and precision-recall curves of the model against both baselines,
//! calibration by decile, realised churn per band, lift and cumulative
//! gains, and permutation feature importance. No script, no CDN: it opens
//! from disk, in a browser or a notebook.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::evaluate::Report;

const WIDTH: u32 = 560;
const HEIGHT: u32 = 400;
const MODEL: RGBColor = RGBColor(31, 119, 180);
const RECENCY: RGBColor = RGBColor(255, 127, 14);
const RFM: RGBColor = RGBColor(44, 160, 44);
const REFERENCE: RGBColor = RGBColor(150, 150, 150);
/// Features shown in the importance chart.
const TOP_FEATURES: usize = 15;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write the report into {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot draw the {chart} chart: {message}")]
    Draw {
        chart: &'static str,
        message: String,
    },
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws one chart into an SVG string.
fn svg(
    chart: &'static str,
    draw: impl FnOnce(&Area<'_>) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<String, ReportError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| ReportError::Draw {
            chart,
            message: e.to_string(),
        };
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        draw(&root).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(out)
}

/// One named, coloured line of points.
type Series<'s> = (&'s str, RGBColor, &'s [(f64, f64)]);

/// A line chart on [0, x_max] x [0, y_max]: named series and an optional
/// grey reference line.
struct Lines<'s> {
    chart: &'static str,
    title: &'s str,
    x_desc: &'s str,
    y_desc: &'s str,
    x_max: f64,
    y_max: f64,
    series: Vec<Series<'s>>,
    reference: Option<(&'s str, Vec<(f64, f64)>)>,
    markers: bool,
}

impl Lines<'_> {
    fn draw(self) -> Result<String, ReportError> {
        svg(self.chart, |root| {
            let mut c = ChartBuilder::on(root)
                .caption(self.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(48)
                .build_cartesian_2d(0f64..self.x_max, 0f64..self.y_max)?;
            c.configure_mesh()
                .x_desc(self.x_desc)
                .y_desc(self.y_desc)
                .light_line_style(RGBColor(235, 235, 235))
                .draw()?;
            if let Some((name, points)) = &self.reference {
                c.draw_series(LineSeries::new(points.iter().copied(), REFERENCE))?
                    .label(*name)
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], REFERENCE));
            }
            for (name, color, points) in &self.series {
                let color = *color;
                c.draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
                if self.markers {
                    c.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
                }
            }
            c.configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(REFERENCE)
                .draw()?;
            Ok(())
        })
    }
}

/// A bar chart of named values (vertical), or horizontal bars.
struct Bars<'s> {
    chart: &'static str,
    title: &'s str,
    value_desc: &'s str,
    names: Vec<String>,
    values: Vec<f64>,
    horizontal: bool,
    /// A grey line at this value (lift 1, the overall churn rate).
    reference: Option<f64>,
}

impl Bars<'_> {
    fn draw(self) -> Result<String, ReportError> {
        let n = self.values.len().max(1) as i32;
        // Segments of 0..=last: one per value.
        let last = n - 1;
        let top = self
            .values
            .iter()
            .copied()
            .chain(self.reference)
            .fold(0.0_f64, f64::max)
            .max(1e-9)
            * 1.1;
        let names = self.names.clone();
        let label = move |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                names.get(*i as usize).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        svg(self.chart, |root| {
            let mut b = ChartBuilder::on(root);
            b.caption(self.title, ("sans-serif", 18)).margin(12);
            if self.horizontal {
                let mut c = b
                    .x_label_area_size(40)
                    .y_label_area_size(210)
                    .build_cartesian_2d(0f64..top, (0..last).into_segmented())?;
                c.configure_mesh()
                    .x_desc(self.value_desc)
                    .y_labels(n as usize)
                    .y_label_formatter(&label)
                    .light_line_style(RGBColor(235, 235, 235))
                    .draw()?;
                c.draw_series(
                    Histogram::horizontal(&c)
                        .style(MODEL.filled())
                        .margin(3)
                        .data(self.values.iter().enumerate().map(|(i, v)| (i as i32, *v))),
                )?;
            } else {
                let mut c = b
                    .x_label_area_size(40)
                    .y_label_area_size(48)
                    .build_cartesian_2d((0..last).into_segmented(), 0f64..top)?;
                c.configure_mesh()
                    .y_desc(self.value_desc)
                    .x_labels(n as usize)
                    .x_label_formatter(&label)
                    .light_line_style(RGBColor(235, 235, 235))
                    .draw()?;
                c.draw_series(
                    Histogram::vertical(&c)
                        .style(MODEL.filled())
                        .margin(6)
                        .data(self.values.iter().enumerate().map(|(i, v)| (i as i32, *v))),
                )?;
                if let Some(r) = self.reference {
                    c.draw_series(LineSeries::new(
                        [(SegmentValue::Exact(0), r), (SegmentValue::Last, r)],
                        REFERENCE.stroke_width(2),
                    ))?;
                }
            }
            Ok(())
        })
    }
}

fn diagonal() -> Vec<(f64, f64)> {
    vec![(0.0, 0.0), (1.0, 1.0)]
}

/// Every chart of the report, as (name, caption, svg).
fn charts(r: &Report) -> Result<Vec<(&'static str, String, String)>, ReportError> {
    let c = &r.curves;
    let three = |pick: fn(&super::curves::Curves) -> &[(f64, f64)]| {
        vec![
            ("model", MODEL, pick(&c.model)),
            ("recency baseline", RECENCY, pick(&c.recency)),
            ("RFM logistic", RFM, pick(&c.rfm_logistic)),
        ]
    };
    let auc = |name: &str, x: &super::evaluate::Ranking| {
        format!("{name} {:.3} / {:.3}", x.roc_auc, x.pr_auc)
    };
    let aucs = format!(
        "ROC AUC / PR AUC: {}; {}; {}.",
        auc("model", &r.ranking),
        auc("recency", &r.baselines.recency),
        auc("RFM logistic", &r.baselines.rfm_logistic.ranking)
    );
    let mut out = Vec::new();
    out.push((
        "roc",
        format!("ROC curves of the model and both baselines. {aucs}"),
        Lines {
            chart: "roc",
            title: "ROC",
            x_desc: "false positive rate",
            y_desc: "true positive rate",
            x_max: 1.0,
            y_max: 1.0,
            series: three(|x| &x.roc),
            reference: Some(("random", diagonal())),
            markers: false,
        }
        .draw()?,
    ));
    out.push((
        "pr",
        format!(
            "Precision against recall; the grey line is the churn rate ({:.1}%), what contacting at random finds.",
            100.0 * r.churn_rate
        ),
        Lines {
            chart: "pr",
            title: "Precision-recall",
            x_desc: "recall",
            y_desc: "precision",
            x_max: 1.0,
            y_max: 1.0,
            series: three(|x| &x.pr),
            reference: Some(("churn rate", vec![(0.0, r.churn_rate), (1.0, r.churn_rate)])),
            markers: false,
        }
        .draw()?,
    ));
    let calibration: Vec<(f64, f64)> = r
        .deciles
        .iter()
        .map(|d| (d.predicted, d.realised))
        .collect();
    let top = calibration
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .fold(0.05_f64, f64::max)
        .min(1.0);
    out.push((
        "calibration",
        "Mean predicted probability against realised churn per score decile; on the grey diagonal the probabilities are right.".into(),
        Lines {
            chart: "calibration",
            title: "Calibration by decile",
            x_desc: "predicted churn probability",
            y_desc: "realised churn rate",
            x_max: top,
            y_max: top,
            series: vec![("model deciles", MODEL, &calibration)],
            reference: Some(("perfect calibration", vec![(0.0, 0.0), (top, top)])),
            markers: true,
        }
        .draw()?,
    ));
    out.push((
        "bands",
        format!(
            "Realised churn of the traders in each alert band (traders per band: {}); the grey line is the overall rate.",
            r.bands
                .iter()
                .map(|b| format!("{} {}", b.group, b.traders))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Bars {
            chart: "bands",
            title: "Realised churn per band",
            value_desc: "realised churn rate",
            names: r.bands.iter().map(|b| b.group.clone()).collect(),
            values: r.bands.iter().map(|b| b.realised).collect(),
            horizontal: false,
            reference: Some(r.churn_rate),
        }
        .draw()?,
    ));
    out.push((
        "lift",
        "Churn rate of each score decile over the overall rate, highest scores first; 1 (grey) is no better than random.".into(),
        Bars {
            chart: "lift",
            title: "Lift by decile",
            value_desc: "lift",
            names: (1..=r.lift.len()).map(|d| d.to_string()).collect(),
            values: r.lift.clone(),
            horizontal: false,
            reference: Some(1.0),
        }
        .draw()?,
    ));
    out.push((
        "gains",
        "Share of all churners reached when contacting the highest-scored share of traders.".into(),
        Lines {
            chart: "gains",
            title: "Cumulative gains",
            x_desc: "share of traders contacted",
            y_desc: "share of churners reached",
            x_max: 1.0,
            y_max: 1.0,
            series: three(|x| &x.gains),
            reference: Some(("random", diagonal())),
            markers: false,
        }
        .draw()?,
    ));
    // Bars go up from the axis: the most important last, on top.
    let mut shown: Vec<&super::curves::Importance> =
        r.importance.iter().take(TOP_FEATURES).collect();
    shown.reverse();
    out.push((
        "importance",
        format!(
            "ROC AUC lost when one feature is shuffled among the traders (the {} most important of {}).",
            shown.len(),
            r.importance.len()
        ),
        Bars {
            chart: "importance",
            title: "Permutation feature importance",
            value_desc: "ROC AUC lost",
            names: shown.iter().map(|i| i.feature.clone()).collect(),
            values: shown.iter().map(|i| i.auc_drop.max(0.0)).collect(),
            horizontal: true,
            reference: None,
        }
        .draw()?,
    ));
    Ok(out)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report page; `card` is the model card's path relative to the page.
pub fn html(r: &Report, card: Option<&str>) -> Result<String, ReportError> {
    let mut s = String::new();
    let title = format!("Churn model {} {} at {}", r.model, r.model_version, r.at);
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>\
         body{{font-family:sans-serif;margin:2em auto;max-width:1180px;color:#222}}\
         .charts{{display:flex;flex-wrap:wrap;gap:16px}}\
         figure{{margin:0;width:{WIDTH}px}}figcaption{{font-size:.9em;color:#444}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{padding:2px 10px;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}</style></head><body>\n\
         <h1>{t}</h1>\n<p>{e} traders active in the window before {at} ({c:.1}% churned \
         within {h} days). Estimator: {est}.",
        t = escape(&title),
        e = r.examples,
        at = escape(&r.at),
        c = 100.0 * r.churn_rate,
        h = r.horizon_days,
        est = escape(&r.estimator),
    );
    if let Some(card) = card {
        let _ = write!(s, " Model card: <a href=\"{0}\">{0}</a>.", escape(card));
    }
    s += "</p>\n<table><tr><th>scorer</th><th>ROC AUC</th><th>PR AUC</th><th>P@10%</th><th>R@10%</th></tr>\n";
    for (name, x) in [
        ("model", &r.ranking),
        ("recency baseline", &r.baselines.recency),
        ("RFM logistic", &r.baselines.rfm_logistic.ranking),
    ] {
        let _ = writeln!(
            s,
            "<tr><td>{name}</td><td>{:.4}</td><td>{:.4}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            x.roc_auc,
            x.pr_auc,
            x.precision_at.get("top_10").copied().unwrap_or(0.0),
            x.recall_at.get("top_10").copied().unwrap_or(0.0),
        );
    }
    s += "</table>\n<div class=\"charts\">\n";
    for (name, caption, chart) in charts(r)? {
        let _ = writeln!(
            s,
            "<figure data-chart=\"{name}\">{chart}<figcaption>{}</figcaption></figure>",
            escape(&caption)
        );
    }
    s += "</div>\n</body></html>\n";
    Ok(s)
}

/// Writes `dir/index.html`; its path.
pub fn write_report(r: &Report, dir: &Path, card: Option<&str>) -> Result<PathBuf, ReportError> {
    let io = |source| ReportError::Io {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let page = dir.join("index.html");
    std::fs::write(&page, html(r, card)?).map_err(io)?;
    Ok(page)
}
