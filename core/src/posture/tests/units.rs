//! Posture on small meshes, one question at a time; each test names the Istio function whose
//! behaviour it mirrors.

use std::sync::Arc;

use serde_json::{json, Value};

use super::super::{Detail, Objects, Plaintext, Port, Posture, Protection, WorkloadPosture};
use crate::api::istio::{AuthorizationPolicy, PeerAuthentication};
use crate::api::model::Baseline;
use crate::api::MeshBaseline;
use crate::audit::audit_in_scope;
use crate::compile::{compile, Scope};
use crate::inventory::{ContainerInfo, Inventory, NamespaceInfo, PodInfo, PodShape, PortInfo};

const ROOT: &str = "istio-system";

fn now() -> jiff::Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn mk_baseline(spec: Value) -> Baseline {
    Baseline::try_from(&MeshBaseline::new(
        "default",
        serde_json::from_value(spec).unwrap(),
    ))
    .unwrap()
}

fn mk_pa(ns: &str, name: &str, created: Option<&str>, spec: Value) -> Arc<PeerAuthentication> {
    let mut meta = json!({"name": name, "namespace": ns});
    if let Some(c) = created {
        meta["creationTimestamp"] = json!(c);
    }
    Arc::new(serde_json::from_value(json!({"metadata": meta, "spec": spec})).unwrap())
}

fn mk_ap(ns: &str, name: &str, spec: Value) -> Arc<AuthorizationPolicy> {
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
            .unwrap(),
    )
}

fn mk_pod(ns: &str, app: &str, annotations: &[(&str, &str)], ports: &[u16]) -> PodInfo {
    PodInfo::new(
        ns,
        format!("{app}-1"),
        PodShape {
            kind: "Pod".into(),
            phase: Some("Running".into()),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            app_labels: [("app".to_string(), app.to_string())].into_iter().collect(),
            containers: ["app", "istio-proxy"]
                .iter()
                .map(|n| ContainerInfo {
                    name: n.to_string(),
                    ..ContainerInfo::default()
                })
                .collect(),
            ports: ports
                .iter()
                .map(|n| PortInfo {
                    number: *n,
                    protocol: "TCP".into(),
                    name: None,
                })
                .collect(),
            ..PodShape::default()
        },
    )
}

fn mesh(namespaces: &[(&str, &[(&str, &str)])]) -> Inventory {
    let mut inv = Inventory::default();
    for (name, labels) in namespaces.iter().chain(&[(ROOT, &[][..])]) {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        inv.namespaces.insert(
            name.to_string(),
            NamespaceInfo {
                name: name.to_string(),
                labels,
                terminating: false,
            },
        );
    }
    inv
}

const SIDECARS: &[(&str, &str)] = &[("istio-injection", "enabled")];

/// The posture of the inventory's first pod, the baseline's objects as compiled.
fn posture_of(b: &Baseline, inv: &Inventory) -> WorkloadPosture {
    let scope = Scope::default();
    let desired = compile(b, inv, &scope, now());
    let findings = audit_in_scope(b, inv, &desired, &scope, now());
    let p = Posture::new(b, inv, &desired, &scope, now(), &findings, Objects::Desired);
    p.workload(&inv.pods[0], Detail::Explain)
}

fn row(w: &WorkloadPosture, port: Port) -> &super::super::PortPosture {
    w.ports.iter().find(|r| r.port == port).unwrap()
}

