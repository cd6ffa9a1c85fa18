//! The rest of the operator's API usage: events (kube-runtime's recorder), leases, discovery
//! and /version.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use meshbaseline_e2e::Verb;
use serde_json::json;

use super::{setup, TestResult};

#[tokio::test]
async fn event_recorder_creates_then_patches_a_series() -> TestResult {
    let sim = setup().await;
    let recorder = Recorder::new(
        sim.client()?,
        Reporter {
            controller: "meshbaseline".into(),
            instance: None,
        },
    );
    let reference = ObjectReference {
        api_version: Some("meshbaseline.dev/v1alpha1".into()),
        kind: Some("MeshBaseline".into()),
        name: Some("default".into()),
        namespace: Some("team-a".into()),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: EventType::Normal,
        reason: "DriftRepaired".into(),
        note: Some("restored".into()),
        action: "Repair".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await?;
    recorder.publish(&event, &reference).await?;
    let log = sim.requests();
    assert_eq!(
        log.count(|r| r.group == "events.k8s.io" && r.verb == Verb::Create),
        1
    );
    assert_eq!(
        log.count(|r| r.group == "events.k8s.io" && r.verb == Verb::MergePatch && r.code == 200),
        1
    );
    let stored = sim.view(|v| {
        v.list("events.k8s.io/v1", "Event")
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
    });
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["series"]["count"], 2);
    Ok(())
}

#[tokio::test]
async fn leases_get_create_replace_and_patch() -> TestResult {
    let sim = setup().await;
    let leases: Api<Lease> = Api::namespaced(sim.client()?, "default");
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "meshbaseline-leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}),
    )?;
    let created = leases.create(&PostParams::default(), &lease).await?;
    let mut renewed = created.clone();
    if let Some(spec) = renewed.spec.as_mut() {
        spec.lease_transitions = Some(1);
    }
    leases
        .replace("meshbaseline-leader", &PostParams::default(), &renewed)
        .await?;
    let stale = super::api_error(
        leases
            .replace("meshbaseline-leader", &PostParams::default(), &created)
            .await,
    );
    assert_eq!(stale.code, 409);
    let strategic = PatchParams {
        field_manager: Some("b".into()),
        ..PatchParams::default()
    };
    let patched = leases
        .patch(
            "meshbaseline-leader",
            &strategic,
            &Patch::Strategic(json!({"spec": {"holderIdentity": "b"}})),
        )
        .await?;
    let spec = patched.spec.unwrap_or_default();
    assert_eq!(
        (spec.holder_identity.as_deref(), spec.lease_transitions),
        (Some("b"), Some(1))
    );
    // An apply by another holder without force conflicts with b's update.
    let take = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "c"}});
    let conflict = super::api_error(
        leases
            .patch(
                "meshbaseline-leader",
                &PatchParams::apply("c"),
                &Patch::Apply(&take),
            )
            .await,
    );
    assert_eq!(conflict.code, 409);
    Ok(())
}

#[tokio::test]
async fn discovery_and_version() -> TestResult {
    let sim = setup().await;
    let client = sim.client()?;
    let version = client.apiserver_version().await?;
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
    let discovery = kube::Discovery::new(client).run().await?;
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for group in [
        "",
        "security.istio.io",
        "networking.istio.io",
        "meshbaseline.dev",
        "networking.k8s.io",
    ] {
        assert!(groups.iter().any(|g| g == group), "{group} in {groups:?}");
    }
    let (ar, caps) = discovery
        .resolve_gvk(&kube::core::GroupVersionKind::gvk(
            "meshbaseline.dev",
            "v1alpha1",
            "MeshBaseline",
        ))
        .expect("resolved");
    assert_eq!(
        (ar.plural.as_str(), caps.scope),
        ("meshbaselines", kube::discovery::Scope::Cluster)
    );
    Ok(())
}
