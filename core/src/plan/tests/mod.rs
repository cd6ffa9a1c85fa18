//! Planner tests. Desired objects, observed objects and findings are built by hand: the
//! planner is tested on its own, not through the compiler or the audit.

mod builders;
mod conditions;
mod dry_run;
mod enforcement;
mod revert;
mod tamper;

use builders::*;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{json, Value};

use super::status::{DEGRADED, DRIFT_DETECTED, INVALID, READY, RECONCILING, STALLED};
use super::*;
use crate::api::model::FieldError;
use crate::audit::{Rule, Severity};
use crate::compile::Scope;
use crate::inventory::{NamespaceInfo, Namespaces};
use crate::object::DesiredObject;
use crate::object::BASELINE_LABEL;

#[test]
fn creates_missing_objects() {
    let case = Case::new(vec![deny_ap("a"), netpol("a")]);
    let p = case.run();
    let keys: Vec<String> = p.applies.iter().map(|a| a.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "AuthorizationPolicy a/meshbaseline-deny-plaintext",
            "NetworkPolicy a/meshbaseline-baseline"
        ]
    );
    assert_eq!(p.applies[0].object.manifest(), deny_ap("a").manifest());
    assert!(
        p.applies.iter().all(|a| !a.repair),
        "a first creation is not a repair"
    );
    assert!(p.deletes.is_empty());
    let s = p.status.unwrap();
    assert_eq!(cond(&s, READY).status, "True");
    assert_eq!(s.managed_objects, 2);
    assert_eq!(s.namespaces.protected, 1);
    assert!(p.events.is_empty(), "creations are not announced");
}

#[test]
fn server_added_fields_are_not_a_difference() {
    let (ap, np) = (deny_ap("a"), netpol("a"));
    let mut case = Case::new(vec![ap.clone(), np.clone()]);
    case.observed = observed_of(&[&ap, &np]);
    let p = case.run();
    assert!(p.applies.is_empty(), "{:?}", p.applies);
    assert!(p.deletes.is_empty());
}

