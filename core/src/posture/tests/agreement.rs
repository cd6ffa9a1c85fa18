//! Posture and findings agree, both ways: every workload whose posture accepts plaintext (and
//! no exemption or the baseline's own spec allows it) has a finding of the rule that reports
//! the cause, on the object that causes it; and every finding that says a workload takes
//! plaintext has a posture that accepts it. Random meshes: namespaces in each data plane,
//! PeerAuthentications at every scope, AuthorizationPolicies (dry-run ones included), pods and
//! templates with every capture annotation, baselines with exemptions and switches.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::super::{CauseKind, Detail, Objects, Plaintext, Posture};
use crate::api::istio::{AuthorizationPolicy, PeerAuthentication};
use crate::api::model::Baseline;
use crate::api::MeshBaseline;
use crate::audit::{audit_in_scope, Rule};
use crate::compile::{compile, Scope};
use crate::inventory::{ContainerInfo, Inventory, NamespaceInfo, PodInfo, PodShape, PortInfo};

const NAMESPACES: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
const ROOT: &str = "istio-system";

fn now() -> jiff::Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn ns_labels() -> impl Strategy<Value = Vec<(String, String)>> {
    prop_oneof![
        Just(vec![("istio-injection".to_string(), "enabled".to_string())]),
        Just(vec![(
            "istio.io/dataplane-mode".to_string(),
            "ambient".to_string()
        )]),
        Just(vec![]),
        Just(vec![("istio.io/rev".to_string(), "stable".to_string())]),
    ]
}

fn mode() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(Some("STRICT")),
        Just(Some("PERMISSIVE")),
        Just(Some("DISABLE")),
        Just(Some("UNSET")),
        Just(None),
    ]
}

fn any_ns() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(ROOT),
        Just(NAMESPACES[0]),
        Just(NAMESPACES[1]),
        Just(NAMESPACES[2]),
        Just(NAMESPACES[3]),
    ]
}

fn peer_authentication() -> impl Strategy<Value = Value> {
    (
        any_ns(),
        prop::option::of(prop_oneof![Just("a"), Just("b")]),
        mode(),
        prop::option::of((prop_oneof![Just("8080"), Just("9090")], mode())),
        prop::option::of(0i64..3),
    )
        .prop_map(|(ns, app, mode, port, age)| {
            let mut spec = json!({});
            if let Some(m) = mode {
                spec["mtls"] = json!({"mode": m});
            }
            if let Some(a) = app {
                spec["selector"] = json!({"matchLabels": {"app": a}});
                if let Some((p, m)) = port {
                    spec["portLevelMtls"] = json!({p: {"mode": m.unwrap_or("UNSET")}});
                }
            }
            let mut meta = json!({"namespace": ns});
            if let Some(a) = age {
                meta["creationTimestamp"] = json!(format!("2026-0{}-01T00:00:00Z", a + 1));
            }
            json!({"metadata": meta, "spec": spec})
        })
}

fn rule() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"from": [{"source": {"notPrincipals": ["*"]}}]})),
        Just(json!({"from": [{"source": {"principals": ["cluster.local/ns/x/sa/y"]}}]})),
        Just(json!({"from": [{"source": {"namespaces": ["x"]}}]})),
        Just(json!({"to": [{"operation": {"ports": ["8080"]}}]})),
        Just(json!({"to": [{"operation": {"paths": ["/admin"]}}]})),
        Just(
            json!({"from": [{"source": {"notNamespaces": ["x"]}}], "to": [{"operation": {"notPorts": ["9090"]}}]})
        ),
        Just(json!({"when": [{"key": "source.principal", "values": ["*"]}]})),
        Just(json!({})),
    ]
}

fn authorization_policy() -> impl Strategy<Value = Value> {
    (
        any_ns(),
        prop::option::of(prop_oneof![Just("a"), Just("b")]),
        prop_oneof![Just("ALLOW"), Just("DENY")],
        prop::collection::vec(rule(), 1..3),
        any::<bool>(),
    )
        .prop_map(|(ns, app, action, rules, dry)| {
            let mut spec = json!({"action": action, "rules": rules});
            if let Some(a) = app {
                spec["selector"] = json!({"matchLabels": {"app": a}});
            }
            let mut meta = json!({"namespace": ns});
            if dry {
                meta["annotations"] = json!({"istio.io/dry-run": "true"});
            }
            json!({"metadata": meta, "spec": spec})
        })
}

