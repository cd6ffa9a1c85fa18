//! `skips_ours` is a promise the controller relies on (it keeps no typed copy of such objects):
//! leaving the operator's own objects of those kinds out of the inventory changes no finding.

use std::sync::Arc;

use super::*;
use crate::audit::{audit_in_scope, skips_ours};
use crate::compile::{compile, Scope};
use crate::object::{DesiredObject, Kind};

/// `d` as the API server would return it, into the inventory.
fn add(inv: &mut Inventory, d: &DesiredObject) {
    let m = d.manifest();
    match d.key.kind {
        Kind::AuthorizationPolicy => inv
            .authorization_policies
            .push(Arc::new(serde_json::from_value(m).unwrap())),
        Kind::NetworkPolicy => inv
            .network_policies
            .push(Arc::new(serde_json::from_value(m).unwrap())),
        Kind::DestinationRule => inv
            .destination_rules
            .push(Arc::new(serde_json::from_value(m).unwrap())),
        Kind::PeerAuthentication => inv
            .peer_authentications
            .push(Arc::new(serde_json::from_value(m).unwrap())),
        Kind::Sidecar => inv
            .sidecars
            .push(Arc::new(serde_json::from_value(m).unwrap())),
        _ => {}
    }
}

#[test]
fn leaving_out_what_the_audit_skips_of_ours_changes_no_finding() {
    let mut i = with_namespaces(
        inv(),
        vec![
            mk_ns(ROOT, &[]),
            mk_ns("payments", &[("istio-injection", "enabled")]),
            mk_ns(
                "shop",
                &[
                    ("istio.io/dataplane-mode", "ambient"),
                    ("istio.io/use-waypoint", "wp"),
                ],
            ),
        ],
    );
    let mut istiod = mk_pod(ROOT, "istiod-1");
    istiod.containers = vec![mk_container("discovery")];
    i.pods = vec![
        Arc::new(istiod),
        Arc::new(mk_pod("payments", "web")),
        Arc::new(mk_waypoint_pod("shop", "wp-1", "wp", "wp")),
    ];
    // A tenant's ALLOW policy in the ambient namespace: the waypoint rules read the namespace's
    // policies, ours included unless the baseline generates its own.
    i.authorization_policies = vec![Arc::new(mk_ap(
        "shop",
        "allow-all",
        json!({"action": "ALLOW", "rules": [{}]}),
    ))];
    for b in [
        strict(),
        mk_baseline(json!({"authorization": {"waypointOnly": true}})),
    ] {
        let scope = Scope::default();
        let desired = compile(&b, &i, &scope, now());
        if b.waypoint_only {
            assert!(desired
                .objects
                .iter()
                .any(|d| d.key.name == "meshbaseline-waypoint-only"));
        }
        let mut with_ours = i.clone();
        let mut without = i.clone();
        for d in &desired.objects {
            add(&mut with_ours, d);
            if !skips_ours(d.key.kind, &d.key.name) {
                add(&mut without, d);
            }
        }
        let with = audit_in_scope(&b, &with_ours, &desired, &scope, now());
        let left_out = audit_in_scope(&b, &without, &desired, &scope, now());
        assert_eq!(with, left_out);
        // The objects that are not skipped do count: without them, istiod is reported open.
        assert!(!hits(&with, Rule::MB701)
            .iter()
            .any(|h| h.contains("istiod")));
    }
}
