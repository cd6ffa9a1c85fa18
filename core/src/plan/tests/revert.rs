//! Tenant overrides: Revert applies only the weak fields, and a manager setting them back is
//! a fight, not something to revert again.

use std::sync::Arc;

use serde_json::json;

use super::super::status::DEGRADED;
use super::super::*;
use super::builders::*;
use crate::api::istio::PeerAuthentication;
use crate::audit::Rule;

/// A baseline in Revert mode with one finding on a tenant's object.
fn revert_mode(finding: Finding) -> Case {
    let mut case = Case::new(vec![]);
    case.baseline = mk_baseline(
        "default",
        json!({"tenantOverrides": "Revert"}),
        "2026-01-01T00:00:00Z",
    );
    case.findings = vec![finding];
    case
}

fn revert_case(pa: PeerAuthentication) -> Case {
    let mut case = revert_mode(mk_finding(Rule::MB101, "PeerAuthentication", "a", "weak"));
    case.inventory.peer_authentications = vec![pa].into_iter().map(Arc::new).collect();
    case
}

#[test]
fn revert_applies_only_the_weak_fields() {
    let meta = mk_meta(
        "a",
        "weak",
        false,
        vec![managed(
            "kubectl-client-side-apply",
            "Update",
            json!({"f:spec": {"f:mtls": {"f:mode": {}}}}),
        )],
    );
    let pa = mk_pa(
        "a",
        "weak",
        "PERMISSIVE",
        &[("8080", "DISABLE"), ("9090", "STRICT")],
        meta,
    );
    let p = revert_case(pa).run();
    assert_eq!(p.reverts.len(), 1);
    assert_eq!(
        p.reverts[0].patch,
        json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "weak", "namespace": "a", "uid": "uid-a-weak",
                "annotations": {REVERTED_ANNOTATION: "spec.mtls.mode,spec.portLevelMtls.8080.mode"}},
            "spec": {"mtls": {"mode": "STRICT"}, "portLevelMtls": {"8080": {"mode": "STRICT"}}},
        })
    );
    assert_eq!(p.events[0].reason, Reason::TenantOverrideReverted);
    assert!(p.fights.is_empty());
}

#[test]
fn revert_keeps_fields_we_already_own() {
    // We reverted port 8080 before; now only spec.mtls.mode is weak (set by a new manager,
    // without our annotation because the tenant recreated the object).
    let meta = mk_meta(
        "a",
        "weak",
        false,
        vec![managed(
            "meshbaseline",
            "Apply",
            json!({"f:spec": {"f:portLevelMtls": {"f:8080": {"f:mode": {}}}}}),
        )],
    );
    let pa = mk_pa("a", "weak", "DISABLE", &[("8080", "STRICT")], meta);
    let p = revert_case(pa).run();
    assert_eq!(
        p.reverts[0].patch["spec"],
        json!({"mtls": {"mode": "STRICT"}, "portLevelMtls": {"8080": {"mode": "STRICT"}}})
    );
    assert_eq!(p.reverts[0].fields, ["spec.mtls.mode"]);
}

#[test]
fn revert_of_a_destination_rule_touches_only_tls_mode() {
    let mut case = revert_mode(mk_finding(Rule::MB201, "DestinationRule", "a", "reviews"));
    case.inventory.destination_rules = vec![Arc::new(mk_dr(
        mk_meta("a", "reviews", false, vec![]),
        "DISABLE",
    ))];
    let p = case.run();
    assert_eq!(
        p.reverts[0].patch,
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "a", "uid": "uid-a-reviews",
                "annotations": {REVERTED_ANNOTATION: "spec.trafficPolicy.tls.mode"}},
            "spec": {"trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
        })
    );
}

#[test]
fn report_mode_does_not_revert() {
    let pa = mk_pa(
        "a",
        "weak",
        "PERMISSIVE",
        &[],
        mk_meta("a", "weak", false, vec![]),
    );
    let mut case = revert_case(pa);
    case.baseline = mk_default();
    let p = case.run();
    assert!(p.reverts.is_empty());
    assert_eq!(p.events.len(), 1, "only the new finding is announced");
    assert_eq!(p.events[0].reason, Reason::Finding);
}

