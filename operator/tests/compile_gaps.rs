//! One test per gap that compile closes (G1–G14, listed in docs/reference.md), asserting the
//! property that closes it.

use std::sync::Arc;
mod common;

use common::*;
use meshbaseline::compile::names::*;
use meshbaseline::object::Kind;
use serde_json::{json, Value};

const SELECT: &str = "namespaceSelector: {matchLabels: {protected: \"true\"}}";

fn egress_ports_protocols(np: &Value) -> Vec<(String, Option<i64>)> {
    np["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["ports"].as_array().unwrap().clone())
        .map(|p| {
            (
                p["protocol"].as_str().unwrap().to_string(),
                p["port"].as_i64(),
            )
        })
        .collect()
}

/// G1 + G2: plaintext has no principal; a DENY on `notPrincipals: ["*"]` without selector and
/// without `to` covers every workload and every port, whatever a PeerAuthentication says.
#[test]
fn g1_g2_deny_plaintext_covers_every_workload_and_port() {
    let c = run(&baseline(SELECT), &inventory(&["shop"]));
    let ap = get(&c, Kind::AuthorizationPolicy, "shop", DENY_PLAINTEXT);
    let spec = ap["spec"].as_object().unwrap();
    assert_eq!(spec["action"], "DENY");
    assert!(
        !spec.contains_key("selector"),
        "a selector would leave workloads out"
    );
    assert!(!spec.contains_key("targetRefs") && !spec.contains_key("targetRef"));
    assert_eq!(
        spec["rules"],
        json!([{"from": [{"source": {"notPrincipals": ["*"]}}]}])
    );
    let rule = spec["rules"][0].as_object().unwrap();
    assert!(
        !rule.contains_key("to"),
        "a `to` would leave undeclared ports open"
    );
    assert!(!rule.contains_key("when"));
}

#[test]
fn g1_no_deny_plaintext_in_permissive_mode_or_when_disabled() {
    for spec in [
        format!("{SELECT}\nmtls: {{mode: PERMISSIVE}}"),
        format!("{SELECT}\nmtls: {{denyPlaintext: false}}"),
    ] {
        let c = run(&baseline(&spec), &inventory(&["shop"]));
        assert!(
            find(&c, Kind::AuthorizationPolicy, "shop", DENY_PLAINTEXT).is_none(),
            "{spec}"
        );
    }
}

/// G4: only TCP is allowed, in and out, apart from DNS to the DNS pods.
#[test]
fn g4_network_policy_allows_only_tcp_besides_dns() {
    for mode in ["ClusterOnly", "AllowList", "Unrestricted"] {
        let b = baseline(&format!("{SELECT}\nnetwork: {{egress: {{mode: {mode}}}}}"));
        let c = run(&b, &inventory(&["shop"]));
        let np = get(&c, Kind::NetworkPolicy, "shop", BASELINE_NETWORK_POLICY);
        assert_eq!(np["spec"]["podSelector"], json!({}));
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(
            np["spec"]["ingress"],
            json!([{"ports": [{"protocol": "TCP"}]}])
        );
        let egress = np["spec"]["egress"].as_array().unwrap();
        let dns = &egress[0];
        assert_eq!(
            dns["to"],
            json!([{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }])
        );
        assert_eq!(
            dns["ports"],
            json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}])
        );
        for rule in &egress[1..] {
            for port in rule["ports"].as_array().unwrap() {
                assert_eq!(port["protocol"], "TCP", "{mode}: {rule}");
            }
        }
        let udp: Vec<_> = egress_ports_protocols(&np)
            .into_iter()
            .filter(|(p, _)| p != "TCP")
            .collect();
        assert_eq!(udp, vec![("UDP".to_string(), Some(53))], "{mode}");
    }
}

