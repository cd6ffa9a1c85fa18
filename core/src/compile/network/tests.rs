//! One property per case the data plane found (`e2e/tests/dataplane`): each test names the
//! row that failed on real packets before the fix.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::{ambient_spec, baseline_spec, istiod_spec, NetworkTemplates};
use crate::api::{Baseline, MeshBaseline};
use crate::compile::{compile, names, Scope};
use crate::inventory::{Inventory, NamespaceInfo};
use crate::object::Kind;

fn mk_baseline(spec: Value) -> Baseline {
    let mb: MeshBaseline = serde_json::from_value(json!({
        "apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "b"}, "spec": spec,
    }))
    .unwrap();
    Baseline::try_from(&mb).unwrap()
}

fn mk_inventory(names: &[&str]) -> Inventory {
    let mut inv = Inventory::default();
    for n in names {
        let info = NamespaceInfo {
            name: n.to_string(),
            labels: BTreeMap::new().into(),
            terminating: false,
        };
        inv.namespaces.insert(n.to_string(), info);
    }
    inv
}

fn mk_dns(node_local: &[&str]) -> Value {
    json!({"namespace": "kube-system", "podSelector": {"k8s-app": "kube-dns"}, "port": 53,
           "nodeLocalAddresses": node_local})
}

fn egress(spec: &Value) -> &Vec<Value> {
    spec["egress"].as_array().unwrap()
}

fn allow_list(extra: Value) -> Baseline {
    let mut spec = json!({"network": {"egress": {"mode": "AllowList"}}});
    if let (Some(s), Value::Object(e)) = (spec["network"].as_object_mut(), extra) {
        s.extend(e);
    }
    mk_baseline(spec)
}

/// Row "payments/web -> nat64 [64:ff9b::c633:640b] TCP 443" (Unrestricted): kube-router
/// turns an ipBlock of ::/0 into 2000::/3 and fd00::/8, so TCP to NAT64 was refused. The rule
/// now has no `to`, which every CNI reads as every destination.
#[test]
fn unrestricted_tcp_has_no_destination_list() {
    let b = mk_baseline(json!({"network": {"egress": {"mode": "Unrestricted"}}}));
    let spec = baseline_spec(&b.network);
    let tcp = egress(&spec).last().unwrap();
    assert_eq!(tcp, &json!({"ports": [{"protocol": "TCP"}]}));
    assert!(!spec.to_string().contains("0.0.0.0/0"), "{spec:#}");
    assert!(!spec.to_string().contains("::/0"), "{spec:#}");
    // Still TCP only: the DNS rule is the only other one, with its peers.
    assert_eq!(egress(&spec).len(), 2);
    assert!(egress(&spec)[0]["to"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));
}

/// Rows "monitoring/prometheus -> istiod TCP 15014" and "-> payments/web TCP 15020" with the
/// monitoring namespace protected under AllowList: its egress stopped at its own namespace.
#[test]
fn a_protected_monitoring_namespace_reaches_istiod_monitoring_and_sidecar_metrics() {
    let b = allow_list(json!({"controlPlane": {"monitoringNamespaces": ["monitoring"]}}));
    let t = NetworkTemplates::new(&b.network).unwrap();
    let monitoring = t.spec("monitoring", false).value().clone();
    let plain = t.spec("payments", false).value().clone();
    let extra: Vec<&Value> = egress(&monitoring)[egress(&plain).len()..].iter().collect();
    assert_eq!(
        extra,
        [
            &json!({"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
                            "podSelector": {"matchLabels": {"app": "istiod"}}}],
                    "ports": [{"protocol": "TCP", "port": 15014}]}),
            &json!({"to": [{"namespaceSelector": {}}],
                    "ports": [{"protocol": "TCP", "port": 15020}, {"protocol": "TCP", "port": 15090}]}),
        ]
    );
    // Ambient monitoring namespaces get the same, after the ambient rules.
    let ambient = t.spec("monitoring", true).value().clone();
    assert_eq!(
        egress(&ambient).len(),
        egress(&ambient_spec(&b.network)).len() + 2
    );
    // Other namespaces share one spec; no other mode needs the extra rules.
    assert!(std::sync::Arc::ptr_eq(
        t.spec("payments", false),
        t.spec("checkout", false)
    ));
    let b =
        mk_baseline(json!({"network": {"controlPlane": {"monitoringNamespaces": ["monitoring"]}}}));
    let t = NetworkTemplates::new(&b.network).unwrap();
    assert_eq!(t.spec("monitoring", false), t.spec("payments", false));
}

