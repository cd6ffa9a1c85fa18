//! Realistic mistakes in a baseline: each fails with a message naming the field path.

mod common;

use common::*;
use meshbaseline::api::{Baseline, MeshBaseline};
use meshbaseline::cli::render::{read_baseline, RenderError};

fn errors(spec: &str) -> Vec<String> {
    match Baseline::try_from(&mesh_baseline(spec)) {
        Ok(_) => panic!("accepted:\n{spec}"),
        Err(e) => {
            assert_eq!(e.name, "default");
            e.errors.iter().map(ToString::to_string).collect()
        }
    }
}

fn assert_error(spec: &str, expected: &str) {
    assert_eq!(errors(spec), [expected], "{spec}");
}

#[test]
fn cidr_out_of_range() {
    assert_error(
        "network: {egress: {allowCidrs: [10.0.0.0/8, \"2001:db8::/32\", 10.0.0.0/33]}}",
        r#"spec.network.egress.allowCidrs[2]: "10.0.0.0/33" is not a CIDR"#,
    );
}

#[test]
fn cidr_with_host_bits() {
    assert_error(
        "network: {egress: {allowCidrs: [10.0.0.1/8]}}",
        r#"spec.network.egress.allowCidrs[0]: "10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?"#,
    );
}

#[test]
fn ipv6_typo() {
    assert_error(
        "network: {egress: {allowCidrs: [\"2001:db8:::/48\"]}}",
        r#"spec.network.egress.allowCidrs[0]: "2001:db8:::/48" is not a CIDR"#,
    );
}

#[test]
fn bad_namespace_name_in_exemption() {
    assert_error(
        "exemptions: [{namespace: Legacy_App, controls: [mtls], reason: migration, expires: \"2030-01-01T00:00:00Z\"}]",
        r#"spec.exemptions[0].namespace: "Legacy_App" is not a valid namespace name (DNS-1123 label)"#,
    );
}

#[test]
fn bad_expiry_date() {
    assert_error(
        "exemptions: [{namespace: legacy, controls: [mtls], reason: migration, expires: \"2030-13-01\"}]",
        r#"spec.exemptions[0].expires: "2030-13-01" is not an RFC 3339 time such as 2026-12-31T00:00:00Z"#,
    );
}

#[test]
fn duplicate_exemption() {
    assert_error(
        "exemptions:\n- {namespace: legacy, controls: [mtls], reason: migration, expires: \"2030-01-01T00:00:00Z\"}\n- {namespace: legacy, controls: [network], reason: batch, expires: \"2030-01-01T00:00:00Z\"}",
        r#"spec.exemptions[1].namespace: "legacy" is exempted twice; merge the entries"#,
    );
}

#[test]
fn empty_reason() {
    assert_error(
        "exemptions: [{namespace: legacy, controls: [mtls], reason: \"   \", expires: \"2030-01-01T00:00:00Z\"}]",
        "spec.exemptions[0].reason: an exemption needs a reason",
    );
}

#[test]
fn empty_deny_rule() {
    assert_error(
        "authorization: {denyRules: [{name: oops}]}",
        "spec.authorization.denyRules[0]: needs at least one of from, to or when; an empty rule would deny all traffic in the mesh",
    );
}

#[test]
fn bad_port_in_deny_rule() {
    assert_error(
        "authorization: {denyRules: [{name: admin, to: [{ports: [\"8080\", http]}]}]}",
        r#"spec.authorization.denyRules[0].to[0].ports[1]: "http" is not a port number"#,
    );
}

/// Istio builds every rule for TCP filter chains too and, for DENY, drops what it cannot
/// build there (`checkError` in its authz model): a path rule without ports would deny every
/// non-HTTP connection the rest of the rule matches.
#[test]
fn deny_rule_with_http_fields_must_name_ports() {
    let why = "the rule uses HTTP fields (to[0].paths); on TCP connections Istio drops them from a DENY rule and denies everything the rest of the rule matches, so name the HTTP ports";
    assert_error(
        "authorization: {denyRules: [{name: admin, from: [{namespaces: [sandbox]}], to: [{paths: [\"/admin/*\"]}]}]}",
        &format!("spec.authorization.denyRules[0].to[0].ports: must be set: {why}"),
    );
    assert_error(
        "authorization: {denyRules: [{name: debug, when: [{key: \"request.headers[x-debug]\", values: [\"1\"]}]}]}",
        "spec.authorization.denyRules[0].to: must name ports: the rule uses HTTP fields (when key request.headers[x-debug]); on TCP connections Istio drops them from a DENY rule and denies everything the rest of the rule matches, so name the HTTP ports",
    );
    // Every `to` entry: an entry without ports is a TCP deny of its own.
    let e = errors(
        "authorization: {denyRules: [{name: two, to: [{methods: [POST], ports: [\"8080\"]}, {hosts: [a.example.com]}]}]}",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("spec.authorization.denyRules[0].to[1].ports: must be set"),
        "{e:?}"
    );
    // Near misses: L4 fields only, and HTTP fields with ports.
    for ok in [
        "authorization: {denyRules: [{name: l4, from: [{namespaces: [sandbox]}], to: [{ports: [\"8443\"]}], when: [{key: source.ip, values: [10.0.0.0/8]}]}]}",
        "authorization: {denyRules: [{name: http, to: [{paths: [/admin], ports: [\"8080\"]}], when: [{key: \"request.auth.claims[iss]\", values: [x]}]}]}",
    ] {
        Baseline::try_from(&mesh_baseline(ok)).unwrap();
    }
}

#[test]
fn bad_trust_domain() {
    assert_error(
        "authorization: {trustDomain: \"cluster.local/ns\"}",
        r#"spec.authorization.trustDomain: "cluster.local/ns" is not a trust domain (letters, digits, '-', '_' and '.', such as cluster.local)"#,
    );
}

