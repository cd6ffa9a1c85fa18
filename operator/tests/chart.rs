//! The Helm chart: its CRD is the generated one, and its RBAC is exactly the operator's API usage.

mod support;

use std::collections::BTreeSet;

use support::chart_rbac::{chart_dir, grants, request_grant, rules_of, ChartRbac, Grant};

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

/// docs/operations.md, "RBAC".
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
    // `update`: generated objects are repaired by replace (PUT), which removes foreign fields.
    let write = &["list", "watch", "create", "update", "patch", "delete"];
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
        "admissionregistration.k8s.io",
        &[
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
        ],
        write,
    );
    add(
        "policy.networking.k8s.io",
        &["clusternetworkpolicies"],
        write,
    );
    add(
        "authentication.k8s.io",
        &["selfsubjectreviews"],
        &["create"],
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
    // Leader election (controller::lease) reads, creates and patches the Lease; it never
    // replaces it (PUT), so
    // no `update` (the e2e RBAC scenario checks this against the recorded requests).
    ["get", "create", "patch"]
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
fn rendered_manifest_rbac_is_read_like_the_templates() {
    let manifest = r#"
---
# Source: meshbaseline/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata: {name: meshbaseline}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: meshbaseline}
rules:
  - apiGroups: [""]
    resources: ["pods", "services"]
    verbs: ["list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: meshbaseline-leader-election}
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get"]
"#;
    let rbac = ChartRbac::from_manifest(manifest).unwrap();
    assert_eq!(
        rbac.cluster,
        BTreeSet::from([
            Grant::new("", "pods", "list"),
            Grant::new("", "services", "list")
        ])
    );
    assert_eq!(
        rbac.namespaced,
        BTreeSet::from([Grant::new("coordination.k8s.io", "leases", "get")])
    );
}

#[test]
fn requests_map_to_the_grants_the_api_server_checks() {
    type Expected = Option<(
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
    )>;
    let cases: &[(&str, &str, Expected)] = &[
        ("GET", "/apis/meshbaseline.dev/v1alpha1/meshbaselines?limit=500", Some(("meshbaseline.dev", "meshbaselines", "list", None))),
        ("GET", "/apis/meshbaseline.dev/v1alpha1/meshbaselines?watch=true&resourceVersion=5&allowWatchBookmarks=true", Some(("meshbaseline.dev", "meshbaselines", "watch", None))),
        ("PATCH", "/apis/meshbaseline.dev/v1alpha1/meshbaselines/default/status?fieldManager=meshbaseline", Some(("meshbaseline.dev", "meshbaselines/status", "patch", None))),
        ("GET", "/api/v1/pods?watch=1", Some(("", "pods", "watch", None))),
        ("GET", "/api/v1/namespaces", Some(("", "namespaces", "list", None))),
        ("GET", "/api/v1/namespaces/shop", Some(("", "namespaces", "get", None))),
        ("GET", "/api/v1/namespaces/shop/services", Some(("", "services", "list", Some("shop")))),
        ("PATCH", "/apis/security.istio.io/v1/namespaces/shop/authorizationpolicies/meshbaseline-deny-plaintext?fieldManager=meshbaseline&force=true", Some(("security.istio.io", "authorizationpolicies", "patch", Some("shop")))),
        ("DELETE", "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/meshbaseline-baseline", Some(("networking.k8s.io", "networkpolicies", "delete", Some("shop")))),
        ("POST", "/apis/events.k8s.io/v1/namespaces/default/events", Some(("events.k8s.io", "events", "create", Some("default")))),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/meshbaseline-system/leases/meshbaseline-leader", Some(("coordination.k8s.io", "leases", "update", Some("meshbaseline-system")))),
        ("GET", "/version", None),
        ("GET", "/apis", None),
        ("GET", "/apis/networking.istio.io/v1", None),
    ];
    for (method, path, expected) in cases {
        let got = request_grant(method, path).unwrap();
        let expected = expected.map(|(g, r, v, ns)| (Grant::new(g, r, v), ns.map(str::to_owned)));
        assert_eq!(got, expected, "{method} {path}");
    }
    assert!(request_grant("PATCH", "/api/v1/pods").is_err());
    assert!(request_grant("GET", "/api/v1/namespaces/a/pods/b/c/d").is_err());
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

fn yaml_file(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Helm's values merge: maps merge recursively, anything else replaces.
fn merge(base: &mut serde_json::Value, over: &serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn values_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("values.schema.json")).unwrap(),
    )
    .expect("values.schema.json is JSON");
    jsonschema::validator_for(&schema).expect("values.schema.json is a JSON Schema")
}

fn schema_errors(validator: &jsonschema::Validator, values: &serde_json::Value) -> Vec<String> {
    validator
        .iter_errors(values)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn default_and_ci_values_match_the_values_schema() {
    let validator = values_validator();
    let defaults = yaml_file(&chart_dir().join("values.yaml"));
    let errors = schema_errors(&validator, &defaults);
    assert!(errors.is_empty(), "values.yaml: {errors:?}");
    let mut ci_files = 0;
    for entry in std::fs::read_dir(chart_dir().join("ci")).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with("-values.yaml") {
            continue;
        }
        ci_files += 1;
        let mut values = defaults.clone();
        merge(&mut values, &yaml_file(&path));
        let errors = schema_errors(&validator, &values);
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
    assert!(ci_files > 0, "no ci/*-values.yaml");
}

#[test]
fn values_schema_rejects_unknown_keys_and_bad_values() {
    let validator = values_validator();
    let defaults = yaml_file(&chart_dir().join("values.yaml"));
    let bad = [
        serde_json::json!({"replicas": 2}),
        serde_json::json!({"metrics": {"serviceMonitor": {"enable": true}}}),
        serde_json::json!({"operator": {"logFormat": "xml"}}),
        serde_json::json!({"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1"]}}}),
        serde_json::json!({"resources": {"limits": {"memory": "lots"}}}),
        serde_json::json!({"dashboards": {"labels": {"grafana_dashboard": "0"}}}),
        serde_json::json!({"image": {"digest": "latest"}}),
    ];
    for over in bad {
        let mut values = defaults.clone();
        merge(&mut values, &over);
        assert!(!validator.is_valid(&values), "accepted {over}");
    }
}

#[test]
fn chart_readme_documents_every_value() {
    fn leaves(value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        match value.as_object() {
            Some(map) if !map.is_empty() => {
                for (k, v) in map {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    leaves(v, &child, out);
                }
            }
            _ => out.push(path.to_owned()),
        }
    }
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).unwrap();
    let mut paths = Vec::new();
    leaves(&yaml_file(&chart_dir().join("values.yaml")), "", &mut paths);
    let undocumented: Vec<&String> = paths
        .iter()
        .filter(|path| {
            // A map value (podLabels, defaultBaseline.spec) is documented as a whole.
            let mut prefix = path.as_str();
            loop {
                if readme.contains(&format!("| `{prefix}` |")) {
                    return false;
                }
                match prefix.rsplit_once('.') {
                    Some((parent, _)) => prefix = parent,
                    None => return true,
                }
            }
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "values missing from charts/meshbaseline/README.md: {undocumented:?}"
    );
}
