//! Ambient namespaces through the real controller: the namespace's labels choose the generated
//! objects, and pod labels and annotations reach the audit.

use serde_json::json;

use crate::fixtures::*;

fn key(kind: &str, ns: &str, name: &str) -> (String, String, String) {
    (kind.to_string(), ns.to_string(), name.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambient_namespace_objects_follow_its_labels() -> TestResult {
    let env = Env::start("ambient").await?;
    let a = env.ns("a");
    let mut ns = mk_namespace(&a, Some("ambient"));
    ns["metadata"]["labels"]["istio.io/dataplane-mode"] = json!("ambient");
    ns["metadata"]["labels"]["istio.io/use-waypoint"] = json!("waypoint");
    env.apply(&ns).await?;
    let spec = json!({"authorization": {"waypointOnly": true}});
    env.apply(&mk_baseline("ambient", "ambient", spec)).await?;
    // No pod of the waypoint yet: its identity is unknown, nothing is guessed (MB305).
    let objects = env.wait_converged("ambient").await?;
    assert!(!objects.contains_key(&key(
        "AuthorizationPolicy",
        &a,
        "meshbaseline-waypoint-only"
    )));
    // (Degraded for the fixture's HTTP deny rule too, which comes first.)
    env.wait_condition("ambient", "Degraded", "True", |_, message| {
        message.contains("MB305: Namespace") && message.contains("cannot be resolved")
    })
    .await?;
    // The waypoint's pod, as Istio deploys it: its ServiceAccount becomes the only identity
    // that may reach the namespace's pods (a pod event alone recompiles). The namespace's
    // `default` ServiceAccount: the simulator serves no ServiceAccounts.
    let waypoint = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "waypoint-1", "namespace": a, "labels": {
            "gateway.networking.k8s.io/gateway-name": "waypoint",
            "gateway.networking.k8s.io/gateway-class-name": "istio-waypoint",
            "gateway.istio.io/managed": "istio.io-mesh-controller",
            "istio.io/dataplane-mode": "none",
            "sidecar.istio.io/inject": "false"}},
        "spec": {"serviceAccountName": "default",
            "containers": [{"name": "istio-proxy", "image": "example/proxyv2:1"}]},
    });
    env.apply(&waypoint).await?;
    let objects = env.wait_converged("ambient").await?;
    let wp = &objects[&key("AuthorizationPolicy", &a, "meshbaseline-waypoint-only")];
    let principal = format!("cluster.local/ns/{a}/sa/default");
    assert!(wp.to_string().contains(&principal), "{wp}");
    env.wait_condition("ambient", "Degraded", "True", |_, message| {
        !message.contains("MB305")
    })
    .await?;
    assert!(objects.contains_key(&key(
        "AuthorizationPolicy",
        &a,
        "meshbaseline-deny-plaintext"
    )));
    assert!(!objects.contains_key(&key("DestinationRule", &a, "meshbaseline-mtls")));
    let np = &objects[&key("NetworkPolicy", &a, "meshbaseline-baseline")];
    assert!(np.to_string().contains("15008"), "{np}");

    // A pod that opts out of ambient is reported from the pod cache's labels.
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "batch", "namespace": a,
            "labels": {"app": "batch", "istio.io/dataplane-mode": "none"}},
        "spec": {"containers": [{"name": "batch", "image": "example/batch:1"}]},
    });
    env.apply(&pod).await?;
    env.cluster
        .wait_for("finding MB507 on the opted-out pod", WAIT, || async {
            let mb = env.baseline("ambient").await?;
            Ok(mb
                .filter(|mb| has_finding(mb, "MB507", &a, "batch"))
                .map(|_| ()))
        })
        .await?;

    // Switching the namespace to sidecars brings the DestinationRule back and drops the
    // waypoint-only policy.
    env.cluster
        .merge_patch(
            "v1",
            "Namespace",
            None,
            &a,
            &json!({"metadata": {"labels": {"istio.io/dataplane-mode": null, "istio-injection": "enabled"}}}),
        )
        .await?;
    let objects = env.wait_converged("ambient").await?;
    assert!(objects.contains_key(&key("DestinationRule", &a, "meshbaseline-mtls")));
    assert!(!objects.contains_key(&key(
        "AuthorizationPolicy",
        &a,
        "meshbaseline-waypoint-only"
    )));
    env.wait_condition("ambient", "Degraded", "False", |reason, _| {
        reason == "AsExpected"
    })
    .await?;
    env.finish().await
}
