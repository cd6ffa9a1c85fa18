//! One conformance suite for both servers: the API semantics the operator and the scenarios rely
//! on, run against the simulator (`cargo test`) and against the real control plane
//! (`.ci/test-real`, `MESHBASELINE_E2E_KUBECONFIG`). Where the simulator simplifies on purpose,
//! the test asserts each server's own behaviour, so a change on either side fails it.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::discovery::ApiResource;
use meshbaseline::api::MeshBaseline;
use meshbaseline_e2e::Cluster;
use serde_json::{json, Value};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn namespace(
    cluster: &Cluster,
    name: &str,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    cluster.apply_as("conformance", &ns, true).await?;
    Ok(name.to_string())
}

fn policy(ns: &str, name: &str, selector: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"podSelector": selector, "policyTypes": ["Ingress"]}})
}

fn code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        _ => 0,
    }
}

#[tokio::test]
async fn watch_from_a_list_sees_every_change_in_order() -> TestResult {
    let cluster = Cluster::start().await?;
    let ns = namespace(&cluster, "conf-watch").await?;
    let api: Api<NetworkPolicy> = Api::namespaced(cluster.harness_client(), &ns);
    let listed = api.list(&Default::default()).await?;
    let rv = listed
        .metadata
        .resource_version
        .ok_or("list without resourceVersion")?;
    let mut stream = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await?
        .boxed();
    let pp = PatchParams::apply("conformance");
    api.patch("p", &pp, &Patch::Apply(policy(&ns, "p", json!({}))))
        .await?;
    api.patch(
        "p",
        &pp,
        &Patch::Apply(policy(&ns, "p", json!({"matchLabels": {"a": "b"}}))),
    )
    .await?;
    api.delete("p", &DeleteParams::default()).await?;
    let mut seen = Vec::new();
    let mut versions = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
            .await??
            .ok_or("watch ended")?;
        let (kind, obj) = match event {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => return Err(format!("watch error: {e:?}").into()),
        };
        seen.push(kind);
        versions.push(
            obj.metadata
                .resource_version
                .unwrap_or_default()
                .parse::<u64>()?,
        );
    }
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"]);
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    cluster.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_reports_conflicts() -> TestResult {
    let cluster = Cluster::start().await?;
    let ns = namespace(&cluster, "conf-ssa").await?;
    let api: Api<NetworkPolicy> = Api::namespaced(cluster.harness_client(), &ns);
    let a = PatchParams::apply("manager-a");
    api.patch(
        "p",
        &a,
        &Patch::Apply(policy(&ns, "p", json!({"matchLabels": {"app": "x"}}))),
    )
    .await?;
    // Another manager setting the same field to another value: 409, unless forced.
    let other = policy(&ns, "p", json!({"matchLabels": {"app": "y"}}));
    let err = api
        .patch("p", &PatchParams::apply("manager-b"), &Patch::Apply(&other))
        .await;
    assert_eq!(err.as_ref().map_err(code).err(), Some(409), "{err:?}");
    let forced = api
        .patch(
            "p",
            &PatchParams::apply("manager-b").force(),
            &Patch::Apply(&other),
        )
        .await?;
    let managers: Vec<(String, String)> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("manager-b".into(), "Apply".into())),
        "{managers:?}"
    );
    // A manager that stops applying a field it alone owns removes it.
    let b_only = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": ns, "labels": {"keep": "1", "drop": "1"}},
        "spec": {"podSelector": {"matchLabels": {"app": "y"}}}});
    api.patch(
        "p",
        &PatchParams::apply("manager-b"),
        &Patch::Apply(&b_only),
    )
    .await?;
    let mut fewer = b_only.clone();
    fewer["metadata"]["labels"] = json!({"keep": "1"});
    let live = api
        .patch("p", &PatchParams::apply("manager-b"), &Patch::Apply(&fewer))
        .await?;
    let labels = live.metadata.labels.unwrap_or_default();
    assert!(
        labels.contains_key("keep") && !labels.contains_key("drop"),
        "{labels:?}"
    );
    // A merge patch is an Update by its field manager.
    let merged = api
        .patch(
            "p",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"metadata": {"labels": {"edited": "1"}}})),
        )
        .await?;
    assert!(merged
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .any(|m| {
            m.manager.as_deref() == Some("editor") && m.operation.as_deref() == Some("Update")
        }));
    cluster.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn list_map_merges_on_the_real_server_only() -> TestResult {
    let cluster = Cluster::start().await?;
    let ns = namespace(&cluster, "conf-listmap").await?;
    let api: Api<Service> = Api::namespaced(cluster.harness_client(), &ns);
    let service = |port: u16| {
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s", "namespace": ns},
        "spec": {"selector": {"app": "s"}, "ports": [{"name": format!("p{port}"), "port": port, "protocol": "TCP"}]}})
    };
    api.patch(
        "s",
        &PatchParams::apply("manager-a"),
        &Patch::Apply(service(80)),
    )
    .await?;
    let second = api
        .patch(
            "s",
            &PatchParams::apply("manager-b"),
            &Patch::Apply(service(443)),
        )
        .await;
    let ports: Vec<i32> = api
        .get("s")
        .await?
        .spec
        .unwrap_or_default()
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.port)
        .collect();
    if cluster.is_simulated() {
        // Documented simplification: lists are atomic, so the second manager's list conflicts
        // with the first's as a whole.
        assert_eq!(second.as_ref().map_err(code).err(), Some(409), "{second:?}");
        assert_eq!(ports, [80]);
    } else {
        // `ports` is a list map keyed by port and protocol: each manager owns its entry.
        second?;
        assert_eq!(ports, [80, 443]);
    }
    cluster.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn dry_run_stores_nothing() -> TestResult {
    let cluster = Cluster::start().await?;
    let ns = namespace(&cluster, "conf-dryrun").await?;
    let api: Api<NetworkPolicy> = Api::namespaced(cluster.harness_client(), &ns);
    let obj: NetworkPolicy = serde_json::from_value(policy(&ns, "p", json!({})))?;
    api.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &obj,
    )
    .await?;
    assert!(
        api.get_opt("p").await?.is_none(),
        "dry-run create stored the object"
    );
    api.create(&PostParams::default(), &obj).await?;
    api.delete(
        "p",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await?;
    assert!(
        api.get_opt("p").await?.is_some(),
        "dry-run delete deleted the object"
    );
    cluster.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn preconditions_and_stale_updates_conflict() -> TestResult {
    let cluster = Cluster::start().await?;
    let ns = namespace(&cluster, "conf-precond").await?;
    let api: Api<NetworkPolicy> = Api::namespaced(cluster.harness_client(), &ns);
    let obj: NetworkPolicy = serde_json::from_value(policy(&ns, "p", json!({})))?;
    let created = api.create(&PostParams::default(), &obj).await?;
    let mut stale = created.clone();
    api.patch(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
    )
    .await?;
    stale.metadata.labels = Some([("y".to_string(), "1".to_string())].into());
    let err = api.replace("p", &PostParams::default(), &stale).await;
    assert_eq!(
        err.as_ref().map_err(code).err(),
        Some(409),
        "stale replace: {err:?}"
    );
    let wrong_uid = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("00000000-0000-0000-0000-000000000000".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let err = api.delete("p", &wrong_uid).await;
    assert_eq!(
        err.as_ref().map_err(code).err(),
        Some(409),
        "uid precondition: {err:?}"
    );
    cluster.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn status_subresource_and_generation() -> TestResult {
    let cluster = Cluster::start().await?;
    let api: Api<DynamicObject> = Api::all_with(
        cluster.harness_client(),
        &ApiResource::erase::<MeshBaseline>(&()),
    );
    let mb = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "conf-status"},
        "spec": {"mode": "Audit", "namespaceSelector": {"matchLabels": {"conf": "none"}}}});
    let created = api
        .patch(
            "conf-status",
            &PatchParams::apply("conformance"),
            &Patch::Apply(&mb),
        )
        .await?;
    let result = async {
        assert_eq!(created.metadata.generation, Some(1));
        let status = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
            "metadata": {"name": "conf-status"}, "status": {"managedObjects": 3}});
        let after = api
            .patch_status(
                "conf-status",
                &PatchParams::apply("conformance-status"),
                &Patch::Apply(&status),
            )
            .await?;
        assert_eq!(
            after.metadata.generation,
            Some(1),
            "a status write bumped the generation"
        );
        assert_eq!(after.data["status"]["managedObjects"], 3);
        // Status sent to the main resource is ignored; a spec change bumps the generation.
        let mut both = mb.clone();
        both["spec"]["mode"] = json!("Enforce");
        both["status"] = json!({"managedObjects": 9});
        let after = api
            .patch(
                "conf-status",
                &PatchParams::apply("conformance"),
                &Patch::Apply(&both),
            )
            .await?;
        assert_eq!(after.metadata.generation, Some(2));
        assert_eq!(after.data["status"]["managedObjects"], 3);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    }
    .await;
    api.delete("conf-status", &DeleteParams::default()).await?;
    result
}

