//! MB106, MB202, MB306–MB309, MB404, MB603, with cases from Istio's own test data
//! (`tests/istio/`, copied unchanged) where it has some.

use std::path::Path;

use super::*;
use crate::inventory::{CniExclusion, MeshConfigInfo};

/// The inventory of a manifest text, read as `check` reads it.
fn load(text: &str) -> Inventory {
    let mut loaded = crate::manifests::Loaded::default();
    loaded.add_text(Path::new("case.yaml"), text);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    loaded.inventory
}

/// An Istio test-data file with every `mydbserver.prod.svc.cluster.local` host moved outside
/// the mesh (MB202 is about origination to external hosts; in-mesh ones are MB201's).
fn istio_dr(file: &str) -> Inventory {
    let text = match file {
        "destinationrule-simple-destination" => {
            include_str!("istio/destinationrule-simple-destination.yaml")
        }
        "destinationrule-mutual-destination" => {
            include_str!("istio/destinationrule-mutual-destination.yaml")
        }
        "destinationrule-simple-port" => include_str!("istio/destinationrule-simple-port.yaml"),
        "destinationrule-simple-destination-credentialname" => {
            include_str!("istio/destinationrule-simple-destination-credentialname.yaml")
        }
        "destinationrule-simple-destination-credentialname-selector" => {
            include_str!("istio/destinationrule-simple-destination-credentialname-selector.yaml")
        }
        "destinationrule-simple-port-credentialname-selector" => {
            include_str!("istio/destinationrule-simple-port-credentialname-selector.yaml")
        }
        "destinationrule-with-ca" => include_str!("istio/destinationrule-with-ca.yaml"),
        _ => unreachable!("{file}"),
    };
    let mut inv = load(&text.replace("mydbserver.prod.svc.cluster.local", "db.example.com"));
    inv.namespaces
        .insert("default".into(), mk_ns("default", &[]));
    inv
}

/// Istio's `CaCertificateAnalyzer` cases (analyzers_test.go): the same verdicts for an
/// external host.
#[test]
fn mb202_follows_istios_ca_certificate_analyzer() {
    for (file, fires) in [
        ("destinationrule-simple-destination", true),
        ("destinationrule-mutual-destination", true),
        ("destinationrule-simple-port", true),
        ("destinationrule-simple-destination-credentialname", true),
        (
            "destinationrule-simple-destination-credentialname-selector",
            false,
        ),
        ("destinationrule-simple-port-credentialname-selector", false),
        ("destinationrule-with-ca", false),
    ] {
        let f = run(&strict(), &istio_dr(file));
        assert_eq!(
            hits(&f, Rule::MB202).len(),
            usize::from(fires),
            "{file}: {f:?}"
        );
    }
    let f = run(&strict(), &istio_dr("destinationrule-simple-port"));
    assert!(
        f[0].message.contains("portLevelSettings[0] (port 443)"),
        "{}",
        f[0].message
    );
}

#[test]
fn mb202_insecure_skip_verify_is_high_and_in_mesh_hosts_are_mb201s() {
    let mut i = with_namespaces(inv(), vec![mk_ns("payments", &[])]);
    i.destination_rules = vec![
        mk_dr_spec(
            "payments",
            "skip",
            json!({"host": "api.stripe.com", "trafficPolicy": {"tls": {
            "mode": "SIMPLE", "caCertificates": "/etc/ca.pem", "insecureSkipVerify": true}}}),
        ),
        mk_dr_spec(
            "payments",
            "inside",
            json!({"host": "ledger", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}),
        ),
        mk_dr_spec(
            "payments",
            "pinned",
            json!({"host": "api.stripe.com", "trafficPolicy": {"tls": {
            "mode": "SIMPLE", "caCertificates": "/etc/ca.pem"}}}),
        ),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB202), ["payments/skip"]);
    let skip = f.iter().find(|f| f.rule == Rule::MB202).unwrap();
    assert_eq!(skip.severity, crate::audit::Severity::High);
    // Exempt from mtls: silent.
    let f = run(&exempting("payments", "mtls", ACTIVE), &i);
    assert!(hits(&f, Rule::MB202).is_empty());
}

