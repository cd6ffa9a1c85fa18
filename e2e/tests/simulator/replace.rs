//! What the operator's repairs rely on: a replace (PUT) carrying a resourceVersion is refused
//! with 409 when the object changed; a successful one stores exactly the body, removes fields
//! other managers owned from their managedFields, and records the writer as an Update. JSON
//! patch (RFC 6902) works as on a real server, a failed `test` is 422.

use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::{api_error, dynamic, peer_auth, setup, TestResult};

fn managers(obj: &DynamicObject) -> Vec<(String, String, String)> {
    obj.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
                e.fields_v1
                    .as_ref()
                    .map(|f| f.0.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn replace_is_exact_and_guarded_by_the_resource_version() -> TestResult {
    let sim = setup().await;
    let api = dynamic(&sim.client()?, &peer_auth(), Some("team-a"));
    let body = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "pa", "namespace": "team-a"}, "spec": {"mtls": {"mode": "STRICT"}}});
    let first = api
        .patch("pa", &PatchParams::apply("ours"), &Patch::Apply(&body))
        .await?;
    // Another manager adds a field.
    let tenant = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "pa", "namespace": "team-a"},
        "spec": {"selector": {"matchLabels": {"nothing": "x"}}}});
    api.patch("pa", &PatchParams::apply("tenant"), &Patch::Apply(&tenant))
        .await?;
    let rv = first.metadata.resource_version.clone().unwrap_or_default();
    // Our forced apply of the same config keeps the tenant's field ...
    let forced = api
        .patch(
            "pa",
            &PatchParams::apply("ours").force(),
            &Patch::Apply(&body),
        )
        .await?;
    assert!(forced.data["spec"].get("selector").is_some());
    // ... a replace with a stale version is refused ...
    let mut stale: DynamicObject = serde_json::from_value(body.clone())?;
    stale.metadata.resource_version = Some(rv);
    let pp = PostParams {
        field_manager: Some("ours".into()),
        ..PostParams::default()
    };
    assert_eq!(api_error(api.replace("pa", &pp, &stale).await).code, 409);
    // ... and one with the current version stores exactly the body.
    stale.metadata.resource_version = forced.metadata.resource_version.clone();
    let replaced = api.replace("pa", &pp, &stale).await?;
    assert_eq!(replaced.data["spec"], json!({"mtls": {"mode": "STRICT"}}));
    // The tenant owned only the removed field: its entry is gone (structured-merge-diff drops
    // removed fields from every manager, and empty entries). A removal alone gives the writer
    // no fields, so it records no Update entry either.
    let ms = managers(&replaced);
    assert!(ms.iter().all(|(m, _, _)| m != "tenant"), "{ms:?}");
    // A replace that changes a value is recorded as the writer's Update.
    let mut changed: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "pa", "namespace": "team-a"},
        "spec": {"mtls": {"mode": "PERMISSIVE"}}}))?;
    changed.metadata.resource_version = replaced.metadata.resource_version.clone();
    let again = api.replace("pa", &pp, &changed).await?;
    let ms = managers(&again);
    assert!(
        ms.iter()
            .any(|(m, op, f)| m == "ours" && op == "Update" && f.contains("f:mode")),
        "{ms:?}"
    );
    Ok(())
}

#[tokio::test]
async fn json_patch_applies_every_operation_or_none() -> TestResult {
    let sim = setup().await;
    let client = sim.client()?;
    let api = dynamic(&client, &peer_auth(), Some("team-a"));
    let body = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "pa", "namespace": "team-a"}, "spec": {"mtls": {"mode": "STRICT"}}});
    api.patch("pa", &PatchParams::apply("ours"), &Patch::Apply(&body))
        .await?;
    let send = |ops: Value| {
        let url = format!("{}/pa?fieldManager=tenant", api.resource_url());
        let req = http::Request::patch(url)
            .header(http::header::CONTENT_TYPE, "application/json-patch+json")
            .body(serde_json::to_vec(&ops).unwrap_or_default());
        let client = client.clone();
        async move {
            client
                .request::<DynamicObject>(req?)
                .await
                .map_err(Box::<dyn std::error::Error>::from)
        }
    };
    let patched = send(json!([
        {"op": "test", "path": "/spec/mtls/mode", "value": "STRICT"},
        {"op": "replace", "path": "/spec/mtls/mode", "value": "DISABLE"},
        {"op": "add", "path": "/spec/selector", "value": {"matchLabels": {"a": "b"}}},
    ]))
    .await?;
    assert_eq!(patched.data["spec"]["mtls"]["mode"], "DISABLE");
    assert!(managers(&patched)
        .iter()
        .any(|(m, op, f)| m == "tenant" && op == "Update" && f.contains("selector")));
    // A failed test: nothing changes, 422.
    let failed = send(json!([
        {"op": "remove", "path": "/spec/selector"},
        {"op": "test", "path": "/spec/mtls/mode", "value": "STRICT"},
    ]))
    .await;
    let err = failed.err().ok_or("the patch should fail")?;
    assert!(err.to_string().contains("422"), "{err}");
    let now = api.get("pa").await?;
    assert!(now.data["spec"].get("selector").is_some());
    Ok(())
}
