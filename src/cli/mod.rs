//! Subcommands of `pulse`. The edge of the program: anyhow lives here only.

mod bench;
mod demo;
mod replay;
mod simulate;

use clap::{Parser, Subcommand};

use veloc_pulse::event::time::{parse_duration_ms, parse_instant_ms};

/// Real-time analytics and churn scoring for an online brokerage.
#[derive(Parser, Debug)]
#[command(name = "pulse", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate(a) => simulate::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
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