/// Istio's authz builder test data: an ALLOW rule with notPaths (`http/allow-path-in.yaml`).
#[test]
fn mb306_allow_with_negative_matches() {
    let mut i = load(include_str!("istio/allow-path-in.yaml"));
    i.namespaces.insert("foo".into(), mk_ns("foo", &[]));
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB306), ["foo/httpbin-1"]);
    assert!(f
        .iter()
        .any(|f| f.rule == Rule::MB306 && f.message.contains("rules[0] notPaths")));
    let mut near = with_namespaces(inv(), vec![mk_ns("foo", &[])]);
    near.authorization_policies = vec![
        // Positive ALLOW, and a DENY with negative matches (the pattern Istio recommends).
        mk_ap(
            "foo",
            "pos",
            json!({"rules": [{"to": [{"operation": {"paths": ["/api/*"], "ports": ["8080"]}}]}]}),
        ),
        mk_ap(
            "foo",
            "neg-deny",
            json!({"action": "DENY", "rules": [{"to": [{"operation": {"notPorts": ["8080"]}}]}]}),
        ),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    assert!(hits(&run(&strict(), &near), Rule::MB306).is_empty());
    let mut with_ports = near.clone();
    with_ports.authorization_policies.push(Arc::new(mk_ap(
        "foo",
        "not-ports",
        json!({"rules": [{"to": [{"operation": {"notPorts": ["15020"]}}]}]}),
    )));
    assert_eq!(
        hits(&run(&strict(), &with_ports), Rule::MB306),
        ["foo/not-ports"]
    );
    assert!(hits(
        &run(&exempting("foo", "authorization", ACTIVE), &with_ports),
        Rule::MB306
    )
    .is_empty());
}

/// Istio's authz builder test data: a DENY whose rule[10] matches paths
/// (`tcp/deny-both-http-tcp-in.yaml`). Istio's default normalisation (BASE) does not merge
/// slashes; MERGE_SLASHES in the mesh's ConfigMap silences the rule.
#[test]
fn mb307_path_deny_needs_merge_slashes() {
    let mut i = load(include_str!("istio/deny-both-http-tcp-in.yaml"));
    i.namespaces.insert("foo".into(), mk_ns("foo", &[]));
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB307), ["foo/httpbin-deny"]);
    let m = &f.iter().find(|f| f.rule == Rule::MB307).unwrap().message;
    assert!(
        m.contains("rules[10]") && m.contains("BASE") && m.contains("Istio's default"),
        "{m}"
    );
    for (value, fires) in [
        (None, true),
        (Some("NONE"), true),
        (Some("BASE"), true),
        (Some("DEFAULT"), true),
        (Some("MERGE_SLASHES"), false),
        (Some("DECODE_AND_MERGE_SLASHES"), false),
    ] {
        let mut j = i.clone();
        j.mesh_configs = vec![MeshConfigInfo {
            namespace: ROOT.into(),
            name: "istio".into(),
            path_normalization: value.map(str::to_string),
        }];
        assert_eq!(
            !hits(&run(&strict(), &j), Rule::MB307).is_empty(),
            fires,
            "{value:?}"
        );
    }
    // The weakest revision decides.
    let mut j = i.clone();
    j.mesh_configs = ["MERGE_SLASHES", "NONE"]
        .iter()
        .enumerate()
        .map(|(n, v)| MeshConfigInfo {
            namespace: ROOT.into(),
            name: format!("istio-{n}"),
            path_normalization: Some(v.to_string()),
        })
        .collect();
    assert_eq!(hits(&run(&strict(), &j), Rule::MB307), ["foo/httpbin-deny"]);
}

#[test]
fn mb307_reads_the_mesh_config_map() {
    let i = load(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    pathNormalization:\n      normalization: MERGE_SLASHES\n",
    );
    assert_eq!(
        i.mesh_configs[0].path_normalization.as_deref(),
        Some("MERGE_SLASHES")
    );
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: \"a: [\"\n";
    let mut loaded = crate::manifests::Loaded::default();
    loaded.add_text(Path::new("bad.yaml"), bad);
    assert!(
        loaded.errors[0].message.contains("data.mesh is not YAML"),
        "{:?}",
        loaded.errors
    );
}

#[test]
fn mb308_gateway_serving_any_host() {
    let i = load(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: open, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8080, name: http2, protocol: HTTP}
    hosts: ["*/*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: named, namespace: shop}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["shop/www.example.com", "*.example.com"]
"#,
    );
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB308), ["shop/open"]);
    let m = &f.iter().find(|f| f.rule == Rule::MB308).unwrap().message;
    assert!(
        m.contains("servers[0] host \"*\"") && m.contains("servers[1] host \"*/*\""),
        "{m}"
    );
    // kube-system is never protected.
    let other = load("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: kube-system}\nspec: {servers: [{hosts: ['*']}]}\n");
    assert!(hits(&run(&strict(), &other), Rule::MB308).is_empty());
}

/// Istio's `SelectorAnalyzer` test data: the two Sidecars of `ns-ambient` are IST0167
/// (IneffectivePolicy); the conflicts in `ns2` are Istio's IST0109, not ours. Istio's analyzer
/// also reads a namespace labelled both ambient and `istio.io/rev` as not ambient; our data
/// plane model reads it as ambient (see `dataplane::namespace_dataplane`), so that namespace
/// is left out of this case.
#[test]
fn mb404_sidecars_in_ambient_follow_istios_selector_analyzer() {
    let text = include_str!("istio/sidecar-default-selector.yaml");
    let mut i = load(text);
    i.namespaces.remove("ns-not-ambient-rev");
    i.sidecars
        .retain(|s| s.metadata.namespace.as_deref() != Some("ns-not-ambient-rev"));
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB404),
        ["ns-ambient/namespace-scoped", "ns-ambient/pod-scoped"]
    );
    // MB403 has nothing to say of a Sidecar that does nothing.
    let mut b = json!({"network": {"egress": {"registryOnly": true}}});
    b["mtls"] = json!({});
    let f = run(&mk_baseline(b), &i);
    assert!(
        !hits(&f, Rule::MB403)
            .iter()
            .any(|h| h.starts_with("ns-ambient/")),
        "{f:?}"
    );
    assert!(hits(
        &run(&exempting("ns-ambient", "network", ACTIVE), &i),
        Rule::MB404
    )
    .is_empty());
}

