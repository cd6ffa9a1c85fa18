//! MB401, MB402: tenant NetworkPolicies that re-open what the baseline's NetworkPolicy closes.
//! NetworkPolicies add up, so one permissive rule is enough to undo the baseline.

use std::collections::BTreeMap;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::context::{name_of, ns_of, selector_matches, selects_all, Ctx};
use super::{Finding, Rule};
use crate::api::baseline::EgressMode;
use crate::object::Kind;

const KIND: &str = "NetworkPolicy";
/// The label Kubernetes puts on every namespace with its own name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

pub(crate) fn has_type(np: &NetworkPolicy, ty: &str) -> bool {
    let Some(spec) = &np.spec else { return false };
    match &spec.policy_types {
        Some(types) => types.iter().any(|t| t == ty),
        // Kubernetes defaults: Ingress always, Egress when egress rules are present.
        None => ty == "Ingress" || (ty == "Egress" && spec.egress.is_some()),
    }
}

/// The inclusive port range a port entry allows, `None` for every port.
pub(crate) fn port_range(p: &NetworkPolicyPort) -> Option<(i32, i32)> {
    match &p.port {
        Some(IntOrString::Int(n)) => Some((*n, p.end_port.unwrap_or(*n).max(*n))),
        // A named port: which number it is depends on the pod, so treat it as unknown.
        Some(IntOrString::String(_)) => Some((-1, -1)),
        None => None,
    }
}

fn protocol(p: &NetworkPolicyPort) -> &str {
    p.protocol.as_deref().unwrap_or("TCP")
}

fn describe_port(p: &NetworkPolicyPort) -> String {
    let port = match (&p.port, p.end_port) {
        (Some(IntOrString::Int(n)), Some(e)) => format!("{n}-{e}"),
        (Some(IntOrString::Int(n)), None) => n.to_string(),
        (Some(IntOrString::String(s)), _) => s.clone(),
        (None, _) => "all ports".to_string(),
    };
    format!("{}/{port}", protocol(p))
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    if !ctx.baseline.network.tcp_only {
        return;
    }
    for np in &ctx.inventory.network_policies {
        if ctx.is_ours(Kind::NetworkPolicy, &np.metadata) {
            continue;
        }
        let (ns, name) = (ns_of(&np.metadata), name_of(&np.metadata));
        if !ctx.applies(ns, Rule::MB401) {
            continue;
        }
        if let Some(f) = egress_destinations(ctx, np, ns, name) {
            out.push(f);
        }
        if let Some(f) = non_tcp(ctx, np, ns, name) {
            out.push(f);
        }
    }
}

/// The egress rules of `np` that reach beyond the cluster and the baseline's allow-list.
/// Shared by MB401 and posture.
pub(crate) fn egress_beyond(ctx: &Ctx, np: &NetworkPolicy) -> Vec<String> {
    let mut problems = Vec::new();
    if ctx.baseline.network.egress.mode == EgressMode::Unrestricted || !has_type(np, "Egress") {
        return problems;
    }
    let allow = &ctx.baseline.network.egress.allow_cidrs;
    let Some(spec) = np.spec.as_ref() else {
        return problems;
    };
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let peers = rule.to.as_deref().unwrap_or_default();
        if peers.is_empty() {
            problems.push(format!(
                "egress[{i}] has no `to`, so it allows every destination"
            ));
            continue;
        }
        for peer in peers {
            let Some(block) = &peer.ip_block else {
                continue;
            };
            let inside = block
                .cidr
                .parse::<IpNet>()
                .is_ok_and(|net| allow.iter().any(|a| a.contains(&net)));
            if !inside {
                problems.push(format!(
                    "egress[{i}] allows ipBlock {} outside the allow-list",
                    block.cidr
                ));
            }
        }
    }
    problems
}

/// MB401: egress to every destination, or to ipBlocks beyond the baseline's allow-list.
fn egress_destinations(ctx: &Ctx, np: &NetworkPolicy, ns: &str, name: &str) -> Option<Finding> {
    let allow = &ctx.baseline.network.egress.allow_cidrs;
    let problems = egress_beyond(ctx, np);
    if problems.is_empty() {
        return None;
    }
    let allowed = if allow.is_empty() {
        "none".to_string()
    } else {
        allow
            .iter()
            .map(IpNet::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(ctx.finding(
        Rule::MB401,
        KIND,
        Some(ns),
        name,
        format!(
            "NetworkPolicy {ns}/{name} opens egress from {ns} beyond the cluster and the baseline's allow-list ({allowed}): {}. NetworkPolicies add up, so pods that bypass the sidecar (UID 1337, NET_ADMIN, UDP) can reach these addresses unchecked.",
            problems.join("; ")
        ),
        "Restrict each listed rule's `to` to in-cluster peers (podSelector/namespaceSelector) or to CIDRs inside the baseline's allowCidrs; send other external traffic through the egress gateway, or ask the platform team to add the CIDR to the allow-list.".to_string(),
    ))
}

/// Whether a peer selects only the cluster DNS pods.
fn is_dns_peer(ctx: &Ctx, ns: &str, peer: &NetworkPolicyPeer) -> bool {
    let dns = &ctx.baseline.network.dns;
    if peer.ip_block.is_some() {
        return false;
    }
    let ns_ok = match &peer.namespace_selector {
        None => ns == dns.namespace,
        Some(sel) => {
            let labels =
                BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), dns.namespace.clone())]);
            !selects_all(sel) && selector_matches(sel, &labels)
        }
    };
    let pods_ok = peer
        .pod_selector
        .as_ref()
        .is_some_and(|sel| !selects_all(sel) && selector_matches(sel, &dns.pod_selector));
    ns_ok && pods_ok
}

