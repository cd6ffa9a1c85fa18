//! `--format table` (a block per workload, a row per port) and `--format summary` (a line per
//! workload). Every string from the input goes through `printable`.

use std::fmt::Write;

use super::{Report, EXIT_UNUSABLE};
use crate::cli::escape::printable;
use crate::posture::{Plaintext, PortPosture, Protection, WorkloadPosture};

fn pad(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::from("  ");
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn decided_by(p: &PortPosture) -> String {
    match &p.mtls.policy {
        Some(r) => format!("{} {}/{}", p.mtls.level, r.namespace, r.name),
        None => "istio default".to_string(),
    }
}

fn verdict_detail(p: &PortPosture) -> String {
    match p.plaintext {
        Plaintext::Refused => p
            .refused_by
            .iter()
            .map(|m| format!("{} {}/{}", m.policy.kind, m.policy.namespace, m.policy.name))
            .collect::<Vec<_>>()
            .join(", "),
        _ => p
            .accepted_because
            .iter()
            .map(|c| match &c.excused {
                Some(e) => format!("{} [{e}]", c.reason),
                None => c.reason.clone(),
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn block(w: &WorkloadPosture, out: &mut String) {
    let _ = writeln!(
        out,
        "{}/{}: {} ({}: {})",
        printable(&w.namespace),
        printable(&w.id()),
        w.protection.as_str(),
        w.data_plane.mode,
        printable(&w.data_plane.reason)
    );
    let mut rows = vec![vec![
        "PORT".to_string(),
        "MTLS".into(),
        "DECIDED BY".into(),
        "PLAINTEXT".into(),
        "BY".into(),
    ]];
    for p in &w.ports {
        let port = match &p.name {
            Some(n) => format!("{}/{}", p.port, n),
            None => p.port.to_string(),
        };
        rows.push(vec![
            printable(&port).into_owned(),
            if p.captured {
                p.mtls.mode.clone()
            } else {
                "-".into()
            },
            if p.captured {
                printable(&decided_by(p)).into_owned()
            } else {
                "-".into()
            },
            p.plaintext.as_str().to_string(),
            printable(&verdict_detail(p)).into_owned(),
        ]);
    }
    out.push_str(&pad(&rows));
    let allows: Vec<String> = w
        .ports
        .iter()
        .flat_map(|p| p.allows_plaintext.iter().map(move |m| (p, m)))
        .map(|(p, m)| {
            format!(
                "{}/{} on {} ({})",
                m.policy.namespace, m.policy.name, p.port, m.how
            )
        })
        .collect();
    if !allows.is_empty() {
        let _ = writeln!(
            out,
            "  ALLOW rules plaintext can match: {}",
            printable(&allows.join("; "))
        );
    }
    let dry: Vec<String> = w
        .ports
        .iter()
        .flat_map(|p| p.dry_run.iter())
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !dry.is_empty() {
        let _ = writeln!(
            out,
            "  dry-run, refusing nothing: {}",
            printable(&dry.join(", "))
        );
    }
    let n = &w.network;
    let policies: Vec<String> = n.policies.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "  network: UDP {}, ICMP {}, egress {}; NetworkPolicies: {}",
        n.udp.as_str(),
        n.icmp.as_str(),
        n.egress,
        printable(&if policies.is_empty() {
            "none".into()
        } else {
            policies.join(", ")
        })
    );
    for o in &n.open {
        let _ = writeln!(out, "    open: {}", printable(o));
    }
    if w.exemptions.is_empty() {
        out.push_str("  exemptions: none\n");
    }
    for e in &w.exemptions {
        let _ = writeln!(
            out,
            "  exemption: {} until {} ({})",
            e.controls.join(", "),
            e.expires,
            printable(&e.reason)
        );
    }
    if w.findings.is_empty() {
        out.push_str("  findings: none\n");
    }
    for f in &w.findings {
        let object = match &f.namespace {
            Some(ns) => format!("{} {ns}/{}", f.kind, f.name),
            None => format!("{} {}", f.kind, f.name),
        };
        let _ = writeln!(
            out,
            "  finding: {} {} on {}",
            f.rule,
            f.severity,
            printable(&object)
        );
    }
}

fn totals(r: &Report) -> String {
    let mut counts = [0usize; 4];
    for w in &r.workloads {
        let i = Protection::ALL
            .iter()
            .position(|p| *p == w.protection)
            .unwrap_or(3);
        counts[i] += 1;
    }
    format!(
        "{} workloads: {} protected, {} partial, {} unprotected, {} unknown (baseline {}; its objects {}).\n",
        r.workloads.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        r.baselines.join(", "),
        match r.objects {
            crate::posture::Objects::Desired => "as compiled, as if applied",
            crate::posture::Objects::Observed => "as observed",
        }
    )
}

fn inputs(r: &Report, out: &mut String) {
    if let Some(loaded) = &r.loaded {
        if !loaded.errors.is_empty() {
            let title = if r.skip_unreadable {
                "Skipped"
            } else {
                "Not read"
            };
            let _ = writeln!(out, "\n{title}:");
            for e in &loaded.errors {
                let _ = writeln!(out, "  {}", printable(&e.to_string()));
            }
        }
    }
    if let Some(why) = &r.unusable {
        let _ = writeln!(
            out,
            "\nINCOMPLETE: {} (exit {EXIT_UNUSABLE}).",
            printable(why)
        );
    }
}

pub fn render_table(r: &Report) -> String {
    let mut out = String::new();
    for (i, w) in r.workloads.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        block(w, &mut out);
    }
    if !r.workloads.is_empty() {
        out.push('\n');
    }
    out.push_str(&totals(r));
    inputs(r, &mut out);
    out
}

pub fn render_summary(r: &Report) -> String {
    let mut rows = vec![vec![
        "PROTECTION".to_string(),
        "WORKLOAD".into(),
        "PLANE".into(),
        "PLAINTEXT".into(),
        "UDP".into(),
        "ICMP".into(),
        "EGRESS".into(),
        "EXEMPT".into(),
        "FINDINGS".into(),
    ]];
    for w in &r.workloads {
        let accepted: Vec<String> = w
            .ports
            .iter()
            .filter(|p| p.plaintext == Plaintext::Accepted)
            .map(|p| p.port.to_string())
            .collect();
        let plaintext = if w.data_plane.mode == "unknown" {
            "unknown".to_string()
        } else if accepted.is_empty() {
            "refused".to_string()
        } else {
            format!("accepted on {}", accepted.join(","))
        };
        let mut rules: Vec<&str> = w.findings.iter().map(|f| f.rule.as_str()).collect();
        rules.dedup();
        rows.push(vec![
            w.protection.as_str().to_string(),
            printable(&format!("{}/{}", w.namespace, w.id())).into_owned(),
            w.data_plane.mode.clone(),
            plaintext,
            w.network.udp.as_str().into(),
            w.network.icmp.as_str().into(),
            w.network.egress.clone(),
            if w.exemptions.is_empty() {
                "-".into()
            } else {
                w.exemptions
                    .iter()
                    .map(|e| e.controls.join("+"))
                    .collect::<Vec<_>>()
                    .join(",")
            },
            if rules.is_empty() {
                "-".into()
            } else {
                rules.join(",")
            },
        ]);
    }
    let mut out: String = pad(&rows)
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l).to_string() + "\n")
        .collect();
    out.push_str(&totals(r));
    inputs(r, &mut out);
    out
}