#[test]
fn updates_only_objects_whose_owned_fields_differ() {
    let (ap, np) = (deny_ap("a"), netpol("a"));
    let mut case = Case::new(vec![ap.clone(), np.clone()]);
    case.observed = observed_of(&[&ap, &np]);
    // A tenant edits the rule of the AuthorizationPolicy.
    let mut m = mk_manifest(&ap);
    m["spec"]["rules"][0]["from"][0]["source"]["notPrincipals"] = json!(["x"]);
    case.observed
        .insert(ap.key.clone(), mk_observed_raw(m, Some(UID)));
    let p = case.run();
    assert_eq!(p.applies.len(), 1);
    assert_eq!(p.applies[0].key, ap.key);
    // A label removed is a difference too.
    let mut case2 = Case::new(vec![np.clone()]);
    case2.observed = observed_of(&[&np]);
    let mut m = mk_manifest(&np);
    m["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove(BASELINE_LABEL);
    case2
        .observed
        .insert(np.key.clone(), mk_observed_raw(m, Some(UID)));
    assert_eq!(case2.run().applies.len(), 1);
}

#[test]
fn deletes_only_what_our_records_and_the_owner_say() {
    let (ap, np) = (deny_ap("a"), netpol("a"));
    let gone = netpol("b");
    let mut other_owner = mk_observed(&deny_ap("c"));
    other_owner.owner_uid = Some("someone-else".into());
    // Labels prove nothing either way: the baseline label of another baseline on an object
    // we wanted, owned by us, is still ours.
    let mut other_label = mk_observed(&deny_ap("d"));
    Arc::make_mut(&mut other_label.labels).insert(BASELINE_LABEL.into(), "other".into());
    // Names our uid but was never in our desired set: a tenant's forgery, left alone.
    let forged = mk_observed(&netpol("e"));
    let mut case = Case::new(vec![ap.clone(), np.clone()]);
    case.records = [&ap, &np, &gone, &deny_ap("c"), &deny_ap("d")]
        .iter()
        .map(|d| d.key.clone())
        .collect();
    case.observed = observed_of(&[&ap, &np, &gone]);
    case.observed.insert(deny_ap("c").key, other_owner);
    case.observed.insert(deny_ap("d").key, other_label);
    case.observed.insert(netpol("e").key, forged);
    let p = case.run();
    assert!(p.applies.is_empty());
    assert_eq!(p.deletes, vec![deny_ap("d").key, gone.key]);
    // Without records (just restarted) nothing is deleted.
    case.records.clear();
    assert!(case.run().deletes.is_empty());
}

#[test]
fn converged_state_plans_nothing_and_writes_no_status() {
    let (ap, np) = (deny_ap("a"), netpol("a"));
    let mut case = Case::new(vec![ap.clone(), np.clone()]);
    case.findings = vec![mk_finding(Rule::MB505, "Pod", "a", "web")];
    let first = case.run();
    assert!(first.status.is_some());
    case.converge(&first);
    case.observed = observed_of(&[&ap, &np]);
    case.now = ts("2026-06-01T01:00:00Z");
    let second = case.run();
    assert!(second.applies.is_empty() && second.deletes.is_empty() && second.reverts.is_empty());
    assert!(second.events.is_empty(), "{:?}", second.events);
    assert_eq!(second.status, None, "an unchanged status is not written");
}

#[test]
fn condition_transition_times_are_kept_until_the_status_changes() {
    let np = netpol("a");
    let mut case = Case::new(vec![np.clone()]);
    let t0 = case.now;
    let first = case.run();
    case.converge(&first);
    let s0 = case.previous.clone().unwrap();
    assert!(s0.conditions.iter().all(|c| c.last_transition_time.0 == t0));
    assert!(s0
        .conditions
        .iter()
        .all(|c| c.observed_generation == Some(1)));
    // Later, a repair flips DriftDetected only.
    case.observed = BTreeMap::new();
    case.now = ts("2026-06-02T00:00:00Z");
    let p = case.run();
    let s1 = p.status.unwrap();
    assert_eq!(cond(&s1, DRIFT_DETECTED).status, "True");
    assert_eq!(cond(&s1, DRIFT_DETECTED).last_transition_time.0, case.now);
    assert_eq!(cond(&s1, READY).last_transition_time.0, t0);
    assert_eq!(cond(&s1, INVALID).last_transition_time.0, t0);
    // The order of conditions is fixed.
    let types: Vec<&str> = s1.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        [READY, RECONCILING, DEGRADED, DRIFT_DETECTED, INVALID]
    );
}

#[test]
fn drift_is_repaired_with_an_event_and_counted() {
    let (ap, np) = (deny_ap("a"), netpol("a"));
    let mut case = Case::new(vec![ap.clone(), np.clone()]);
    let first = case.run();
    case.converge(&first);
    // A tenant deletes the NetworkPolicy.
    case.observed = observed_of(&[&ap]);
    let p = case.run();
    assert_eq!(p.applies.len(), 1);
    assert!(p.applies[0].repair);
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].reason, Reason::DriftRepaired);
    assert!(p.events[0]
        .note
        .contains("NetworkPolicy a/meshbaseline-baseline"));
    assert_eq!(p.status.unwrap().drift_repairs, 1);
}

#[test]
fn audit_mode_writes_only_status() {
    let (ap, np) = (deny_ap("a"), netpol("a"));
    let mut case = Case::new(vec![ap.clone(), np.clone()]);
    case.baseline = mk_baseline(
        "default",
        json!({"mode": "Audit", "tenantOverrides": "Revert"}),
        "2026-01-01T00:00:00Z",
    );
    case.observed = observed_of(&[&netpol("b")]);
    case.findings = vec![mk_finding(Rule::MB101, "PeerAuthentication", "a", "weak")];
    case.inventory.peer_authentications = vec![mk_pa(
        "a",
        "weak",
        "PERMISSIVE",
        &[],
        mk_meta("a", "weak", false, vec![]),
    )]
    .into_iter()
    .map(Arc::new)
    .collect();
    let p = case.run();
    assert!(p.applies.is_empty() && p.deletes.is_empty() && p.reverts.is_empty());
    assert!(p.events.is_empty());
    let s = p.status.unwrap();
    assert_eq!(cond(&s, READY).reason, "AuditOnly");
    assert_eq!(cond(&s, DRIFT_DETECTED).status, "True");
    assert_eq!(s.findings_total, 1);
    assert_eq!(s.managed_objects, 0);
}

