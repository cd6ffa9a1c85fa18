//! The Helm chart: its CRD is the generated one, and its RBAC is exactly the operator's API usage.

mod support;

use std::collections::BTreeSet;

use support::chart_rbac::{chart_dir, grants, rules_of, ChartRbac, Grant};

#[test]
fn chart_crd_is_byte_identical_to_generated_crd() {
    let name = "meshbaselines.meshbaseline.dev.yaml";
    let generated = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crds")
        .join(name);
    let in_chart = chart_dir().join("crds").join(name);
    let generated = std::fs::read(&generated).expect("generated CRD");
    let in_chart = std::fs::read(&in_chart).expect("chart CRD");
    assert!(
        generated == in_chart,
        "charts/meshbaseline/crds/{name} differs from crds/{name}; \
         copy it: cp crds/{name} charts/meshbaseline/crds/"
    );
}

/// CONTRACT.md, "API usage of the operator".
fn contract_cluster_grants() -> BTreeSet<Grant> {
    let mut set = BTreeSet::new();
    let mut add = |group: &str, resources: &[&str], verbs: &[&str]| {
        for r in resources {
            for v in verbs {
                set.insert(Grant::new(group, r, v));
            }
        }
    };
    let list_watch = &["list", "watch"];
    let write = &["list", "watch", "create", "patch", "delete"];
    add("meshbaseline.dev", &["meshbaselines"], list_watch);
    add("meshbaseline.dev", &["meshbaselines/status"], &["patch"]);
    add("", &["namespaces", "pods", "services"], list_watch);
    add("networking.k8s.io", &["networkpolicies"], write);
    add(
        "security.istio.io",
        &["peerauthentications", "authorizationpolicies"],
        write,
    );
    add(
        "networking.istio.io",
        &["destinationrules", "sidecars"],
        write,
    );
    add(
        "apiextensions.k8s.io",
        &["customresourcedefinitions"],
        list_watch,
    );
    add("events.k8s.io", &["events"], &["create", "patch"]);
    set
}

fn contract_namespaced_grants() -> BTreeSet<Grant> {
    ["get", "create", "update", "patch"]
        .into_iter()
        .map(|v| Grant::new("coordination.k8s.io", "leases", v))
        .collect()
}

fn diff(granted: &BTreeSet<Grant>, expected: &BTreeSet<Grant>) -> String {
    let extra: Vec<String> = granted
        .difference(expected)
        .map(|g| g.to_string())
        .collect();
    let missing: Vec<String> = expected
        .difference(granted)
        .map(|g| g.to_string())
        .collect();
    format!("granted but not used: {extra:?}; used but not granted: {missing:?}")
}

#[test]
fn chart_rbac_grants_exactly_the_contract() {
    let rbac = ChartRbac::read(&chart_dir()).expect("chart RBAC");
    let cluster = contract_cluster_grants();
    let namespaced = contract_namespaced_grants();
    assert_eq!(
        rbac.cluster,
        cluster,
        "ClusterRole: {}",
        diff(&rbac.cluster, &cluster)
    );
    assert_eq!(
        rbac.namespaced,
        namespaced,
        "Role: {}",
        diff(&rbac.namespaced, &namespaced)
    );
}

#[test]
fn chart_rbac_has_no_wildcards_secrets_or_escalation() {
    let rbac = ChartRbac::read(&chart_dir()).expect("chart RBAC");
    for g in rbac.all() {
        assert!(
            !g.api_group.contains('*') && !g.resource.contains('*') && g.verb != "*",
            "wildcard: {g}"
        );
        assert!(
            !["secrets", "configmaps", "serviceaccounts/token"].contains(&g.resource.as_str()),
            "sensitive resource: {g}"
        );
        assert!(
            !["escalate", "bind", "impersonate"].contains(&g.verb.as_str()),
            "escalation verb: {g}"
        );
    }
    // Leases only in the release namespace, not cluster-wide.
    assert!(rbac.cluster.iter().all(|g| g.resource != "leases"));
}

#[test]
fn rbac_reader_rejects_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("role.yaml");
    let write = |body: &str| std::fs::write(&file, body).unwrap();

    write("kind: Role\nmetadata:\n  name: {{ .Release.Name }}\nrules:\n  - apiGroups: [\"\"]\n    resources: [\"pods\"]\n    verbs: [\"{{ .Values.verb }}\"]\n");
    assert!(rules_of(&file).unwrap_err().contains("template logic"));

    write("kind: Role\nrules:\n  - apiGroups: [\"\"]\n    resources: [\"pods\"]\n    verbs: [\"list\"]\n    nonResourceURLs: [\"/metrics\"]\n");
    assert!(grants(&rules_of(&file).unwrap())
        .unwrap_err()
        .contains("nonResourceURLs"));

    write("kind: Role\nrules:\n  - apiGroups: [\"\"]\n    resources: [\"pods\", \"pods\"]\n    verbs: [\"list\"]\n");
    assert!(grants(&rules_of(&file).unwrap())
        .unwrap_err()
        .contains("twice"));

    write("kind: Role\nrules:\n  - apiGroups: [\"apps\"]\n    resources: [\"deployments\"]\n    verbs: [\"get\", \"list\"]\n");
    let got = grants(&rules_of(&file).unwrap()).unwrap();
    assert_eq!(
        got,
        BTreeSet::from([
            Grant::new("apps", "deployments", "get"),
            Grant::new("apps", "deployments", "list"),
        ])
    );
}