#[tokio::test]
async fn garbage_collection_and_namespace_deletion() -> TestResult {
    let cluster = Cluster::start().await?;
    let ns = namespace(&cluster, "conf-gc").await?;
    let owners: Api<DynamicObject> = Api::all_with(
        cluster.harness_client(),
        &ApiResource::erase::<MeshBaseline>(&()),
    );
    let mb = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "conf-gc"},
        "spec": {"mode": "Audit", "namespaceSelector": {"matchLabels": {"conf": "none"}}}});
    let owner = owners
        .patch(
            "conf-gc",
            &PatchParams::apply("conformance"),
            &Patch::Apply(&mb),
        )
        .await?;
    let policies: Api<NetworkPolicy> = Api::namespaced(cluster.harness_client(), &ns);
    let mut dependent = policy(&ns, "dependent", json!({}));
    dependent["metadata"]["ownerReferences"] = json!([{"apiVersion": "meshbaseline.dev/v1alpha1",
        "kind": "MeshBaseline", "name": "conf-gc", "uid": owner.metadata.uid, "controller": true}]);
    policies
        .patch(
            "dependent",
            &PatchParams::apply("conformance"),
            &Patch::Apply(&dependent),
        )
        .await?;
    policies
        .patch(
            "plain",
            &PatchParams::apply("conformance"),
            &Patch::Apply(policy(&ns, "plain", json!({}))),
        )
        .await?;
    owners
        .delete("conf-gc", &DeleteParams::background())
        .await?;
    wait("the dependent garbage-collected", || async {
        Ok(policies.get_opt("dependent").await?.is_none())
    })
    .await?;
    assert!(
        policies.get_opt("plain").await?.is_some(),
        "an object without owner was collected"
    );
    // Deleting the namespace takes its objects along; nothing new can be created in it.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.harness_client());
    namespaces.delete(&ns, &DeleteParams::background()).await?;
    let late = policies
        .patch(
            "late",
            &PatchParams::apply("conformance"),
            &Patch::Apply(policy(&ns, "late", json!({}))),
        )
        .await;
    assert!(
        matches!(late.as_ref().map_err(code), Err(403 | 404)),
        "created in a deleted namespace: {late:?}"
    );
    wait("the namespace gone", || async {
        Ok(namespaces.get_opt(&ns).await?.is_none())
    })
    .await?;
    assert!(policies.get_opt("plain").await?.is_none());
    Ok(())
}

async fn wait<F, Fut>(what: &str, mut check: F) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, kube::Error>>,
{
    for _ in 0..300 {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("timed out after 30s waiting for {what}").into())
}
