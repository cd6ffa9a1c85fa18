//! The loader reads every workload kind `check` promises, `kind: List`, and numbers documents.

use std::path::{Path, PathBuf};

use meshbaseline::manifests::{load_paths, Loaded};

const WORKLOADS: &str = r#"
# leading comment
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: shop}
spec:
  template:
    metadata:
      annotations: {sidecar.istio.io/inject: "false", unrelated: "x"}
    spec:
      containers: [{name: app, image: x, securityContext: {runAsUser: 1337}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s, namespace: shop}
spec:
  template:
    spec:
      securityContext: {runAsGroup: 1337}
      containers: [{name: app, image: x}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec:
  template:
    spec:
      hostNetwork: true
      containers: [{name: app, image: x}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: j, namespace: shop}
spec:
  template:
    spec:
      initContainers: [{name: init, image: x, securityContext: {privileged: true}}]
      containers: [{name: app, image: x}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj, namespace: shop}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          shareProcessNamespace: true
          containers: [{name: app, image: x, securityContext: {capabilities: {add: [NET_RAW]}}}]
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: p, namespace: shop}
    spec: {containers: [{name: app, image: x}, {name: istio-proxy, image: proxy}]}
    status: {phase: Running}
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: ignored, namespace: shop}
"#;

fn load(text: &str) -> Loaded {
    let mut loaded = Loaded::default();
    loaded.add_text(Path::new("w.yaml"), text);
    loaded
}

#[test]
fn workload_templates_and_lists_become_pods() {
    let loaded = load(WORKLOADS);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let pods: Vec<(String, String, String)> = loaded
        .inventory
        .pods
        .iter()
        .map(|p| (p.kind.clone(), p.namespace.to_string(), p.name.to_string()))
        .collect();
    let expect = |k: &str, ns: &str, n: &str| (k.to_string(), ns.to_string(), n.to_string());
    assert_eq!(
        pods,
        vec![
            expect("Deployment", "shop", "d"),
            expect("StatefulSet", "shop", "s"),
            expect("DaemonSet", "default", "ds"),
            expect("Job", "shop", "j"),
            expect("CronJob", "shop", "cj"),
            expect("Pod", "shop", "p"),
        ]
    );
    let p = &loaded.inventory.pods;
    assert_eq!(p[0].containers[0].run_as_user, Some(1337));
    assert_eq!(p[0].annotations.len(), 1, "only mesh annotations are kept");
    assert_eq!(p[1].run_as_group, Some(1337));
    assert!(p[2].host_network);
    assert!(p[3].containers[0].init && p[3].containers[0].privileged);
    assert!(p[4].share_process_namespace);
    assert_eq!(p[4].containers[0].added_capabilities, vec!["NET_RAW"]);
    assert!(p[5].has_sidecar() && p[5].phase.as_deref() == Some("Running"));
    assert_eq!(p[0].phase, None);
    // Documents are numbered as an editor shows them between `---` lines.
    let origin = |k: &str, ns: &str, n: &str| {
        loaded.origins[&(k.to_string(), ns.to_string(), n.to_string())]
            .document
            .unwrap()
    };
    assert_eq!(origin("Deployment", "shop", "d"), 1);
    assert_eq!(origin("CronJob", "shop", "cj"), 5);
    assert_eq!(origin("Pod", "shop", "p"), 6);
    assert_eq!(origin("ConfigMap", "shop", "ignored"), 6);
}

#[test]
fn a_bad_document_names_file_and_number_and_the_rest_loads() {
    let loaded = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {containers: 3}\n---\nkind: Pod\n---\n- not a mapping\n---\napiVersion: v1\nkind: Service\nmetadata: {name: c}\n",
    );
    let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].starts_with("w.yaml (document 2): Pod \"b\" at spec.containers"),
        "{errors:#?}"
    );
    assert!(
        errors[1].starts_with("w.yaml (document 3): Pod: apiVersion and kind"),
        "{errors:#?}"
    );
    assert!(
        errors[2].starts_with("w.yaml (document 4): a list, not a Kubernetes object"),
        "{errors:#?}"
    );
    let names: Vec<&str> = loaded
        .inventory
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, vec!["a", "c"]);
}

#[test]
fn directories_are_read_recursively_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("b");
    std::fs::create_dir(&sub).unwrap();
    let svc = |n: &str| format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {n}}}\n");
    std::fs::write(sub.join("x.yml"), svc("second")).unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"first"}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let loaded = load_paths(&[PathBuf::from(dir.path())]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let names: Vec<&str> = loaded
        .inventory
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, vec!["first", "second"]);
}

/// Istio's schemas do not require `spec`: such objects load as empty specs and are audited.
#[test]
fn istio_objects_without_a_spec_load() {
    let loaded = load(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: istio-system}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing, namespace: shop}\nspec: null\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: shop}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d, namespace: shop}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: nulls, namespace: shop}\nspec: {host: a, subsets: null, exportTo: null, trafficPolicy: {tls: null}}\n",
    );
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let inv = &loaded.inventory;
    assert_eq!(inv.sidecars.len(), 1);
    assert_eq!(inv.authorization_policies.len(), 1);
    assert!(inv.authorization_policies[0].spec.rules.is_empty());
    assert_eq!(inv.peer_authentications.len(), 1);
    assert_eq!(inv.destination_rules.len(), 2);
}

/// The labels and annotations that choose the data plane survive trimming; others do not.
#[test]
fn pod_templates_keep_data_plane_labels_and_annotations() {
    let loaded = load(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: shop}\nspec:\n  template:\n    metadata:\n      labels: {app: d, sidecar.istio.io/inject: \"false\", istio.io/dataplane-mode: none}\n      annotations: {ambient.istio.io/bypass-inbound-capture: \"true\", team: x}\n    spec: {containers: [{name: app, image: x}]}\n",
    );
    let pod = &loaded.inventory.pods[0];
    assert_eq!(
        pod.labels.keys().collect::<Vec<_>>(),
        ["istio.io/dataplane-mode", "sidecar.istio.io/inject"]
    );
    assert_eq!(
        pod.annotations.keys().collect::<Vec<_>>(),
        ["ambient.istio.io/bypass-inbound-capture"]
    );
}