#[test]
fn empty_dns_pod_selector() {
    assert_error(
        "network: {dns: {namespace: kube-system, podSelector: {}, port: 53}}",
        "spec.network.dns.podSelector: must name at least one label; an empty selector selects every pod",
    );
}

#[test]
fn bad_label_selector_operator() {
    assert_error(
        "namespaceSelector: {matchExpressions: [{key: team, operator: Equals, values: [a]}]}",
        r#"spec.namespaceSelector.matchExpressions[0].operator: "Equals" is not one of In, NotIn, Exists, DoesNotExist"#,
    );
}

#[test]
fn allow_cidrs_with_unrestricted() {
    assert_error(
        "network: {egress: {mode: Unrestricted, allowCidrs: [10.0.0.0/8]}}",
        "spec.network.egress.allowCidrs: has no effect with mode Unrestricted; remove it or pick ClusterOnly or AllowList",
    );
}

#[test]
fn everything_cidr_in_cluster_only() {
    assert_error(
        "network: {egress: {mode: ClusterOnly, allowCidrs: [0.0.0.0/0]}}",
        r#"spec.network.egress.allowCidrs[0]: "0.0.0.0/0" allows every address; use mode Unrestricted if that is meant"#,
    );
}

#[test]
fn bad_monitoring_namespace_and_dns_port_reported_together() {
    assert_eq!(
        errors("network: {dns: {namespace: kube-system, podSelector: {k8s-app: kube-dns}, port: 0}, controlPlane: {monitoringNamespaces: [Monitoring]}}"),
        [
            "spec.network.dns.port: 0 is not a port number",
            r#"spec.network.controlPlane.monitoringNamespaces[0]: "Monitoring" is not a valid namespace name (DNS-1123 label)"#,
        ]
    );
}

#[test]
fn name_too_long_for_a_label_value() {
    let mut mb: MeshBaseline = mesh_baseline("{}");
    mb.metadata.name = Some("a".repeat(64));
    let e = Baseline::try_from(&mb).unwrap_err();
    assert_eq!(e.errors[0].path, "metadata.name");
}

fn write_temp(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

#[test]
fn wrong_enum_value_is_rejected_at_parse_naming_the_field() {
    let f = write_temp(
        "apiVersion: meshbaseline.dev/v1alpha1\nkind: MeshBaseline\nmetadata: {name: default}\nspec:\n  mode: Enforcing\n",
    );
    let err = read_baseline(f.path()).unwrap_err();
    assert!(matches!(err, RenderError::Baseline(_)));
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!(
            "{} (document 1): MeshBaseline \"default\": spec.mode: Unsupported value: \"Enforcing\": supported values: \"Enforce\", \"Audit\"",
            f.path().display()
        )
    );
}

#[test]
fn invalid_baseline_error_names_file_document_and_fields() {
    let f = write_temp(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: meshbaseline.dev/v1alpha1\nkind: MeshBaseline\nmetadata: {name: prod}\nspec:\n  network:\n    egress:\n      allowCidrs: [10.0.0.0/8, \"::1/128\", 10.0.0.0/33]\n  exemptions: [{namespace: a, controls: [mtls], reason: \"\", expires: \"2030-01-01T00:00:00Z\"}]\n",
    );
    let msg = read_baseline(f.path()).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "{0} (document 2): MeshBaseline \"prod\": spec.exemptions[0].reason: \"\": should be at least 3 chars long\n{0} (document 2): MeshBaseline \"prod\": spec.network.egress.allowCidrs[2]: \"10.0.0.0/33\" is not a CIDR",
            f.path().display()
        )
    );
}

#[test]
fn default_for_check_is_valid_and_protects_everything() {
    let b = Baseline::default_for_check();
    assert_eq!(b.name, "default");
    assert_eq!(b.root_namespace, "istio-system");
    let none = std::collections::BTreeMap::new();
    assert!(b.selects("shop", &none));
    assert!(!b.selects("kube-system", &none));
    assert!(!b.selects("istio-system", &none));
    let c = run(&b, &inventory(&["shop"]));
    assert_eq!(c.protected, ["shop"]);
    // shop, the root namespace, and the cluster-wide guards and Admin-tier policies.
    assert_eq!(c.objects.len(), 3 + 2 + 5 + 2);
}

#[test]
fn committed_crd_is_up_to_date() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/meshbaselines.meshbaseline.dev.yaml"
    );
    let committed = std::fs::read_to_string(path).unwrap();
    let generated = meshbaseline::cli::crdgen::crd_yaml().unwrap();
    assert!(
        committed == generated,
        "{path} is stale: run `cargo run -p meshbaseline -- crdgen --out crds/meshbaselines.meshbaseline.dev.yaml`"
    );
}

#[test]
fn probe_cidrs_are_validated_with_their_field_path() {
    assert_error(
        "network: {ambient: {probeCidrs: [169.254.7.127/24]}}",
        "spec.network.ambient.probeCidrs[0]: \"169.254.7.127/24\" has host bits set; did you mean \"169.254.7.0/24\"?",
    );
    assert_error(
        "network: {ambient: {probeCidrs: [169.254.7.127/32, probe]}}",
        "spec.network.ambient.probeCidrs[1]: \"probe\" is not a CIDR",
    );
    assert_error(
        "network: {ambient: {probeCidrs: [\"::/0\"]}}",
        "spec.network.ambient.probeCidrs[0]: \"::/0\" allows every address; name the probe source address only",
    );
    let empty = errors("network: {ambient: {probeCidrs: []}}");
    assert!(
        empty[0].starts_with("spec.network.ambient.probeCidrs: name at least one CIDR"),
        "{empty:?}"
    );
}
