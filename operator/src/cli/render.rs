//! `meshbaseline render`: a baseline and the namespaces of a cluster -> the desired objects as
//! a multi-document YAML stream, ready to commit to a GitOps repository.
//!
//! Pure but for reading the input files: no client. Output is built completely before anything
//! is printed, so a bad input leaves stdout empty.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::Timestamp;

use crate::api::model::is_dns1123_label;
use crate::api::{Baseline, InvalidBaseline, MeshBaseline};
use crate::compile::{compile, Scope};
use crate::inventory::{Inventory, NamespaceInfo};
use crate::manifests::{self, ManifestError};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    /// The MeshBaseline manifest (YAML or JSON).
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
    /// Unreadable or malformed input, every problem listed.
    #[error("{}", lines(.0))]
    Manifests(Vec<ManifestError>),
    #[error("{}: no MeshBaseline found", .0.display())]
    NoBaseline(PathBuf),
    #[error("{}: {count} MeshBaselines found; render takes exactly one", .file.display())]
    SeveralBaselines { file: PathBuf, count: usize },
    #[error("{}", invalid(.file, *.document, .error))]
    Invalid {
        file: PathBuf,
        document: usize,
        error: InvalidBaseline,
    },
    #[error("--namespace {0:?}: not a valid namespace name (DNS-1123 label)")]
    Namespace(String),
    #[error("serializing {object}: {source}")]
    Yaml {
        object: String,
        source: serde_norway::Error,
    },
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
}

fn lines(errors: &[ManifestError]) -> String {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    all.join("\n")
}

fn invalid(file: &Path, document: usize, error: &InvalidBaseline) -> String {
    let mut s = format!(
        "{} (document {document}): MeshBaseline {:?} is invalid:",
        file.display(),
        error.name
    );
    for e in &error.errors {
        s.push_str(&format!("\n  {e}"));
    }
    s
}

/// Reads the single MeshBaseline of `path` and validates it. A uid copied from a cluster dump
/// is dropped: rendered objects get no ownerReference.
pub fn read_baseline(path: &Path) -> Result<Baseline, RenderError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        RenderError::Manifests(vec![ManifestError {
            file: path.to_path_buf(),
            document: None,
            message: format!("cannot read: {e}"),
        }])
    })?;
    let (docs, errors) = manifests::parse_documents(path, &text);
    if !errors.is_empty() {
        return Err(RenderError::Manifests(errors));
    }
    let docs: Vec<_> = docs
        .into_iter()
        .filter(|d| d.value.get("kind").and_then(|k| k.as_str()) == Some("MeshBaseline"))
        .collect();
    let doc = match docs.as_slice() {
        [] => return Err(RenderError::NoBaseline(path.to_path_buf())),
        [doc] => doc,
        _ => {
            return Err(RenderError::SeveralBaselines {
                file: path.to_path_buf(),
                count: docs.len(),
            })
        }
    };
    let mut mb: MeshBaseline =
        manifests::typed(doc).map_err(|e| RenderError::Manifests(vec![e]))?;
    mb.metadata.uid = None;
    Baseline::try_from(&mb).map_err(|error| RenderError::Invalid {
        file: path.to_path_buf(),
        document: doc.number,
        error,
    })
}

/// The inventory from `--cluster` or `--namespace`.
pub fn read_inventory(args: &Args) -> Result<Inventory, RenderError> {
    if !args.cluster.is_empty() {
        let loaded = manifests::load_paths(&args.cluster);
        if !loaded.errors.is_empty() {
            return Err(RenderError::Manifests(loaded.errors));
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
        let yaml =
            crate::yaml::to_string(&object.manifest()).map_err(|source| RenderError::Yaml {
                object: object.key.to_string(),
                source,
            })?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}

pub fn run(args: &Args) -> Result<ExitCode, RenderError> {
    let yaml = render(args, Timestamp::now())?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(yaml.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
