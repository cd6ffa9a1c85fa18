//! Admin-tier ClusterNetworkPolicies (`policy.networking.k8s.io`). NetworkPolicies
//! only add up, so a tenant's policy allowing UDP anywhere re-opens G4; the Admin tier is
//! evaluated before every NetworkPolicy and tenants cannot write it.
//!
//! Rules say `Pass` for what the baseline does not decide, never `Accept`, so the tenants'
//! NetworkPolicies (and ours) still govern the rest.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::admission::{exempt_from, protected_selector};
use super::meta::ObjectFactory;
use super::names;
use super::network::NAMESPACE_NAME_LABEL;
use crate::api::baseline::{AdminTier, Control, EgressMode};
use crate::api::Baseline;
use crate::compile::Scope;
use crate::object::{DesiredObject, Kind};

/// Precedence inside the Admin tier (0 is first, 1000 last): early, leaving room on both
/// sides for the platform's own policies.
pub const PRIORITY: u16 = 100;
/// istiod's plaintext xDS, debug and ControlZ ports (G8).
pub const ISTIOD_PLAINTEXT_PORTS: [u16; 3] = [15010, 8080, 9876];

fn all_ports(protocol: &str) -> Value {
    json!({ protocol: {"destinationPort": {"range": {"start": 1, "end": 65535}}} })
}

fn everywhere() -> Value {
    json!([{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}])
}

pub(crate) fn objects(
    baseline: &Baseline,
    scope: &Scope,
    any_protected: bool,
    now: Timestamp,
    factory: &ObjectFactory,
    out: &mut Vec<DesiredObject>,
) {
    let network = &baseline.network;
    if network.admin_tier == AdminTier::Disabled {
        return;
    }
    if network.tcp_only && any_protected {
        out.push(factory.cluster_object(
            Kind::ClusterNetworkPolicy,
            &names::admin_tier_name(&baseline.name),
            Arc::new(namespaces_spec(baseline, &scope.claimed_elsewhere, now)),
        ));
    }
    if scope.owns_root && network.control_plane.enabled {
        out.push(factory.cluster_object(
            Kind::ClusterNetworkPolicy,
            &names::admin_tier_istiod_name(&baseline.name),
            Arc::new(istiod_spec(baseline)),
        ));
    }
}

/// The protected namespaces (minus those exempt from the Network control and those an older
/// baseline claims, whose own policy applies there): UDP and SCTP out
/// are denied except DNS to the cluster DNS pods (G4); in AllowList egress mode, traffic out
/// of the cluster is denied except to the allow-listed CIDRs (G7).
pub(crate) fn namespaces_spec(
    baseline: &Baseline,
    claimed_elsewhere: &BTreeSet<String>,
    now: Timestamp,
) -> Value {
    let network = &baseline.network;
    let dns = &network.dns;
    let exempt = exempt_from(baseline, Control::Network, now);
    let mut dns_peers = vec![json!({"pods": {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: dns.namespace}},
        "podSelector": {"matchLabels": dns.pod_selector},
    }})];
    // A DNS cache on the host network is an address, not a pod.
    if !network.node_local_dns.is_empty() {
        let hosts: Vec<String> = network
            .node_local_dns
            .iter()
            .map(|ip| ipnet::IpNet::from(*ip).to_string())
            .collect();
        dns_peers.push(json!({"networks": hosts}));
    }
    let port = dns.port;
    let mut egress = vec![
        json!({
            "name": "dns",
            "action": "Pass",
            "to": dns_peers,
            "protocols": [{"udp": {"destinationPort": {"number": port}}}],
        }),
        json!({
            "name": "deny-udp-sctp",
            "action": "Deny",
            "to": everywhere(),
            "protocols": [all_ports("udp"), all_ports("sctp")],
        }),
    ];
    if network.egress.mode == EgressMode::AllowList {
        // `networks` match in-cluster addresses too: pods are passed on first.
        egress.push(json!({"name": "in-cluster", "action": "Pass", "to": [{"namespaces": {}}]}));
        if !network.egress.allow_cidrs.is_empty() {
            let cidrs: Vec<String> = network
                .egress
                .allow_cidrs
                .iter()
                .map(|c| c.to_string())
                .collect();
            egress
                .push(json!({"name": "allow-list", "action": "Pass", "to": [{"networks": cidrs}]}));
        }
        egress.push(json!({
            "name": "deny-outside-allow-list",
            "action": "Deny",
            "to": [{"networks": ["0.0.0.0/0", "::/0"]}],
        }));
    }
    json!({
        "tier": "Admin",
        "priority": PRIORITY,
        "subject": {"namespaces": protected_selector(baseline, exempt.iter().chain(claimed_elsewhere))},
        "egress": egress,
    })
}

/// istiod: its plaintext xDS, debug and ControlZ ports are closed to every pod (G8), whatever
/// NetworkPolicies in the root namespace say; 15012, 15017 and 15014 are left to them.
pub(crate) fn istiod_spec(baseline: &Baseline) -> Value {
    let cp = &baseline.network.control_plane;
    let tcp: Vec<Value> = ISTIOD_PLAINTEXT_PORTS
        .iter()
        .map(|p| json!({"tcp": {"destinationPort": {"number": p}}}))
        .collect();
    json!({
        "tier": "Admin",
        "priority": PRIORITY,
        "subject": {"pods": {
            "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: baseline.network.istiod_namespace}},
            "podSelector": {"matchLabels": cp.istiod_selector},
        }},
        "ingress": [{
            "name": "deny-plaintext-and-debug",
            "action": "Deny",
            "from": [{"namespaces": {}}],
            "protocols": tcp,
        }],
    })
}

#[cfg(test)]
mod tests;
