//! `meshbaseline posture`: the effective posture of every workload and port, offline on
//! manifests (as `check` reads them) or live from a cluster (read-only: list and get).
//!
//! Exit codes as `check`: 0 when every input was read and no finding that concerns a listed
//! workload reaches `--fail-on`; 1 when one does; 2 when the result cannot be trusted (a bad
//! flag, an unreadable or invalid `--baseline`, input not read, no object at all, the cluster
//! not readable, or `--workload`/`--explain` naming no workload).

use std::io::{self, Write};
use std::path::PathBuf;

use jiff::Timestamp;

use crate::api::model::Baseline;
use crate::audit::{audit_in_scope, Finding, Severity};
use crate::compile::compile;
use crate::inventory::Inventory;
use crate::manifests::{load_paths, read_baseline, BaselineFileError, Loaded};
use crate::posture::{Detail, Objects, Port, Posture, WorkloadPosture};

mod json;
mod live;
mod table;

pub use json::render as render_json;
pub use table::{render_summary, render_table};

use super::escape::printable;
use super::exit::{entry, write_loading, write_unusable};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A block per workload, a row per port.
    Table,
    Json,
    /// One line per workload.
    Summary,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// A file holding one MeshBaseline. Offline, without it, the default baseline; live,
    /// without it, the cluster's MeshBaselines.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Exit 1 when a finding that concerns a listed workload has this severity or a higher one.
    #[arg(long, value_name = "LEVEL", default_value = "high", value_parser = super::check::parse_level)]
    pub fail_on: Severity,
    /// Offline: list what could not be read instead of exiting 2.
    #[arg(long)]
    pub skip_unreadable: bool,
    /// Only workloads of this namespace (repeatable). Live, only this namespace and the root
    /// namespace are read.
    #[arg(long = "namespace", short = 'n', value_name = "NAME")]
    pub namespaces: Vec<String>,
    /// Only this workload: `[NAMESPACE/][KIND/]NAME` (repeatable).
    #[arg(long, value_name = "WORKLOAD")]
    pub workload: Vec<String>,
    /// Print the reasoning for one port of one workload: `[NAMESPACE/][KIND/]NAME:PORT` (a
    /// number, or `*` for every port nothing names).
    #[arg(long, value_name = "WORKLOAD:PORT")]
    pub explain: Option<String>,
    /// Live: this kubeconfig instead of $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Live: this context of the kubeconfig instead of the current one.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Manifest files or directories, or `-` for standard input. Without any, the cluster of
    /// the current context (or `--kubeconfig`) is read.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PostureError {
    #[error("--baseline: {0}")]
    Baseline(#[from] BaselineFileError),
    #[error("{0}")]
    Usage(String),
    #[error("reading the cluster: {0}")]
    Live(#[from] live::LiveError),
    #[error("writing the report: {0}")]
    Output(#[from] io::Error),
}

/// A workload chosen by `--workload` or `--explain`: `[NAMESPACE/][KIND/]NAME`. Kinds start
/// with an upper-case letter, namespaces never do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSel {
    pub namespace: Option<String>,
    pub kind: Option<String>,
    pub name: String,
}

impl WorkloadSel {
    pub fn parse(s: &str) -> Result<WorkloadSel, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let kindish = |p: &str| p.starts_with(|c: char| c.is_ascii_uppercase());
        let sel = match parts.as_slice() {
            [name] => (None, None, *name),
            [a, name] if kindish(a) => (None, Some(*a), *name),
            [ns, name] => (Some(*ns), None, *name),
            [ns, kind, name] if kindish(kind) => (Some(*ns), Some(*kind), *name),
            _ => return Err(format!("{s:?} is not [NAMESPACE/][KIND/]NAME")),
        };
        if sel.2.is_empty() || sel.0.is_some_and(str::is_empty) {
            return Err(format!("{s:?} is not [NAMESPACE/][KIND/]NAME"));
        }
        Ok(WorkloadSel {
            namespace: sel.0.map(str::to_string),
            kind: sel.1.map(str::to_string),
            name: sel.2.to_string(),
        })
    }

    pub fn matches(&self, w: &WorkloadPosture) -> bool {
        self.name == w.name
            && self.namespace.as_ref().is_none_or(|n| *n == w.namespace)
            && self.kind.as_ref().is_none_or(|k| *k == w.kind)
    }
}

/// `WORKLOAD:PORT`.
pub fn parse_explain(s: &str) -> Result<(WorkloadSel, Port), String> {
    let (w, p) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not WORKLOAD:PORT"))?;
    let port = match p {
        "*" => Port::Other,
        n => Port::Number(
            n.parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{p:?} is not a port number or *"))?,
        ),
    };
    Ok((WorkloadSel::parse(w)?, port))
}

