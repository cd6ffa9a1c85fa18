//! `--explain WORKLOAD:PORT`: the reasoning behind one port's verdict, step by step.

use super::{Port, WorkloadPosture};

/// The numbered steps for `port` of `w`, then its network, exemptions and findings; `None`
/// when the workload has no such row (every port not listed is `*`).
pub fn explain(w: &WorkloadPosture, port: Port) -> Option<Vec<String>> {
    let row = w
        .ports
        .iter()
        .find(|r| r.port == port)
        .or_else(|| w.ports.iter().find(|r| r.port == Port::Other))?;
    let mut out: Vec<String> = row.steps.clone();
    if row.port != port {
        out.insert(
            1.min(out.len()),
            format!("Port {port} is named by no container, policy or annotation: it is judged as every other port (*)."),
        );
    }
    let n = &w.network;
    let mut net = format!(
        "Network: UDP {}, ICMP {}, egress {}; NetworkPolicies selecting the pod: {}.",
        n.udp.as_str(),
        n.icmp.as_str(),
        n.egress,
        if n.policies.is_empty() {
            "none".to_string()
        } else {
            n.policies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if !n.open.is_empty() {
        net.push_str(&format!(" Open: {}.", n.open.join("; ")));
    }
    out.push(net);
    if w.exemptions.is_empty() {
        out.push("Exemptions: none in force.".into());
    }
    for e in &w.exemptions {
        out.push(format!(
            "Exemption in force: {} until {} ({}).",
            e.controls.join(", "),
            e.expires,
            e.reason
        ));
    }
    if w.findings.is_empty() {
        out.push("Findings: none concern this workload.".into());
    }
    for f in &w.findings {
        let object = match &f.namespace {
            Some(ns) => format!("{} {ns}/{}", f.kind, f.name),
            None => format!("{} {}", f.kind, f.name),
        };
        out.push(format!(
            "Finding {} ({}) on {object}: {}",
            f.rule, f.severity, f.message
        ));
    }
    out.push(format!("Protection: {}.", w.protection.as_str()));
    Some(
        out.into_iter()
            .enumerate()
            .map(|(i, s)| format!("{}. {s}", i + 1))
            .collect(),
    )
}
