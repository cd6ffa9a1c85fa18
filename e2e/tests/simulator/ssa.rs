//! Server-side apply: ownership per manager, conflicts, force, removal of dropped fields,
//! Update operations taking ownership, and the managedFields shape.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{json, Value};

use super::{api_error, dynamic, peer_auth, setup, TestResult};

fn pa(spec: Value, labels: Value) -> Value {
    json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
           "metadata": {"name": "pa", "namespace": "team-a", "labels": labels}, "spec": spec})
}

async fn apply(
    api: &Api<DynamicObject>,
    manager: &str,
    body: &Value,
    force: bool,
) -> kube::Result<DynamicObject> {
    let mut params = PatchParams::apply(manager);
    params.force = force;
    api.patch("pa", &params, &Patch::Apply(body)).await
}

fn managed(obj: &DynamicObject) -> Value {
    let v = serde_json::to_value(obj).unwrap_or_default();
    v.pointer("/metadata/managedFields")
        .cloned()
        .unwrap_or(Value::Null)
}

fn fields_of(obj: &DynamicObject, manager: &str, operation: &str) -> Value {
    let all = managed(obj);
    all.as_array()
        .into_iter()
        .flatten()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn managed_fields_have_the_real_shape() -> TestResult {
    let sim = setup().await;
    let api = dynamic(&sim.client()?, &peer_auth(), Some("team-a"));
    let body = pa(
        json!({"mtls": {"mode": "STRICT"}, "selector": {"matchLabels": {"app": "x"}}}),
        json!({"team": "a"}),
    );
    let obj = apply(&api, "alice", &body, false).await?;
    let entries = managed(&obj);
    let [entry] = entries.as_array().map(Vec::as_slice).unwrap_or_default() else {
        panic!("one entry: {entries}")
    };
    assert_eq!(entry["manager"], "alice");
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["apiVersion"], "security.istio.io/v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(entry["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:team": {}}},
               "f:spec": {"f:mtls": {"f:mode": {}}, "f:selector": {"f:matchLabels": {"f:app": {}}}}})
    );
    // Re-applying the same configuration changes nothing, not even the resourceVersion.
    let again = apply(&api, "alice", &body, false).await?;
    assert_eq!(
        again.metadata.resource_version,
        obj.metadata.resource_version
    );
    Ok(())
}

