//! Property tests: no baseline, namespace set or YAML input panics; compile is deterministic
//! and its output validates.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::*;
use jiff::{SignedDuration, Timestamp};
use meshbaseline::api::{Baseline, MeshBaseline};
use meshbaseline::compile::{compile, Scope};
use meshbaseline::inventory::{Inventory, NamespaceInfo};
use proptest::prelude::*;
use serde_json::{json, Value};

fn schemas() -> &'static IstioSchemas {
    static SCHEMAS: OnceLock<IstioSchemas> = OnceLock::new();
    SCHEMAS.get_or_init(IstioSchemas::load)
}

const NAMESPACES: [&str; 8] = [
    "a",
    "b",
    "shop",
    "legacy",
    "kube-system",
    "istio-system",
    "mesh-root",
    "x-1",
];

fn ns_name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMESPACES.to_vec()).prop_map(String::from)
}

fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<u32>(), 1u8..=32).prop_map(|(a, p)| {
            let net = ipnet::Ipv4Net::new(a.into(), p).unwrap().trunc();
            net.to_string()
        }),
        (any::<u128>(), 1u8..=128).prop_map(|(a, p)| {
            let net = ipnet::Ipv6Net::new(a.into(), p).unwrap().trunc();
            net.to_string()
        }),
    ]
}

fn selector() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        Just(json!({"matchLabels": {"team": "a"}})),
        Just(
            json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]})
        ),
        Just(json!({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]})),
        Just(json!({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["b"]}]})),
    ]
}

fn exemptions() -> impl Strategy<Value = Vec<Value>> {
    let controls =
        prop::sample::subsequence(vec!["mtls", "authorization", "network", "workloads"], 1..=4);
    prop::collection::btree_map(ns_name(), (controls, -86_400i64..86_400), 0..4).prop_map(|m| {
        m.into_iter()
            .map(|(ns, (controls, offset))| {
                let expires = now().checked_add(SignedDuration::from_secs(offset)).unwrap();
                json!({"namespace": ns, "controls": controls, "reason": "ticket OPS-1", "expires": expires.to_string()})
            })
            .collect()
    })
}

fn deny_rules() -> impl Strategy<Value = Vec<Value>> {
    let rule = (
        prop::option::of(prop::collection::vec(ns_name(), 1..3)),
        prop::option::of(prop::collection::vec(1u32..=65535, 1..3)),
        prop::option::of(prop::collection::vec("[a-z/]{1,6}", 1..3)),
    );
    prop::collection::vec(rule, 0..3).prop_map(|rules| {
        rules
            .into_iter()
            .enumerate()
            .map(|(i, (from, ports, paths))| {
                let mut r = json!({"name": format!("rule-{i}")});
                if let Some(ns) = from {
                    r["from"] = json!([{"namespaces": ns}]);
                }
                let mut op = serde_json::Map::new();
                if let Some(p) = ports {
                    op.insert(
                        "ports".into(),
                        json!(p.iter().map(u32::to_string).collect::<Vec<_>>()),
                    );
                }
                if let Some(p) = paths {
                    op.insert("paths".into(), json!(p));
                }
                if !op.is_empty() || r.get("from").is_none() {
                    if op.is_empty() {
                        op.insert("methods".into(), json!(["POST"]));
                    }
                    // HTTP fields need ports (on TCP Istio would drop them and deny all).
                    op.entry("ports").or_insert_with(|| json!(["8080"]));
                    r["to"] = json!([op]);
                }
                r
            })
            .collect()
    })
}

prop_compose! {
    fn valid_spec()(
        mode in prop::sample::select(vec!["Enforce", "Audit"]),
        root in prop::sample::select(vec!["istio-system", "mesh-root"]),
        selector in selector(),
        exemptions in exemptions(),
        mtls_mode in prop::sample::select(vec!["STRICT", "PERMISSIVE"]),
        deny_plaintext in any::<bool>(),
        destination_rules in any::<bool>(),
        deny_rules in deny_rules(),
        tcp_only in any::<bool>(),
        egress_mode in prop::sample::select(vec!["ClusterOnly", "AllowList", "Unrestricted"]),
        cidrs in prop::collection::btree_set(cidr(), 0..4),
        gateway in any::<bool>(),
        registry_only in any::<bool>(),
        control_plane in any::<bool>(),
        monitoring in prop::collection::vec(ns_name(), 0..3),
    ) -> Value {
        let cidrs: Vec<String> = if egress_mode == "Unrestricted" { vec![] } else { cidrs.into_iter().collect() };
        let mut egress = json!({"mode": egress_mode, "allowCidrs": cidrs, "registryOnly": registry_only});
        if gateway {
            egress["egressGateway"] = json!({"namespace": "istio-system", "podSelector": {"istio": "egressgateway"}});
        }
        json!({
            "mode": mode,
            "rootNamespace": root,
            "namespaceSelector": selector,
            "exemptions": exemptions,
            "mtls": {"mode": mtls_mode, "denyPlaintext": deny_plaintext, "destinationRules": destination_rules},
            "authorization": {"denyRules": deny_rules},
            "network": {
                "tcpOnly": tcp_only,
                "egress": egress,
                "controlPlane": {"enabled": control_plane, "monitoringNamespaces": monitoring},
            },
        })
    }
}

