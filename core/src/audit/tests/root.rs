use serde_json::json;

use std::sync::Arc;

use super::*;

fn istiod() -> PodInfo {
    let mut p = mk_pod(ROOT, "istiod");
    p.kind = "Deployment".into();
    p.phase = None;
    p.containers = vec![mk_container("discovery")];
    p
}

fn istiod_np(ports: serde_json::Value) -> serde_json::Value {
    json!({"podSelector": {"matchLabels": {"app": "istiod"}}, "policyTypes": ["Ingress"], "ingress": [{"ports": ports}]})
}

fn root_inv(nps: Vec<NetworkPolicy>) -> Inventory {
    let mut i = inv();
    i.pods.push(std::sync::Arc::new(istiod()));
    i.network_policies = nps.into_iter().map(Arc::new).collect();
    i
}

#[test]
fn mb701_without_a_restricting_policy_fires_on_istiod() {
    let other = mk_np(
        ROOT,
        "gateways",
        json!({"podSelector": {"matchLabels": {"istio": "ingressgateway"}}, "ingress": [{}]}),
    );
    let egress_only = mk_np(
        ROOT,
        "egress",
        json!({"podSelector": {"matchLabels": {"app": "istiod"}}, "policyTypes": ["Egress"], "egress": [{}]}),
    );
    let f = run(&strict(), &root_inv(vec![other, egress_only]));
    assert_eq!(hits(&f, Rule::MB701), vec!["istio-system/istiod"]);
    assert_eq!(f[0].kind, "Deployment");
    assert!(f[0].message.contains("15010"));
}

#[test]
fn mb701_the_operators_policy_restricts_istiod() {
    let ours = mk_managed_np(
        ROOT,
        "meshbaseline-istiod",
        istiod_np(json!([{"protocol": "TCP", "port": 15012}, {"protocol": "TCP", "port": 15017}])),
    );
    let tenant_ok = mk_np(ROOT, "monitoring", istiod_np(json!([{"port": 15014}])));
    assert!(run(&strict(), &root_inv(vec![ours, tenant_ok])).is_empty());
}

#[test]
fn mb701_policies_opening_plaintext_or_all_ports_fire() {
    let ours = mk_managed_np(
        ROOT,
        "meshbaseline-istiod",
        istiod_np(json!([{"port": 15012}])),
    );
    let xds = mk_np(ROOT, "xds", istiod_np(json!([{"port": 15010}])));
    let range = mk_np(
        ROOT,
        "range",
        istiod_np(json!([{"port": 8000, "endPort": 9000}])),
    );
    let all = mk_np(
        ROOT,
        "all",
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
    );
    let f = run(&strict(), &root_inv(vec![ours, xds, range, all]));
    assert_eq!(
        hits(&f, Rule::MB701),
        vec!["istio-system/all", "istio-system/range", "istio-system/xds"]
    );
}

#[test]
fn mb701_needs_the_control_plane_in_the_input() {
    // A tenant repository without istio-system says nothing about istiod.
    assert!(run(&strict(), &inv()).is_empty());
    // The root namespace alone is enough (the controller always has it).
    let i = with_namespaces(inv(), vec![mk_ns(ROOT, &[])]);
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB701), vec!["istio-system"]);
    assert_eq!(f[0].kind, "Namespace");
}

#[test]
fn mb702_two_selector_less_sidecars_fire_on_the_tenant_ones() {
    let mut i = inv();
    i.sidecars = vec![
        serde_json::from_value(managed(
            json!({"metadata": {"name": "meshbaseline-registry-only", "namespace": ROOT},
            "spec": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}}),
        ))
        .unwrap(),
        mk_sidecar(
            ROOT,
            "default",
            json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}}),
        ),
        mk_sidecar(
            ROOT,
            "gateway",
            json!({"workloadSelector": {"labels": {"istio": "ingressgateway"}}}),
        ),
        mk_sidecar("payments", "default", json!({})),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    // The generated Sidecar is ours when the baseline generates it ...
    let registry_only = mk_baseline(json!({"network": {"egress": {"registryOnly": true}}}));
    let f = run(&registry_only, &i);
    assert_eq!(hits(&f, Rule::MB702), vec!["istio-system/default"]);
    assert!(hits(&f, Rule::MB801).is_empty());
    // ... and a tenant's object with our label and name when it does not.
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB702),
        vec![
            "istio-system/default",
            "istio-system/meshbaseline-registry-only"
        ]
    );
    assert_eq!(
        hits(&f, Rule::MB801),
        vec!["istio-system/meshbaseline-registry-only"]
    );
}

#[test]
fn mb702_one_default_sidecar_is_silent() {
    let mut i = inv();
    i.sidecars = vec![
        mk_sidecar(ROOT, "default", json!({})),
        mk_sidecar(
            ROOT,
            "gateway",
            json!({"workloadSelector": {"labels": {"istio": "ingressgateway"}}}),
        ),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    assert!(run(&strict(), &i).is_empty());
}

/// Istio's `initSidecarScopes`: only a root Sidecar whose `workloadSelector` is absent is the
/// mesh default; `workloadSelector: {}` selects the root namespace's own pods.
#[test]
fn mb702_an_empty_workload_selector_is_no_mesh_default() {
    let i = {
        let mut i = inv();
        i.sidecars = vec![
            mk_sidecar(
                ROOT,
                "default",
                json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}),
            ),
            mk_sidecar(ROOT, "root-pods", json!({"workloadSelector": {}})),
        ]
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
        i
    };
    assert!(hits(&run(&strict(), &i), Rule::MB702).is_empty());
}