#[test]
fn mb106_port_level_settings_need_a_selector() {
    let mut i = with_namespaces(
        inv(),
        vec![mk_ns("shop", &[("istio.io/dataplane-mode", "ambient")])],
    );
    i.peer_authentications = vec![
        mk_pa("shop", "ports", json!({"mtls": {"mode": "STRICT"}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}})),
        mk_pa("shop", "selected", json!({"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"8080": {"mode": "STRICT"}}})),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB106), ["shop/ports"]);
    assert!(f
        .iter()
        .any(|f| f.rule == Rule::MB106 && f.message.contains("8080: DISABLE")));
}

#[test]
fn mb603_istio_cni_excluding_a_protected_ambient_namespace() {
    let mut i = with_namespaces(
        inv(),
        vec![
            mk_ns("shop", &[("istio.io/dataplane-mode", "ambient")]),
            mk_ns("payments", &[("istio-injection", "enabled")]),
        ],
    );
    i.cni_exclusions = vec![CniExclusion {
        source: "ConfigMap istio-system/istio-cni-config".into(),
        namespaces: vec!["kube-system".into(), "shop".into(), "payments".into()],
    }];
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB603), ["shop"]);
    // The platform's settings: no tenant exemption silences it.
    assert_eq!(
        hits(
            &run(&exempting("shop", "workloads", ACTIVE), &i),
            Rule::MB603
        ),
        ["shop"]
    );
}

#[test]
fn mb603_reads_istio_cni_config_map_and_daemon_set() {
    let i = load(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: istio-cni-config, namespace: kube-system}
data: {EXCLUDE_NAMESPACES: "kube-system, shop,,"}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: istio-cni-node, namespace: kube-system}
spec:
  selector: {matchLabels: {k8s-app: istio-cni-node}}
  template:
    metadata: {labels: {k8s-app: istio-cni-node}}
    spec:
      hostNetwork: true
      containers:
      - name: install-cni
        args: ["--log_output_level=info", "--exclude-namespaces", "legacy"]
"#,
    );
    assert_eq!(i.cni_exclusions[0].namespaces, ["kube-system", "shop"]);
    assert_eq!(
        i.cni_exclusions[1].source,
        "DaemonSet kube-system/istio-cni-node"
    );
    assert_eq!(i.cni_exclusions[1].namespaces, ["legacy"]);
}

#[test]
fn mb309_waypoint_without_a_bound_policy() {
    let shop = mk_ns(
        "shop",
        &[
            ("istio.io/dataplane-mode", "ambient"),
            ("istio.io/use-waypoint", "waypoint"),
        ],
    );
    let mut i = with_namespaces(inv(), vec![shop]);
    i.pods = vec![Arc::new(mk_waypoint_pod(
        "shop",
        "waypoint-1",
        "waypoint",
        "waypoint",
    ))];
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB309), ["shop/waypoint"]);
    // A selector-less policy does not bind to a waypoint; one targeting it does.
    let mut j = i.clone();
    j.authorization_policies = vec![Arc::new(mk_ap("shop", "l4", json!({"rules": [{}]})))];
    assert_eq!(hits(&run(&strict(), &j), Rule::MB309), ["shop/waypoint"]);
    for target in [
        json!({"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}]}),
        json!({"targetRefs": [{"kind": "Service", "group": "", "name": "web"}]}),
    ] {
        let mut k = i.clone();
        let mut spec = target;
        spec["rules"] = json!([{}]);
        k.authorization_policies = vec![Arc::new(mk_ap("shop", "bound", spec))];
        assert!(hits(&run(&strict(), &k), Rule::MB309).is_empty());
    }
    // A dry-run policy binds nothing.
    let mut k = i.clone();
    let mut ap = mk_ap(
        "shop",
        "dry",
        json!({"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}], "rules": [{}]}),
    );
    ap.metadata.annotations = Some([("istio.io/dry-run".to_string(), "true".to_string())].into());
    k.authorization_policies = vec![Arc::new(ap)];
    assert_eq!(hits(&run(&strict(), &k), Rule::MB309), ["shop/waypoint"]);
    // The baseline's GatewayClass policy binds to every waypoint.
    let b = mk_baseline(json!({"authorization": {"waypointDefaultDeny": true}}));
    assert!(hits(&run(&b, &i), Rule::MB309).is_empty());
}
