//! MB305: waypoints whose identity cannot be resolved.

use std::sync::Arc;

use super::*;

fn shop(waypoint_labels: &[(&str, &str)]) -> Inventory {
    let mut labels = vec![("istio.io/dataplane-mode", "ambient")];
    labels.extend_from_slice(waypoint_labels);
    with_namespaces(inv(), vec![mk_ns("shop", &labels), mk_ns("infra", &[])])
}

fn waypoint_only() -> Baseline {
    mk_baseline(json!({"authorization": {"waypointOnly": true}}))
}

/// Istio's `gatewayToWaypointTransform` finds a waypoint's ServiceAccounts on its pods; with
/// none, its `implicitWaypointPolicy` is not generated either.
#[test]
fn mb305_fires_until_a_pod_of_the_waypoint_is_known() {
    let mut i = shop(&[("istio.io/use-waypoint", "waypoint")]);
    let f = run(&waypoint_only(), &i);
    assert_eq!(hits(&f, Rule::MB305), vec!["shop"]);
    assert!(f[0].message.contains("shop/waypoint"), "{}", f[0].message);
    // A pod of another Gateway, or of this name in another namespace, is not it.
    i.pods = vec![
        Arc::new(mk_waypoint_pod("shop", "x", "other", "other")),
        Arc::new(mk_waypoint_pod("infra", "y", "waypoint", "waypoint")),
    ];
    assert_eq!(hits(&run(&waypoint_only(), &i), Rule::MB305), vec!["shop"]);
    i.pods.push(Arc::new(mk_waypoint_pod(
        "shop", "z", "waypoint", "waypoint",
    )));
    assert!(hits(&run(&waypoint_only(), &i), Rule::MB305).is_empty());
    // The waypoint in another namespace.
    let mut j = shop(&[
        ("istio.io/use-waypoint", "waypoint"),
        ("istio.io/use-waypoint-namespace", "infra"),
    ]);
    assert_eq!(hits(&run(&waypoint_only(), &j), Rule::MB305), vec!["shop"]);
    j.pods = vec![Arc::new(mk_waypoint_pod(
        "infra", "y", "waypoint", "waypoint",
    ))];
    assert!(hits(&run(&waypoint_only(), &j), Rule::MB305).is_empty());
}

#[test]
fn mb305_near_misses_are_silent() {
    let i = shop(&[("istio.io/use-waypoint", "waypoint")]);
    assert!(
        hits(&run(&strict(), &i), Rule::MB305).is_empty(),
        "waypointOnly off"
    );
    let exempt = mk_baseline(json!({"authorization": {"waypointOnly": true},
        "exemptions": [{"namespace": "shop", "controls": ["authorization"], "reason": "migration, OPS-1", "expires": ACTIVE}]}));
    assert!(hits(&run(&exempt, &i), Rule::MB305).is_empty());
    for labels in [vec![], vec![("istio.io/use-waypoint", "none")]] {
        let j = shop(&labels);
        assert!(hits(&run(&waypoint_only(), &j), Rule::MB305).is_empty());
    }
}
