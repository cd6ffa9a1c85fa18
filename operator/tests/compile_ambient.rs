//! Ambient namespaces (G13): one test per generated object, asserting the property that keeps
//! ambient traffic working — HBONE, kubelet probes, DNS and istiod are never locked out, and
//! what ztunnel enforces stays L4.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use common::*;
use ipnet::IpNet;
use meshbaseline::compile::names::*;
use meshbaseline::inventory::Inventory;
use meshbaseline::object::Kind;
use serde_json::{json, Value};

const SELECT: &str = "namespaceSelector: {matchLabels: {protected: \"true\"}}";
const PROBE_V4: &str = "169.254.7.127";
const PROBE_V6: &str = "fd16:9254:7127:1337:ffff:ffff:ffff:ffff";

/// `shop` is ambient (using `waypoint` when `waypoint` is set), `payments` uses sidecars.
fn mixed(waypoint: Option<&str>) -> Inventory {
    let mut inv = inventory(&["shop", "payments", "both"]);
    let label = |inv: &mut Inventory, ns: &str, k: &str, v: &str| {
        assert!(inv.namespaces.update(ns, |n| {
            n.labels.insert(k.into(), v.into());
        }));
    };
    label(&mut inv, "shop", "istio.io/dataplane-mode", "ambient");
    if let Some(w) = waypoint {
        label(&mut inv, "shop", "istio.io/use-waypoint", w);
    }
    label(&mut inv, "payments", "istio-injection", "enabled");
    label(&mut inv, "both", "istio.io/dataplane-mode", "ambient");
    label(&mut inv, "both", "istio-injection", "enabled");
    inv
}

/// A connection's other end: an address, a pod (namespace labels, pod labels), or both.
struct Peer {
    ip: Option<IpAddr>,
    pod: Option<(BTreeMap<String, String>, BTreeMap<String, String>)>,
}

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ip(s: &str) -> Peer {
    Peer {
        ip: Some(s.parse().unwrap()),
        pod: None,
    }
}

fn pod(ns: &str, labels: &[(&str, &str)]) -> Peer {
    Peer {
        ip: None,
        pod: Some((map(&[("kubernetes.io/metadata.name", ns)]), map(labels))),
    }
}

fn labels_match(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    assert!(
        selector.get("matchExpressions").is_none(),
        "evaluator: matchLabels only"
    );
    selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
}

/// NetworkPolicy peer semantics for the fields the compiler writes; `own` is the policy's
/// namespace (a lone podSelector means pods of that namespace).
fn peer_matches(peer_rule: &Value, peer: &Peer, own: &str) -> bool {
    if let Some(block) = peer_rule.get("ipBlock") {
        let net: IpNet = block["cidr"].as_str().unwrap().parse().unwrap();
        return peer.ip.is_some_and(|a| net.contains(&a));
    }
    let Some((ns_labels, pod_labels)) = &peer.pod else {
        return false;
    };
    let ns_ok = match peer_rule.get("namespaceSelector") {
        Some(sel) => labels_match(sel, ns_labels),
        None => {
            ns_labels
                .get("kubernetes.io/metadata.name")
                .map(String::as_str)
                == Some(own)
        }
    };
    let pod_ok = peer_rule
        .get("podSelector")
        .is_none_or(|sel| labels_match(sel, pod_labels));
    ns_ok && pod_ok
}

fn allows(np: &Value, direction: &str, peer: &Peer, proto: &str, port: u16) -> bool {
    let peers_key = if direction == "ingress" { "from" } else { "to" };
    let own = np["metadata"]["namespace"].as_str().unwrap();
    np["spec"][direction]
        .as_array()
        .into_iter()
        .flatten()
        .any(|rule| {
            let peer_ok = rule.get(peers_key).is_none_or(|ps| {
                ps.as_array()
                    .unwrap()
                    .iter()
                    .any(|p| peer_matches(p, peer, own))
            });
            let port_ok = rule.get("ports").is_none_or(|ps| {
                ps.as_array().unwrap().iter().any(|p| {
                    p["protocol"].as_str().unwrap_or("TCP") == proto
                        && p.get("port")
                            .is_none_or(|n| n.as_u64() == Some(u64::from(port)))
                })
            });
            peer_ok && port_ok
        })
}

