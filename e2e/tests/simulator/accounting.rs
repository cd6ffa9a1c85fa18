//! Request accounting by verb, resource (with subresource) and field manager.

use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use meshbaseline_e2e::Verb;
use serde_json::json;

use super::{dynamic, mesh_baseline, object, peer_auth, setup, TestResult};

#[tokio::test]
async fn requests_are_counted_by_verb_resource_and_manager() -> TestResult {
    let sim = setup().await;
    let client = sim.client()?;
    let pas = dynamic(&client, &peer_auth(), Some("team-a"));
    let baselines = dynamic(&client, &mesh_baseline(), None);
    let pa = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "p"}, "spec": {}});
    let mb = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline", "metadata": {"name": "b"}, "spec": {}});

    // Harness requests are not counted.
    dynamic(&sim.harness_client()?, &peer_auth(), Some("team-a"))
        .list(&ListParams::default())
        .await?;
    assert_eq!(sim.requests().records().len(), 0);

    let mark = sim.mark();
    pas.list(&ListParams::default()).await?;
    pas.patch("p", &PatchParams::apply("meshbaseline"), &Patch::Apply(&pa))
        .await?;
    pas.patch("p", &PatchParams::apply("meshbaseline"), &Patch::Apply(&pa))
        .await?;
    let edit = PatchParams {
        field_manager: Some("tenant".into()),
        ..PatchParams::default()
    };
    pas.patch(
        "p",
        &edit,
        &Patch::Merge(json!({"spec": {"mtls": {"mode": "STRICT"}}})),
    )
    .await?;
    assert!(pas.get("missing").await.is_err());
    baselines
        .create(&PostParams::default(), &object(mb))
        .await?;
    let status = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline", "status": {"managedObjects": 1}});
    baselines
        .patch_status(
            "b",
            &PatchParams::apply("meshbaseline"),
            &Patch::Apply(&status),
        )
        .await?;
    pas.delete("p", &DeleteParams::default()).await?;

    let log = sim.requests_since(mark);
    let by = log.by_verb_resource();
    let count = |v: Verb, r: &str| by.get(&(v, r.to_string())).copied().unwrap_or(0);
    assert_eq!(count(Verb::List, "peerauthentications"), 1);
    assert_eq!(count(Verb::Apply, "peerauthentications"), 2);
    assert_eq!(count(Verb::MergePatch, "peerauthentications"), 1);
    assert_eq!(count(Verb::Get, "peerauthentications"), 1);
    assert_eq!(count(Verb::Create, "meshbaselines"), 1);
    assert_eq!(count(Verb::Apply, "meshbaselines/status"), 1);
    assert_eq!(count(Verb::Delete, "peerauthentications"), 1);
    assert_eq!(log.writes_by("meshbaseline"), 3);
    assert_eq!(log.writes_by("tenant"), 1);
    assert_eq!(log.writes(), 6);
    assert_eq!(log.count(|r| r.code == 404), 1);
    assert!(log
        .records()
        .iter()
        .all(|r| r.group.is_empty() || r.group.contains('.')));
    let applied = log
        .records()
        .iter()
        .find(|r| r.verb == Verb::Apply)
        .expect("an apply");
    assert_eq!(
        (
            applied.namespace.as_str(),
            applied.name.as_str(),
            applied.code
        ),
        ("team-a", "p", 201)
    );

    // Marks are stable across resets.
    let later = sim.mark();
    sim.reset_requests();
    assert!(sim.requests().records().is_empty());
    pas.list(&ListParams::default()).await?;
    assert_eq!(
        sim.requests_since(later).by_verb().get(&Verb::List),
        Some(&1)
    );
    Ok(())
}
