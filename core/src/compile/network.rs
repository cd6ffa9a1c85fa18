//! NetworkPolicy specs: the per-namespace baseline (G4, G5, G7, G10) and istiod's (G8).
//!
//! The baseline spec is the same for every namespace (`podSelector: {}` in a peer means "this
//! namespace") except in the monitoring namespaces, so each variant is built once and cloned.
//! `e2e/tests/dataplane` checks what these specs mean on real packets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::api::baseline::EgressMode;
use crate::api::model::Network;
use crate::object::{Kind, ObjectSpec};

/// The label every namespace carries with its own name (Kubernetes >= 1.21).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// istiod's ports that stay reachable: mTLS xDS and CA, the webhooks, monitoring.
pub const ISTIOD_XDS_PORT: u16 = 15012;
pub const ISTIOD_WEBHOOK_PORT: u16 = 15017;
pub const ISTIOD_MONITORING_PORT: u16 = 15014;
/// The sidecars' telemetry: merged Prometheus metrics (pilot-agent) and Envoy's own.
pub const SIDECAR_METRICS_PORTS: [u16; 2] = [15020, 15090];
/// ztunnel's and waypoints' HBONE (mTLS tunnel) port: all ambient mesh traffic arrives on it.
pub const HBONE_PORT: u16 = 15008;
/// The label Istio puts on waypoint pods.
pub const WAYPOINT_POD_LABEL: (&str, &str) =
    ("gateway.istio.io/managed", "istio.io-mesh-controller");

fn tcp() -> Value {
    json!([{"protocol": "TCP"}])
}

fn tcp_port(port: u16) -> Value {
    json!({"protocol": "TCP", "port": port})
}

fn namespace_selector(namespace: &str) -> Value {
    json!({"matchLabels": {NAMESPACE_NAME_LABEL: namespace}})
}

fn pods_in(namespace: &str, pod_labels: &BTreeMap<String, String>) -> Value {
    json!({
        "namespaceSelector": namespace_selector(namespace),
        "podSelector": {"matchLabels": pod_labels},
    })
}

fn ip_blocks<'a>(cidrs: impl IntoIterator<Item = &'a str>) -> Value {
    Value::Array(
        cidrs
            .into_iter()
            .map(|c| json!({"ipBlock": {"cidr": c}}))
            .collect(),
    )
}

fn host_cidr(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

fn istiod(network: &Network) -> Value {
    pods_in(
        &network.istiod_namespace,
        &network.control_plane.istiod_selector,
    )
}

/// `spec` of `meshbaseline-baseline`: TCP in from anywhere (AuthorizationPolicy decides who),
/// DNS out to the DNS pods (and a node-local DNS cache), TCP out per egress mode. Nothing
/// allows UDP (except DNS), ICMP or SCTP, so they are dropped.
pub(crate) fn baseline_spec(network: &Network) -> Value {
    let dns = &network.dns;
    let mut dns_peers = vec![pods_in(&dns.namespace, &dns.pod_selector)];
    // Host-network pods are addresses, not pods, to a NetworkPolicy.
    let node_local: Vec<String> = network.node_local_dns.iter().map(host_cidr).collect();
    if let Value::Array(blocks) = ip_blocks(node_local.iter().map(String::as_str)) {
        dns_peers.extend(blocks);
    }
    let mut egress = vec![json!({
        "to": dns_peers,
        "ports": [
            {"protocol": "UDP", "port": dns.port},
            {"protocol": "TCP", "port": dns.port},
        ],
    })];
    let eg = &network.egress;
    match eg.mode {
        EgressMode::ClusterOnly => {
            // Every pod of every namespace, the egress gateway included.
            egress.push(json!({"to": [{"namespaceSelector": {}}], "ports": tcp()}));
        }
        EgressMode::AllowList => {
            egress.push(json!({"to": [{"podSelector": {}}], "ports": tcp()}));
            egress.push(json!({
                "to": [istiod(network)],
                "ports": [tcp_port(ISTIOD_XDS_PORT)],
            }));
            if let Some(gw) = &eg.gateway {
                egress.push(json!({
                    "to": [pods_in(&gw.namespace, &gw.pod_selector)],
                    "ports": tcp(),
                }));
            }
        }
        EgressMode::Unrestricted => {
            // No `to`: every destination. An ipBlock of 0.0.0.0/0 and ::/0 is not the same on
            // every CNI: some never match pod addresses with ipBlocks, and kube-router turns
            // ::/0 into 2000::/3 and fd00::/8, leaving out NAT64 (64:ff9b::/96) and the rest.
            egress.push(json!({"ports": tcp()}));
        }
    }
    if !eg.allow_cidrs.is_empty() {
        let cidrs: Vec<String> = eg.allow_cidrs.iter().map(|c| c.to_string()).collect();
        egress.push(json!({
            "to": ip_blocks(cidrs.iter().map(String::as_str)),
            "ports": tcp(),
        }));
    }
    json!({
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"ports": tcp()}],
        "egress": egress,
    })
}

