//! MB304, and MB506 leaving gateways alone: gateways in protected namespaces.

use std::sync::Arc;

use super::*;

/// A gateway pod as Istio's `kube-gateway.yaml` template deploys it for a Gateway of class
/// `istio`: the proxy is the main container, injection is switched off by label.
fn gateway_api_pod(ns: &str, name: &str) -> PodInfo {
    let mut p = crate::inventory::mk_running_pod(ns, name, &["istio-proxy"]);
    p.labels = [
        ("gateway.networking.k8s.io/gateway-name", "web"),
        ("gateway.networking.k8s.io/gateway-class-name", "istio"),
        ("gateway.istio.io/managed", "istio.io-gateway-controller"),
        ("sidecar.istio.io/inject", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p
}

/// A classic gateway of Istio's `gateway` chart (`istio: ingressgateway`, injected with the
/// gateway template).
fn classic_pod(ns: &str, name: &str, istio: &str) -> PodInfo {
    let mut p = crate::inventory::mk_running_pod(ns, name, &["istio-proxy"]);
    p.labels = [
        ("istio".to_string(), istio.to_string()),
        ("sidecar.istio.io/inject".to_string(), "true".to_string()),
    ]
    .into_iter()
    .collect();
    p.annotations = [(
        "inject.istio.io/templates".to_string(),
        "gateway".to_string(),
    )]
    .into_iter()
    .collect();
    p
}

fn pods(pods: Vec<PodInfo>) -> Inventory {
    let mut i = with_namespaces(
        inv(),
        vec![
            mk_ns("shop", &[("istio-injection", "enabled")]),
            mk_ns("edge", &[("istio-injection", "enabled")]),
        ],
    );
    i.pods = pods.into_iter().map(Arc::new).collect();
    i
}

/// Istio's `ShouldAttachPolicy`: a selector-less policy attaches to a Gateway API gateway's
/// pod (ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY is on by default) and to classic gateways.
#[test]
fn mb304_ingress_gateways_behind_the_plaintext_deny_fire() {
    let i = pods(vec![
        gateway_api_pod("shop", "web-istio-1"),
        classic_pod("shop", "ingressgateway-1", "ingressgateway"),
    ]);
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB304),
        vec!["shop/ingressgateway-1", "shop/web-istio-1"]
    );
    let m = &f.iter().find(|f| f.name == "web-istio-1").unwrap().message;
    assert!(
        m.contains("Gateway \"web\"") && m.contains("meshbaseline-deny-plaintext"),
        "{m}"
    );
}

#[test]
fn mb304_near_misses_are_silent() {
    let i = pods(vec![
        // Waypoints receive HBONE with the client's identity; egress gateways mTLS.
        mk_waypoint_pod("shop", "waypoint-1", "waypoint", "waypoint"),
        classic_pod("shop", "egressgateway-1", "egressgateway"),
        // An app labelled istio= without the gateway template or a proxy of its own.
        {
            let mut p = classic_pod("shop", "app", "ingressgateway");
            p.containers = vec![mk_container("app")];
            p.annotations = Default::default();
            p
        },
    ]);
    assert!(hits(&run(&strict(), &i), Rule::MB304).is_empty());
    // No plaintext DENY: PERMISSIVE, switched off, or the namespace exempt from mtls.
    let gw = pods(vec![gateway_api_pod("shop", "web-istio-1")]);
    for b in [
        mk_baseline(json!({"mtls": {"mode": "PERMISSIVE"}})),
        mk_baseline(json!({"mtls": {"denyPlaintext": false}})),
        exempting("shop", "mtls", ACTIVE),
    ] {
        assert!(hits(&run(&b, &gw), Rule::MB304).is_empty());
    }
    assert_eq!(
        hits(&run(&exempting("shop", "mtls", EXPIRED), &gw), Rule::MB304).len(),
        1
    );
}

/// A gateway's or waypoint's proxy is its main container; Istio's templates label the pods
/// `sidecar.istio.io/inject: "false"` so that none is injected next to it. Not an opt-out.
#[test]
fn mb506_gateway_and_waypoint_pods_are_no_sidecar_opt_outs() {
    let i = pods(vec![
        gateway_api_pod("edge", "web-istio-1"),
        mk_waypoint_pod("edge", "waypoint-1", "waypoint", "waypoint"),
    ]);
    assert!(hits(&run(&strict(), &i), Rule::MB506).is_empty());
    // The label still counts on a pod without a proxy of its own, gateway labels or not.
    let mut fake = gateway_api_pod("edge", "fake");
    fake.containers = vec![mk_container("app")];
    let f = run(&strict(), &pods(vec![fake]));
    assert_eq!(hits(&f, Rule::MB506), vec!["edge/fake"]);
}
