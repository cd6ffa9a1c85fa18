use super::*;

fn replica(name: &str, ns: &str) -> PodInfo {
    mk_running_pod(ns, name, &["app"])
}

#[test]
fn replicas_share_one_shape_and_unused_shapes_are_forgotten() {
    let mut shapes = PodShapes::default();
    let a = replica("a", "shop").interned(&mut shapes);
    let b = replica("b", "shop").interned(&mut shapes);
    assert!(Arc::ptr_eq(&a.shape, &b.shape));
    assert_eq!((&*a.name, &*b.namespace), ("a", "shop"));
    // The same workload in another namespace has the same shape too.
    let elsewhere = replica("a", "bank").interned(&mut shapes);
    assert!(Arc::ptr_eq(&a.shape, &elsewhere.shape));
    assert_eq!((&*elsewhere.namespace, &*a.namespace), ("bank", "shop"));
    // A change of one pod's shape leaves the other's alone.
    let mut c = b.clone();
    c.phase = Some("Succeeded".into());
    assert_eq!(b.phase.as_deref(), Some("Running"));
    assert_eq!(&*c.name, "b");
    // Shapes no pod holds go at the next sweep (when the set has doubled).
    drop((a, b, c, elsewhere));
    let live: Vec<PodInfo> = (0..2_000)
        .map(|i| mk_running_pod("shop", "p", &[&format!("c-{i}")]).interned(&mut shapes))
        .collect();
    assert!(shapes.len() <= 2 * live.len());
    assert!(!shapes.set.iter().any(|s| s.containers[0].name == "app"));
}

fn ns(labels: &[(&str, &str)]) -> NamespaceInfo {
    NamespaceInfo {
        name: "shop".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        terminating: false,
    }
}

#[test]
fn only_namespace_changes_that_can_change_a_result_matter() {
    let mb: crate::api::MeshBaseline = serde_json::from_value(serde_json::json!({
        "apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "b"},
        "spec": {"namespaceSelector": {"matchLabels": {"mesh": "on"}}},
    }))
    .unwrap();
    let b = [Baseline::try_from(&mb).unwrap()];
    let base = ns(&[("mesh", "on"), ("istio-injection", "enabled")]);
    let matters =
        |new: &NamespaceInfo| namespace_change_matters("shop", Some(&base), Some(new), &b);
    // Bookkeeping labels: nothing to do.
    assert!(!matters(&ns(&[
        ("mesh", "on"),
        ("istio-injection", "enabled"),
        ("cost-center", "cc-1")
    ])));
    // Selection, the data plane and termination: everything for that namespace.
    assert!(matters(&ns(&[
        ("mesh", "off"),
        ("istio-injection", "enabled")
    ])));
    assert!(matters(&ns(&[("mesh", "on")])));
    assert!(matters(&ns(&[
        ("mesh", "on"),
        ("istio-injection", "enabled"),
        ("istio.io/use-waypoint", "w")
    ])));
    let mut terminating = base.clone();
    terminating.terminating = true;
    assert!(matters(&terminating));
    // Created or deleted.
    assert!(namespace_change_matters("shop", None, Some(&base), &b));
    assert!(namespace_change_matters("shop", Some(&base), None, &b));
}

/// The controller's pod projection keeps what decides the data plane apart from the labels
/// workload selectors read, and drops the labels that differ between replicas.
#[test]
fn pods_keep_only_data_plane_labels_and_mesh_annotations() {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "p", "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "abc",
                "statefulset.kubernetes.io/pod-name": "web-0",
                "istio.io/dataplane-mode": "none", "sidecar.istio.io/inject": "false",
                "istio.io/use-waypoint": "none", "gateway.istio.io/managed": "istio.io-mesh-controller"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "now",
                "ambient.istio.io/redirection": "enabled",
                "ambient.istio.io/bypass-inbound-capture": "true",
                "status.sidecar.istio.io/port": "15020",
                "traffic.sidecar.istio.io/excludeInboundPorts": "15020"}
        },
        "spec": {"containers": [{"name": "web", "ports": [
            {"containerPort": 8080, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}]}]},
        "status": {"phase": "Running"}
    }))
    .unwrap();
    let info = PodInfo::from_pod(&pod);
    assert_eq!(
        info.app_labels.keys().collect::<Vec<_>>(),
        ["app", "pod-template-hash"]
    );
    assert_eq!(
        info.selector_labels()
            .get("sidecar.istio.io/inject")
            .map(String::as_str),
        Some("false")
    );
    assert_eq!(
        info.ports
            .iter()
            .map(|p| (p.number, p.protocol.as_str(), p.name.as_deref()))
            .collect::<Vec<_>>(),
        [(53, "UDP", None), (8080, "TCP", Some("http"))]
    );
    assert_eq!(
        info.labels.keys().collect::<Vec<_>>(),
        [
            "gateway.istio.io/managed",
            "istio.io/dataplane-mode",
            "istio.io/use-waypoint",
            "sidecar.istio.io/inject"
        ]
    );
    assert_eq!(
        info.annotations.keys().collect::<Vec<_>>(),
        [
            "ambient.istio.io/bypass-inbound-capture",
            "ambient.istio.io/redirection",
            "status.sidecar.istio.io/port",
            "traffic.sidecar.istio.io/excludeInboundPorts"
        ]
    );
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "s", "namespace": "shop", "labels": {"istio.io/use-waypoint": "none"}}
    }))
    .unwrap();
    assert_eq!(
        ServiceInfo::from(&svc).use_waypoint.as_deref(),
        Some("none")
    );
}