#[test]
fn invalid_spec_keeps_the_last_good_objects() {
    let (ap, np) = (deny_ap("a"), netpol("a"));
    let mut case = Case::new(vec![ap.clone(), np.clone()]);
    let first = case.run();
    case.converge(&first);
    // Everything observed would be stale or missing under an empty compile.
    case.compiled = Compiled::default();
    case.observed = observed_of(&[&ap]);
    let err = InvalidBaseline {
        name: "default".into(),
        errors: vec![FieldError {
            path: "spec.network.egress.allowCidrs[0]".into(),
            message: "\"10.0.0/8\" is not a CIDR".into(),
        }],
    };
    let p = case.run_spec(Spec::Invalid(&err));
    assert!(p.applies.is_empty() && p.deletes.is_empty() && p.reverts.is_empty());
    let s = p.status.clone().unwrap();
    assert_eq!(cond(&s, INVALID).status, "True");
    assert!(cond(&s, INVALID)
        .message
        .contains("spec.network.egress.allowCidrs[0]"));
    assert_eq!(cond(&s, READY).status, "False");
    // kstatus (Flux) reads an invalid spec as failed through Stalled.
    assert_eq!(cond(&s, STALLED).status, "True");
    assert_eq!(s.managed_objects, 2, "counts of the last good state stay");
    assert_eq!(p.events.len(), 1);
    case.converge(&p);
    let again = case.run_spec(Spec::Invalid(&err));
    assert!(again.events.is_empty());
    assert_eq!(again.status, None);
}

#[test]
fn missing_istio_crds_still_enforce_network_policies() {
    let (ap, np) = (deny_ap("a"), netpol("a"));
    let mut case = Case::new(vec![ap, np.clone()]);
    case.missing = BTreeSet::from([Kind::AuthorizationPolicy, Kind::DestinationRule]);
    let p = case.run();
    assert_eq!(p.applies.len(), 1);
    assert_eq!(p.applies[0].key, np.key);
    let s = p.status.unwrap();
    assert_eq!(cond(&s, DEGRADED).reason, "IstioCRDsMissing");
    assert!(cond(&s, DEGRADED)
        .message
        .contains("AuthorizationPolicy, DestinationRule"));
}

#[test]
fn overlap_older_baseline_wins() {
    let older = mk_baseline(
        "older",
        json!({"namespaceSelector": {"matchLabels": {"team": "a"}}}),
        "2026-01-01T00:00:00Z",
    );
    let newer = mk_baseline("newer", json!({}), "2026-02-01T00:00:00Z");
    let other_root = mk_baseline(
        "elsewhere",
        json!({"rootNamespace": "mesh2", "namespaceSelector": {"matchLabels": {"team": "z"}}}),
        "2026-03-01T00:00:00Z",
    );
    let ns = |n: &str, team: &str| {
        (
            n.to_string(),
            NamespaceInfo {
                terminating: false,
                name: n.into(),
                labels: BTreeMap::from([("team".into(), team.into())]).into(),
            },
        )
    };
    let namespaces: Namespaces = [ns("a1", "a"), ns("a2", "a"), ns("b1", "b")]
        .into_iter()
        .collect();
    let r = resolve_overlaps(&[&newer, &older, &other_root], &namespaces);
    assert_eq!(r["older"], Resolved::default());
    assert_eq!(
        r["newer"].scope,
        Scope {
            claimed_elsewhere: BTreeSet::from(["a1".into(), "a2".into()]),
            owns_root: false,
            ..Scope::default()
        }
    );
    assert_eq!(r["newer"].lost_to, BTreeSet::from(["older".to_string()]));
    assert!(
        !r["elsewhere"].overlaps(),
        "a different root and no shared namespace"
    );
    // Same creation time: the name decides.
    let twin = mk_baseline("aaa", json!({}), "2026-02-01T00:00:00Z");
    let r = resolve_overlaps(&[&newer, &twin], &namespaces);
    assert!(!r["aaa"].overlaps());
    assert!(r["newer"].overlaps());

    // The newer one reports it.
    let mut case = Case::new(vec![netpol("b1")]);
    case.overlap = r["newer"].clone();
    let s = case.run().status.unwrap();
    let degraded = cond(&s, DEGRADED);
    assert_eq!(degraded.reason, "BaselineOverlap");
    assert!(degraded.message.contains("aaa"), "{}", degraded.message);
}