/// Istio's `ComposePeerAuthentication`: port-level > workload > namespace > mesh, UNSET
/// inheriting from the scope above; among policies of one scope the oldest wins
/// (`configCompareByCreationTime`: creation time, then name); workload policies in the root
/// namespace are ignored; a mesh-level UNSET is PERMISSIVE (`addPeerAuthentication`).
#[test]
fn mtls_mode_follows_compose_peer_authentication() {
    let no_deny = mk_baseline(json!({"mtls": {"denyPlaintext": false}}));
    let mut inv = mesh(&[("shop", SIDECARS)]);
    inv.pods = vec![Arc::new(mk_pod("shop", "web", &[], &[8080, 9090]))];
    inv.peer_authentications = vec![
        // Older than the baseline's (which has no creation time: it is written later).
        mk_pa(
            ROOT,
            "old-mesh",
            Some("2026-01-01T00:00:00Z"),
            json!({"mtls": {"mode": "PERMISSIVE"}}),
        ),
        mk_pa(
            "shop",
            "ns-young",
            Some("2026-03-01T00:00:00Z"),
            json!({"mtls": {"mode": "STRICT"}}),
        ),
        mk_pa(
            "shop",
            "ns-old",
            Some("2026-02-01T00:00:00Z"),
            json!({"mtls": {"mode": "DISABLE"}}),
        ),
        mk_pa(
            "shop",
            "web",
            Some("2026-02-01T00:00:00Z"),
            json!({
                "selector": {"matchLabels": {"app": "web"}},
                "portLevelMtls": {"8080": {"mode": "STRICT"}, "9090": {"mode": "UNSET"}},
            }),
        ),
        mk_pa(
            ROOT,
            "root-selector",
            None,
            json!({"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "STRICT"}}),
        ),
    ];
    let w = posture_of(&no_deny, &inv);
    let r8080 = row(&w, Port::Number(8080));
    assert_eq!(
        (r8080.mtls.mode.as_str(), r8080.mtls.level.as_str()),
        ("STRICT", "port")
    );
    assert_eq!(r8080.plaintext, Plaintext::Refused);
    // 9090: UNSET at port level, no mode at workload level: the oldest namespace policy.
    let r9090 = row(&w, Port::Number(9090));
    assert_eq!(
        (r9090.mtls.mode.as_str(), r9090.mtls.level.as_str()),
        ("DISABLE", "namespace")
    );
    assert_eq!(r9090.mtls.policy.as_ref().unwrap().name, "ns-old");
    assert_eq!(r9090.plaintext, Plaintext::Accepted);
    // Without namespace policies, the oldest mesh policy: older than the baseline's.
    inv.peer_authentications
        .retain(|p| p.metadata.namespace.as_deref() == Some(ROOT));
    let w = posture_of(&no_deny, &inv);
    let other = row(&w, Port::Other);
    assert_eq!(
        (other.mtls.mode.as_str(), other.mtls.level.as_str()),
        ("PERMISSIVE", "mesh")
    );
    assert_eq!(other.mtls.policy.as_ref().unwrap().name, "old-mesh");
    // A mesh-level UNSET is PERMISSIVE, and it still decides.
    inv.peer_authentications[0] = mk_pa(ROOT, "old-mesh", Some("2026-01-01T00:00:00Z"), json!({}));
    let w = posture_of(&no_deny, &inv);
    assert_eq!(row(&w, Port::Other).mtls.mode, "PERMISSIVE");
    assert!(row(&w, Port::Other)
        .steps
        .iter()
        .any(|s| s.contains("UNSET is PERMISSIVE")));
    // No older policy: the baseline's STRICT.
    inv.peer_authentications.remove(0);
    let w = posture_of(&no_deny, &inv);
    let other = row(&w, Port::Other);
    assert_eq!(
        other.mtls.policy.as_ref().unwrap().name,
        "meshbaseline-mesh-mtls"
    );
    assert_eq!(other.plaintext, Plaintext::Refused);
}

/// With the baseline's DENY, a PERMISSIVE namespace still refuses plaintext, by the DENY;
/// with it marked dry-run (`isDryRun`: Go's ParseBool), nothing refuses it.
#[test]
fn deny_refuses_plaintext_and_dry_run_refuses_nothing() {
    let mut inv = mesh(&[("shop", SIDECARS)]);
    inv.pods = vec![Arc::new(mk_pod("shop", "web", &[], &[8080]))];
    inv.peer_authentications = vec![mk_pa(
        "shop",
        "loose",
        None,
        json!({"mtls": {"mode": "PERMISSIVE"}}),
    )];
    let strict = mk_baseline(json!({}));
    let w = posture_of(&strict, &inv);
    let r = row(&w, Port::Number(8080));
    assert_eq!(r.plaintext, Plaintext::Refused);
    assert_eq!(r.refused_by[0].policy.name, "meshbaseline-deny-plaintext");
    // A tenant's own DENY, without the baseline's.
    let no_deny = mk_baseline(json!({"mtls": {"denyPlaintext": false}}));
    inv.authorization_policies = vec![mk_ap(
        "shop",
        "tenant-deny",
        json!({"action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]}),
    )];
    let w = posture_of(&no_deny, &inv);
    assert_eq!(
        row(&w, Port::Other).refused_by[0].policy.name,
        "tenant-deny"
    );
    for (value, refused) in [
        ("true", false),
        ("T", false),
        ("1", false),
        ("false", true),
        ("yes", true),
    ] {
        let mut ap = (*inv.authorization_policies[0]).clone();
        ap.metadata.annotations =
            Some([("istio.io/dry-run".to_string(), value.to_string())].into());
        let mut j = inv.clone();
        j.authorization_policies = vec![Arc::new(ap)];
        let w = posture_of(&no_deny, &j);
        assert_eq!(
            row(&w, Port::Other).plaintext == Plaintext::Refused,
            refused,
            "dry-run {value:?}"
        );
        assert_eq!(row(&w, Port::Other).dry_run.is_empty(), refused);
    }
}

/// ALLOW policies: once one applies, a request none matches is denied; a rule without a
/// source admits plaintext again (G3); a rule with an HTTP path only some of it. Istio's
/// `ShouldAttachPolicy`: a policy with targetRefs never attaches to a sidecar, a selector
/// must be a subset of the pod's labels.
#[test]
fn allow_policies_decide_when_nothing_else_does() {
    let no_deny = mk_baseline(json!({"mtls": {"denyPlaintext": false, "mode": "PERMISSIVE"}}));
    let mut inv = mesh(&[("shop", SIDECARS)]);
    inv.pods = vec![Arc::new(mk_pod("shop", "web", &[], &[8080]))];
    inv.authorization_policies = vec![
        mk_ap(
            "shop",
            "only-frontend",
            json!({"selector": {"matchLabels": {"app": "web"}}, "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/frontend"]}}]}]}),
        ),
        mk_ap(
            "shop",
            "other-app",
            json!({"selector": {"matchLabels": {"app": "db"}}, "rules": [{}]}),
        ),
        mk_ap(
            "shop",
            "waypoint-bound",
            json!({"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}], "rules": [{}]}),
        ),
    ];
    let w = posture_of(&no_deny, &inv);
    let r = row(&w, Port::Number(8080));
    assert_eq!(r.plaintext, Plaintext::Refused, "{r:?}");
    assert!(r.refused_by[0].how.contains("none of their rules matches"));
    inv.authorization_policies.push(mk_ap(
        "shop",
        "health",
        json!({"rules": [{"to": [{"operation": {"paths": ["/healthz"]}}]}]}),
    ));
    let w = posture_of(&no_deny, &inv);
    let r = row(&w, Port::Number(8080));
    assert_eq!(r.plaintext, Plaintext::Accepted);
    assert_eq!(r.allows_plaintext[0].policy.name, "health");
}

