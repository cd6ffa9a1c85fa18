//! Planner tests. Desired objects, observed objects and findings are built by hand: the
//! planner is tested on its own, not through the compiler or the audit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use serde_json::{json, Value};

use super::*;
use crate::api::baseline::{MeshBaseline, MeshBaselineSpec};
use crate::api::istio::{
    ClientTlsSettings, DestinationRule, DestinationRuleSpec, MutualTls, PeerAuthentication,
    PeerAuthenticationSpec, TrafficPolicy,
};
use crate::api::model::FieldError;
use crate::audit::{Rule, Severity};
use crate::compile::Scope;
use crate::inventory::{NamespaceInfo, Namespaces};
use crate::object::{DesiredObject, ObjectSpec, MANAGED_BY_LABEL};
use crate::object::{Name, OwnedMeta, BASELINE_LABEL};

const UID: &str = "uid-1";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn mk_baseline(name: &str, spec: Value, created: &str) -> Baseline {
    let spec: MeshBaselineSpec = serde_json::from_value(spec).unwrap();
    let mut mb = MeshBaseline::new(name, spec);
    mb.metadata.uid = Some(format!("uid-{name}"));
    mb.metadata.generation = Some(1);
    mb.metadata.creation_timestamp = Some(Time(ts(created)));
    Baseline::try_from(&mb).unwrap()
}

fn mk_default() -> Baseline {
    let mut b = mk_baseline("default", json!({}), "2026-01-01T00:00:00Z");
    b.uid = Some(UID.into());
    b
}

fn labels(baseline: &str) -> Value {
    json!({MANAGED_BY_LABEL: "meshbaseline", BASELINE_LABEL: baseline})
}

fn mk_desired(kind: Kind, ns: &str, name: &str, spec: Value) -> DesiredObject {
    DesiredObject {
        key: ObjectKey {
            kind,
            namespace: ns.into(),
            name: name.into(),
        },
        meta: Arc::new(OwnedMeta {
            labels: serde_json::from_value(labels("default")).unwrap(),
            owner_references: Some(json!([{"apiVersion": "meshbaseline.dev/v1alpha1",
                "kind": "MeshBaseline", "name": "default", "uid": UID, "controller": true}])),
        }),
        spec: Arc::new(ObjectSpec::new(kind, &spec)),
    }
}

fn deny_ap(ns: &str) -> DesiredObject {
    mk_desired(
        Kind::AuthorizationPolicy,
        ns,
        "meshbaseline-deny-plaintext",
        json!({"action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]}),
    )
}

fn netpol(ns: &str) -> DesiredObject {
    mk_desired(
        Kind::NetworkPolicy,
        ns,
        "meshbaseline-baseline",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    )
}

/// The object as the API server returns it: the desired fields plus its own.
fn mk_observed(d: &DesiredObject) -> Observed {
    mk_observed_raw(mk_manifest(d), Some(UID))
}

/// `mk_observed`'s manifest, for tests that edit it.
fn mk_manifest(d: &DesiredObject) -> Value {
    let mut m = d.manifest();
    m["metadata"]["uid"] = json!("obj-uid");
    m["metadata"]["resourceVersion"] = json!("42");
    m["metadata"]["managedFields"] = json!([{"manager": "meshbaseline", "operation": "Apply"}]);
    m["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = json!(false);
    if d.key.kind == Kind::NetworkPolicy && m["spec"].get("ingress").is_none() {
        m["spec"]["ingress"] = json!([]); // what the API server may return for "none"
    }
    m
}

fn mk_observed_raw(manifest: Value, owner: Option<&str>) -> Observed {
    let labels = serde_json::from_value(manifest["metadata"]["labels"].clone()).unwrap_or_default();
    Observed::new(manifest, owner.map(Name::from), Arc::new(labels))
}

fn observed_of(objs: &[&DesiredObject]) -> BTreeMap<ObjectKey, Observed> {
    objs.iter()
        .map(|d| (d.key.clone(), mk_observed(d)))
        .collect()
}

fn compiled(objects: Vec<DesiredObject>) -> Compiled {
    let mut objects = objects;
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let protected: BTreeSet<String> = objects
        .iter()
        .map(|o| o.key.namespace.to_string())
        .collect();
    Compiled {
        objects,
        protected: protected.into_iter().collect(),
        exempt: Vec::new(),
    }
}

fn mk_finding(rule: Rule, kind: &str, ns: &str, name: &str) -> Finding {
    Finding {
        rule,
        severity: rule.severity(),
        kind: kind.into(),
        namespace: Some(ns.into()),
        name: name.into(),
        message: format!("{rule} on {name}"),
        fix: "fix it".into(),
    }
}

fn managed(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        manager: Some(manager.into()),
        operation: Some(operation.into()),
        fields_type: Some("FieldsV1".into()),
        fields_v1: Some(FieldsV1(fields)),
        api_version: Some("security.istio.io/v1".into()),
        ..ManagedFieldsEntry::default()
    }
}

fn mk_meta(ns: &str, name: &str, annotated: bool, mf: Vec<ManagedFieldsEntry>) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        annotations: annotated.then(|| {
            BTreeMap::from([(
                REVERTED_ANNOTATION.to_string(),
                "spec.mtls.mode".to_string(),
            )])
        }),
        managed_fields: Some(mf),
        ..ObjectMeta::default()
    }
}