/// Row "payments/web -> NodeLocal DNS 169.254.20.10 DNS UDP 53": a DNS cache on the host
/// network is an address, which the DNS pod selector never matches.
#[test]
fn node_local_dns_addresses_are_allowed_on_the_dns_port() {
    let b = mk_baseline(json!({"network": {"dns": mk_dns(&["169.254.20.10", "fd00::a"])}}));
    let spec = baseline_spec(&b.network);
    let dns = &egress(&spec)[0];
    assert_eq!(
        dns["to"][1],
        json!({"ipBlock": {"cidr": "169.254.20.10/32"}})
    );
    assert_eq!(dns["to"][2], json!({"ipBlock": {"cidr": "fd00::a/128"}}));
    assert_eq!(
        dns["ports"],
        json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}])
    );
    // Without them, only the DNS pods.
    let spec = baseline_spec(&mk_baseline(json!({})).network);
    assert_eq!(egress(&spec)[0]["to"].as_array().unwrap().len(), 1);
}

#[test]
fn node_local_dns_addresses_must_be_addresses() {
    let mb: MeshBaseline = serde_json::from_value(json!({
        "apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "b"},
        "spec": {"network": {"dns": mk_dns(&["169.254.20.0/24"])}},
    }))
    .unwrap();
    let err = Baseline::try_from(&mb).unwrap_err().to_string();
    assert!(
        err.contains("spec.network.dns.nodeLocalAddresses[0]"),
        "{err}"
    );
}

/// Rows "payments/web -> istiod TCP 15012" (AllowList) and "sandbox/attacker -> istiod TCP
/// 15010" with istiod outside the root namespace: the egress rule and istiod's own policy
/// pointed at the root namespace, cutting xDS and leaving the plaintext ports open.
#[test]
fn istiod_outside_the_root_namespace_is_found_where_it_runs() {
    let b = allow_list(json!({"controlPlane": {"istiodNamespace": "istio-control",
                                               "monitoringNamespaces": ["monitoring"]}}));
    let spec = baseline_spec(&b.network);
    let xds = egress(&spec)
        .iter()
        .find(|r| r["ports"][0]["port"] == 15012)
        .unwrap();
    assert_eq!(
        xds["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "istio-control"
    );
    let c = compile(
        &b,
        &mk_inventory(&["istio-system", "istio-control", "payments"]),
        &Scope::default(),
        Timestamp::UNIX_EPOCH,
    );
    let istiod: Vec<&str> = c
        .objects
        .iter()
        .filter(|o| o.key.kind == Kind::NetworkPolicy && o.key.name == names::ISTIOD_NETWORK_POLICY)
        .map(|o| o.key.namespace.as_str())
        .collect();
    assert_eq!(istiod, ["istio-control"]);
    assert_eq!(
        istiod_spec(&b.network)["podSelector"],
        json!({"matchLabels": {"app": "istiod"}})
    );
    // Never locked down itself: istiod must keep reaching the API server.
    assert_eq!(c.protected, ["payments"]);
}

#[test]
fn istiod_namespace_defaults_to_the_root_namespace() {
    let b = mk_baseline(json!({"rootNamespace": "mesh-root"}));
    assert_eq!(b.network.istiod_namespace, "mesh-root");
}
