use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meshbaseline",
    version,
    about = "Enforce a mesh-wide security baseline on Istio"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the MeshBaseline CRD (or write it to a file).
    Crdgen {
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the objects a baseline generates, as a multi-document YAML stream.
    Render(meshbaseline::cli::render::Args),
    /// Report tenant objects and workloads that weaken the mesh (exit 1 at --fail-on).
    Check(meshbaseline::cli::check::Args),
    /// Effective posture per workload and port: data plane, mTLS mode, whether plaintext is
    /// refused and by what, network, exemptions, findings (manifests, or the cluster).
    Posture(meshbaseline::cli::posture::Args),
    /// Run the operator.
    Run(meshbaseline::cli::run::RunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crdgen { out } => crdgen(out),
        Command::Render(args) => meshbaseline::cli::render::run(&args).map_err(Into::into),
        Command::Check(args) => Ok(meshbaseline::cli::check::main(&args)),
        Command::Posture(args) => Ok(meshbaseline::cli::posture::main(&args)),
        Command::Run(args) => meshbaseline::cli::run::run(args).map_err(anyhow::Error::from),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn crdgen(out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let yaml = meshbaseline::cli::crdgen::crd_yaml().context("serializing the CRD")?;
    match out {
        Some(path) => {
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{yaml}"),
    }
    Ok(ExitCode::SUCCESS)
}
