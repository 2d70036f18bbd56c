//! `pulse train`, `pulse evaluate` and `pulse score`: the quants' commands.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;

use super::{duration_arg, instant_arg, progress};
use veloc_pulse::event::time::{DAY_MS, format_rfc3339_ms};
use veloc_pulse::model::{
    Bands, EvalConfig, ExportConfig, ExportFormat, History, MAX_CHANNELS, Model, Population,
    Report, TrainConfig, evaluate, feature_table, model_card, train, write_report, write_scores,
    write_table,
};

/// `pulse train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// NDJSON event history (invalid and duplicate lines are skipped and counted).
    #[arg(long)]
    events: PathBuf,
    /// Snapshot time (repeatable). The last one is the validation snapshot,
    /// later than all training data; with one cutoff, a training cutoff one
    /// horizon earlier is added.
    #[arg(long = "cutoff", value_parser = instant_arg, required = true)]
    cutoffs: Vec<i64>,
    /// Churn horizon: churned = no trade and no approved deposit in (cutoff, cutoff + horizon].
    #[arg(long, value_parser = duration_arg, default_value = "30d")]
    horizon: i64,
    /// Only traders with a trade or approved deposit this long before a cutoff are examples.
    #[arg(long, value_parser = duration_arg, default_value = "90d")]
    active_within: i64,
    /// Where the artifact goes; the model card goes beside it (`.md`).
    #[arg(long)]
    out: PathBuf,
    /// Model name [default: the file name of --out without extension].
    #[arg(long)]
    name: Option<String>,
    /// Band thresholds of the calibrated probability: medium,high,critical.
    #[arg(long, default_value = "0.3,0.6,0.85", value_parser = bands_arg)]
    bands: Bands,
    /// Trees of the forest candidate.
    #[arg(long, default_value_t = 30)]
    trees: usize,
    /// Seed of the forest's row and feature sampling.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
}

fn bands_arg(s: &str) -> Result<Bands, String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{s:?}: {e}; expected three numbers like 0.3,0.6,0.85"))?;
    match v[..] {
        [medium, high, critical]
            if 0.0 < medium && medium < high && high < critical && critical < 1.0 =>
        {
            Ok(Bands {
                medium,
                high,
                critical,
            })
        }
        _ => Err(format!(
            "{s:?}: expected medium,high,critical with 0 < medium < high < critical < 1"
        )),
    }
}

fn load_history(path: &std::path::Path) -> anyhow::Result<History> {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let bar = progress::bytes("read", size);
    let h = History::load_with_progress(path, &mut |bytes, events| {
        bar.set_position(bytes);
        progress::events(&bar, events);
    })?;
    bar.finish_and_clear();
    eprintln!(
        "{}: {} events from {} to {} ({} lines skipped as invalid or duplicate)",
        path.display(),
        h.events.len(),
        format_rfc3339_ms(h.first_ts()),
        format_rfc3339_ms(h.last_ts()),
        h.skipped
    );
    Ok(h)
}

pub fn run_train(a: TrainArgs) -> anyhow::Result<()> {
    let history = load_history(&a.events)?;
    let name = a.name.clone().unwrap_or_else(|| {
        a.out
            .file_stem()
            .map_or_else(|| "churn".into(), |s| s.to_string_lossy().into_owned())
    });
    let mut cfg = TrainConfig::new(&name, a.cutoffs.clone(), a.horizon, a.active_within);
    cfg.bands = a.bands;
    cfg.forest.trees = a.trees.max(1);
    cfg.forest.seed = a.seed;
    let bar = progress::phase("training: features at each cutoff, candidates, calibration");
    let model = train(&history, &cfg);
    bar.finish_and_clear();
    let model = model?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    model.save(&a.out)?;
    let card = a.out.with_extension("md");
    std::fs::write(&card, model_card(&model))
        .with_context(|| format!("writing {}", card.display()))?;
    let t = &model.training;
    println!(
        "trained {} {} on {} examples ({:.1}% churned) at {}; validated at {} on {} examples",
        model.name,
        model.version,
        t.training_examples,
        100.0 * t.training_churn_rate,
        t.training_cutoffs.join(", "),
        t.validation_cutoff,
        t.validation_examples
    );
    for c in &model.validation.candidates {
        let mark = if c.name == model.validation.chosen {
            "  <- chosen"
        } else {
            ""
        };
        println!(
            "  {:<9} validation ROC AUC {:.4}  PR AUC {:.4}{mark}",
            c.name, c.roc_auc, c.pr_auc
        );
    }
    println!("wrote {} and {}", a.out.display(), card.display());
    Ok(())
}