#[test]
fn findings_are_capped_sorted_and_announced_once() {
    let mut case = Case::new(vec![]);
    case.findings = (0..60)
        .map(|i| mk_finding(Rule::MB602, "Service", "a", &format!("svc{i:02}")))
        .chain([mk_finding(Rule::MB501, "Pod", "z", "root")])
        .collect();
    let p = case.run();
    let s = p.status.clone().unwrap();
    assert_eq!(s.findings.len(), status::FINDINGS_CAP);
    assert_eq!(s.findings_total, 61);
    assert_eq!(s.findings[0].rule, "MB501", "most severe first");
    assert_eq!(s.findings_by_severity["low"], 60);
    assert_eq!(s.findings_by_severity["critical"], 1);
    assert_eq!(s.findings_by_severity["high"], 0);
    // 20 for namespace a, and z's own finding is not crowded out by a's flood.
    assert_eq!(p.events.len(), MAX_FINDING_EVENTS + 1);
    assert!(p.events.iter().any(|e| e.note.starts_with("MB501")));
    assert_eq!(Severity::Critical.as_str(), s.findings[0].severity);
    case.converge(&p);
    case.findings
        .push(mk_finding(Rule::MB101, "PeerAuthentication", "a", "new"));
    // Namespace a's budget is spent for this window: the new finding is in the status only.
    let p2 = case.run();
    assert!(p2.events.is_empty(), "{:?}", p2.events);
    assert_eq!(p2.status.as_ref().unwrap().findings_total, 62);
    case.converge(&p2);
    // A new one after the window is announced; none of the old ones is announced again.
    case.findings
        .push(mk_finding(Rule::MB101, "PeerAuthentication", "a", "newer"));
    case.now += EVENT_WINDOW;
    let p3 = case.run();
    let notes: Vec<&str> = p3.events.iter().map(|e| e.note.as_str()).collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with("MB101") && notes[0].contains("newer"),
        "{notes:?}"
    );
}

/// One budget for "Finding" events: per namespace and window across plans, and per plan in
/// all.
#[test]
fn finding_events_have_a_budget_per_namespace_and_window() {
    let mut case = Case::new(vec![]);
    let t0 = case.now;
    let mut sent = 0;
    for round in 0..5 {
        let batch =
            (0..15).map(|i| mk_finding(Rule::MB602, "Service", "flood", &format!("s{round}-{i}")));
        case.findings.extend(batch);
        case.now = t0 + jiff::SignedDuration::from_secs(round);
        let p = case.run();
        sent += p.events.len();
        case.converge(&p);
    }
    assert_eq!(sent, MAX_FINDING_EVENTS);
    // Another tenant's namespace is not starved by the flood.
    case.findings
        .push(mk_finding(Rule::MB602, "Service", "payments", "s"));
    let p = case.run();
    assert_eq!(p.events.len(), 1, "own budget");
    case.converge(&p);
    case.findings
        .push(mk_finding(Rule::MB602, "Service", "flood", "late"));
    case.now = t0 + EVENT_WINDOW;
    assert_eq!(case.run().events.len(), 1, "a new window");
    // At most this many per plan, whatever the namespaces.
    let mut case = Case::new(vec![]);
    case.findings = (0..300)
        .map(|i| mk_finding(Rule::MB602, "Service", &format!("ns{i}"), "s"))
        .collect();
    assert_eq!(case.run().events.len(), MAX_FINDING_EVENTS_TOTAL);
}

#[test]
fn fast_path_compares_only_the_changed_keys() {
    let (ap, np, stale) = (deny_ap("a"), netpol("a"), netpol("z"));
    let mut case = Case::new(vec![ap.clone(), np.clone()]);
    case.observed = observed_of(&[&stale]);
    case.records = BTreeSet::from([stale.key.clone()]);
    // Both desired objects are missing, but only the NetworkPolicy and the stale object
    // changed since the last complete plan.
    case.only = Some(BTreeSet::from([np.key.clone(), stale.key.clone()]));
    let p = case.run();
    assert_eq!(
        p.applies.iter().map(|a| &a.key).collect::<Vec<_>>(),
        [&np.key]
    );
    assert_eq!(p.deletes, std::slice::from_ref(&stale.key));
    // The complete merge finds the same and more.
    case.only = None;
    let p = case.run();
    assert_eq!(p.applies.len(), 2);
    assert_eq!(p.deletes, [stale.key]);
}

