//! `pulse check`: validates the pipelines (and, with the Kafka work, the
//! config file and model), reporting every problem at once.

use veloc_pulse::pipeline::check_pipelines;

use super::pipelines_dir;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file to validate (its pipelines folder is checked too).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Folder of `*.sql` pipelines [default: the config's, else ./pipelines when present, else the built-in catalogue].
    #[arg(long)]
    pipelines: Option<std::path::PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut from_config = None;
    if let Some(path) = &a.config {
        let c = veloc_pulse::config::Config::load(path)?;
        println!("ok: {} is a valid configuration", path.display());
        from_config = c.pipelines.dir;
    }
    let dir = pipelines_dir(a.pipelines.or(from_config));
    let shown = dir.as_ref().map_or_else(
        || "built-in catalogue".to_owned(),
        |d| d.display().to_string(),
    );
    match check_pipelines(dir.as_deref()) {
        Ok(planned) => {
            println!("ok: {} pipelines planned from {shown}", planned.len());
            for p in &planned {
                println!(
                    "  {:<16} {:<22} labels [{}]  values [{}]",
                    p.name,
                    p.def.window.to_string(),
                    p.def.labels.join(", "),
                    p.def
                        .values
                        .iter()
                        .map(|(v, _)| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(())
        }
        Err(e) => anyhow::bail!("{shown}: {e}"),
    }
}
