//! Generated Istio objects validate against Istio's own CRD schemas; NetworkPolicies
//! round-trip through k8s-openapi.

mod common;

use common::*;
use meshbaseline::object::Kind;
use serde_json::json;

/// A baseline that switches everything on, with deny rules using every field.
const FULL: &str = r#"
namespaceSelector: {matchLabels: {protected: "true"}}
authorization:
  waypointOnly: true
  waypointDefaultDeny: true
  denyRules:
    - name: everything
      from:
        - {principals: [cluster.local/ns/a/sa/b], notPrincipals: [x], namespaces: [a], notNamespaces: [b], ipBlocks: [10.0.0.0/8], notIpBlocks: ["2001:db8::/32"]}
      to:
        - {hosts: [a.example.com], notHosts: [b], ports: ["80"], notPorts: ["81"], methods: [GET], notMethods: [POST], paths: [/a], notPaths: [/b]}
      when:
        - {key: "request.auth.claims[iss]", values: [x], notValues: [y]}
network:
  egress:
    mode: AllowList
    allowCidrs: [10.1.0.0/16, "fd00::/8"]
    egressGateway: {namespace: istio-system, podSelector: {istio: egressgateway}}
    registryOnly: true
  controlPlane: {monitoringNamespaces: [monitoring, observability]}
"#;

#[test]
fn every_generated_object_validates() {
    let schemas = IstioSchemas::load();
    let mut mb = mesh_baseline(FULL);
    mb.metadata.uid = Some("0b9a1f2e-0000-4000-8000-000000000001".into());
    let b = meshbaseline::api::Baseline::try_from(&mb).unwrap();
    // `c` is ambient with a waypoint: its NetworkPolicy and waypoint-only policy are checked too.
    let mut inv = inventory(&["a", "b", "c"]);
    assert!(inv.namespaces.update("c", |n| {
        n.labels
            .insert("istio.io/dataplane-mode".into(), "ambient".into());
        n.labels
            .insert("istio.io/use-waypoint".into(), "waypoint".into());
    }));
    add_waypoint_pod(&mut inv, "c", "waypoint", "waypoint");
    let c = run(&b, &inv);
    assert!(find(
        &c,
        Kind::AuthorizationPolicy,
        "c",
        "meshbaseline-waypoint-only"
    )
    .is_some());
    let default_deny = get(
        &c,
        Kind::AuthorizationPolicy,
        "istio-system",
        "meshbaseline-waypoint-default-deny",
    );
    assert_eq!(
        default_deny["spec"],
        json!({"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "GatewayClass", "name": "istio-waypoint"}]}),
        "an ALLOW without rules, bound to every waypoint"
    );
    let kinds: std::collections::BTreeSet<Kind> = c.objects.iter().map(|o| o.key.kind).collect();
    assert_eq!(kinds.len(), Kind::ALL.len(), "every kind is exercised");
    assert_all_valid(&schemas, &c);
    for mode in ["ClusterOnly", "Unrestricted"] {
        let b = baseline(&format!(
            "namespaceSelector: {{}}\nmtls: {{mode: PERMISSIVE}}\nnetwork: {{egress: {{mode: {mode}}}}}"
        ));
        assert_all_valid(&schemas, &run(&b, &inventory(&["a"])));
    }
}

/// The validator must be able to fail: broken objects are rejected.
#[test]
fn schema_validation_rejects_broken_objects() {
    let schemas = IstioSchemas::load();
    let c = run(&baseline(FULL), &inventory(&["a"]));
    let dr = get(&c, Kind::DestinationRule, "a", "meshbaseline-mtls");
    let mut bogus = dr.clone();
    bogus["spec"]["trafficPolicy"]["tls"]["mode"] = json!("BOGUS");
    let errors = schemas.errors(&bogus);
    assert!(!errors.is_empty());
    assert!(
        errors
            .iter()
            .any(|e| e.contains("/spec/trafficPolicy/tls/mode")),
        "{errors:?}"
    );

    let mut misspelt = dr.clone();
    misspelt["spec"]["trafficPolicy"]["tsl"] = json!({"mode": "ISTIO_MUTUAL"});
    assert!(
        !schemas.errors(&misspelt).is_empty(),
        "unknown fields are rejected"
    );

    let ap = get(
        &c,
        Kind::AuthorizationPolicy,
        "a",
        "meshbaseline-deny-plaintext",
    );
    let mut bad_action = ap.clone();
    bad_action["spec"]["action"] = json!("REJECT");
    assert!(!schemas.errors(&bad_action).is_empty());

    let mut wrong_version = ap.clone();
    wrong_version["apiVersion"] = json!("security.istio.io/v1beta2");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        schemas.errors(&wrong_version)
    }));
    assert!(caught.is_err(), "an unknown apiVersion has no schema");

    let pa = get(
        &c,
        Kind::PeerAuthentication,
        "istio-system",
        "meshbaseline-mesh-mtls",
    );
    let mut bad_pa = pa.clone();
    bad_pa["spec"]["mtls"]["mode"] = json!("ON");
    assert!(!schemas.errors(&bad_pa).is_empty());
    let mut no_spec = pa.clone();
    no_spec.as_object_mut().unwrap().remove("spec");
    assert!(!schemas.errors(&no_spec).is_empty());
}

#[test]
fn network_policy_round_trip_catches_unknown_fields() {
    let c = run(&baseline(FULL), &inventory(&["a"]));
    let np = c
        .objects
        .iter()
        .find(|o| o.key.kind == Kind::NetworkPolicy)
        .unwrap();
    assert_k8s_round_trip(np);
    let mut broken = np.clone();
    let mut spec = broken.spec.value();
    spec["egress"][0]["too"] = json!([]);
    broken.spec = std::sync::Arc::new(meshbaseline::object::ObjectSpec::new(
        Kind::NetworkPolicy,
        &spec,
    ));
    let caught = std::panic::catch_unwind(|| assert_k8s_round_trip(&broken));
    assert!(caught.is_err());
}