/// A rule of a NetworkPolicy that lets through more than TCP (and DNS to the DNS pods).
pub(crate) struct NonTcp {
    pub ingress: bool,
    /// A rule without ports: every protocol, ICMP included.
    pub every_protocol: bool,
    pub what: String,
}

/// The rules of `np` that let other protocols than TCP through, beyond DNS to the cluster DNS
/// pods. Shared by MB402 and posture.
pub(crate) fn non_tcp_rules(ctx: &Ctx, np: &NetworkPolicy, ns: &str) -> Vec<NonTcp> {
    let Some(spec) = np.spec.as_ref() else {
        return Vec::new();
    };
    let dns_port = ctx.baseline.network.dns.port;
    let mut out = Vec::new();
    if has_type(np, "Ingress") {
        for (i, rule) in spec.ingress.iter().flatten().enumerate() {
            let ports = rule.ports.as_deref().unwrap_or_default();
            if ports.is_empty() {
                out.push(NonTcp {
                    ingress: true,
                    every_protocol: true,
                    what: format!("ingress[{i}] has no ports, so it allows every protocol"),
                });
            }
            for p in ports.iter().filter(|p| protocol(p) != "TCP") {
                out.push(NonTcp {
                    ingress: true,
                    every_protocol: false,
                    what: format!("ingress[{i}] allows {}", describe_port(p)),
                });
            }
        }
    }
    if has_type(np, "Egress") {
        for (i, rule) in spec.egress.iter().flatten().enumerate() {
            let ports = rule.ports.as_deref().unwrap_or_default();
            if ports.is_empty() {
                out.push(NonTcp {
                    ingress: false,
                    every_protocol: true,
                    what: format!("egress[{i}] has no ports, so it allows every protocol"),
                });
                continue;
            }
            let peers = rule.to.as_deref().unwrap_or_default();
            let to_dns = !peers.is_empty() && peers.iter().all(|p| is_dns_peer(ctx, ns, p));
            for p in ports.iter().filter(|p| protocol(p) != "TCP") {
                let is_dns_port = matches!(&p.port, Some(IntOrString::Int(n)) if *n == dns_port && p.end_port.is_none_or(|e| e == dns_port))
                    || matches!(&p.port, Some(IntOrString::String(s)) if s == "dns");
                if !(to_dns && is_dns_port && protocol(p) == "UDP") {
                    out.push(NonTcp {
                        ingress: false,
                        every_protocol: false,
                        what: format!(
                            "egress[{i}] allows {}{}",
                            describe_port(p),
                            if to_dns {
                                ""
                            } else {
                                " to destinations other than the cluster DNS pods"
                            }
                        ),
                    });
                }
            }
        }
    }
    out
}

/// MB402: UDP or SCTP (or every protocol) allowed anywhere but DNS to the DNS pods.
fn non_tcp(ctx: &Ctx, np: &NetworkPolicy, ns: &str, name: &str) -> Option<Finding> {
    let dns_port = ctx.baseline.network.dns.port;
    let problems: Vec<String> = non_tcp_rules(ctx, np, ns)
        .into_iter()
        .map(|r| r.what)
        .collect();
    if problems.is_empty() {
        return None;
    }
    Some(ctx.finding(
        Rule::MB402,
        KIND,
        Some(ns),
        name,
        format!(
            "NetworkPolicy {ns}/{name} allows traffic other than TCP in {ns}: {}. The sidecar only intercepts TCP, so UDP/SCTP (and ICMP, which a rule without ports also allows) skip mTLS, AuthorizationPolicy and egress controls.",
            problems.join("; ")
        ),
        format!(
            "Add `ports` with `protocol: TCP` to each listed rule; for DNS allow UDP/TCP port {dns_port} only to the DNS pods ({} in namespace {}).",
            ctx.baseline
                .network
                .dns
                .pod_selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            ctx.baseline.network.dns.namespace
        ),
    ))
}