#[tokio::test]
async fn conflicts_force_and_removal_of_dropped_fields() -> TestResult {
    let sim = setup().await;
    let api = dynamic(&sim.client()?, &peer_auth(), Some("team-a"));
    let alice = pa(
        json!({"mtls": {"mode": "STRICT"}, "selector": {"matchLabels": {"app": "x"}}}),
        json!({"team": "a"}),
    );
    apply(&api, "alice", &alice, false).await?;

    // Another manager setting a field alice owns to another value conflicts.
    let bob_permissive = pa(json!({"mtls": {"mode": "PERMISSIVE"}}), json!({}));
    let status = api_error(apply(&api, "bob", &bob_permissive, false).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status
            .message
            .contains(r#"conflict with "alice" using security.istio.io/v1: .spec.mtls.mode"#),
        "{}",
        status.message
    );
    let causes = status.details.map(|d| d.causes).unwrap_or_default();
    assert_eq!(causes.len(), 1);
    assert_eq!(
        (causes[0].reason.as_str(), causes[0].field.as_str()),
        ("FieldManagerConflict", ".spec.mtls.mode")
    );

    // The same value is shared ownership, then force takes the field over.
    apply(
        &api,
        "bob",
        &pa(json!({"mtls": {"mode": "STRICT"}}), json!({})),
        false,
    )
    .await?;
    let forced = apply(&api, "bob", &bob_permissive, true).await?;
    assert_eq!(forced.data["spec"]["mtls"]["mode"], "PERMISSIVE");
    assert_eq!(
        fields_of(&forced, "alice", "Apply")["f:spec"],
        json!({"f:selector": {"f:matchLabels": {"f:app": {}}}})
    );
    assert_eq!(
        fields_of(&forced, "bob", "Apply")["f:spec"],
        json!({"f:mtls": {"f:mode": {}}})
    );

    // Alice drops the selector and the mode from her configuration: the selector (hers alone)
    // goes, the mode (bob's now) stays.
    let mut labels_only = pa(Value::Null, json!({"team": "a"}));
    if let Some(o) = labels_only.as_object_mut() {
        o.remove("spec");
    }
    let dropped = apply(&api, "alice", &labels_only, false).await?;
    assert_eq!(
        dropped.data["spec"],
        json!({"mtls": {"mode": "PERMISSIVE"}})
    );
    assert_eq!(
        fields_of(&dropped, "alice", "Apply"),
        json!({"f:metadata": {"f:labels": {"f:team": {}}}})
    );
    Ok(())
}

#[tokio::test]
async fn update_after_apply_takes_ownership() -> TestResult {
    let sim = setup().await;
    let api = dynamic(&sim.client()?, &peer_auth(), Some("team-a"));
    let alice = pa(json!({"mtls": {"mode": "STRICT"}}), json!({"team": "a"}));
    apply(&api, "alice", &alice, false).await?;
    let carol = PatchParams {
        field_manager: Some("carol".into()),
        ..PatchParams::default()
    };
    let edited = api
        .patch(
            "pa",
            &carol,
            &Patch::Merge(json!({"spec": {"mtls": {"mode": "DISABLE"}}})),
        )
        .await?;
    assert_eq!(
        fields_of(&edited, "carol", "Update"),
        json!({"f:spec": {"f:mtls": {"f:mode": {}}}})
    );
    assert_eq!(
        fields_of(&edited, "alice", "Apply"),
        json!({"f:metadata": {"f:labels": {"f:team": {}}}})
    );
    // Alice re-applying her value now conflicts with carol's update.
    let status = api_error(apply(&api, "alice", &alice, false).await);
    assert!(
        status.message.contains(r#"conflict with "carol""#),
        "{}",
        status.message
    );
    // An edit without fieldManager is attributed to the user agent's program name.
    let edited = api
        .patch(
            "pa",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
        )
        .await?;
    let managers: Vec<String> = managed(&edited)
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["manager"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(managers.len(), 3, "{managers:?}");
    assert_eq!(managers[2], "unknown", "kube-client sends no user agent");
    Ok(())
}

#[tokio::test]
async fn apply_requires_a_field_manager_and_creates() -> TestResult {
    let sim = setup().await;
    let api = dynamic(&sim.client()?, &peer_auth(), Some("team-a"));
    let body = pa(json!({"mtls": {"mode": "STRICT"}}), json!({}));
    let status = api_error(
        api.patch("pa", &PatchParams::default(), &Patch::Apply(&body))
            .await,
    );
    assert_eq!(status.code, 400);
    let created = apply(&api, "alice", &body, false).await?;
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    Ok(())
}

#[tokio::test]
async fn dry_run_changes_nothing() -> TestResult {
    let sim = setup().await;
    let api = dynamic(&sim.client()?, &peer_auth(), Some("team-a"));
    let before = sim.resource_version();
    let params = PatchParams {
        dry_run: true,
        ..PatchParams::apply("alice")
    };
    let body = pa(json!({"mtls": {"mode": "STRICT"}}), json!({}));
    let preview = api.patch("pa", &params, &Patch::Apply(&body)).await?;
    assert_eq!(preview.data["spec"]["mtls"]["mode"], "STRICT");
    assert!(api.get_opt("pa").await?.is_none());
    assert_eq!(sim.resource_version(), before);
    // The next real write is not a dry run.
    apply(&api, "alice", &body, false).await?;
    assert!(api.get_opt("pa").await?.is_some());
    Ok(())
}
