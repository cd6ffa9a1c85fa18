//! `meshbaseline check`: findings for manifests, for CI gates on a GitOps repository.
//!
//! Exit codes: 0 when no finding reaches `--fail-on`, 1 when one does, 2 when the input is
//! unusable (invalid baseline, or no document could be read at all). Malformed documents are
//! reported on stderr (and under `errors` in JSON, as notifications in SARIF) and the rest is
//! still checked; then the findings decide the exit code.

use std::io::{self, Write};
use std::path::PathBuf;

use jiff::Timestamp;

use crate::api::model::{Baseline, InvalidBaseline};
use crate::audit::{audit, Finding, Severity};
use crate::manifests::{load_paths, Loaded, ManifestError, Origin};

mod json;
mod sarif;
mod table;

pub use json::render_json;
pub use sarif::render_sarif;
pub use table::render_table;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Sarif,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// A file holding one MeshBaseline; without it, the default baseline (root namespace
    /// istio-system, every namespace but kube-system, kube-public, kube-node-lease and the
    /// root namespace protected).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Exit 1 when a finding has this severity or a higher one (critical, high, medium, low).
    #[arg(long, value_name = "LEVEL", default_value = "high", value_parser = parse_level)]
    pub fail_on: Severity,
    /// Manifest files or directories (YAML or JSON; multi-document, kind: List).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

fn parse_level(s: &str) -> Result<Severity, String> {
    Severity::parse(&s.to_ascii_lowercase())
        .ok_or_else(|| format!("{s:?} is not one of critical, high, medium, low"))
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("baseline {}: {message}", path.display())]
    BaselineFile { path: PathBuf, message: String },
    #[error(transparent)]
    InvalidBaseline(#[from] InvalidBaseline),
    #[error("no manifest could be read from {0}")]
    NoInput(String),
    #[error("writing the report: {0}")]
    Output(#[from] io::Error),
}

/// The audit of a set of manifests, with what is needed to point at files.
#[derive(Debug)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub errors: Vec<ManifestError>,
    pub loaded: Loaded,
}

impl Report {
    pub fn origin(&self, f: &Finding) -> Option<&Origin> {
        let key = (
            f.kind.clone(),
            f.namespace.clone().unwrap_or_default(),
            f.name.clone(),
        );
        self.loaded.origins.get(&key)
    }
}

/// Reads `--baseline FILE`: exactly one valid MeshBaseline.
pub fn read_baseline(path: &PathBuf) -> Result<Baseline, CheckError> {
    let loaded = load_paths(std::slice::from_ref(path));
    let fail = |message: String| CheckError::BaselineFile {
        path: path.clone(),
        message,
    };
    if let Some(e) = loaded.errors.first() {
        return Err(fail(e.to_string()));
    }
    match loaded.baselines.as_slice() {
        [mb] => Ok(Baseline::try_from(mb)?),
        other => Err(fail(format!(
            "expected exactly one MeshBaseline, found {}",
            other.len()
        ))),
    }
}

/// Loads and audits; `Err` only for unusable input.
pub fn check(baseline: &Baseline, paths: &[PathBuf], now: Timestamp) -> Result<Report, CheckError> {
    let mut loaded = load_paths(paths);
    if loaded.documents == 0 && !loaded.errors.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let details: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
        return Err(CheckError::NoInput(format!(
            "{} ({})",
            names.join(", "),
            details.join("; ")
        )));
    }
    let findings = audit(baseline, &loaded.inventory, now);
    let errors = std::mem::take(&mut loaded.errors);
    Ok(Report {
        findings,
        errors,
        loaded,
    })
}

/// 1 when a finding reaches `fail_on`, else 0.
pub fn exit_code(findings: &[Finding], fail_on: Severity) -> u8 {
    u8::from(findings.iter().any(|f| f.severity >= fail_on))
}

/// Runs the command, writing the report to `out` and diagnostics to `err`; returns the exit
/// code (0 or 1); unusable input is an `Err` (exit 2).
pub fn run(
    args: &Args,
    now: Timestamp,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, CheckError> {
    let baseline = match &args.baseline {
        Some(path) => read_baseline(path)?,
        None => Baseline::default_for_check(),
    };
    let report = check(&baseline, &args.paths, now)?;
    for e in &report.errors {
        writeln!(err, "warning: skipped {e}")?;
    }
    if report.loaded.documents == 0 {
        writeln!(
            err,
            "warning: no Kubernetes objects found in the given paths"
        )?;
    }
    let text = match args.format {
        Format::Table => render_table(&report, args.fail_on),
        Format::Json => render_json(&report),
        Format::Sarif => render_sarif(&report),
    };
    out.write_all(text.as_bytes())?;
    Ok(exit_code(&report.findings, args.fail_on))
}

/// The binary's entry: real stdout, stderr and clock.
pub fn main(args: &Args) -> Result<std::process::ExitCode, CheckError> {
    let code = run(
        args,
        Timestamp::now(),
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    )?;
    Ok(std::process::ExitCode::from(code))
}
