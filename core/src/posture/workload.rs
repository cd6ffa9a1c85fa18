//! One workload's posture.

use std::collections::BTreeSet;

use crate::api::baseline::Control;
use crate::api::istio::AuthorizationPolicy;
use crate::audit::context::{name_of, ns_of};
use crate::dataplane::DataPlane;
use crate::gateway::{gateway_of, Gateway};
use crate::inventory::PodInfo;

use super::authz::{self, Port, Target};
use super::mtls::Composed;
use super::plane::{data_plane, plane_name};
use super::port::port_posture;
use super::{
    capture, network, DataPlaneInfo, Detail, ExemptionInfo, FindingRef, Plaintext, PortPosture,
    Posture, Protection, WorkloadPosture,
};

/// The policies of the workload's namespace and the root namespace that attach to it.
fn attached<'i>(p: &'i Posture, pod: &PodInfo) -> Vec<&'i AuthorizationPolicy> {
    let root = p.ctx.root();
    let ns = &*pod.namespace;
    let target = Target {
        namespace: ns,
        labels: pod.selector_labels(),
        waypoint: matches!(gateway_of(pod), Some(Gateway::Waypoint(_))),
        root,
    };
    let mut namespaces = vec![root];
    if ns != root {
        namespaces.push(ns);
    }
    namespaces
        .into_iter()
        .flat_map(|n| {
            let target = &target;
            p.index
                .of(n)
                .authorization_policies
                .iter()
                .map(|a| &**a)
                .filter(move |a| authz::attaches(a, n, target))
        })
        .collect()
}

/// The rows of a workload: the TCP ports its containers declare and those its PeerAuthentication
/// and capture annotations name (each may differ), the ports its policies name (kept only where
/// the verdict differs from every other port's), and `*` for every other port.
fn rows(
    pod: &PodInfo,
    composed: &Composed,
    policies: &[&AuthorizationPolicy],
) -> (Vec<(Port, Option<String>)>, BTreeSet<u16>) {
    let mut numbers: BTreeSet<u16> = pod
        .ports
        .iter()
        .filter(|p| p.protocol == "TCP")
        .map(|p| p.number)
        .collect();
    numbers.extend(composed.port_level_ports());
    numbers.extend(capture::named_ports(pod));
    let mut policy_only = BTreeSet::new();
    for ap in policies {
        for n in authz::named_ports(ap) {
            if numbers.insert(n) {
                policy_only.insert(n);
            }
        }
    }
    let name_of_port = |n: u16| {
        pod.ports
            .iter()
            .find(|p| p.number == n && p.protocol == "TCP")
            .and_then(|p| p.name.clone())
    };
    let rows = numbers
        .into_iter()
        .map(|n| (Port::Number(n), name_of_port(n)))
        .chain(std::iter::once((Port::Other, None)))
        .collect();
    (rows, policy_only)
}

/// Whether two rows say the same but for the port.
fn same_verdict(a: &PortPosture, b: &PortPosture) -> bool {
    a.plaintext == b.plaintext
        && a.captured == b.captured
        && a.mtls == b.mtls
        && a.refused_by == b.refused_by
        && a.allows_plaintext == b.allows_plaintext
        && a.accepted_because == b.accepted_because
}

pub(super) fn evaluate(p: &Posture, pod: &PodInfo, detail: Detail) -> WorkloadPosture {
    let ctx = &p.ctx;
    let ns = &*pod.namespace;
    let root = ctx.root();
    let protected = ctx.protected(ns);
    let (plane, plane_reason) = data_plane(p, pod);
    let composed = Composed::new(
        root,
        ns,
        &p.index.of(root).peer_authentications,
        &p.index.of(ns).peer_authentications,
        pod.selector_labels(),
    );
    let policies = attached(p, pod);
    let (candidates, policy_only) = rows(pod, &composed, &policies);
    let mut ports: Vec<PortPosture> = candidates
        .into_iter()
        .map(|(port, name)| {
            let mut row = port_posture(p, pod, plane, &composed, &policies, port, detail);
            row.name = name;
            row
        })
        .collect();
    if let Some(other) = ports.last().cloned() {
        ports.retain(|r| match r.port {
            Port::Number(n) if policy_only.contains(&n) => !same_verdict(r, &other),
            _ => true,
        });
    }
    if detail == Detail::Explain {
        let head = format!(
            "{} {ns}/{}: namespace {ns} is {}; data plane {}: {plane_reason}.",
            pod.kind,
            pod.name,
            if protected {
                format!("protected by baseline {}", ctx.baseline.name)
            } else {
                format!("not protected by baseline {}", ctx.baseline.name)
            },
            plane_name(plane),
        );
        for row in &mut ports {
            row.steps.insert(0, head.clone());
        }
    }
    let network = network::network(ctx, pod, &p.index);
    let exemptions = exemptions(p, ns);
    let findings = concerning(p, pod, &composed, &policies, detail);
    let protection = protection(plane, &ports, &network, &exemptions, &findings);
    WorkloadPosture {
        kind: pod.kind.clone(),
        namespace: ns.to_string(),
        name: pod.name.to_string(),
        protection,
        namespace_protected: protected,
        data_plane: DataPlaneInfo {
            mode: plane_name(plane).to_string(),
            reason: plane_reason,
        },
        ports,
        network,
        exemptions,
        findings,
    }
}

