//! CRD-gated kinds: served only while their CustomResourceDefinition exists.

use futures::TryStreamExt;
use kube::api::{ListParams, WatchParams};
use meshbaseline_e2e::sim::istio_crds;
use meshbaseline_e2e::Simulator;
use serde_json::json;

use super::{api_error, create, dynamic, peer_auth, resource, setup, TestResult};

#[tokio::test]
async fn uninstalled_kinds_answer_404_with_a_status() -> TestResult {
    let sim = Simulator::start().await?;
    let pas = dynamic(&sim.client()?, &peer_auth(), Some("default"));
    let status = api_error(pas.list(&ListParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    let unknown = dynamic(
        &sim.client()?,
        &resource("example.com", "v1", "Thing", "things"),
        None,
    );
    assert_eq!(
        api_error(unknown.list(&ListParams::default()).await).code,
        404
    );

    for crd in istio_crds() {
        sim.install_crd(&crd)?;
    }
    let pa = json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "p"}, "spec": {}});
    create(&pas, pa.clone()).await;
    let rv = sim.resource_version().to_string();
    let watch = pas.watch(&WatchParams::default(), &rv).await?;

    sim.uninstall_crd("peerauthentications.security.istio.io")?;
    assert_eq!(api_error(pas.list(&ListParams::default()).await).code, 404);
    // Open watches see the objects go and then end.
    let events: Vec<_> = watch.try_collect().await?;
    assert!(
        matches!(events.as_slice(), [kube::api::WatchEvent::Deleted(_)]),
        "{events:?}"
    );

    // Reinstalled: served again, and empty.
    sim.install_crd(&istio_crds()[0])?;
    assert!(pas.list(&ListParams::default()).await?.items.is_empty());
    Ok(())
}

#[tokio::test]
async fn other_served_versions_read_the_same_objects() -> TestResult {
    let sim = setup().await;
    let v1 = dynamic(&sim.client()?, &peer_auth(), Some("team-a"));
    create(&v1, json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "p"}, "spec": {"mtls": {"mode": "STRICT"}}})).await;
    let beta = dynamic(
        &sim.client()?,
        &resource(
            "security.istio.io",
            "v1beta1",
            "PeerAuthentication",
            "peerauthentications",
        ),
        Some("team-a"),
    );
    let read = beta.get("p").await?;
    assert_eq!(
        read.types.map(|t| t.api_version),
        Some("security.istio.io/v1beta1".to_string())
    );
    assert_eq!(read.data["spec"]["mtls"]["mode"], "STRICT");
    let missing = dynamic(
        &sim.client()?,
        &resource(
            "security.istio.io",
            "v9",
            "PeerAuthentication",
            "peerauthentications",
        ),
        Some("team-a"),
    );
    assert_eq!(api_error(missing.get("p").await).code, 404);
    Ok(())
}