#[test]
fn ambient_network_policy_lets_hbone_probes_dns_and_istiod_through() {
    for mode in ["ClusterOnly", "AllowList", "Unrestricted"] {
        let b = baseline(&format!("{SELECT}\nnetwork: {{egress: {{mode: {mode}}}}}"));
        let c = run(&b, &mixed(Some("waypoint")));
        let np = get(&c, Kind::NetworkPolicy, "shop", BASELINE_NETWORK_POLICY);
        // HBONE in, from ztunnel in any pod and from waypoints anywhere.
        for peer in [
            pod("other", &[]),
            pod(
                "infra",
                &[("gateway.istio.io/managed", "istio.io-mesh-controller")],
            ),
            ip("10.1.2.3"),
        ] {
            assert!(
                allows(&np, "ingress", &peer, "TCP", 15008),
                "{mode}: HBONE in"
            );
        }
        // Kubelet probes, rewritten by istio-cni to the probe addresses, on any port.
        for probe in [PROBE_V4, PROBE_V6] {
            assert!(
                allows(&np, "ingress", &ip(probe), "TCP", 8080),
                "{mode}: probe {probe}"
            );
        }
        // DNS out, over UDP and TCP.
        let dns = pod("kube-system", &[("k8s-app", "kube-dns")]);
        assert!(allows(&np, "egress", &dns, "UDP", 53) && allows(&np, "egress", &dns, "TCP", 53));
        // Still TCP only: UDP elsewhere is dropped.
        assert!(
            !allows(&np, "egress", &pod("shop", &[]), "UDP", 5353),
            "{mode}"
        );
        assert!(
            !allows(&np, "ingress", &ip(PROBE_V4), "UDP", 8080),
            "{mode}"
        );
        if mode != "Unrestricted" {
            // HBONE out to a (possibly shared) waypoint in another namespace; istiod's xDS.
            let waypoint = pod(
                "infra",
                &[("gateway.istio.io/managed", "istio.io-mesh-controller")],
            );
            assert!(
                allows(&np, "egress", &waypoint, "TCP", 15008),
                "{mode}: HBONE to waypoint"
            );
            let istiod = pod("istio-system", &[("app", "istiod")]);
            assert!(
                allows(&np, "egress", &istiod, "TCP", 15012),
                "{mode}: istiod"
            );
        }
        if mode == "AllowList" {
            // The waypoint rule opens HBONE only, and only to waypoints.
            let waypoint = pod(
                "infra",
                &[("gateway.istio.io/managed", "istio.io-mesh-controller")],
            );
            assert!(!allows(&np, "egress", &waypoint, "TCP", 8080));
            assert!(!allows(&np, "egress", &pod("infra", &[]), "TCP", 15008));
        }
    }
}

#[test]
fn sidecar_namespaces_keep_the_plain_network_policy() {
    let c = run(&baseline(SELECT), &mixed(None));
    let plain = get(&c, Kind::NetworkPolicy, "payments", BASELINE_NETWORK_POLICY);
    assert_eq!(
        plain["spec"]["ingress"],
        json!([{"ports": [{"protocol": "TCP"}]}])
    );
    let both = get(&c, Kind::NetworkPolicy, "both", BASELINE_NETWORK_POLICY);
    assert_eq!(
        both["spec"], plain["spec"],
        "sidecar wins where both are asked for"
    );
}

#[test]
fn probe_cidrs_are_configurable() {
    let b = baseline(&format!(
        "{SELECT}\nnetwork: {{ambient: {{probeCidrs: [169.254.9.9/32]}}}}"
    ));
    let c = run(&b, &mixed(None));
    let np = get(&c, Kind::NetworkPolicy, "shop", BASELINE_NETWORK_POLICY);
    let probe_rule = &np["spec"]["ingress"][2];
    assert_eq!(
        probe_rule["from"],
        json!([{"ipBlock": {"cidr": "169.254.9.9/32"}}])
    );
}

