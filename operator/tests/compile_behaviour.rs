//! Compile behaviour beyond the gaps: root objects, metadata, selection, ordering,
//! exemptions, scope and mode.

mod common;

use common::*;
use meshbaseline::compile::names::*;
use meshbaseline::compile::{compile, Scope};
use meshbaseline::object::Kind;
use serde_json::json;

const SELECT: &str = "namespaceSelector: {matchLabels: {protected: \"true\"}}";

#[test]
fn root_objects_peer_authentication_and_deny_rules() {
    let b = baseline(&format!(
        "{SELECT}\nauthorization:\n  denyRules:\n  - name: no-legacy\n    from: [{{namespaces: [legacy], notIpBlocks: [10.0.0.0/8]}}]\n    to: [{{ports: [\"8080\"], methods: [POST]}}]\n    when: [{{key: \"request.headers[x-debug]\", values: [\"1\"]}}]"
    ));
    let c = run(&b, &inventory(&[]));
    let pa = get(
        &c,
        Kind::PeerAuthentication,
        "istio-system",
        MESH_PEER_AUTHENTICATION,
    );
    assert_eq!(pa["spec"], json!({"mtls": {"mode": "STRICT"}}));
    let ap = get(
        &c,
        Kind::AuthorizationPolicy,
        "istio-system",
        &deny_rule_name("no-legacy"),
    );
    assert_eq!(ap["metadata"]["name"], "meshbaseline-deny-no-legacy");
    assert_eq!(
        ap["spec"],
        json!({"action": "DENY", "rules": [{
            "from": [{"source": {"namespaces": ["legacy"], "notIpBlocks": ["10.0.0.0/8"]}}],
            "to": [{"operation": {"ports": ["8080"], "methods": ["POST"]}}],
            "when": [{"key": "request.headers[x-debug]", "values": ["1"]}],
        }]})
    );
    // The waypoints' twin (Istio's `ShouldAttachPolicy` gives waypoints only root policies
    // that target the istio-waypoint GatewayClass): the same rules, bound by targetRefs.
    let twin = get(
        &c,
        Kind::AuthorizationPolicy,
        "istio-system",
        &waypoint_deny_rule_name("no-legacy"),
    );
    assert_eq!(
        twin["metadata"]["name"],
        "meshbaseline-waypoint-deny-no-legacy"
    );
    assert_eq!(
        twin["spec"]["targetRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "GatewayClass", "name": "istio-waypoint"}])
    );
    let mut without_refs = twin["spec"].clone();
    without_refs.as_object_mut().unwrap().remove("targetRefs");
    assert_eq!(without_refs, ap["spec"]);
    let permissive = baseline(&format!("{SELECT}\nmtls: {{mode: PERMISSIVE}}"));
    let c = run(&permissive, &inventory(&[]));
    let pa = get(
        &c,
        Kind::PeerAuthentication,
        "istio-system",
        MESH_PEER_AUTHENTICATION,
    );
    assert_eq!(pa["spec"]["mtls"]["mode"], "PERMISSIVE");
}

#[test]
fn labels_and_owner_reference() {
    let mut mb = mesh_baseline(SELECT);
    mb.metadata.uid = Some("1234-abcd".into());
    let b = meshbaseline::api::Baseline::try_from(&mb).unwrap();
    let c = run(&b, &inventory(&["shop"]));
    assert!(!c.objects.is_empty());
    for o in &c.objects {
        let manifest = o.manifest();
        let meta = manifest["metadata"].as_object().unwrap();
        assert_eq!(meta["name"], o.key.name.as_str());
        if o.key.kind.cluster_scoped() {
            assert!(!meta.contains_key("namespace"), "{}", o.key);
        } else {
            assert_eq!(meta["namespace"], o.key.namespace.as_str());
        }
        assert_eq!(
            meta["labels"],
            json!({"app.kubernetes.io/managed-by": "meshbaseline", "meshbaseline.dev/baseline": "default"})
        );
        assert_eq!(
            meta["ownerReferences"],
            json!([{"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                    "name": "default", "uid": "1234-abcd", "controller": true}])
        );
        // AuthorizationPolicies own `istio.io/dry-run`: "false" means enforcing, and a
        // tenant's "true" is drift.
        let annotated = o.key.kind == Kind::AuthorizationPolicy;
        if annotated {
            assert_eq!(
                meta["annotations"],
                json!({"istio.io/dry-run": "false"}),
                "{}",
                o.key
            );
        }
        let fields = 3 + usize::from(!o.key.kind.cluster_scoped()) + usize::from(annotated);
        assert_eq!(meta.len(), fields, "only owned metadata fields: {meta:?}");
        let manifest = o.manifest();
        let top: Vec<&String> = manifest.as_object().unwrap().keys().collect();
        assert_eq!(top, ["apiVersion", "kind", "metadata", "spec"]);
        assert_eq!(o.manifest()["apiVersion"], o.key.kind.api_version());
        assert_eq!(o.manifest()["kind"], o.key.kind.name());
    }
    // Without a uid (render) there is no ownerReference.
    let c = run(&baseline(SELECT), &inventory(&["shop"]));
    assert!(c
        .objects
        .iter()
        .all(|o| o.manifest()["metadata"].get("ownerReferences").is_none()));
}

#[test]
fn selection_skips_system_root_and_unlabelled_namespaces() {
    let mut inv = inventory(&[
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "istio-system",
        "shop",
    ]);
    inv.namespaces.insert(
        "plain".into(),
        meshbaseline::inventory::NamespaceInfo {
            terminating: false,
            name: "plain".into(),
            labels: Default::default(),
        },
    );
    let c = run(&baseline(SELECT), &inv);
    assert_eq!(c.protected, ["shop"]);
    // A namespace being deleted gets nothing: the API server would refuse every write there
    // (NamespaceTerminating) and the reconcile would retry forever.
    let mut going = inv.clone();
    assert!(going.namespaces.update("shop", |n| n.terminating = true));
    let none = run(&baseline(SELECT), &going);
    assert!(none.protected.is_empty());
    assert!(none.objects.iter().all(|o| o.key.namespace != "shop"));
    let namespaces: std::collections::BTreeSet<&str> =
        c.objects.iter().map(|o| o.key.namespace.as_str()).collect();
    // "": the cluster-scoped admission policies and ClusterNetworkPolicies.
    assert_eq!(namespaces, ["", "istio-system", "shop"].into());
    // Only root-namespace objects in istio-system, never the per-namespace ones.
    assert!(find(
        &c,
        Kind::AuthorizationPolicy,
        "istio-system",
        DENY_PLAINTEXT
    )
    .is_none());
}

#[test]
fn objects_are_sorted_by_key_and_deterministic() {
    let b = baseline(&format!(
        "{SELECT}\nnetwork: {{egress: {{registryOnly: true}}}}"
    ));
    let inv = inventory(&["zeta", "alpha", "istio-system", "mid"]);
    let c = run(&b, &inv);
    let sorted = c.objects.windows(2).all(|w| w[0].key < w[1].key);
    assert!(sorted, "{:#?}", keys(&c));
    assert_eq!(c, run(&b, &inv));
    // Three per namespace, three in the root namespace; cluster-wide: the guard policy and
    // its two bindings, the tenant-object policy and its binding, two ClusterNetworkPolicies.
    assert_eq!(c.objects.len(), 3 * 3 + 3 + 3 + 2 + 2);
}

#[test]
fn exemptions_by_control_with_expiry() {
    let b = baseline(&format!(
        "{SELECT}\nexemptions:\n- {{namespace: active, controls: [mtls], reason: migration, expires: \"2026-07-01T00:00:00Z\"}}\n- {{namespace: netx, controls: [network, workloads], reason: batch jobs, expires: \"2026-07-01T00:00:00Z\"}}\n- {{namespace: expired, controls: [mtls, network], reason: old ticket, expires: \"2026-05-01T00:00:00Z\"}}"
    ));
    let inv = inventory(&["active", "netx", "expired", "plain"]);
    let c = run(&b, &inv);
    assert_eq!(c.protected, ["active", "expired", "netx", "plain"]);
    assert_eq!(c.exempt, ["active", "netx"]);
    let has = |kind, ns, name| find(&c, kind, ns, name).is_some();
    // mtls exemption: no AuthorizationPolicy or DestinationRule, NetworkPolicy stays.
    assert!(!has(Kind::AuthorizationPolicy, "active", DENY_PLAINTEXT));
    assert!(!has(Kind::DestinationRule, "active", MTLS_DESTINATION_RULE));
    assert!(has(Kind::NetworkPolicy, "active", BASELINE_NETWORK_POLICY));
    // network exemption: the mTLS objects stay.
    assert!(has(Kind::AuthorizationPolicy, "netx", DENY_PLAINTEXT));
    assert!(has(Kind::DestinationRule, "netx", MTLS_DESTINATION_RULE));
    assert!(!has(Kind::NetworkPolicy, "netx", BASELINE_NETWORK_POLICY));
    // Expired: everything is back.
    for (kind, name) in [
        (Kind::AuthorizationPolicy, DENY_PLAINTEXT),
        (Kind::DestinationRule, MTLS_DESTINATION_RULE),
        (Kind::NetworkPolicy, BASELINE_NETWORK_POLICY),
    ] {
        assert!(has(kind, "expired", name), "{kind}");
    }
    // At the expiry instant itself the exemption is over.
    let at_expiry = compile(
        &b,
        &inv,
        &Scope::default(),
        "2026-07-01T00:00:00Z".parse().unwrap(),
    );
    assert!(find(
        &at_expiry,
        Kind::AuthorizationPolicy,
        "active",
        DENY_PLAINTEXT
    )
    .is_some());
    assert!(at_expiry.exempt.is_empty());
}

#[test]
fn scope_claimed_namespaces_and_root_ownership() {
    let b = baseline(SELECT);
    let inv = inventory(&["a", "b"]);
    let scope = Scope {
        claimed_elsewhere: ["a".to_string()].into(),
        owns_root: false,
        ..Scope::default()
    };
    let c = compile(&b, &inv, &scope, now());
    assert_eq!(c.protected, ["b"]);
    // The namespaced objects are b's only; the cluster-wide policies are every baseline's own
    // (named after it), istiod's ClusterNetworkPolicy only the root owner's.
    let namespaced: Vec<_> = c
        .objects
        .iter()
        .filter(|o| !o.key.kind.cluster_scoped())
        .collect();
    assert!(
        namespaced.iter().all(|o| o.key.namespace == "b"),
        "{:#?}",
        keys(&c)
    );
    assert_eq!(namespaced.len(), 3);
    assert!(!c
        .objects
        .iter()
        .any(|o| o.key.name.starts_with("meshbaseline-istiod-")
            || o.key.name.starts_with("meshbaseline-rootguard-")));
    // Claimed namespaces are left out of the cluster-wide selectors too.
    let binding = c
        .objects
        .iter()
        .find(|o| {
            o.key.name == "meshbaseline-guard-default"
                && o.key.kind == Kind::ValidatingAdmissionPolicyBinding
        })
        .unwrap();
    assert!(binding.spec.text().contains("\"a\""), "{:?}", binding.spec);
    // Everything lost to older baselines: nothing at all, cluster-wide objects included.
    let all = Scope {
        claimed_elsewhere: ["a".to_string(), "b".to_string()].into(),
        owns_root: false,
        ..Scope::default()
    };
    assert!(compile(&b, &inv, &all, now()).objects.is_empty());
    let owner = compile(&b, &inv, &Scope::default(), now());
    assert!(owner
        .objects
        .iter()
        .any(|o| o.key.namespace == "istio-system"));
}

#[test]
fn audit_mode_compiles_the_same_objects() {
    let inv = inventory(&["a", "b"]);
    let enforce = run(&baseline(&format!("{SELECT}\nmode: Enforce")), &inv);
    let audit = run(&baseline(&format!("{SELECT}\nmode: Audit")), &inv);
    assert_eq!(enforce, audit);
}

#[test]
fn switches_turn_objects_off() {
    let b = baseline(&format!(
        "{SELECT}\nmtls: {{destinationRules: false}}\nnetwork: {{tcpOnly: false, controlPlane: {{enabled: false}}, adminTier: Disabled}}\nadmission: {{guard: false, tenantObjects: Disabled}}"
    ));
    let c = run(&b, &inventory(&["shop"]));
    assert_eq!(
        keys(&c),
        [
            "AuthorizationPolicy shop/meshbaseline-deny-plaintext",
            "PeerAuthentication istio-system/meshbaseline-mesh-mtls",
        ]
    );
}
