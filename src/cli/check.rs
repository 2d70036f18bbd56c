//! `pulse check`: validates the pipelines (and, with the Kafka work, the
//! config file and model), reporting every problem at once.

use veloc_pulse::pipeline::check_pipelines;

use super::pipelines_dir;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder of `*.sql` pipelines [default: ./pipelines when present, else the built-in catalogue].
    #[arg(long)]
    pipelines: Option<std::path::PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let dir = pipelines_dir(a.pipelines);
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
