//! `meshbaseline check`: findings for manifests, for CI gates on a GitOps repository.
//!
//! Fails closed. Exit codes: 0 when every input was read and no finding reaches `--fail-on`;
//! 1 when one does; 2 when the result cannot be trusted: a bad flag, an unreadable or invalid
//! `--baseline`, any input that was not read (a path, a file, a document or a List item;
//! unless `--skip-unreadable`, which lists what was skipped in every format), or no object at
//! all. The report is printed in every case, with what was not read in it.

use std::io::{self, Write};
use std::path::PathBuf;

use jiff::Timestamp;

use crate::api::model::Baseline;
use crate::audit::{audit, Finding, Severity};
use crate::manifests::{load_paths, read_baseline, BaselineFileError, Loaded, Location};

mod json;
mod sarif;
mod table;

pub use json::render_json;
pub use sarif::render_sarif;
pub use table::render_table;

use super::exit::{entry, write_loading, write_unusable};

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
    /// Audit what could be read and list the rest as skipped, instead of exiting 2 when any
    /// path, file, document or List item cannot be read.
    #[arg(long)]
    pub skip_unreadable: bool,
    /// Manifest files or directories (YAML or JSON; multi-document, kind: List), or `-` for
    /// standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

pub(crate) fn parse_level(s: &str) -> Result<Severity, String> {
    Severity::parse(&s.to_ascii_lowercase())
        .ok_or_else(|| format!("{s:?} is not one of critical, high, medium, low"))
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("--baseline: {0}")]
    Baseline(#[from] BaselineFileError),
    #[error("writing the report: {0}")]
    Output(#[from] io::Error),
}

pub use super::exit::{EXIT_FINDINGS, EXIT_UNUSABLE};

/// The audit of a set of manifests, with what was not read and where objects came from.
#[derive(Debug)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub loaded: Loaded,
    /// `--skip-unreadable`: inputs not read are listed, not fatal.
    pub skip_unreadable: bool,
    pub fail_on: Severity,
}

impl Report {
    pub fn origin(&self, f: &Finding) -> Option<&Location> {
        let key = (
            f.kind.clone(),
            f.namespace.clone().unwrap_or_default(),
            f.name.clone(),
        );
        self.loaded.origins.get(&key)
    }

    /// Why the result cannot be trusted, if it cannot.
    pub fn unusable(&self) -> Option<String> {
        let n = self.loaded.errors.len();
        if n > 0 && !self.skip_unreadable {
            return Some(format!(
                "{n} input{} could not be read; fix {} or pass --skip-unreadable",
                if n == 1 { "" } else { "s" },
                if n == 1 { "it" } else { "them" }
            ));
        }
        if self.loaded.objects == 0 {
            return Some("no Kubernetes object was found in the given paths".into());
        }
        None
    }

    pub fn exit_code(&self) -> u8 {
        if self.unusable().is_some() {
            EXIT_UNUSABLE
        } else {
            exit_code(&self.findings, self.fail_on)
        }
    }
}

/// Loads and audits.
pub fn check(
    baseline: &Baseline,
    paths: &[PathBuf],
    now: Timestamp,
    skip_unreadable: bool,
    fail_on: Severity,
) -> Report {
    let loaded = load_paths(paths);
    let findings = audit(baseline, &loaded.inventory, now);
    Report {
        findings,
        loaded,
        skip_unreadable,
        fail_on,
    }
}

/// 1 when a finding reaches `fail_on`, else 0.
pub fn exit_code(findings: &[Finding], fail_on: Severity) -> u8 {
    if findings.iter().any(|f| f.severity >= fail_on) {
        EXIT_FINDINGS
    } else {
        0
    }
}

/// Runs the command, writing the report to `out` and diagnostics to `err`; returns the exit
/// code. `Err` only when `--baseline` cannot be used or the report cannot be written.
pub fn run(
    args: &Args,
    now: Timestamp,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, CheckError> {
    let baseline = match &args.baseline {
        Some(path) => read_baseline(path)?.0,
        None => Baseline::default_for_check(),
    };
    let report = check(
        &baseline,
        &args.paths,
        now,
        args.skip_unreadable,
        args.fail_on,
    );
    write_loading(err, &report.loaded, args.skip_unreadable)?;
    if let Some(why) = report.unusable() {
        write_unusable(err, &why)?;
    }
    let text = match args.format {
        Format::Table => render_table(&report),
        Format::Json => render_json(&report),
        Format::Sarif => render_sarif(&report),
    };
    out.write_all(text.as_bytes())?;
    Ok(report.exit_code())
}

/// The binary's entry: real stdout, stderr and clock; every failure is exit 2.
pub fn main(args: &Args) -> std::process::ExitCode {
    entry(|now, out, err| run(args, now, out, err))
}
