//! The status subresource and generation rules.

use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::{dynamic, mesh_baseline, object, setup, TestResult};

#[tokio::test]
async fn status_writes_touch_only_status_and_generation_follows_spec() -> TestResult {
    let sim = setup().await;
    let api = dynamic(&sim.client()?, &mesh_baseline(), None);
    let body = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                      "metadata": {"name": "default"}, "spec": {"mode": "Enforce"}, "status": {"managedObjects": 9}});
    let created = api.create(&PostParams::default(), &object(body)).await?;
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "status is ignored on create"
    );

    let status = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                        "status": {"observedGeneration": 1, "managedObjects": 3}, "spec": {"mode": "Audit"}});
    let after_status = api
        .patch_status(
            "default",
            &PatchParams::apply("meshbaseline").force(),
            &Patch::Apply(&status),
        )
        .await?;
    assert_eq!(
        after_status.data["status"],
        json!({"observedGeneration": 1, "managedObjects": 3})
    );
    assert_eq!(
        after_status.data["spec"],
        json!({"mode": "Enforce"}),
        "spec is ignored on /status"
    );
    assert_eq!(after_status.metadata.generation, Some(1));
    assert_ne!(
        after_status.metadata.resource_version,
        created.metadata.resource_version
    );
    let entry = after_status.metadata.managed_fields.as_ref().and_then(|m| {
        m.iter()
            .find(|e| e.manager.as_deref() == Some("meshbaseline"))
    });
    assert_eq!(entry.and_then(|e| e.subresource.as_deref()), Some("status"));

    // Metadata changes do not bump the generation; spec changes do; status survives both.
    let labelled = api
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await?;
    assert_eq!(labelled.metadata.generation, Some(1));
    let respec = api
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": "Audit"}, "status": {"managedObjects": 0}})),
        )
        .await?;
    assert_eq!(respec.metadata.generation, Some(2));
    assert_eq!(
        respec.data["status"]["managedObjects"], 3,
        "status is ignored on the main resource"
    );

    // PUT on /status with a changed spec changes only the status.
    let mut whole = respec.clone();
    whole.data["spec"] = json!({"mode": "Enforce"});
    whole.data["status"] = json!({"observedGeneration": 2});
    let replaced = api
        .replace_status("default", &PostParams::default(), &whole)
        .await?;
    assert_eq!(replaced.data["spec"], json!({"mode": "Audit"}));
    assert_eq!(replaced.data["status"], json!({"observedGeneration": 2}));
    assert_eq!(replaced.metadata.generation, Some(2));
    Ok(())
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_conflicts() -> TestResult {
    let sim = setup().await;
    let api = dynamic(&sim.client()?, &mesh_baseline(), None);
    let body = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                      "metadata": {"name": "default"}, "spec": {"mode": "Enforce"}});
    let created = api
        .create(&PostParams::default(), &object(body.clone()))
        .await?;
    let exists = super::api_error(api.create(&PostParams::default(), &object(body)).await);
    assert_eq!(
        (exists.code, exists.reason.as_str()),
        (409, "AlreadyExists")
    );
    let mut first = created.clone();
    first.data["spec"]["mode"] = json!("Audit");
    let replaced = api
        .replace("default", &PostParams::default(), &first)
        .await?;
    assert_eq!(replaced.metadata.generation, Some(2));
    let mut stale = created;
    stale.data["spec"]["mode"] = json!("Enforce");
    let conflict = super::api_error(api.replace("default", &PostParams::default(), &stale).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    Ok(())
}