/// `pulse evaluate`.
#[derive(clap::Args, Debug)]
pub struct EvaluateArgs {
    /// NDJSON event history.
    #[arg(long)]
    events: PathBuf,
    /// Scoring time; labels come from (at, at + horizon].
    #[arg(long, value_parser = instant_arg)]
    at: i64,
    /// Churn horizon.
    #[arg(long, value_parser = duration_arg, default_value = "30d")]
    horizon: i64,
    /// Only traders with a trade or approved deposit this long before --at
    /// are evaluated [default: the model's own training population].
    #[arg(long, value_parser = duration_arg)]
    active_within: Option<i64>,
    /// Model artifact.
    #[arg(long)]
    model: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write an HTML report with SVG charts (ROC, PR, calibration,
    /// bands, lift, gains, feature importance) to DIR/index.html; the
    /// model card beside the artifact links it.
    #[arg(long)]
    report: Option<PathBuf>,
}

pub fn run_evaluate(a: EvaluateArgs) -> anyhow::Result<()> {
    let model = Model::load(&a.model)?;
    let history = load_history(&a.events)?;
    if (a.horizon as f64 / DAY_MS as f64 - model.horizon_days).abs() > 1e-9 {
        eprintln!(
            "note: evaluating a {}-day model at a {}-day horizon",
            model.horizon_days,
            a.horizon as f64 / DAY_MS as f64
        );
    }
    let bar = progress::phase("evaluating: features, model and baselines");
    let report = evaluate(
        &history,
        &model,
        EvalConfig {
            at: a.at,
            horizon_ms: a.horizon,
            active_within_ms: a
                .active_within
                .unwrap_or((model.training.active_within_days * DAY_MS as f64).round() as i64),
        },
    );
    bar.finish_and_clear();
    let report = report?;
    if let Some(dir) = &a.report {
        let card = a.model.with_extension("md");
        let card = card
            .exists()
            .then(|| std::path::absolute(&card))
            .transpose()?;
        let href = card.as_ref().map(|c| format!("file://{}", c.display()));
        let page = write_report(&report, dir, href.as_deref())?;
        let page = std::path::absolute(&page)?;
        if let Some(card) = &card {
            link_report(card, &report, &page)?;
        }
        eprintln!("report: {}", page.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// Adds the report to the model card's list of evaluations (once).
fn link_report(card: &std::path::Path, r: &Report, page: &std::path::Path) -> anyhow::Result<()> {
    const SECTION: &str = "\n## Evaluation reports\n\n";
    let mut text = std::fs::read_to_string(card)
        .with_context(|| format!("cannot read the model card {}", card.display()))?;
    let line = format!(
        "- at {}, {}-day horizon, {} traders: ROC AUC {:.4}, PR AUC {:.4}: [{}](file://{})\n",
        r.at,
        r.horizon_days,
        r.examples,
        r.ranking.roc_auc,
        r.ranking.pr_auc,
        page.display(),
        page.display()
    );
    if text.contains(&line) {
        return Ok(());
    }
    if !text.contains(SECTION) {
        text += SECTION;
    }
    text += &line;
    std::fs::write(card, text)
        .with_context(|| format!("cannot update the model card {}", card.display()))
}

/// `pulse features`.
#[derive(clap::Args, Debug)]
pub struct FeaturesArgs {
    /// NDJSON event history.
    #[arg(long)]
    events: PathBuf,
    /// Snapshot time: features from events up to it only.
    #[arg(long, value_parser = instant_arg)]
    at: i64,
    /// Add the `churned` label: no trade and no approved deposit in
    /// (at, at + horizon].
    #[arg(long, value_parser = duration_arg)]
    horizon: Option<i64>,
    /// Traders with a trade or approved deposit this long before --at, as
    /// the trainer selects them [default: the model's, else 90d].
    #[arg(long, value_parser = duration_arg, conflicts_with = "everyone")]
    active_within: Option<i64>,
    /// Every trader seen up to --at, as `pulse score` takes them.
    #[arg(long)]
    everyone: bool,
    /// Model artifact: its feature order and a `churn_score` column.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output file: `.parquet` (Parquet, snappy) or `.arrow` / `.feather`
    /// (Arrow IPC, Feather v2).
    #[arg(long)]
    out: PathBuf,
}

pub fn run_features(a: FeaturesArgs) -> anyhow::Result<()> {
    let Some(format) = ExportFormat::for_path(&a.out) else {
        anyhow::bail!(
            "--out {}: name the file {} (pandas.read_parquet / read_feather, \
             polars.read_parquet / read_ipc, pyarrow)",
            a.out.display(),
            ExportFormat::ACCEPTED
        );
    };
    let model = a.model.as_deref().map(Model::load).transpose()?;
    let history = load_history(&a.events)?;
    let population = if a.everyone {
        Population::Everyone
    } else {
        let days = model
            .as_ref()
            .map_or(90.0, |m| m.training.active_within_days);
        Population::ActiveWithin(
            a.active_within
                .unwrap_or((days * DAY_MS as f64).round() as i64),
        )
    };
    let bar = progress::phase("features");
    let table = feature_table(
        &history,
        model.as_ref(),
        MAX_CHANNELS,
        ExportConfig {
            at: a.at,
            horizon_ms: a.horizon,
            population,
        },
    );
    bar.finish_and_clear();
    let table = table?;
    write_table(&table, &a.out, format)?;
    eprintln!(
        "{}: {} traders x {} columns at {}",
        a.out.display(),
        table.num_rows(),
        table.num_columns(),
        format_rfc3339_ms(a.at)
    );
    Ok(())
}

/// `pulse score`.
#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// NDJSON event history.
    #[arg(long)]
    events: PathBuf,
    /// Scoring time: only events up to it are read.
    #[arg(long, value_parser = instant_arg)]
    at: i64,
    /// Model artifact.
    #[arg(long)]
    model: PathBuf,
    /// CSV output (`trader_id,churn_score,band,reasons`), `-` for stdout.
    #[arg(long, default_value = "-")]
    out: PathBuf,
}

pub fn run_score(a: ScoreArgs) -> anyhow::Result<()> {
    let model = Model::load(&a.model)?;
    let history = load_history(&a.events)?;
    let bar = progress::phase("scoring");
    let n = if a.out.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut w = BufWriter::new(stdout.lock());
        let n = write_scores(&history, &model, a.at, &mut w)?;
        w.flush()?;
        n
    } else {
        let file = File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
        let mut w = BufWriter::new(file);
        let n = write_scores(&history, &model, a.at, &mut w)
            .with_context(|| format!("writing {}", a.out.display()))?;
        w.flush()?;
        bar.finish_and_clear();
        eprintln!("wrote {n} scores to {}", a.out.display());
        n
    };
    bar.finish_and_clear();
    if n == 0 {
        eprintln!(
            "note: no trader had an event before {}",
            format_rfc3339_ms(a.at)
        );
    }
    Ok(())
}