pub use super::exit::{EXIT_FINDINGS, EXIT_UNUSABLE};

/// Everything a report shows.
pub struct Report {
    pub baselines: Vec<String>,
    /// `desired` offline in Enforce mode, `observed` otherwise.
    pub objects: Objects,
    pub workloads: Vec<WorkloadPosture>,
    /// Offline: what was read; live: empty.
    pub loaded: Option<Loaded>,
    pub skip_unreadable: bool,
    pub notes: Vec<String>,
    /// Why the result cannot be trusted, if it cannot.
    pub unusable: Option<String>,
    pub fail_on: Severity,
    pub explain: Option<Vec<String>>,
}

impl Report {
    pub fn exit_code(&self) -> u8 {
        if self.unusable.is_some() {
            return EXIT_UNUSABLE;
        }
        let reaches = self.workloads.iter().any(|w| {
            w.findings
                .iter()
                .any(|f| Severity::parse(&f.severity).is_some_and(|s| s >= self.fail_on))
        });
        if reaches {
            EXIT_FINDINGS
        } else {
            0
        }
    }
}

/// Posture of the workloads of `inventory` under `baselines` (each namespace under the
/// baseline that wins it, the rest under the oldest), narrowed by the flags.
pub fn evaluate(
    baselines: &[Baseline],
    inventory: &Inventory,
    objects_for: impl Fn(&Baseline) -> Objects,
    now: Timestamp,
    detail: Detail,
) -> Vec<WorkloadPosture> {
    let refs: Vec<&Baseline> = baselines.iter().collect();
    let resolved = crate::plan::resolve_overlaps(&refs, &inventory.namespaces);
    let mut out: Vec<Option<WorkloadPosture>> = vec![None; inventory.pods.len()];
    for (i, b) in baselines.iter().enumerate() {
        let scope = resolved
            .get(&b.name)
            .map(|r| r.scope.clone())
            .unwrap_or_default();
        let desired = compile(b, inventory, &scope, now);
        let findings: Vec<Finding> = audit_in_scope(b, inventory, &desired, &scope, now);
        let posture = Posture::new(
            b,
            inventory,
            &desired,
            &scope,
            now,
            &findings,
            objects_for(b),
        );
        for (slot, pod) in out.iter_mut().zip(&inventory.pods) {
            if !Posture::listed(pod) {
                continue;
            }
            let wins = b.selects(&pod.namespace, labels_of(inventory, &pod.namespace))
                && !scope.claimed_elsewhere.contains(&*pod.namespace);
            // The first baseline covers what no baseline protects.
            if wins || (i == 0 && slot.is_none()) {
                *slot = Some(posture.workload(pod, detail));
            }
        }
    }
    out.into_iter().flatten().collect()
}

fn labels_of<'a>(inventory: &'a Inventory, ns: &str) -> &'a crate::inventory::SmallMap {
    static EMPTY: std::sync::LazyLock<crate::inventory::SmallMap> =
        std::sync::LazyLock::new(Default::default);
    inventory
        .namespaces
        .get(ns)
        .map(|n| &n.labels)
        .unwrap_or(&EMPTY)
}

/// Keeps the workloads the flags ask for; an error when `--workload` names none.
fn narrow(args: &Args, all: Vec<WorkloadPosture>) -> Result<Vec<WorkloadPosture>, String> {
    let sels: Vec<WorkloadSel> = args
        .workload
        .iter()
        .map(|s| WorkloadSel::parse(s))
        .collect::<Result<_, _>>()?;
    let kept: Vec<WorkloadPosture> = all
        .into_iter()
        .filter(|w| args.namespaces.is_empty() || args.namespaces.contains(&w.namespace))
        .filter(|w| sels.is_empty() || sels.iter().any(|s| s.matches(w)))
        .collect();
    if let Some(s) = sels.iter().find(|s| !kept.iter().any(|w| s.matches(w))) {
        return Err(format!("--workload: no workload matches {}", describe(s)));
    }
    Ok(kept)
}

fn describe(s: &WorkloadSel) -> String {
    let mut out = String::new();
    if let Some(n) = &s.namespace {
        out.push_str(n);
        out.push('/');
    }
    if let Some(k) = &s.kind {
        out.push_str(k);
        out.push('/');
    }
    out.push_str(&s.name);
    out
}