fn mk_pa(
    ns: &str,
    name: &str,
    mode: &str,
    ports: &[(&str, &str)],
    meta: ObjectMeta,
) -> PeerAuthentication {
    let _ = (ns, name);
    PeerAuthentication {
        metadata: meta,
        spec: PeerAuthenticationSpec {
            selector: None,
            mtls: Some(MutualTls {
                mode: Some(mode.into()),
            }),
            port_level_mtls: ports
                .iter()
                .map(|(p, m)| {
                    (
                        p.to_string(),
                        MutualTls {
                            mode: Some(m.to_string()),
                        },
                    )
                })
                .collect(),
        },
    }
}

fn mk_dr(meta: ObjectMeta, mode: &str) -> DestinationRule {
    DestinationRule {
        metadata: meta,
        spec: DestinationRuleSpec {
            host: "reviews".into(),
            traffic_policy: Some(TrafficPolicy {
                tls: Some(ClientTlsSettings {
                    mode: Some(mode.into()),
                }),
                ..TrafficPolicy::default()
            }),
            ..DestinationRuleSpec::default()
        },
    }
}

/// Owned inputs, so each test states only what differs.
struct Case {
    baseline: Baseline,
    compiled: Compiled,
    observed: BTreeMap<ObjectKey, Observed>,
    findings: Vec<Finding>,
    inventory: Inventory,
    overlap: Resolved,
    missing: BTreeSet<Kind>,
    previous: Option<MeshBaselineStatus>,
    previous_compiled: Option<Compiled>,
    records: BTreeSet<ObjectKey>,
    seen: BTreeSet<FindingId>,
    only: Option<BTreeSet<ObjectKey>>,
    now: Timestamp,
}

impl Case {
    fn new(objects: Vec<DesiredObject>) -> Case {
        Case {
            baseline: mk_default(),
            compiled: compiled(objects),
            observed: BTreeMap::new(),
            findings: Vec::new(),
            inventory: Inventory::default(),
            overlap: Resolved::default(),
            missing: BTreeSet::new(),
            previous: None,
            previous_compiled: None,
            records: BTreeSet::new(),
            seen: BTreeSet::new(),
            only: None,
            now: ts("2026-06-01T00:00:00Z"),
        }
    }

    fn run(&self) -> Plan {
        self.run_spec(Spec::Valid(&self.baseline))
    }

    fn run_spec(&self, spec: Spec) -> Plan {
        // The controller shares observed objects with its caches; tests own them.
        let observed: BTreeMap<ObjectKey, Arc<Observed>> = self
            .observed
            .iter()
            .map(|(k, o)| (k.clone(), Arc::new(o.clone())))
            .collect();
        plan(&PlanInput {
            name: "default",
            uid: Some(UID),
            generation: Some(1),
            spec,
            compiled: &self.compiled,
            observed: &observed,
            findings: &self.findings,
            inventory: &self.inventory,
            overlap: &self.overlap,
            missing_kinds: &self.missing,
            previous: self.previous.as_ref(),
            previous_compiled: self.previous_compiled.as_ref(),
            records: &self.records,
            previous_findings: &self.seen,
            only: self.only.as_ref(),
            now: self.now,
        })
    }

    /// Feed a plan's status and memory back, as the controller does after executing it.
    fn converge(&mut self, p: &Plan) {
        if let Some(s) = &p.status {
            self.previous = Some(s.clone());
        }
        self.seen = p.findings_seen.clone();
        self.previous_compiled = Some(self.compiled.clone());
        self.records
            .extend(self.compiled.objects.iter().map(|o| o.key.clone()));
    }
}

fn cond<'a>(
    s: &'a MeshBaselineStatus,
    t: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    s.conditions.iter().find(|c| c.type_ == t).unwrap()
}

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
    assert_eq!(p.events[0].reason, "DriftRepaired");
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

fn revert_case(pa: PeerAuthentication) -> Case {
    let mut case = Case::new(vec![]);
    case.baseline = mk_baseline(
        "default",
        json!({"tenantOverrides": "Revert"}),
        "2026-01-01T00:00:00Z",
    );
    case.findings = vec![mk_finding(Rule::MB101, "PeerAuthentication", "a", "weak")];
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
            "metadata": {"name": "weak", "namespace": "a",
                "annotations": {REVERTED_ANNOTATION: "spec.mtls.mode,spec.portLevelMtls.8080.mode"}},
            "spec": {"mtls": {"mode": "STRICT"}, "portLevelMtls": {"8080": {"mode": "STRICT"}}},
        })
    );
    assert_eq!(p.events[0].reason, "TenantOverrideReverted");
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
    let mut case = Case::new(vec![]);
    case.baseline = mk_baseline(
        "default",
        json!({"tenantOverrides": "Revert"}),
        "2026-01-01T00:00:00Z",
    );
    case.findings = vec![mk_finding(Rule::MB201, "DestinationRule", "a", "reviews")];
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
            "metadata": {"name": "reviews", "namespace": "a",
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
    assert_eq!(p.events[0].reason, "Finding");
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
    assert!(p.events.iter().any(|e| e.reason == "TenantOverrideFight"));
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
    let p2 = case.run();
    assert_eq!(p2.events.len(), 1);
    assert!(
        p2.events[0].note.starts_with("MB101"),
        "{}",
        p2.events[0].note
    );
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
        {"name": "admin-paths", "from": [{"namespaces": ["sandbox"]}], "to": [{"paths": ["/admin/*"]}]},
        {"name": "header", "when": [{"key": "request.headers[x-debug]", "values": ["1"]}]},
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

mod conditions;
mod enforcement;
mod tamper;