/// G7: egress goes only to the cluster, DNS, the egress gateway and allowCidrs.
#[test]
fn g7_egress_only_to_cluster_dns_gateway_and_allow_cidrs() {
    let gw = "egressGateway: {namespace: istio-system, podSelector: {istio: egressgateway}}";
    let cluster_only = baseline(&format!(
        "{SELECT}\nnetwork: {{egress: {{mode: ClusterOnly, allowCidrs: [203.0.113.0/24], {gw}}}}}"
    ));
    let c = run(&cluster_only, &inventory(&["shop"]));
    let np = get(&c, Kind::NetworkPolicy, "shop", BASELINE_NETWORK_POLICY);
    let to: Vec<Value> = np["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["to"].clone())
        .collect();
    assert_eq!(
        to[1],
        json!([{"namespaceSelector": {}}]),
        "cluster pods, gateway included"
    );
    assert_eq!(to[2], json!([{"ipBlock": {"cidr": "203.0.113.0/24"}}]));
    assert_eq!(to.len(), 3, "nothing else: {to:#?}");

    let allow_list = baseline(&format!(
        "{SELECT}\nnetwork: {{egress: {{mode: AllowList, allowCidrs: [203.0.113.0/24], {gw}}}}}"
    ));
    let c = run(&allow_list, &inventory(&["shop"]));
    let np = get(&c, Kind::NetworkPolicy, "shop", BASELINE_NETWORK_POLICY);
    let egress = np["spec"]["egress"].as_array().unwrap();
    let expected = json!([
        {"to": [{"podSelector": {}}], "ports": [{"protocol": "TCP"}]},
        {"to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
            "podSelector": {"matchLabels": {"app": "istiod"}},
         }], "ports": [{"protocol": "TCP", "port": 15012}]},
        {"to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
            "podSelector": {"matchLabels": {"istio": "egressgateway"}},
         }], "ports": [{"protocol": "TCP"}]},
        {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"protocol": "TCP"}]},
    ]);
    assert_eq!(Value::Array(egress[1..].to_vec()), expected);
    // No peer without a selector or ipBlock: that would mean "anywhere".
    for rule in egress {
        assert!(rule
            .get("to")
            .is_some_and(|t| !t.as_array().unwrap().is_empty()));
    }
}

/// G7: the optional mesh-default Sidecar with REGISTRY_ONLY.
#[test]
fn g7_registry_only_sidecar() {
    let c = run(
        &baseline(&format!(
            "{SELECT}\nnetwork: {{egress: {{registryOnly: true}}}}"
        )),
        &inventory(&[]),
    );
    let sc = get(&c, Kind::Sidecar, "istio-system", REGISTRY_ONLY_SIDECAR);
    assert_eq!(
        sc["spec"],
        json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}})
    );
    let c = run(&baseline(SELECT), &inventory(&[]));
    assert!(find(&c, Kind::Sidecar, "istio-system", REGISTRY_ONLY_SIDECAR).is_none());
}

/// G8: istiod accepts 15012 and 15017 from anywhere and 15014 from monitoring only; nothing
/// allows 15010, 8080 or 9876.
#[test]
fn g8_istiod_network_policy_drops_plaintext_and_debug_ports() {
    let b = baseline(&format!(
        "{SELECT}\nnetwork: {{controlPlane: {{monitoringNamespaces: [monitoring]}}}}"
    ));
    let c = run(&b, &inventory(&[]));
    let np = get(
        &c,
        Kind::NetworkPolicy,
        "istio-system",
        ISTIOD_NETWORK_POLICY,
    );
    assert_eq!(
        np["spec"]["podSelector"],
        json!({"matchLabels": {"app": "istiod"}})
    );
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        np["spec"]["ingress"],
        json!([
            {"ports": [{"protocol": "TCP", "port": 15012}, {"protocol": "TCP", "port": 15017}]},
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
             "ports": [{"protocol": "TCP", "port": 15014}]},
        ])
    );
    let text = np.to_string();
    for port in ["15010", "8080", "9876"] {
        assert!(!text.contains(port), "{port} must not be allowed: {text}");
    }
    // Without monitoring namespaces, 15014 is closed too.
    let c = run(&baseline(SELECT), &inventory(&[]));
    let np = get(
        &c,
        Kind::NetworkPolicy,
        "istio-system",
        ISTIOD_NETWORK_POLICY,
    );
    assert_eq!(np["spec"]["ingress"].as_array().unwrap().len(), 1);
    assert!(!np.to_string().contains("15014"));
}

