//! Audit mode with `audit.dryRunPolicies`: only the AuthorizationPolicies are written, as
//! dry-run policies; Enforce replaces them with enforcing ones; neither is ever taken for the
//! other.

use super::*;
use crate::compile::compile;
use crate::object::DRY_RUN_ANNOTATION;

/// The AuthorizationPolicies compiled below: the plaintext DENY of `shop`, the root deny rule
/// and its twin for waypoints.
const POLICIES: usize = 3;

fn baseline(mode: &str, dry_run: bool) -> Baseline {
    let mut b = mk_baseline(
        "default",
        json!({"mode": mode, "audit": {"dryRunPolicies": dry_run},
               "authorization": {"denyRules": [{"name": "sandbox", "from": [{"namespaces": ["sandbox"]}]}]},
               "network": {"egress": {"registryOnly": true}}}),
        "2026-01-01T00:00:00Z",
    );
    b.uid = Some(UID.into());
    b
}

fn case(mode: &str, dry_run: bool) -> Case {
    let b = baseline(mode, dry_run);
    let mut inventory = Inventory::default();
    inventory.namespaces.insert(
        "shop".into(),
        NamespaceInfo {
            name: "shop".into(),
            labels: BTreeMap::new().into(),
            terminating: false,
        },
    );
    let mut c = Case::new(Vec::new());
    c.compiled = compile(&b, &inventory, &Scope::default(), c.now);
    c.inventory = inventory;
    c.baseline = b;
    c
}

fn dry_run_of(body: &Value) -> Option<&str> {
    body.pointer("/metadata/annotations")
        .and_then(|a| a.get(DRY_RUN_ANNOTATION))
        .and_then(Value::as_str)
}

#[test]
fn a_dry_run_writes_only_the_authorization_policies_as_dry_runs() {
    let c = case("Audit", true);
    let p = c.run();
    let kinds: BTreeSet<Kind> = p.applies.iter().map(|a| a.key.kind).collect();
    assert_eq!(kinds, BTreeSet::from([Kind::AuthorizationPolicy]));
    // The namespace's plaintext DENY, the root deny rule and its waypoint twin.
    assert_eq!(p.applies.len(), POLICIES, "{:?}", p.applies);
    for a in &p.applies {
        assert_eq!(dry_run_of(&a.manifest()), Some("true"), "{}", a.key);
    }
    assert!(p.deletes.is_empty() && p.reverts.is_empty());
    let s = p.status.unwrap();
    let ready = cond(&s, READY);
    assert_eq!(ready.reason, "AuditDryRun");
    assert!(
        ready
            .message
            .contains("3 AuthorizationPolicies written as dry-run"),
        "{}",
        ready.message
    );
    assert_eq!(s.managed_objects as usize, POLICIES);
}

#[test]
fn plain_audit_writes_nothing_and_enforce_writes_enforcing_policies() {
    assert!(case("Audit", false).run().applies.is_empty());
    let p = case("Enforce", true).run();
    let policies: Vec<&Apply> = p
        .applies
        .iter()
        .filter(|a| a.key.kind == Kind::AuthorizationPolicy)
        .collect();
    assert_eq!(policies.len(), POLICIES);
    for a in policies {
        assert_eq!(dry_run_of(&a.manifest()), Some("false"), "{}", a.key);
    }
}

#[test]
fn enforce_replaces_the_dry_run_objects_and_a_dry_run_replaces_enforcing_ones() {
    let dry = case("Audit", true);
    let written: Vec<DesiredObject> = dry.compiled.objects.clone();
    let mut enforce = case("Enforce", false);
    enforce.observed = written
        .iter()
        .filter(|o| o.key.kind == Kind::AuthorizationPolicy)
        .map(|o| (o.key.clone(), mk_observed(o)))
        .collect();
    let p = enforce.run();
    let replaced: Vec<&Apply> = p
        .applies
        .iter()
        .filter(|a| a.key.kind == Kind::AuthorizationPolicy)
        .collect();
    assert_eq!(
        replaced.len(),
        POLICIES,
        "the dry-run objects are not taken as enforcing"
    );
    for a in replaced {
        assert!(a.live.is_some(), "{} is replaced, not created", a.key);
        assert_eq!(dry_run_of(&a.manifest()), Some("false"));
    }
    // The other way round: enforcing objects are not a dry run either.
    let mut back = case("Audit", true);
    back.observed = enforce
        .compiled
        .objects
        .iter()
        .map(|o| (o.key.clone(), mk_observed(o)))
        .collect();
    let p = back.run();
    assert_eq!(p.applies.len(), POLICIES);
    assert!(p
        .applies
        .iter()
        .all(|a| dry_run_of(&a.manifest()) == Some("true")));
}

#[test]
fn a_dry_run_converges_to_no_writes() {
    let mut c = case("Audit", true);
    let first = c.run();
    c.converge(&first);
    c.observed = first
        .applies
        .iter()
        .map(|a| (a.key.clone(), mk_observed(&a.object)))
        .collect();
    let second = c.run();
    assert!(second.applies.is_empty(), "{:?}", second.applies);
    assert_eq!(second.status, None);
}

#[test]
fn a_tenant_keeps_its_annotations_and_loses_a_dry_run_on_an_enforcing_policy() {
    let c = case("Enforce", false);
    let ap = c
        .compiled
        .objects
        .iter()
        .find(|o| o.key.kind == Kind::AuthorizationPolicy && o.key.namespace == "shop")
        .unwrap()
        .clone();
    let mut m = mk_manifest(&ap);
    m["metadata"]["annotations"] = json!({DRY_RUN_ANNOTATION: "true", "team": "shop"});
    let mut c = c;
    c.observed = c
        .compiled
        .objects
        .iter()
        .map(|o| (o.key.clone(), mk_observed(o)))
        .collect();
    c.observed
        .insert(ap.key.clone(), mk_observed_raw(m, Some(UID)));
    let p = c.run();
    assert_eq!(p.applies.len(), 1);
    let body = p.applies[0].manifest();
    assert_eq!(dry_run_of(&body), Some("false"));
    assert_eq!(body["metadata"]["annotations"]["team"], "shop");
}
