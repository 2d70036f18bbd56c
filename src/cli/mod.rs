//! Subcommands of `pulse`. The edge of the program: anyhow lives here only.

mod bench;
mod check;
mod demo;
mod forget;
mod model;
mod progress;
mod replay;
mod risk;
mod run;
mod simulate;
mod validate_alerts;

use clap::{Parser, Subcommand};

use std::path::PathBuf;

use anyhow::Context;

use veloc_pulse::engine::{Engine, EngineConfig};
use veloc_pulse::event::time::{parse_duration_ms, parse_instant_ms};
use veloc_pulse::window::WindowConfig;

/// Real-time analytics and churn scoring for an online brokerage.
#[derive(Parser, Debug)]
#[command(name = "pulse", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress bars (they are drawn on stderr only when it is a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a deterministic synthetic brokerage event stream.
    Simulate(simulate::Args),
    /// Run an NDJSON file through the pipeline at full speed and summarise.
    Replay(replay::Args),
    /// Everything in-process on the simulator, with the HTTP endpoints served.
    Demo(demo::Args),
    /// Measure pipeline throughput against a bare serde_json decode.
    Bench(bench::Args),
    /// Validate the config file and pipelines, reporting every problem at once.
    Check(check::Args),
    /// The service: Kafka in, KPIs and alerts out, HTTP served.
    Run(run::Args),
    /// LGPD erasure: ask `pulse run` to forget traders (via the erasure topic).
    Forget(forget::Args),
    /// Train a churn model from event history (linfa), with a model card.
    Train(model::TrainArgs),
    /// Evaluate a churn model at a later time, against two baselines.
    Evaluate(model::EvaluateArgs),
    /// Score every trader seen up to a time, as CSV.
    Score(model::ScoreArgs),
    /// Export the feature vectors (and labels, scores) at a time, as Parquet or Arrow IPC.
    Features(model::FeaturesArgs),
    /// Check JSONL files of alerts against the alert schema, every problem at once.
    ValidateAlerts(validate_alerts::Args),
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    progress::set_quiet(cli.quiet);
    match cli.command {
        Command::Simulate(a) => simulate::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Check(a) => check::run(a),
        Command::Run(a) => run::run(a),
        Command::Forget(a) => forget::run(a),
        Command::Train(a) => model::run_train(a),
        Command::Evaluate(a) => model::run_evaluate(a),
        Command::Score(a) => model::run_score(a),
        Command::Features(a) => model::run_features(a),
        Command::ValidateAlerts(a) => validate_alerts::run(a),
    }
}

/// clap parser for durations such as `30s`, `15m`, `30d`.
pub fn duration_arg(s: &str) -> Result<i64, String> {
    parse_duration_ms(s)
}

/// clap parser for instants: RFC 3339, a date or epoch milliseconds.
pub fn instant_arg(s: &str) -> Result<i64, String> {
    parse_instant_ms(s)
}

/// The pipelines folder: the one given, else `./pipelines` when present,
/// else `None` (the built-in catalogue).
pub fn pipelines_dir(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.or_else(|| Some(PathBuf::from("pipelines")).filter(|p| p.is_dir()))
}

/// Flags shared by every command that runs the engine.
#[derive(clap::Args, Debug)]
pub struct EngineArgs {
    /// Folder of `*.sql` pipelines [default: ./pipelines when present, else the built-in catalogue].
    #[arg(long)]
    pipelines: Option<PathBuf>,
    /// Allowed disorder: a partition's watermark is its latest event time minus this.
    #[arg(long, value_parser = duration_arg, default_value = "10s")]
    disorder: i64,
    /// Grace after the watermark before a window closes; later events are late.
    #[arg(long, value_parser = duration_arg, default_value = "50s")]
    grace: i64,
    /// Replay: run the pipelines each time event time advances this much.
    /// Larger amortises query start-up over more windows; outputs do not
    /// change (every window and every snapshot boundary is emitted).
    #[arg(long, value_parser = duration_arg, default_value = "7d")]
    emit_every: i64,
    /// Traders tracked per partition (a file is one partition); events of
    /// new traders beyond it are dead-lettered with reason `state_full`
    /// [default: 16777216, the id space].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    max_traders_per_partition: Option<u32>,
}

impl EngineArgs {
    /// Loads and plans the pipelines; every problem is reported at once.
    pub fn build(&self, live: bool) -> anyhow::Result<Engine> {
        let windows = WindowConfig {
            disorder_ms: self.disorder,
            grace_ms: self.grace,
            emit_every_ms: self.emit_every.max(1),
            ..WindowConfig::default()
        };
        let mut config = EngineConfig {
            windows,
            live,
            ..EngineConfig::default()
        };
        if let Some(cap) = self.max_traders_per_partition {
            config.ingest.decode.max_traders_per_partition = cap;
        }
        let dir = pipelines_dir(self.pipelines.clone());
        Engine::new(config, dir.as_deref()).context("cannot start the pipelines")
    }
}