/// The DENY policy ztunnel enforces must stay L4: with an HTTP attribute ztunnel would drop
/// its conditions and deny everything. It must also admit every mTLS identity (the waypoint,
/// sidecars, gateways), so only plaintext is refused.
#[test]
fn ambient_deny_plaintext_is_l4_only() {
    let c = run(&baseline(SELECT), &mixed(Some("waypoint")));
    let ap = get(&c, Kind::AuthorizationPolicy, "shop", DENY_PLAINTEXT);
    let spec = &ap["spec"];
    assert_eq!(spec["action"], "DENY");
    assert!(spec.get("targetRefs").is_none() && spec.get("selector").is_none());
    for rule in spec["rules"].as_array().unwrap() {
        assert!(
            rule.get("to").is_none() && rule.get("when").is_none(),
            "{rule}"
        );
        for from in rule["from"].as_array().unwrap() {
            let keys: Vec<&String> = from["source"].as_object().unwrap().keys().collect();
            assert_eq!(keys, ["notPrincipals"], "L4 source fields only");
        }
    }
}

#[test]
fn no_istio_mutual_destination_rule_in_ambient_namespaces() {
    let c = run(&baseline(SELECT), &mixed(None));
    assert!(find(&c, Kind::DestinationRule, "shop", MTLS_DESTINATION_RULE).is_none());
    assert!(find(&c, Kind::DestinationRule, "payments", MTLS_DESTINATION_RULE).is_some());
    assert!(find(&c, Kind::DestinationRule, "both", MTLS_DESTINATION_RULE).is_some());
}

/// Istio's principal matching: `*x` is a suffix match, `x*` a prefix match.
fn principal_matches(pattern: &str, principal: &str) -> bool {
    if pattern == "*" {
        true
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        principal.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        principal.starts_with(prefix)
    } else {
        pattern == principal
    }
}