#[test]
fn a_manager_setting_the_field_back_is_a_fight_not_a_revert() {
    let meta = mk_meta(
        "a",
        "weak",
        true,
        vec![
            managed(
                "meshbaseline",
                "Apply",
                json!({"f:metadata": {"f:annotations": {}}}),
            ),
            managed(
                "argocd-controller",
                "Apply",
                json!({"f:spec": {"f:mtls": {"f:mode": {}}}}),
            ),
        ],
    );
    let pa = mk_pa("a", "weak", "PERMISSIVE", &[], meta);
    let mut case = revert_case(pa);
    let p = case.run();
    assert!(p.reverts.is_empty());
    assert_eq!(p.fights.len(), 1);
    assert_eq!(p.fights[0].managers, ["argocd-controller"]);
    let s = p.status.clone().unwrap();
    let degraded = cond(&s, DEGRADED);
    assert_eq!(degraded.status, "True");
    assert_eq!(degraded.reason, "TenantOverrideFight");
    assert!(
        degraded.message.contains("argocd-controller"),
        "{}",
        degraded.message
    );
    assert!(p
        .events
        .iter()
        .any(|e| e.reason == Reason::TenantOverrideFight));
    // Reported once: the next reconcile announces nothing new and writes no status.
    case.converge(&p);
    let again = case.run();
    assert!(again.events.is_empty(), "{:?}", again.events);
    assert_eq!(again.status, None);
}

#[test]
fn without_our_annotation_another_owner_is_not_a_fight() {
    let meta = mk_meta(
        "a",
        "weak",
        false,
        vec![managed(
            "argocd-controller",
            "Apply",
            json!({"f:spec": {"f:mtls": {"f:mode": {}}}}),
        )],
    );
    let p = revert_case(mk_pa("a", "weak", "PERMISSIVE", &[], meta)).run();
    assert_eq!(p.reverts.len(), 1);
    assert!(p.fights.is_empty());
}

/// One of our DestinationRules, no longer desired (a tenant's broader rule now covers the
/// namespace) and edited to DISABLE: it is deleted, and not also patched back, which would
/// race the delete.
#[test]
fn an_object_we_delete_is_not_reverted() {
    let ours = mk_desired(
        Kind::DestinationRule,
        "a",
        "meshbaseline-mtls",
        json!({"host": "*.a.svc.cluster.local", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}),
    );
    let mut case = revert_mode(mk_finding(
        Rule::MB201,
        "DestinationRule",
        "a",
        "meshbaseline-mtls",
    ));
    case.records = [ours.key.clone()].into();
    case.observed = observed_of(&[&ours]);
    case.inventory.destination_rules = vec![Arc::new(mk_dr(
        mk_meta("a", "meshbaseline-mtls", false, vec![]),
        "DISABLE",
    ))];
    let p = case.run();
    assert_eq!(p.deletes, vec![ours.key]);
    assert!(p.reverts.is_empty(), "{:?}", p.reverts);
}

/// The revert carries the uid observed: the API server refuses it (409) rather than create a
/// partial object when the tenant's is gone, or patch one made again under the same name.
/// Without a uid, nothing is reverted.
#[test]
fn a_revert_names_the_uid_it_observed() {
    let mut case = revert_mode(mk_finding(Rule::MB201, "DestinationRule", "a", "reviews"));
    let mut meta = mk_meta("a", "reviews", false, vec![]);
    case.inventory.destination_rules = vec![Arc::new(mk_dr(meta.clone(), "DISABLE"))];
    let p = case.run();
    assert_eq!(
        p.reverts[0].patch["metadata"]["uid"],
        json!("uid-a-reviews")
    );
    meta.uid = None;
    case.inventory.destination_rules = vec![Arc::new(mk_dr(meta, "DISABLE"))];
    assert!(case.run().reverts.is_empty());
}
