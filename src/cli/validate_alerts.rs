//! `pulse validate-alerts`: JSONL files of alerts (the alert topic's
//! messages, `--alerts-out` files) checked against the alert schema, every
//! problem reported as `FILE:LINE: message at $.path`.

use std::io::Write;
use std::path::PathBuf;

use veloc_pulse::alert::{AlertSchema, LineCheck};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// JSON Schema to check against [default: the bundled schemas/alert.schema.json].
    #[arg(long)]
    schema: Option<PathBuf>,
    /// JSONL files, one alert per line (blank lines are skipped).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Exit status: 0 every line a valid alert, 1 a line that is not JSON or
/// breaks the schema, 2 a schema or file that cannot be read.
pub fn run(a: Args) -> anyhow::Result<()> {
    let schema = match &a.schema {
        None => AlertSchema::bundled(),
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) => AlertSchema::from_json(&text),
            Err(e) => usage(&format!("cannot read schema {}: {e}", p.display())),
        },
    };
    let schema = match schema {
        Ok(s) => s,
        Err(e) => usage(&format!("{}: {e}", shown(a.schema.as_deref()))),
    };
    let (mut alerts, mut errors, mut unreadable) = (0usize, 0usize, false);
    let mut empty = Vec::new();
    let mut out = std::io::stdout().lock();
    for path in &a.files {
        let name = path.display();
        let checks =
            std::fs::File::open(path).and_then(|f| schema.check_lines(std::io::BufReader::new(f)));
        let checks = match checks {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{name}: cannot read: {e}");
                unreadable = true;
                continue;
            }
        };
        let mut count = 0;
        for (line, check) in checks {
            match check {
                LineCheck::Blank => {}
                LineCheck::NotJson(e) => {
                    errors += 1;
                    writeln!(out, "{name}:{line}: not JSON: {e}")?;
                }
                LineCheck::Alert(violations) => {
                    count += 1;
                    errors += violations.len();
                    for v in violations {
                        writeln!(out, "{name}:{line}: {} at {}", v.message, v.path)?;
                    }
                }
            }
        }
        alerts += count;
        if count == 0 {
            empty.push(name.to_string());
        }
    }
    let mut summary = format!(
        "validated {alerts} alerts in {} files, {errors} errors",
        a.files.len()
    );
    if !empty.is_empty() {
        summary += &format!("; no alerts in: {}", empty.join(", "));
    }
    writeln!(out, "{summary}")?;
    out.flush()?;
    if unreadable {
        std::process::exit(2);
    }
    if errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn shown(schema: Option<&std::path::Path>) -> String {
    schema.map_or_else(
        || "bundled alert schema".to_owned(),
        |p| p.display().to_string(),
    )
}

fn usage(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}
