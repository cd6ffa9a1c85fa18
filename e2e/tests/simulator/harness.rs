//! The `Cluster` harness scenarios use (simulator here; a real cluster with the env var set).

use std::time::Duration;

use meshbaseline_e2e::{Cluster, TENANT_MANAGER};
use serde_json::json;

use super::TestResult;

const YAML: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: e2e-harness
  labels: {istio-injection: enabled}
---
apiVersion: v1
kind: List
items:
  - apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata: {name: weak, namespace: e2e-harness}
    spec: {mtls: {mode: PERMISSIVE}}
"#;

#[tokio::test]
async fn seed_edit_wait_and_delete() -> TestResult {
    let cluster = Cluster::start().await?;
    let seeded = cluster.apply_yaml(YAML).await?;
    assert_eq!(seeded.len(), 2);
    let pa = cluster
        .get(
            "security.istio.io/v1",
            "PeerAuthentication",
            Some("e2e-harness"),
            "weak",
        )
        .await?
        .expect("seeded");
    let manager = pa
        .metadata
        .managed_fields
        .unwrap_or_default()
        .first()
        .and_then(|m| m.manager.clone());
    assert_eq!(manager.as_deref(), Some(TENANT_MANAGER));

    // Something else (the operator, in scenarios) changes the object; the harness waits for it.
    let writer = cluster.client();
    let task = tokio::spawn(async move {
        let ar = kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("security.istio.io", "v1", "PeerAuthentication"),
            "peerauthentications",
        );
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(writer, "e2e-harness", &ar);
        let fix = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "spec": {"mtls": {"mode": "STRICT"}}});
        api.patch(
            "weak",
            &kube::api::PatchParams::apply("fixer").force(),
            &kube::api::Patch::Apply(&fix),
        )
        .await
    });
    let mode = cluster
        .wait_for(
            "the PeerAuthentication to become STRICT",
            Duration::from_secs(10),
            || async {
                let pa = cluster
                    .get(
                        "security.istio.io/v1",
                        "PeerAuthentication",
                        Some("e2e-harness"),
                        "weak",
                    )
                    .await?;
                Ok(pa
                    .and_then(|p| p.data["spec"]["mtls"]["mode"].as_str().map(str::to_string))
                    .filter(|m| m == "STRICT"))
            },
        )
        .await?;
    assert_eq!(mode, "STRICT");
    task.await??;

    let edited = cluster
        .merge_patch(
            "security.istio.io/v1",
            "PeerAuthentication",
            Some("e2e-harness"),
            "weak",
            &json!({"metadata": {"labels": {"edited": "yes"}}}),
        )
        .await?;
    assert_eq!(
        edited
            .metadata
            .labels
            .unwrap_or_default()
            .get("edited")
            .map(String::as_str),
        Some("yes")
    );
    let listed = cluster
        .list(
            "security.istio.io/v1",
            "PeerAuthentication",
            None,
            Some("edited=yes"),
        )
        .await?;
    assert_eq!(listed.len(), 1);
    assert!(
        cluster
            .delete(
                "security.istio.io/v1",
                "PeerAuthentication",
                Some("e2e-harness"),
                "weak"
            )
            .await?
    );
    assert!(
        !cluster
            .delete(
                "security.istio.io/v1",
                "PeerAuthentication",
                Some("e2e-harness"),
                "weak"
            )
            .await?
    );

    let timeout = cluster
        .wait_for(
            "something that never happens",
            Duration::from_millis(200),
            || async { Ok(None::<()>) },
        )
        .await;
    assert!(matches!(
        timeout,
        Err(meshbaseline_e2e::HarnessError::Timeout { .. })
    ));
    cluster.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn harness_requests_are_not_counted_operator_requests_are() -> TestResult {
    let cluster = Cluster::start().await?;
    let gate = cluster.gate();
    let mark = gate.mark();
    cluster.get("v1", "Namespace", None, "default").await?;
    assert_eq!(
        gate.requests_since(mark).records().len(),
        0,
        "harness requests are not counted"
    );
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(cluster.client());
    api.get("default").await?;
    let log = gate.requests_since(mark);
    assert_eq!(
        log.count(|r| r.resource == "namespaces" && r.name == "default"),
        1
    );
    Ok(())
}