fn annotations() -> impl Strategy<Value = Vec<(String, String)>> {
    let one = prop_oneof![
        Just(("sidecar.istio.io/inject", "false")),
        Just(("traffic.sidecar.istio.io/includeInboundPorts", "8080")),
        Just(("traffic.sidecar.istio.io/includeInboundPorts", "")),
        Just(("traffic.sidecar.istio.io/includeInboundPorts", "*")),
        Just(("traffic.sidecar.istio.io/excludeInboundPorts", "9090")),
        Just(("traffic.sidecar.istio.io/excludeInboundPorts", "15020")),
        Just(("traffic.sidecar.istio.io/excludeOutboundPorts", "5432")),
        Just(("sidecar.istio.io/interceptionMode", "NONE")),
        Just(("proxy.istio.io/config", "interceptionMode: NONE")),
        Just(("ambient.istio.io/bypass-inbound-capture", "true")),
        Just(("ambient.istio.io/redirection", "enabled")),
        Just(("ambient.istio.io/redirection", "disabled")),
        Just(("sidecar.istio.io/status", "{}")),
    ];
    prop::collection::vec(one, 0..3).prop_map(|v| {
        v.into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

fn pod() -> impl Strategy<Value = PodInfo> {
    (
        prop_oneof![
            Just(NAMESPACES[0]),
            Just(NAMESPACES[1]),
            Just(NAMESPACES[2]),
            Just(NAMESPACES[3])
        ],
        0u8..100,
        prop::option::of(prop_oneof![Just("a"), Just("b")]),
        prop::option::of(prop_oneof![
            Just(("istio.io/dataplane-mode", "none")),
            Just(("istio.io/dataplane-mode", "ambient")),
            Just(("sidecar.istio.io/inject", "true")),
            Just(("sidecar.istio.io/inject", "false"))
        ]),
        annotations(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0u8..3),
    )
        .prop_map(
            |(ns, n, app, mesh_label, annotations, sidecar, template, extra)| {
                let mut containers = vec![ContainerInfo {
                    name: "app".into(),
                    ..ContainerInfo::default()
                }];
                if sidecar {
                    containers.push(ContainerInfo {
                        name: "istio-proxy".into(),
                        ..ContainerInfo::default()
                    });
                }
                let shape = PodShape {
                    kind: if template {
                        "Deployment".into()
                    } else {
                        "Pod".into()
                    },
                    phase: (!template).then(|| "Running".to_string()),
                    annotations: annotations.into_iter().collect(),
                    labels: mesh_label
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    app_labels: app
                        .iter()
                        .map(|a| ("app".to_string(), a.to_string()))
                        .collect(),
                    host_network: extra == Some(0),
                    containers,
                    ports: vec![PortInfo {
                        number: 8080,
                        protocol: "TCP".into(),
                        name: None,
                    }],
                    ..PodShape::default()
                };
                PodInfo::new(ns, format!("w{n}"), shape)
            },
        )
}

fn baseline() -> impl Strategy<Value = Baseline> {
    (
        prop_oneof![Just("STRICT"), Just("PERMISSIVE")],
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(
            (0usize..4, prop::sample::subsequence(vec!["mtls", "workloads", "authorization", "network"], 1..3), any::<bool>()),
            0..3,
        ),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(mode, deny, audit, exemptions, selective)| {
            let mut seen = std::collections::BTreeSet::new();
            let exemptions: Vec<Value> = exemptions
                .into_iter()
                .filter(|(i, _, _)| seen.insert(*i))
                .map(|(i, controls, active)| {
                    json!({"namespace": NAMESPACES[i], "controls": controls, "reason": "a reason",
                           "expires": if active { "2027-01-01T00:00:00Z" } else { "2026-01-01T00:00:00Z" }})
                })
                .collect();
            let mut spec = json!({"mtls": {"mode": mode, "denyPlaintext": deny},
                "workloads": {"audit": audit}, "exemptions": exemptions});
            if selective == Some(true) {
                spec["namespaceSelector"] = json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["delta"]}]});
            }
            let mb = MeshBaseline::new("default", serde_json::from_value(spec).unwrap());
            Baseline::try_from(&mb).unwrap()
        })
}