/// G9: ISTIO_MUTUAL for the namespace's wildcard host, exported to every namespace, skipped
/// when a tenant's rule in the namespace covers that host: the same host (Istio merges the two
/// and keeps one trafficPolicy) or a broader wildcard, which ours, more specific, would shadow
/// for the namespace's services (Istio's `MostSpecificHostMatch`). Hosts are resolved as
/// Istio's `ResolveShortnameToFQDN` does: `*.b.svc` is not completed and covers nothing.
#[test]
fn g9_istio_mutual_destination_rule_unless_tenant_covers_host() {
    let b = baseline(SELECT);
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let mut inv = inventory(&names);
    let mut selector = tenant_dr("i", "selected", "*");
    selector.spec.workload_selector = Some(Default::default());
    let mut nowhere = tenant_dr("j", "hidden", "*");
    nowhere.spec.export_to = vec!["~".into()];
    inv.destination_rules = vec![
        tenant_dr("a", "mine", "*.a.svc.cluster.local"),
        // Istio does not complete `.svc`: this rule matches no service, ours is needed.
        tenant_dr("b", "mine", "*.b.svc"),
        // Another namespace's host, or a single service: not the wildcard of `c`/`d`.
        tenant_dr("c", "other", "*.e.svc.cluster.local"),
        tenant_dr("d", "one", "reviews"),
        // Broader wildcards in the namespace itself: ours would shadow them.
        tenant_dr("f", "pool", "*.svc.cluster.local"),
        tenant_dr("g", "pool", "*.local"),
        tenant_dr("h", "pool", "*"),
        // For the client pods it selects only; exported nowhere.
        selector,
        nowhere,
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let c = run(&b, &inv);
    for ns in ["a", "f", "g", "h"] {
        assert!(
            find(&c, Kind::DestinationRule, ns, MTLS_DESTINATION_RULE).is_none(),
            "{ns}"
        );
    }
    for ns in ["b", "c", "d", "e", "i", "j"] {
        let dr = get(&c, Kind::DestinationRule, ns, MTLS_DESTINATION_RULE);
        assert_eq!(
            dr["spec"],
            json!({"host": format!("*.{ns}.svc.cluster.local"), "exportTo": ["*"],
                   "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}})
        );
    }
}

/// G9: our own DestinationRule in the inventory (the controller's cache) is not a tenant's.
#[test]
fn g9_own_destination_rule_does_not_suppress_itself() {
    let b = baseline(SELECT);
    let first = run(&b, &inventory(&["a"]));
    let mut inv = inventory(&["a"]);
    let mut ours = tenant_dr("a", MTLS_DESTINATION_RULE, "*.a.svc.cluster.local");
    ours.metadata.labels = Some(
        [(
            "app.kubernetes.io/managed-by".to_string(),
            "meshbaseline".to_string(),
        )]
        .into(),
    );
    inv.destination_rules.push(Arc::new(ours));
    assert_eq!(run(&b, &inv), first);
}

#[test]
fn g9_cluster_domain_is_used_for_host() {
    let b = baseline(&format!("{SELECT}\nclusterDomain: corp.internal"));
    let mut inv = inventory(&["a", "b"]);
    inv.destination_rules = vec![tenant_dr("b", "x", "*.b.svc.corp.internal")]
        .into_iter()
        .map(Arc::new)
        .collect();
    let c = run(&b, &inv);
    let dr = get(&c, Kind::DestinationRule, "a", MTLS_DESTINATION_RULE);
    assert_eq!(dr["spec"]["host"], "*.a.svc.corp.internal");
    assert!(find(&c, Kind::DestinationRule, "b", MTLS_DESTINATION_RULE).is_none());
}

/// G10: IPv6 CIDRs are kept in ipBlocks; Unrestricted covers both families.
#[test]
fn g10_ipv6_in_ip_blocks() {
    let b = baseline(&format!(
        "{SELECT}\nnetwork: {{egress: {{mode: AllowList, allowCidrs: [10.0.0.1/32, \"2001:db8::/64\"]}}}}"
    ));
    let c = run(&b, &inventory(&["shop"]));
    let np = get(&c, Kind::NetworkPolicy, "shop", BASELINE_NETWORK_POLICY);
    let last = np["spec"]["egress"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["to"],
        json!([{"ipBlock": {"cidr": "10.0.0.1/32"}}, {"ipBlock": {"cidr": "2001:db8::/64"}}])
    );
    let b = baseline(&format!(
        "{SELECT}\nnetwork: {{egress: {{mode: Unrestricted}}}}"
    ));
    let c = run(&b, &inventory(&["shop"]));
    let np = get(&c, Kind::NetworkPolicy, "shop", BASELINE_NETWORK_POLICY);
    let last = np["spec"]["egress"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    // No `to`: every destination of both families, whatever the CNI makes of ipBlocks.
    assert_eq!(last, json!({"ports": [{"protocol": "TCP"}]}));
}