fn namespaces() -> impl Strategy<Value = Inventory> {
    let labels = prop::collection::btree_map(
        prop::sample::select(vec!["team", "istio-injection"]),
        prop::sample::select(vec!["a", "b", "enabled"]),
        0..2,
    );
    (
        prop::collection::btree_map(ns_name(), labels, 0..8),
        prop::collection::vec(
            (
                ns_name(),
                prop::sample::select(vec![
                    "*",
                    "*.a.svc",
                    "*.b.svc.cluster.local",
                    "reviews",
                    "*.shop.svc.cluster.local",
                ]),
            ),
            0..3,
        ),
    )
        .prop_map(|(nss, drs)| {
            let mut inv = Inventory::default();
            for (name, labels) in nss {
                let labels: BTreeMap<String, String> = labels
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                inv.namespaces.insert(
                    name.clone(),
                    NamespaceInfo {
                        name,
                        labels: labels.into(),
                        terminating: false,
                    },
                );
            }
            inv.destination_rules = drs
                .into_iter()
                .enumerate()
                .map(|(i, (ns, host))| {
                    std::sync::Arc::new(tenant_dr(&ns, &format!("dr-{i}"), host))
                })
                .collect();
            inv
        })
}

fn to_baseline(spec: Value) -> Baseline {
    let mb: MeshBaseline = serde_json::from_value(json!({
        "apiVersion": "meshbaseline.dev/v1alpha1",
        "kind": "MeshBaseline",
        "metadata": {"name": "pt", "uid": "00000000-0000-4000-8000-000000000000"},
        "spec": spec,
    }))
    .unwrap();
    Baseline::try_from(&mb).unwrap_or_else(|e| panic!("generated spec invalid: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn compile_is_total_deterministic_and_valid(
        spec in valid_spec(),
        inv in namespaces(),
        claimed in prop::collection::btree_set(ns_name(), 0..3),
        owns_root in any::<bool>(),
        offset in -100_000i64..100_000,
    ) {
        let b = to_baseline(spec);
        let scope = Scope { claimed_elsewhere: claimed.clone(), owns_root, ..Scope::default() };
        let t: Timestamp = now().checked_add(SignedDuration::from_secs(offset)).unwrap();
        let c = compile(&b, &inv, &scope, t);
        prop_assert_eq!(&c, &compile(&b, &inv, &scope, t));
        prop_assert!(c.objects.windows(2).all(|w| w[0].key < w[1].key));
        for ns in &c.protected {
            prop_assert!(!claimed.contains(ns));
        }
        prop_assert!(c.exempt.iter().all(|e| c.protected.contains(e)));
        for o in &c.objects {
            prop_assert!(
                o.key.kind.cluster_scoped()
                    || o.key.namespace == b.root_namespace
                    || c.protected.iter().any(|p| o.key.namespace == *p)
            );
            prop_assert_eq!(o.key.kind.cluster_scoped(), o.key.namespace.is_empty());
            prop_assert!(owns_root || o.key.namespace != b.root_namespace);
        }
        assert_all_valid(schemas(), &c);
    }

    #[test]
    fn validation_never_panics(spec in arbitrary_spec()) {
        if let Ok(mb) = serde_json::from_value::<MeshBaseline>(json!({
            "apiVersion": "meshbaseline.dev/v1alpha1",
            "kind": "MeshBaseline",
            "metadata": {"name": "x"},
            "spec": spec,
        })) {
            if let Ok(b) = Baseline::try_from(&mb) {
                let _ = compile(&b, &common::inventory(&["a", "b"]), &Scope::default(), now());
            }
        }
    }

    #[test]
    fn yaml_parsing_never_panics(text in yamlish()) {
        let _ = serde_norway::from_str::<MeshBaseline>(&text);
        meshbaseline::manifests::Loaded::default().add_text(std::path::Path::new("x.yaml"), &text);
    }
}

/// Specs of the right shape with arbitrary, mostly invalid, values.
fn arbitrary_spec() -> impl Strategy<Value = Value> {
    let s = "\\PC{0,12}";
    (
        s, s, prop::collection::vec(s, 0..4), s, s, any::<i32>(),
        prop::collection::vec((s, s), 0..3), s,
    )
        .prop_map(|(root, domain, cidrs, ns, expires, port, labels, op)| {
            let labels: serde_json::Map<String, Value> =
                labels.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            json!({
                "rootNamespace": root,
                "clusterDomain": domain,
                "namespaceSelector": {"matchLabels": labels, "matchExpressions": [{"key": ns, "operator": op}]},
                "exemptions": [{"namespace": ns, "controls": ["mtls"], "reason": op, "expires": expires}],
                "authorization": {"denyRules": [{"name": ns, "to": [{"ports": cidrs}]}]},
                "network": {
                    "dns": {"namespace": ns, "podSelector": labels, "port": port},
                    "egress": {"allowCidrs": cidrs, "egressGateway": {"namespace": root, "podSelector": {}}},
                    "controlPlane": {"istiodSelector": labels, "monitoringNamespaces": [domain]},
                },
            })
        })
}

/// Text that looks like YAML: keys of the spec, indentation, flow syntax, anchors, tags.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "apiVersion: meshbaseline.dev/v1alpha1\n",
        "kind: MeshBaseline\n",
        "metadata: {name: x}\n",
        "spec:\n",
        "  mode: ",
        "Audit\n",
        "Enforce\n",
        "  network:\n",
        "    egress:\n",
        "      allowCidrs: [",
        "10.0.0.0/8",
        ", ",
        "]\n",
        "  exemptions:\n",
        "  - ",
        "namespace: a\n",
        "---\n",
        "&a ",
        "*a\n",
        "!!str ",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        ":",
        "-",
        "\n",
        " ",
        "~\n",
        "1e999\n",
        "0x1F\n",
        "? ",
        "|\n",
        ">\n",
        "\t",
        "#",
        "<<: *a\n",
        "null\n",
        "true\n",
    ]);
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}
