//! One property per rule: what closes its gap.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::{istiod_spec, namespaces_spec, ISTIOD_PLAINTEXT_PORTS};
use crate::api::{Baseline, MeshBaseline};

fn baseline(spec: Value) -> Baseline {
    let mb: MeshBaseline = serde_json::from_value(json!({
        "apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "b"}, "spec": spec,
    }))
    .unwrap();
    Baseline::try_from(&mb).unwrap()
}

fn now() -> Timestamp {
    "2026-11-30T00:00:00Z".parse().unwrap()
}

fn rule<'a>(spec: &'a Value, dir: &str, name: &str) -> &'a Value {
    spec[dir]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {dir} rule {name}: {spec:#}"))
}

fn index(spec: &Value, dir: &str, name: &str) -> usize {
    spec[dir]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["name"] == name)
        .unwrap()
}

/// G4: UDP and SCTP out are denied to every peer, DNS to the DNS pods passed first; nothing is
/// accepted, so the NetworkPolicy tier still decides the rest.
#[test]
fn udp_and_sctp_are_denied_except_dns() {
    let s = namespaces_spec(&baseline(json!({})), &BTreeSet::new(), now());
    assert_eq!(s["tier"], "Admin");
    let dns = rule(&s, "egress", "dns");
    assert_eq!(dns["action"], "Pass");
    assert_eq!(
        dns["protocols"],
        json!([{"udp": {"destinationPort": {"number": 53}}}])
    );
    assert_eq!(
        dns["to"][0]["pods"]["podSelector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );
    let deny = rule(&s, "egress", "deny-udp-sctp");
    assert_eq!(deny["action"], "Deny");
    let all = json!({"destinationPort": {"range": {"start": 1, "end": 65535}}});
    assert_eq!(deny["protocols"], json!([{"udp": all}, {"sctp": all}]));
    assert_eq!(
        deny["to"],
        json!([{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}])
    );
    assert!(index(&s, "egress", "dns") < index(&s, "egress", "deny-udp-sctp"));
    let actions: Vec<&Value> = s["egress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["action"])
        .collect();
    assert!(!actions.contains(&&json!("Accept")), "{actions:?}");
}

/// G7 in AllowList mode: traffic out of the cluster is denied unless allow-listed; pods are
/// passed before the deny, since `networks` also match in-cluster addresses.
#[test]
fn allow_list_mode_denies_egress_outside_the_list() {
    let b = baseline(
        json!({"network": {"egress": {"mode": "AllowList", "allowCidrs": ["203.0.113.0/24"]}}}),
    );
    let s = namespaces_spec(&b, &BTreeSet::new(), now());
    let (pods, list, deny) = (
        index(&s, "egress", "in-cluster"),
        index(&s, "egress", "allow-list"),
        index(&s, "egress", "deny-outside-allow-list"),
    );
    assert!(pods < deny && list < deny);
    assert_eq!(
        rule(&s, "egress", "allow-list")["to"],
        json!([{"networks": ["203.0.113.0/24"]}])
    );
    assert_eq!(
        rule(&s, "egress", "deny-outside-allow-list")["action"],
        "Deny"
    );
    let cluster_only = namespaces_spec(&baseline(json!({})), &BTreeSet::new(), now());
    assert!(cluster_only["egress"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["name"] != "deny-outside-allow-list"));
}

/// The subject is the protected namespaces: never the system or root namespaces, not those an
/// older baseline claims, and not those exempt from the network control while it lasts.
#[test]
fn subject_is_the_protected_namespaces_minus_network_exemptions() {
    let b = baseline(json!({
        "namespaceSelector": {"matchLabels": {"team": "x"}},
        "exemptions": [{"namespace": "legacy", "controls": ["network"], "reason": "ticket 1",
                        "expires": "2026-12-01T00:00:00Z"}],
    }));
    // An older baseline's namespace is its policy's business.
    let claimed = BTreeSet::from(["older".to_string()]);
    let s = namespaces_spec(&b, &claimed, now());
    let exprs = &s["subject"]["namespaces"]["matchExpressions"];
    assert!(exprs
        .as_array()
        .unwrap()
        .contains(&json!({"key": "team", "operator": "In", "values": ["x"]})));
    let excluded = exprs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["operator"] == "NotIn")
        .unwrap();
    for ns in [
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "istio-system",
        "legacy",
    ] {
        assert!(
            excluded["values"].as_array().unwrap().contains(&json!(ns)),
            "{ns}"
        );
    }
    let later: Timestamp = "2026-12-02T00:00:00Z".parse().unwrap();
    let expired = namespaces_spec(&b, &BTreeSet::new(), later);
    assert!(!expired.to_string().contains("legacy"));
}

/// G8: istiod's plaintext xDS, debug and ControlZ ports are denied to every namespace.
#[test]
fn istiod_plaintext_and_debug_ports_are_denied() {
    let s = istiod_spec(&baseline(json!({})));
    assert_eq!(
        s["subject"]["pods"]["podSelector"]["matchLabels"],
        json!({"app": "istiod"})
    );
    let r = rule(&s, "ingress", "deny-plaintext-and-debug");
    assert_eq!(r["action"], "Deny");
    assert_eq!(r["from"], json!([{"namespaces": {}}]));
    for p in ISTIOD_PLAINTEXT_PORTS {
        assert!(
            r["protocols"]
                .as_array()
                .unwrap()
                .contains(&json!({"tcp": {"destinationPort": {"number": p}}})),
            "{p}"
        );
    }
    assert!(!r["protocols"].to_string().contains("15012"));
}

/// istiod is found where it runs, which need not be the root namespace.
#[test]
fn istiod_subject_is_in_istiods_namespace() {
    let s = istiod_spec(&baseline(
        json!({"network": {"controlPlane": {"istiodNamespace": "istio-control"}}}),
    ));
    assert_eq!(
        s["subject"]["pods"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "istio-control"
    );
}

/// A DNS cache on the host network (NodeLocal DNSCache) is passed like the DNS pods; it is an
/// address, so a `networks` peer.
#[test]
fn node_local_dns_is_passed_before_udp_is_denied() {
    let dns = json!({"namespace": "kube-system", "podSelector": {"k8s-app": "kube-dns"},
                     "port": 53, "nodeLocalAddresses": ["169.254.20.10"]});
    let s = namespaces_spec(
        &baseline(json!({"network": {"dns": dns}})),
        &BTreeSet::new(),
        now(),
    );
    assert_eq!(
        rule(&s, "egress", "dns")["to"][1],
        json!({"networks": ["169.254.20.10/32"]})
    );
    assert!(index(&s, "egress", "dns") < index(&s, "egress", "deny-udp-sctp"));
}