/// istio-iptables' `handleInboundPortsInclude` with the injector's values: a port left out of
/// `includeInboundPorts` or listed in `excludeInboundPorts` reaches the application directly;
/// `interceptionMode: NONE` (annotation, else ProxyConfig) captures nothing.
#[test]
fn ports_outside_capture_take_plaintext_past_the_deny() {
    let strict = mk_baseline(json!({}));
    for (annotations, open) in [
        (
            vec![("traffic.sidecar.istio.io/includeInboundPorts", "8080")],
            vec![Port::Other],
        ),
        (
            vec![("traffic.sidecar.istio.io/excludeInboundPorts", "9090,15020")],
            vec![Port::Number(9090)],
        ),
        (
            vec![("sidecar.istio.io/interceptionMode", "NONE")],
            vec![Port::Number(8080), Port::Other],
        ),
        (
            vec![("proxy.istio.io/config", "NONE")],
            vec![Port::Number(8080), Port::Other],
        ),
        (
            vec![
                ("proxy.istio.io/config", "NONE"),
                ("sidecar.istio.io/interceptionMode", "REDIRECT"),
            ],
            vec![],
        ),
        (
            vec![("traffic.sidecar.istio.io/includeInboundPorts", "*")],
            vec![],
        ),
    ] {
        let mut inv = mesh(&[("shop", SIDECARS)]);
        inv.pods = vec![Arc::new(mk_pod("shop", "web", &annotations, &[8080]))];
        let w = posture_of(&strict, &inv);
        let accepted: Vec<Port> = w
            .ports
            .iter()
            .filter(|r| r.plaintext == Plaintext::Accepted)
            .map(|r| r.port)
            .collect();
        assert_eq!(accepted, open, "{annotations:?}");
    }
}

