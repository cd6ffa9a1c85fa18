//! Garbage collection through ownerReferences, namespace deletion, finalizers.

use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{json, Value};

use super::{create, dynamic, mesh_baseline, network_policy, peer_auth, setup, TestResult};

fn owner(name: &str, uid: &str) -> Value {
    json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline", "name": name, "uid": uid, "controller": true})
}

fn np(name: &str, owners: Vec<Value>) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": "team-a", "ownerReferences": owners}, "spec": {"podSelector": {}}})
}

#[tokio::test]
async fn deleting_an_owner_collects_dependents_by_uid() -> TestResult {
    let sim = setup().await;
    let client = sim.client()?;
    let baselines = dynamic(&client, &mesh_baseline(), None);
    let nps = dynamic(&client, &network_policy(), Some("team-a"));
    let mb = |name: &str| json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline", "metadata": {"name": name}, "spec": {}});
    let one = create(&baselines, mb("one")).await;
    let two = create(&baselines, mb("two")).await;
    let (uid1, uid2) = (
        one.metadata.uid.unwrap_or_default(),
        two.metadata.uid.unwrap_or_default(),
    );

    let only_one = create(&nps, np("only-one", vec![owner("one", &uid1)])).await;
    let chained_owner = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "name": "only-one",
                               "uid": only_one.metadata.uid.clone().unwrap_or_default()});
    create(&nps, np("chained", vec![chained_owner])).await;
    create(
        &nps,
        np("both", vec![owner("one", &uid1), owner("two", &uid2)]),
    )
    .await;
    // Same name as the owner but another uid: not a dependent.
    create(
        &nps,
        np(
            "stale-uid",
            vec![owner("two", &uid2), owner("one", "not-the-uid")],
        ),
    )
    .await;

    baselines.delete("one", &DeleteParams::default()).await?;
    assert!(nps.get_opt("only-one").await?.is_none());
    assert!(
        nps.get_opt("chained").await?.is_none(),
        "cascades through dependents"
    );
    let both = nps.get("both").await?;
    let refs = both.metadata.owner_references.unwrap_or_default();
    assert_eq!(
        refs.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>(),
        [uid2.as_str()],
        "the dangling reference is removed"
    );
    assert!(nps.get_opt("stale-uid").await?.is_some());

    // Orphan propagation keeps dependents and strips the reference.
    baselines.delete("two", &DeleteParams::orphan()).await?;
    let orphan = nps.get("both").await?;
    assert!(orphan
        .metadata
        .owner_references
        .unwrap_or_default()
        .is_empty());
    assert!(nps.get_opt("stale-uid").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn objects_whose_owners_do_not_exist_are_collected() -> TestResult {
    let sim = setup().await;
    let nps = dynamic(&sim.client()?, &network_policy(), Some("team-a"));
    create(
        &nps,
        np(
            "dangling",
            vec![owner("gone", "5e1a0000-0000-4000-8000-ffffffffffff")],
        ),
    )
    .await;
    assert!(nps.get_opt("dangling").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_objects() -> TestResult {
    let sim = setup().await;
    let client = sim.client()?;
    let pas = dynamic(&client, &peer_auth(), Some("team-a"));
    let pa = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "p"}, "spec": {}});
    create(&pas, pa.clone()).await;
    create(&dynamic(&client, &peer_auth(), Some("team-b")), pa).await;
    let namespaces = dynamic(
        &client,
        &super::resource("", "v1", "Namespace", "namespaces"),
        None,
    );
    namespaces
        .delete("team-a", &DeleteParams::default())
        .await?;
    assert!(pas.get_opt("p").await?.is_none());
    assert!(dynamic(&client, &peer_auth(), Some("team-b"))
        .get_opt("p")
        .await?
        .is_some());
    // Writing into a namespace that does not exist is NotFound.
    let status = super::api_error(pas.patch("p", &PatchParams::apply("x"), &Patch::Apply(json!({
        "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "p"}}))).await);
    assert_eq!(status.code, 404);
    Ok(())
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() -> TestResult {
    let sim = setup().await;
    let nps = dynamic(&sim.client()?, &network_policy(), Some("team-a"));
    let mut body = np("held", vec![]);
    body["metadata"]["finalizers"] = json!(["example.com/hold"]);
    create(&nps, body).await;
    nps.delete("held", &DeleteParams::default()).await?;
    let held = nps.get("held").await?;
    assert!(held.metadata.deletion_timestamp.is_some());
    nps.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert!(nps.get_opt("held").await?.is_none());
    Ok(())
}