/// The `--explain` text, or why it cannot be given.
fn explain(workloads: &[WorkloadPosture], spec: &str) -> Result<Vec<String>, String> {
    let (sel, port) = parse_explain(spec)?;
    let matching: Vec<&WorkloadPosture> = workloads.iter().filter(|w| sel.matches(w)).collect();
    match matching.as_slice() {
        [] => Err(format!("--explain: no workload matches {}", describe(&sel))),
        [w] => crate::posture::explain(w, port)
            .ok_or_else(|| format!("--explain: {} has no port rows", w.id())),
        many => Err(format!(
            "--explain: {} matches {} workloads ({}); add the namespace or the kind",
            describe(&sel),
            many.len(),
            many.iter()
                .map(|w| format!("{}/{}", w.namespace, w.id()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Offline: manifests.
pub fn offline(args: &Args, now: Timestamp) -> Result<Report, PostureError> {
    let baseline = match &args.baseline {
        Some(path) => read_baseline(path)?.0,
        None => Baseline::default_for_check(),
    };
    let loaded = load_paths(&args.paths);
    let mut unusable = None;
    let n = loaded.errors.len();
    if n > 0 && !args.skip_unreadable {
        unusable = Some(format!(
            "{n} input{} could not be read; fix {} or pass --skip-unreadable",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them" }
        ));
    } else if loaded.objects == 0 {
        unusable = Some("no Kubernetes object was found in the given paths".into());
    }
    let objects = if baseline.mode == crate::api::baseline::Mode::Enforce {
        Objects::Desired
    } else {
        Objects::Observed
    };
    let detail = if args.explain.is_some() {
        Detail::Explain
    } else {
        Detail::Report
    };
    let all = evaluate(
        std::slice::from_ref(&baseline),
        &loaded.inventory,
        |_| objects,
        now,
        detail,
    );
    finish(
        args,
        vec![baseline.name.clone()],
        objects,
        all,
        Some(loaded),
        unusable,
        Vec::new(),
    )
}

fn finish(
    args: &Args,
    baselines: Vec<String>,
    objects: Objects,
    all: Vec<WorkloadPosture>,
    loaded: Option<Loaded>,
    mut unusable: Option<String>,
    notes: Vec<String>,
) -> Result<Report, PostureError> {
    let workloads = match narrow(args, all) {
        Ok(w) => w,
        Err(e) => {
            unusable.get_or_insert(e);
            Vec::new()
        }
    };
    let explain = match &args.explain {
        Some(spec) => match explain(&workloads, spec) {
            Ok(lines) => Some(lines),
            Err(e) => {
                unusable.get_or_insert(e);
                None
            }
        },
        None => None,
    };
    Ok(Report {
        baselines,
        objects,
        workloads,
        loaded,
        skip_unreadable: args.skip_unreadable,
        notes,
        unusable,
        fail_on: args.fail_on,
        explain,
    })
}

/// Runs the command; the report goes to `out`, diagnostics to `err`.
pub fn run(
    args: &Args,
    now: Timestamp,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, PostureError> {
    if let Some(spec) = &args.explain {
        parse_explain(spec).map_err(PostureError::Usage)?;
    }
    for w in &args.workload {
        WorkloadSel::parse(w).map_err(PostureError::Usage)?;
    }
    let report = if args.paths.is_empty() {
        if args.skip_unreadable {
            return Err(PostureError::Usage(
                "--skip-unreadable is for manifests; the cluster is read completely or not at all"
                    .into(),
            ));
        }
        live::run(args, now)?
    } else {
        if args.kubeconfig.is_some() || args.context.is_some() {
            return Err(PostureError::Usage(
                "--kubeconfig and --context read a cluster; give them without PATH arguments"
                    .into(),
            ));
        }
        offline(args, now)?
    };
    if let Some(loaded) = &report.loaded {
        write_loading(err, loaded, args.skip_unreadable)?;
    }
    for n in &report.notes {
        writeln!(err, "note: {}", printable(n))?;
    }
    if let Some(why) = &report.unusable {
        write_unusable(err, why)?;
    }
    let text = match (&report.explain, args.format) {
        (Some(lines), Format::Table | Format::Summary) => {
            let mut s = String::new();
            for l in lines {
                s.push_str(&printable(l));
                s.push('\n');
            }
            s
        }
        (_, Format::Json) => json::render(&report),
        (None, Format::Table) => table::render_table(&report),
        (None, Format::Summary) => table::render_summary(&report),
    };
    out.write_all(text.as_bytes())?;
    Ok(report.exit_code())
}

/// The binary's entry: real stdout, stderr and clock; every failure is exit 2.
pub fn main(args: &Args) -> std::process::ExitCode {
    entry(|now, out, err| run(args, now, out, err))
}
