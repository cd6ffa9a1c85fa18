//! No manifest, however malformed, panics the loader or the audit.

use std::path::Path;

use meshbaseline::api::model::Baseline;
use meshbaseline::audit::audit;
use meshbaseline::manifests::Loaded;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![Just(1337i64), Just(53), Just(15010), Just(-1), Just(0)].prop_map(|n| json!(n)),
        "[a-zA-Z0-9./*:_-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("DISABLE"),
            Just("SIMPLE"),
            Just("PERMISSIVE"),
            Just("STRICT"),
            Just("UDP"),
            Just("Running"),
            Just("*"),
            Just("."),
            Just("0.0.0.0/0"),
            Just("istio-proxy"),
            Just("ledger"),
            Just("*.payments.svc.cluster.local"),
            Just("false"),
            Just("NET_ADMIN"),
        ]
        .prop_map(|s| json!(s)),
    ]
}

const KEYS: &[&str] = &[
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "spec",
    "status",
    "phase",
    "mtls",
    "mode",
    "selector",
    "matchLabels",
    "portLevelMtls",
    "host",
    "trafficPolicy",
    "tls",
    "exportTo",
    "subsets",
    "portLevelSettings",
    "port",
    "number",
    "action",
    "rules",
    "from",
    "source",
    "principals",
    "notPrincipals",
    "when",
    "key",
    "values",
    "podSelector",
    "policyTypes",
    "ingress",
    "egress",
    "to",
    "ports",
    "protocol",
    "endPort",
    "ipBlock",
    "cidr",
    "namespaceSelector",
    "containers",
    "initContainers",
    "securityContext",
    "runAsUser",
    "runAsGroup",
    "capabilities",
    "add",
    "privileged",
    "hostNetwork",
    "shareProcessNamespace",
    "template",
    "jobTemplate",
    "ipFamilies",
    "ipFamilyPolicy",
    "workloadSelector",
    "outboundTrafficPolicy",
    "items",
    "kind",
    "apiVersion",
    "app",
    "istio-injection",
    "sidecar.istio.io/inject",
    "traffic.sidecar.istio.io/excludeInboundPorts",
    "creationTimestamp",
];

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "List"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "CronJob"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "Sidecar"),
    ("meshbaseline.dev/v1alpha1", "MeshBaseline"),
];

/// A document that looks like a Kubernetes object of a kind the loader reads, with an
/// arbitrary body.
fn document() -> impl Strategy<Value = Value> {
    (prop::sample::select(KINDS), value(), value(), value()).prop_map(
        |((api, kind), meta, spec, extra)| {
            let mut doc = json!({"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec});
            if let Value::Object(extra) = extra {
                for (k, v) in extra {
                    doc[k] = v;
                }
            }
            doc
        },
    )
}

fn check_text(text: &str) {
    let mut loaded = Loaded::default();
    loaded.add_text(Path::new("fuzz.yaml"), text);
    let _ = audit(
        &Baseline::default_for_check(),
        &loaded.inventory,
        jiff::Timestamp::UNIX_EPOCH,
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn structured_documents_never_panic(docs in prop::collection::vec(document(), 1..6)) {
        let text = docs
            .iter()
            .map(|d| serde_norway::to_string(d).unwrap())
            .collect::<Vec<_>>()
            .join("---\n");
        check_text(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "(\\PC|\n|---\n|: |- ){0,200}") {
        check_text(&text);
    }
}