/// ztunnel (`convertAuthorizationPolicy`, `handleRule`): a DENY rule with HTTP fields is
/// enforced without them, so for an ambient pod a path DENY without a source refuses every
/// connection; an ALLOW rule with HTTP fields is dropped.
#[test]
fn ztunnel_enforces_l4_only() {
    let no_deny = mk_baseline(json!({"mtls": {"denyPlaintext": false, "mode": "PERMISSIVE"}}));
    let mut inv = mesh(&[("shop", &[("istio.io/dataplane-mode", "ambient")])]);
    let mut pod = mk_pod(
        "shop",
        "web",
        &[("ambient.istio.io/redirection", "enabled")],
        &[8080],
    );
    pod.containers.retain(|c| c.name != "istio-proxy");
    inv.pods = vec![Arc::new(pod)];
    inv.authorization_policies = vec![mk_ap(
        "shop",
        "admin",
        json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}),
    )];
    let w = posture_of(&no_deny, &inv);
    assert_eq!(w.data_plane.mode, "ambient");
    assert_eq!(row(&w, Port::Other).plaintext, Plaintext::Refused);
    inv.authorization_policies = vec![mk_ap(
        "shop",
        "get",
        json!({"rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}),
    )];
    let w = posture_of(&no_deny, &inv);
    let r = row(&w, Port::Other);
    assert_eq!(
        r.plaintext,
        Plaintext::Refused,
        "the ALLOW's only rule is dropped: {r:?}"
    );
    // The same policies on a sidecar pod: a path DENY refuses only some requests.
    let mut inv = mesh(&[("shop", SIDECARS)]);
    inv.pods = vec![Arc::new(mk_pod("shop", "web", &[], &[8080]))];
    inv.authorization_policies = vec![mk_ap(
        "shop",
        "admin",
        json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}),
    )];
    assert_eq!(
        row(&posture_of(&no_deny, &inv), Port::Other).plaintext,
        Plaintext::Accepted
    );
}

#[test]
fn protection_sums_up_the_workload() {
    let strict = mk_baseline(json!({}));
    let mut inv = mesh(&[("shop", SIDECARS), ("bare", &[])]);
    inv.pods = vec![Arc::new(mk_pod("shop", "web", &[], &[8080]))];
    assert_eq!(posture_of(&strict, &inv).protection, Protection::Protected);
    inv.pods = vec![Arc::new(mk_pod(
        "shop",
        "web",
        &[("traffic.sidecar.istio.io/excludeInboundPorts", "9090")],
        &[8080],
    ))];
    assert_eq!(posture_of(&strict, &inv).protection, Protection::Partial);
    let mut bare = mk_pod("bare", "web", &[], &[8080]);
    bare.containers.retain(|c| c.name != "istio-proxy");
    inv.pods = vec![Arc::new(bare)];
    let w = posture_of(&strict, &inv);
    assert_eq!(w.protection, Protection::Unprotected);
    assert!(w.findings.iter().any(|f| f.rule == "MB505"));
    // UDP open: partly protected.
    let no_np = mk_baseline(json!({"network": {"tcpOnly": false}}));
    inv.pods = vec![Arc::new(mk_pod("shop", "web", &[], &[8080]))];
    assert_eq!(posture_of(&no_np, &inv).protection, Protection::Partial);
    // Unknown namespace: unknown.
    inv.pods = vec![Arc::new(mk_pod("gone", "web", &[], &[8080]))];
    let mut tmpl = (*inv.pods[0]).clone();
    tmpl.phase = None;
    tmpl.containers.retain(|c| c.name != "istio-proxy");
    inv.pods = vec![Arc::new(tmpl)];
    assert_eq!(posture_of(&strict, &inv).protection, Protection::Unknown);
}

#[test]
fn status_lists_the_worst_namespaces_first_and_caps() {
    let strict = mk_baseline(json!({}));
    let mut names: Vec<String> = (0..60).map(|i| format!("ns{i:02}")).collect();
    names.push("worst".into());
    let mut inv = Inventory::default();
    for n in names.iter().map(String::as_str).chain([ROOT]) {
        let labels = if n == "worst" {
            vec![]
        } else {
            vec![("istio-injection".to_string(), "enabled".to_string())]
        };
        inv.namespaces.insert(
            n.into(),
            NamespaceInfo {
                name: n.into(),
                labels: labels.into_iter().collect(),
                terminating: false,
            },
        );
    }
    inv.pods = names
        .iter()
        .map(|n| Arc::new(mk_pod(n, "web", &[], &[8080])))
        .collect();
    let mut bare = mk_pod("worst", "web", &[], &[8080]);
    bare.containers.retain(|c| c.name != "istio-proxy");
    inv.pods.push(Arc::new(bare));
    let scope = Scope::default();
    let desired = compile(&strict, &inv, &scope, now());
    let findings = audit_in_scope(&strict, &inv, &desired, &scope, now());
    let s = Posture::new(
        &strict,
        &inv,
        &desired,
        &scope,
        now(),
        &findings,
        Objects::Desired,
    )
    .summary()
    .to_status();
    assert_eq!(s.namespaces_total, 61);
    assert_eq!(
        s.namespaces.len(),
        super::super::summary::STATUS_NAMESPACES_CAP
    );
    assert_eq!(s.namespaces[0].namespace, "worst");
    assert_eq!(s.namespaces[0].counts.unprotected, 1);
    assert_eq!(
        s.total.protected + s.total.partial + s.total.unprotected,
        62
    );
}