fn protection(
    plane: Option<DataPlane>,
    ports: &[PortPosture],
    network: &network::NetworkPosture,
    exemptions: &[ExemptionInfo],
    findings: &[FindingRef],
) -> Protection {
    if plane.is_none() {
        return Protection::Unknown;
    }
    let accepted = ports
        .iter()
        .filter(|r| r.plaintext == Plaintext::Accepted)
        .count();
    if accepted == ports.len() {
        Protection::Unprotected
    } else if accepted > 0 || !network.closed() || !exemptions.is_empty() || !findings.is_empty() {
        Protection::Partial
    } else {
        Protection::Protected
    }
}

fn exemptions(p: &Posture, ns: &str) -> Vec<ExemptionInfo> {
    let b = p.ctx.baseline;
    b.exemptions
        .iter()
        .filter(|e| e.namespace == ns && e.expires > p.ctx.now)
        .map(|e| ExemptionInfo {
            controls: e
                .controls
                .iter()
                .map(|c| control_name(*c).to_string())
                .collect(),
            reason: e.reason.clone(),
            expires: e.expires.to_string(),
        })
        .collect()
}

pub(super) fn control_name(c: Control) -> &'static str {
    match c {
        Control::Mtls => "mtls",
        Control::Authorization => "authorization",
        Control::Network => "network",
        Control::Workloads => "workloads",
    }
}

/// The findings about the workload, its namespace, its Gateway, and the policies that shape its
/// posture; with `Detail::Counts`, only whether there are any (one stands for them all).
fn concerning(
    p: &Posture,
    pod: &PodInfo,
    composed: &Composed,
    policies: &[&AuthorizationPolicy],
    detail: Detail,
) -> Vec<FindingRef> {
    let ns = &*pod.namespace;
    let mut keys: Vec<(&str, &str, &str)> = vec![(&pod.kind, ns, &pod.name), ("Namespace", "", ns)];
    // A gateway's or waypoint's pods: the findings about their Gateway.
    if let Some(Gateway::Waypoint(g) | Gateway::GatewayApi(g)) = gateway_of(pod) {
        keys.push(("Gateway", ns, g));
    }
    for pa in composed.all() {
        keys.push((
            "PeerAuthentication",
            ns_of(&pa.metadata),
            name_of(&pa.metadata),
        ));
    }
    for ap in policies {
        keys.push((
            "AuthorizationPolicy",
            ns_of(&ap.metadata),
            name_of(&ap.metadata),
        ));
    }
    let labels = pod.selector_labels();
    for np in p.index.selecting(ns, &labels) {
        keys.push(("NetworkPolicy", ns, name_of(&np.metadata)));
    }
    for sc in &p.index.of(ns).sidecars {
        let applies = sc
            .spec
            .workload_selector
            .as_ref()
            .is_none_or(|w| labels.has_all(&w.labels));
        if applies {
            keys.push(("Sidecar", ns, name_of(&sc.metadata)));
        }
    }
    keys.sort_unstable();
    keys.dedup();
    let mut found = keys
        .iter()
        .flat_map(|(k, n, name)| p.findings_of(k, n, name));
    if detail == Detail::Counts {
        return found.next().map(finding_ref).into_iter().collect();
    }
    let mut out: Vec<FindingRef> = found.map(finding_ref).collect();
    out.sort_by(|a, b| (&a.rule, &a.kind, &a.name).cmp(&(&b.rule, &b.kind, &b.name)));
    out
}

fn finding_ref(f: &crate::audit::Finding) -> FindingRef {
    FindingRef {
        rule: f.rule.id().to_string(),
        severity: f.severity.as_str().to_string(),
        kind: f.kind.clone(),
        namespace: f.namespace.clone(),
        name: f.name.clone(),
        message: f.message.clone(),
    }
}