fn inventory() -> impl Strategy<Value = Inventory> {
    (
        prop::collection::vec(ns_labels(), 4),
        prop::collection::vec(peer_authentication(), 0..6),
        prop::collection::vec(authorization_policy(), 0..5),
        prop::collection::vec(pod(), 1..8),
    )
        .prop_map(|(labels, pas, aps, pods)| {
            let mut inv = Inventory::default();
            for (name, mut l) in NAMESPACES
                .iter()
                .zip(labels)
                .chain(std::iter::once((&ROOT, vec![])))
            {
                l.push(("kubernetes.io/metadata.name".into(), name.to_string()));
                inv.namespaces.insert(
                    name.to_string(),
                    NamespaceInfo {
                        name: name.to_string(),
                        labels: l.into_iter().collect(),
                        terminating: false,
                    },
                );
            }
            for (i, mut v) in pas.into_iter().enumerate() {
                v["metadata"]["name"] = json!(format!("pa{i}"));
                inv.peer_authentications.push(Arc::new(
                    serde_json::from_value::<PeerAuthentication>(v).unwrap(),
                ));
            }
            for (i, mut v) in aps.into_iter().enumerate() {
                v["metadata"]["name"] = json!(format!("ap{i}"));
                inv.authorization_policies.push(Arc::new(
                    serde_json::from_value::<AuthorizationPolicy>(v).unwrap(),
                ));
            }
            let mut names = std::collections::BTreeSet::new();
            for p in pods {
                if names.insert((p.namespace.to_string(), p.kind.clone(), p.name.to_string())) {
                    inv.pods.push(Arc::new(p));
                }
            }
            inv
        })
}

/// The rules that report each cause, and whether their finding is about the workload itself
/// (else a PeerAuthentication the posture names).
fn reported_by(kind: CauseKind) -> (&'static [Rule], bool) {
    match kind {
        CauseKind::NoDataPlane => (&[Rule::MB503, Rule::MB505, Rule::MB507], true),
        CauseKind::NotCaptured => (&[Rule::MB506], true),
        CauseKind::InboundBypass => (&[Rule::MB508], true),
        CauseKind::NotStrict => (&[Rule::MB101, Rule::MB102, Rule::MB105], false),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn posture_and_findings_agree(b in baseline(), inv in inventory()) {
        let scope = Scope::default();
        let desired = compile(&b, &inv, &scope, now());
        let findings = audit_in_scope(&b, &inv, &desired, &scope, now());
        let posture = Posture::new(&b, &inv, &desired, &scope, now(), &findings, Objects::Desired);
        for pod in inv.pods.iter().filter(|p| Posture::listed(p)) {
            let w = posture.workload(pod, Detail::Report);
            // The status counts take the short path; it must reach the same verdict.
            prop_assert_eq!(posture.workload(pod, Detail::Counts).protection, w.protection);
            let about_it = |rules: &[Rule]| findings.iter().any(|f| {
                rules.contains(&f.rule) && f.kind == w.kind && f.namespace.as_deref() == Some(&*w.namespace) && f.name == w.name
            });
            // Forward: an unexcused cause is reported by its rule.
            for row in w.ports.iter().filter(|r| r.plaintext == Plaintext::Accepted) {
                for cause in row.accepted_because.iter().filter(|c| c.excused.is_none()) {
                    let (rules, on_workload) = reported_by(cause.kind);
                    let reported = if on_workload {
                        about_it(rules)
                    } else {
                        w.findings.iter().any(|f| f.kind == "PeerAuthentication" && rules.iter().any(|r| r.id() == f.rule))
                    };
                    prop_assert!(reported, "{}/{} port {} accepts plaintext ({:?}: {}) with no {:?} finding; findings: {:?}",
                        w.namespace, w.id(), row.port, cause.kind, cause.reason, rules, w.findings);
                }
            }
            // Reverse: a finding that says the workload takes plaintext.
            let says_plaintext = about_it(&[Rule::MB503, Rule::MB505, Rule::MB507, Rule::MB508])
                || (about_it(&[Rule::MB506]) && crate::posture::capture::narrowed(pod));
            if says_plaintext {
                prop_assert!(w.plaintext_accepted(), "{}/{} has a finding that it takes plaintext, but its posture refuses it everywhere: {:?}",
                    w.namespace, w.id(), w.ports);
            }
        }
        // The status counts, namespace by namespace, are the whole index's.
        for objects in [Objects::Desired, Objects::Observed] {
            let whole = Posture::new(&b, &inv, &desired, &scope, now(), &findings, objects).summary();
            let by_namespace = Posture::counts(&b, &inv, &desired, &scope, now(), &findings, objects);
            prop_assert_eq!(by_namespace, whole);
        }
    }
}