#[test]
fn unsorted_desired_objects_are_still_merged_correctly() {
    let (ap, np) = (deny_ap("a"), netpol("a"));
    let mut case = Case::new(vec![]);
    case.compiled.objects = vec![np.clone(), ap.clone(), netpol("0")];
    case.observed = observed_of(&[&ap, &np]);
    let p = case.run();
    assert_eq!(p.applies.len(), 1);
    assert_eq!(p.applies[0].key, netpol("0").key);
    assert!(p.deletes.is_empty());
}

#[test]
fn http_deny_rules_degrade_only_when_the_mesh_has_ambient_namespaces() {
    let spec = json!({"authorization": {"denyRules": [
        {"name": "admin-paths", "from": [{"namespaces": ["sandbox"]}], "to": [{"paths": ["/admin/*"], "ports": ["8080"]}]},
        {"name": "header", "to": [{"ports": ["8080"]}], "when": [{"key": "request.headers[x-debug]", "values": ["1"]}]},
        {"name": "l4", "from": [{"namespaces": ["sandbox"]}], "to": [{"ports": ["8080"]}],
         "when": [{"key": "source.ip", "values": ["10.0.0.0/8"]}]},
    ]}});
    let mut case = Case::new(vec![deny_ap("a")]);
    case.baseline = mk_baseline("default", spec, "2026-01-01T00:00:00Z");
    case.baseline.uid = Some(UID.into());
    let sidecars = NamespaceInfo {
        name: "a".into(),
        labels: BTreeMap::from([("istio-injection".into(), "enabled".into())]).into(),
        terminating: false,
    };
    case.inventory.namespaces.insert("a".into(), sidecars);
    let s = case.run().status.unwrap();
    assert_eq!(cond(&s, DEGRADED).reason, "AsExpected");
    let ambient = NamespaceInfo {
        name: "shop".into(),
        labels: BTreeMap::from([("istio.io/dataplane-mode".into(), "ambient".into())]).into(),
        terminating: false,
    };
    case.inventory.namespaces.insert("shop".into(), ambient);
    let s = case.run().status.unwrap();
    let degraded = cond(&s, DEGRADED);
    assert_eq!(degraded.reason, "AmbientHttpDenyRules");
    assert!(
        degraded.message.contains("admin-paths, header") && !degraded.message.contains("l4"),
        "{}",
        degraded.message
    );
}

/// The status says when a generated object is not in force (MB105) or not generated
/// (MB305), naming where; repeated findings of a rule are counted, not listed.
#[test]
fn findings_about_generated_objects_degrade_the_baseline() {
    let mut case = Case::new(vec![deny_ap("a")]);
    let s = case.run().status.unwrap();
    assert_eq!(cond(&s, DEGRADED).reason, "AsExpected");
    let mut shadowed = mk_finding(
        Rule::MB105,
        "PeerAuthentication",
        "istio-system",
        "meshbaseline-mesh-mtls",
    );
    shadowed.message = "not in force: istio-system/legacy wins".into();
    case.findings = vec![
        shadowed,
        mk_finding(Rule::MB305, "Namespace", "", "shop"),
        mk_finding(Rule::MB305, "Namespace", "", "catalog"),
        mk_finding(Rule::MB501, "Pod", "a", "p"),
    ];
    let s = case.run().status.unwrap();
    let degraded = cond(&s, DEGRADED);
    assert_eq!(degraded.status, "True");
    assert_eq!(degraded.reason, "MeshMtlsNotInForce");
    assert!(
        degraded
            .message
            .contains("MB105: not in force: istio-system/legacy wins"),
        "{}",
        degraded.message
    );
    assert!(
        degraded.message.contains("(and 1 more MB305 findings)"),
        "{}",
        degraded.message
    );
    assert!(!degraded.message.contains("MB501"));
}
