//! `meshbaseline render`: a baseline and the namespaces of a cluster -> the desired objects as
//! a multi-document YAML stream, ready to commit to a GitOps repository.
//!
//! Pure but for reading the input files: no client. Output is built completely before anything
//! is printed, so a bad input leaves stdout empty.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;

use super::escape::printable;
use crate::api::model::is_dns1123_label;
use crate::api::Baseline;
use crate::compile::{compile, Scope};
use crate::inventory::{Inventory, NamespaceInfo};
use crate::manifests::{self, BaselineFileError, ManifestError};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    /// The MeshBaseline manifest (YAML or JSON; `-` for standard input).
    #[arg(long, value_name = "FILE")]
    pub baseline: PathBuf,
    /// Manifests of the cluster (files or directories; multi-document YAML, JSON, `kind: List`).
    /// Namespaces (with their labels) and tenant DestinationRules are read from them.
    #[arg(long, value_name = "PATH", conflicts_with = "namespace")]
    pub cluster: Vec<PathBuf>,
    /// A namespace to render for (without labels); may be repeated. Used without --cluster.
    #[arg(long, value_name = "NAME")]
    pub namespace: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Inputs of `--cluster` not read, every one listed.
    #[error("{}", lines(.0))]
    Manifests(Vec<ManifestError>),
    #[error(transparent)]
    Baseline(#[from] BaselineFileError),
    #[error("--cluster: no Kubernetes object was found in {0}")]
    NoObjects(String),
    #[error("--namespace {0:?}: not a valid namespace name (DNS-1123 label)")]
    Namespace(String),
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
}

fn lines(errors: &[ManifestError]) -> String {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    all.join("\n")
}

/// Reads the single MeshBaseline of `path` and validates it. A uid copied from a cluster dump
/// is dropped: rendered objects get no ownerReference.
pub fn read_baseline(path: &std::path::Path) -> Result<Baseline, RenderError> {
    let (mut baseline, _) = manifests::read_baseline(path)?;
    baseline.uid = None;
    Ok(baseline)
}

/// The inventory from `--cluster` or `--namespace`.
pub fn read_inventory(args: &Args) -> Result<Inventory, RenderError> {
    if !args.cluster.is_empty() {
        let loaded = manifests::load_paths(&args.cluster);
        if !loaded.errors.is_empty() {
            return Err(RenderError::Manifests(loaded.errors));
        }
        if loaded.objects == 0 {
            let names: Vec<String> = args
                .cluster
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(RenderError::NoObjects(names.join(", ")));
        }
        return Ok(loaded.inventory);
    }
    let mut inventory = Inventory::default();
    for name in &args.namespace {
        if !is_dns1123_label(name) {
            return Err(RenderError::Namespace(name.clone()));
        }
        inventory.namespaces.insert(
            name.clone(),
            NamespaceInfo {
                terminating: false,
                name: name.clone(),
                labels: Default::default(),
            },
        );
    }
    Ok(inventory)
}

/// The YAML stream for `args` at time `now` (exemptions expire).
pub fn render(args: &Args, now: Timestamp) -> Result<String, RenderError> {
    let baseline = read_baseline(&args.baseline)?;
    let inventory = read_inventory(args)?;
    let compiled = compile(&baseline, &inventory, &Scope::default(), now);
    let mut out = String::new();
    for object in &compiled.objects {
        out.push_str("---\n");
        out.push_str(&manifests::to_yaml(&object.manifest()));
    }
    Ok(out)
}

/// The binary's entry: on any error nothing is printed to stdout, every problem to stderr,
/// and the exit code is 2.
pub fn run(args: &Args) -> Result<ExitCode, RenderError> {
    let written = render(args, Timestamp::now()).and_then(|yaml| {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(yaml.as_bytes())?;
        stdout.flush()?;
        Ok(())
    });
    match written {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {}", printable(line));
            }
            Ok(ExitCode::from(2))
        }
    }
}