/// Whether the waypoint-only DENY denies a connection from `who` to `port` (ztunnel's view:
/// the inner destination port), as Istio's ztunnel conversion reads it (`handleRule`): the
/// rule matches when the source is none of `notPrincipals` and the port none of `notPorts`.
fn waypoint_only_denies(spec: &Value, who: Option<&str>, port: &str) -> bool {
    assert_eq!(spec["action"], "DENY");
    spec["rules"].as_array().unwrap().iter().any(|r| {
        assert!(r.get("when").is_none(), "L4 only: {r}");
        let from = r["from"].as_array().unwrap().iter().any(|f| {
            let not: Vec<&str> = f["source"]["notPrincipals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            // Plaintext has no principal, so it is none of them.
            who.is_none_or(|w| !not.iter().any(|p| principal_matches(p, w)))
        });
        let to = r["to"].as_array().unwrap().iter().any(|t| {
            let op = &t["operation"];
            assert!(op.get("paths").is_none() && op.get("methods").is_none());
            !op["notPorts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.as_str() == Some(port))
        });
        from && to
    })
}

#[test]
fn waypoint_only_denies_every_peer_but_the_waypoint_pods_identities() {
    let mut inv = mixed(Some("waypoint"));
    add_waypoint_pod(&mut inv, "shop", "waypoint", "waypoint");
    // A canary of the waypoint with a ServiceAccount of its own, and another Gateway's pod.
    add_waypoint_pod(&mut inv, "shop", "waypoint", "waypoint-canary");
    add_waypoint_pod(&mut inv, "shop", "ingress", "ingress");
    let off = run(&baseline(SELECT), &inv);
    assert!(
        find(&off, Kind::AuthorizationPolicy, "shop", WAYPOINT_ONLY).is_none(),
        "off by default"
    );
    let on = baseline(&format!("{SELECT}\nauthorization: {{waypointOnly: true}}"));
    let c = run(&on, &inv);
    let ap = get(&c, Kind::AuthorizationPolicy, "shop", WAYPOINT_ONLY);
    let spec = &ap["spec"];
    // No selector, no targetRefs: ztunnel enforces it for every pod of the namespace.
    assert!(spec.get("targetRefs").is_none() && spec.get("selector").is_none());
    let denied = |who: Option<&str>| waypoint_only_denies(spec, who, "8080");
    assert!(!denied(Some("cluster.local/ns/shop/sa/waypoint")));
    assert!(!denied(Some("cluster.local/ns/shop/sa/waypoint-canary")));
    assert!(
        denied(Some("example.org/ns/shop/sa/waypoint")),
        "other trust domains"
    );
    assert!(
        denied(Some("cluster.local/ns/shop/sa/web")),
        "a direct client"
    );
    assert!(
        denied(Some("cluster.local/ns/shop/sa/ingress")),
        "another gateway"
    );
    assert!(denied(Some("cluster.local/ns/other/sa/waypoint")));
    assert!(denied(None), "plaintext");
    // The waypoint's own HBONE port: with ENABLE_LAYERED_WAYPOINT_AUTHORIZATION_POLICIES the
    // waypoint applies this policy to its clients there.
    assert!(!waypoint_only_denies(
        spec,
        Some("cluster.local/ns/shop/sa/web"),
        "15008"
    ));
    // The trust domain is the mesh's.
    let td = baseline(&format!(
        "{SELECT}\nauthorization: {{waypointOnly: true, trustDomain: example.org}}"
    ));
    let ap = get(
        &run(&td, &inv),
        Kind::AuthorizationPolicy,
        "shop",
        WAYPOINT_ONLY,
    );
    assert!(!waypoint_only_denies(
        &ap["spec"],
        Some("example.org/ns/shop/sa/waypoint"),
        "80"
    ));
    assert!(waypoint_only_denies(
        &ap["spec"],
        Some("cluster.local/ns/shop/sa/waypoint"),
        "80"
    ));
    // Not where no waypoint is used, nor in sidecar namespaces.
    for w in [None, Some("none")] {
        let mut inv = mixed(w);
        add_waypoint_pod(&mut inv, "shop", "waypoint", "waypoint");
        let c = run(&on, &inv);
        assert!(find(&c, Kind::AuthorizationPolicy, "shop", WAYPOINT_ONLY).is_none());
    }
    assert!(find(&c, Kind::AuthorizationPolicy, "payments", WAYPOINT_ONLY).is_none());
}

#[test]
fn waypoint_only_needs_the_waypoints_pods_and_follows_its_namespace_and_exemptions() {
    let on = baseline(&format!("{SELECT}\nauthorization: {{waypointOnly: true}}"));
    // No pod of the waypoint: no identity to admit, nothing generated (the audit says MB305).
    let mut inv = mixed(Some("shared"));
    assert!(find(
        &run(&on, &inv),
        Kind::AuthorizationPolicy,
        "shop",
        WAYPOINT_ONLY
    )
    .is_none());
    assert!(inv.namespaces.update("shop", |n| {
        n.labels
            .insert("istio.io/use-waypoint-namespace".into(), "infra".into());
    }));
    // A pod of a Gateway of that name in shop itself is not the waypoint.
    add_waypoint_pod(&mut inv, "shop", "shared", "impostor");
    assert!(find(
        &run(&on, &inv),
        Kind::AuthorizationPolicy,
        "shop",
        WAYPOINT_ONLY
    )
    .is_none());
    add_waypoint_pod(&mut inv, "infra", "shared", "shared-wp");
    let c = run(&on, &inv);
    let ap = get(&c, Kind::AuthorizationPolicy, "shop", WAYPOINT_ONLY);
    assert_eq!(
        ap["spec"]["rules"][0]["from"][0]["source"]["notPrincipals"],
        json!(["cluster.local/ns/infra/sa/shared-wp"])
    );
    let exempt = baseline(&format!(
        "{SELECT}\nauthorization: {{waypointOnly: true}}\nexemptions: [{{namespace: shop, controls: [authorization], reason: migration, expires: \"2099-01-01T00:00:00Z\"}}]"
    ));
    assert!(find(
        &run(&exempt, &inv),
        Kind::AuthorizationPolicy,
        "shop",
        WAYPOINT_ONLY
    )
    .is_none());
}

#[test]
fn generated_ambient_objects_validate_against_istio_schemas() {
    let schemas = IstioSchemas::load();
    for mode in ["ClusterOnly", "AllowList", "Unrestricted"] {
        let b = baseline(&format!(
            "{SELECT}\nauthorization: {{waypointOnly: true}}\nnetwork: {{egress: {{mode: {mode}}}}}"
        ));
        let mut inv = mixed(Some("waypoint"));
        add_waypoint_pod(&mut inv, "shop", "waypoint", "waypoint");
        let c = run(&b, &inv);
        assert!(find(&c, Kind::AuthorizationPolicy, "shop", WAYPOINT_ONLY).is_some());
        assert_all_valid(&schemas, &c);
    }
}
