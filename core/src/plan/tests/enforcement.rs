//! What the cluster can enforce: status.enforcement and MB901–MB903.

use super::*;

fn cluster_objects() -> Vec<DesiredObject> {
    vec![
        mk_desired(
            Kind::ValidatingAdmissionPolicy,
            "",
            "meshbaseline-guard-default",
            json!({"failurePolicy": "Fail"}),
        ),
        mk_desired(
            Kind::ValidatingAdmissionPolicyBinding,
            "",
            "meshbaseline-guard-default",
            json!({"policyName": "meshbaseline-guard-default", "validationActions": ["Deny"]}),
        ),
        mk_desired(
            Kind::ClusterNetworkPolicy,
            "",
            "meshbaseline-namespaces-default",
            json!({"tier": "Admin", "priority": 100}),
        ),
        netpol("a"),
    ]
}

fn rules(s: &MeshBaselineStatus) -> Vec<&str> {
    s.findings.iter().map(|f| f.rule.as_str()).collect()
}

fn enforcement(s: &MeshBaselineStatus) -> (&str, &str, &str) {
    let e = s.enforcement.as_ref().unwrap();
    (&e.admission_guard, &e.tenant_objects, &e.admin_tier)
}

#[test]
fn apis_the_cluster_does_not_serve_are_findings_not_degraded() {
    let mut case = Case::new(cluster_objects());
    case.missing = BTreeSet::from([
        Kind::ValidatingAdmissionPolicy,
        Kind::ValidatingAdmissionPolicyBinding,
        Kind::ClusterNetworkPolicy,
    ]);
    let p = case.run();
    // Only the NetworkPolicy is written; the rest waits for its API.
    let keys: Vec<&ObjectKey> = p.applies.iter().map(|a| &a.key).collect();
    assert_eq!(keys, [&netpol("a").key]);
    let s = p.status.unwrap();
    assert_eq!(rules(&s), ["MB901", "MB903"]);
    assert_eq!(
        enforcement(&s),
        ("Unavailable", "Unavailable", "Unavailable")
    );
    assert_eq!(cond(&s, DEGRADED).reason, "AsExpected");
    assert_eq!(
        s.managed_objects, 1,
        "objects that cannot be written are not managed"
    );
    // Announced once, like any finding.
    assert_eq!(
        p.events
            .iter()
            .filter(|e| e.reason == Reason::Finding)
            .count(),
        2
    );
}

/// The Ready message counts what is written, as `managedObjects` does, and says what is not.
#[test]
fn ready_counts_only_objects_the_cluster_can_store() {
    let mut case = Case::new(cluster_objects());
    case.missing = BTreeSet::from([Kind::ClusterNetworkPolicy]);
    let s = case.run().status.unwrap();
    assert_eq!(s.managed_objects, 3);
    assert_eq!(
        cond(&s, READY).message,
        "3 objects enforced in 2 namespaces; 1 object not written: the cluster does not serve ClusterNetworkPolicy"
    );
    let s = Case::new(cluster_objects()).run().status.unwrap();
    assert_eq!(s.managed_objects, 4);
    assert_eq!(
        cond(&s, READY).message,
        "4 objects enforced in 2 namespaces"
    );
}

#[test]
fn served_apis_are_active_and_a_removed_guard_is_mb902_until_restored() {
    let mut case = Case::new(cluster_objects());
    let p = case.run();
    let s = p.status.clone().unwrap();
    assert!(rules(&s).is_empty(), "{:?}", rules(&s));
    assert_eq!(enforcement(&s), ("Active", "Warn", "Active"));
    // Converged, then a cluster admin deletes the binding and edits the policy.
    case.converge(&p);
    let objects = case.compiled.objects.clone();
    case.observed = observed_of(&objects.iter().collect::<Vec<_>>());
    let binding = objects[1].key.clone();
    case.observed.remove(&binding);
    let p = case.run();
    assert!(p.applies.iter().any(|a| a.key == binding && a.repair));
    let s = p.status.clone().unwrap();
    assert_eq!(rules(&s), ["MB902"]);
    assert!(
        s.findings[0].message.contains("is absent"),
        "{}",
        s.findings[0].message
    );
    // Restored: the finding goes.
    case.converge(&p);
    case.observed = observed_of(&objects.iter().collect::<Vec<_>>());
    let s = case
        .run()
        .status
        .unwrap_or_else(|| case.previous.clone().unwrap());
    assert!(rules(&s).is_empty(), "{:?}", rules(&s));
}

#[test]
fn a_spec_change_of_a_policy_is_no_mb902() {
    let mut case = Case::new(cluster_objects());
    let p = case.run();
    case.converge(&p);
    case.observed = observed_of(&case.compiled.objects.iter().collect::<Vec<_>>());
    // Warn instead of Deny: the binding changes because the spec did, not because of tampering.
    let mut objects = cluster_objects();
    objects[1] = mk_desired(
        Kind::ValidatingAdmissionPolicyBinding,
        "",
        "meshbaseline-guard-default",
        json!({"policyName": "meshbaseline-guard-default", "validationActions": ["Warn"]}),
    );
    case.compiled = compiled(objects);
    let p = case.run();
    assert_eq!(p.applies.len(), 1);
    assert!(!p.applies[0].repair);
    let s = p.status.unwrap_or_else(|| case.previous.clone().unwrap());
    assert!(rules(&s).is_empty());
}

#[test]
fn audit_mode_enforces_nothing_but_still_says_what_the_cluster_lacks() {
    let mut case = Case::new(cluster_objects());
    case.baseline = mk_baseline("default", json!({"mode": "Audit"}), "2026-01-01T00:00:00Z");
    case.missing = BTreeSet::from([Kind::ClusterNetworkPolicy]);
    let s = case.run().status.unwrap();
    assert_eq!(enforcement(&s), ("Disabled", "Disabled", "Disabled"));
    assert_eq!(rules(&s), ["MB903"]);
}