/// Egress a monitoring namespace needs on top of the baseline in AllowList mode (the other
/// modes already allow it): istiod's monitoring port, and the sidecars' metrics in every
/// namespace.
fn monitoring_egress(network: &Network) -> Vec<Value> {
    let metrics: Vec<Value> = SIDECAR_METRICS_PORTS.iter().map(|p| tcp_port(*p)).collect();
    vec![
        json!({"to": [istiod(network)], "ports": [tcp_port(ISTIOD_MONITORING_PORT)]}),
        json!({"to": [{"namespaceSelector": {}}], "ports": metrics}),
    ]
}

/// `spec` of `meshbaseline-baseline` in ambient namespaces: the baseline spec, plus rules that
/// say what ambient needs even if the generic rules are narrowed one day. In: HBONE from
/// anywhere (ztunnel and waypoints tunnel to 15008; AuthorizationPolicy decides who), and
/// kubelet probes, which istio-cni rewrites to come from the probe addresses. Out (AllowList
/// only, the other modes already allow it): HBONE to waypoints in any namespace, since a
/// namespace may use a shared waypoint.
pub(crate) fn ambient_spec(network: &Network) -> Value {
    let mut spec = baseline_spec(network);
    let probes: Vec<String> = network.probe_cidrs.iter().map(|c| c.to_string()).collect();
    if let Some(ingress) = spec["ingress"].as_array_mut() {
        ingress.push(json!({"ports": [tcp_port(HBONE_PORT)]}));
        ingress.push(json!({
            "from": ip_blocks(probes.iter().map(String::as_str)),
            "ports": tcp(),
        }));
    }
    if network.egress.mode == EgressMode::AllowList {
        let (k, v) = WAYPOINT_POD_LABEL;
        if let Some(egress) = spec["egress"].as_array_mut() {
            egress.push(json!({
                "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {k: v}}}],
                "ports": [tcp_port(HBONE_PORT)],
            }));
        }
    }
    spec
}

/// The baseline NetworkPolicy specs of one compile: sidecar or ambient, monitoring namespace
/// or not. Built once, shared by every namespace of the same kind.
pub(crate) struct NetworkTemplates {
    /// Indexed by `ambient as usize * 2 + monitoring as usize`.
    specs: [Arc<ObjectSpec>; 4],
    monitoring: BTreeSet<String>,
}

impl NetworkTemplates {
    /// `None` when the baseline generates no per-namespace NetworkPolicy.
    pub(crate) fn new(network: &Network) -> Option<NetworkTemplates> {
        if !network.tcp_only {
            return None;
        }
        let allow_list = network.egress.mode == EgressMode::AllowList;
        let build = |ambient: bool, monitoring: bool| {
            let mut spec = if ambient {
                ambient_spec(network)
            } else {
                baseline_spec(network)
            };
            if monitoring && allow_list {
                if let Some(egress) = spec["egress"].as_array_mut() {
                    egress.extend(monitoring_egress(network));
                }
            }
            Arc::new(ObjectSpec::new(Kind::NetworkPolicy, &spec))
        };
        Some(NetworkTemplates {
            specs: [
                build(false, false),
                build(false, true),
                build(true, false),
                build(true, true),
            ],
            monitoring: network
                .control_plane
                .monitoring_namespaces
                .iter()
                .cloned()
                .collect(),
        })
    }

    pub(crate) fn spec(&self, namespace: &str, ambient: bool) -> &Arc<ObjectSpec> {
        let monitoring = self.monitoring.contains(namespace);
        &self.specs[usize::from(ambient) * 2 + usize::from(monitoring)]
    }
}

/// `spec` of `meshbaseline-istiod` (in istiod's namespace): ingress to istiod on 15012 and
/// 15017 from anywhere, 15014 from the monitoring namespaces only. Plaintext xDS (15010), debug
/// (8080) and ControlZ (9876) are dropped because nothing allows them.
pub(crate) fn istiod_spec(network: &Network) -> Value {
    let cp = &network.control_plane;
    let mut ingress = vec![json!({
        "ports": [tcp_port(ISTIOD_XDS_PORT), tcp_port(ISTIOD_WEBHOOK_PORT)],
    })];
    if !cp.monitoring_namespaces.is_empty() {
        let from: Vec<Value> = cp
            .monitoring_namespaces
            .iter()
            .map(|ns| json!({"namespaceSelector": namespace_selector(ns)}))
            .collect();
        ingress.push(json!({"from": from, "ports": [tcp_port(ISTIOD_MONITORING_PORT)]}));
    }
    json!({
        "podSelector": {"matchLabels": cp.istiod_selector},
        "policyTypes": ["Ingress"],
        "ingress": ingress,
    })
}

#[cfg(test)]
mod tests;
