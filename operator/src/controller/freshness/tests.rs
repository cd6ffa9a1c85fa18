//! The freshness model case by case: each kind of change, and what the next reconcile does.

use super::*;
use crate::inventory::{ContainerInfo, PodShape};

const NOW: &str = "2026-06-01T00:00:00Z";
const BASELINES: &str = "u1/1/t;";
const ROOT_NS: &str = "istio-system";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::NetworkPolicy,
        namespace: ns.into(),
        name: name.into(),
    }
}

/// A running pod whose containers are named `containers`.
fn mk_running_pod(ns: &str, name: &str, containers: &[&str]) -> PodInfo {
    let shape = PodShape {
        kind: "Pod".into(),
        phase: Some("Running".into()),
        containers: containers
            .iter()
            .map(|c| ContainerInfo {
                name: (*c).into(),
                ..ContainerInfo::default()
            })
            .collect(),
        ..PodShape::default()
    };
    PodInfo::new(ns, name, shape)
}

fn pod_key(ns: &str, name: &str) -> Key {
    (ns.into(), name.into())
}

/// A baseline's memory after a complete, successful reconcile at `f`'s current versions.
struct Memory {
    stamp: Stamp,
    planned_this_compile: bool,
    resync: u64,
    missing: BTreeSet<Kind>,
    failures: u32,
    status_known: bool,
}

impl Memory {
    fn after_reconcile(f: &Freshness) -> Memory {
        let v = f.versions();
        Memory {
            stamp: Stamp {
                inventory: v.inventory,
                compile: v.compile,
                generated: v.generated,
                baselines: BASELINES.into(),
                valid_until: None,
                posture_at: now(),
                posture_behind: false,
            },
            planned_this_compile: true,
            resync: v.resync,
            missing: BTreeSet::new(),
            failures: 0,
            status_known: true,
        }
    }

    fn memo(&self) -> Memo<'_> {
        Memo {
            stamp: Some(&self.stamp),
            planned_this_compile: self.planned_this_compile,
            resync: self.resync,
            missing: &self.missing,
            failures: self.failures,
            status_known: self.status_known,
        }
    }
}

fn decide(f: &Freshness, m: &Memory) -> Decision {
    f.decide("b", m.memo(), BASELINES, &BTreeSet::new(), now())
}

fn baselines() -> Vec<String> {
    vec!["b".into()]
}

#[test]
fn nothing_to_reuse_compiles_and_compares_everything() {
    let f = Freshness::default();
    let missing = BTreeSet::new();
    let memo = Memo {
        stamp: None,
        planned_this_compile: false,
        resync: 0,
        missing: &missing,
        failures: 0,
        status_known: false,
    };
    let d = f.decide("b", memo, BASELINES, &missing, now());
    assert_eq!(d.work, Work::Compile);
    assert!(!d.fast && !d.audit_next);
    assert!(d.posture);
}

#[test]
fn nothing_changed_reuses_everything_and_compares_nothing() {
    let f = Freshness::default();
    let m = Memory::after_reconcile(&f);
    let d = decide(&f, &m);
    assert_eq!(d.work, Work::Reuse);
    assert!(d.fast && d.changed.is_empty());
}

#[test]
fn drift_compares_only_the_changed_object() {
    let f = Freshness::default();
    let m = Memory::after_reconcile(&f);
    let drifted = key("a", "meshbaseline-baseline");
    assert!(f.generated_changed(&drifted, Some(1), Some(1), &baselines()));
    let d = decide(&f, &m);
    assert_eq!(d.work, Work::Reuse);
    assert!(d.fast);
    assert_eq!(d.changed, [drifted].into());
    assert!(decide(&f, &m).changed.is_empty(), "taken");
}

#[test]
fn our_own_write_of_an_existing_object_marks_nothing() {
    let f = Freshness::default();
    let m = Memory::after_reconcile(&f);
    assert!(!f.generated_changed(&key("a", "meshbaseline-baseline"), Some(1), Some(1), &[]));
    assert_eq!(decide(&f, &m).work, Work::Reuse);
}

#[test]
fn a_deleted_object_is_repaired_first_and_audited_in_the_next_pass() {
    let f = Freshness::default();
    let m = Memory::after_reconcile(&f);
    let gone = key("a", "meshbaseline-baseline");
    f.generated_changed(&gone, Some(1), None, &baselines());
    let d = decide(&f, &m);
    assert_eq!(d.work, Work::Reuse, "the repair is not held up by an audit");
    assert!(d.fast && d.audit_next);
    assert_eq!(d.changed, [gone.clone()].into());
    // The next pass, before the repair is seen: the audit counts the missing object.
    assert_eq!(decide(&f, &m).work, Work::Audit);
    // Repaired (our own creation): the same objects exist as when the results were made.
    f.generated_changed(&gone, None, Some(1), &baselines());
    let d = decide(&f, &m);
    assert_eq!(d.work, Work::Reuse);
    assert!(!d.audit_next);
}

#[test]
fn results_made_while_an_object_drifted_are_audited_once_it_is_repaired() {
    let f = Freshness::default();
    let k = key(ROOT_NS, "meshbaseline-istiod");
    f.generated_changed(&k, None, Some(1), &baselines());
    let before = Memory::after_reconcile(&f);
    // Edited by a tenant (another spec), and a tenant's object changed with it: the audit
    // that follows reads the edited object.
    f.generated_changed(&k, Some(1), Some(2), &baselines());
    f.inventory_changed();
    assert_eq!(decide(&f, &before).work, Work::Audit);
    let during = Memory::after_reconcile(&f);
    // Repaired: results made before the edit stand, those made during it do not.
    f.generated_changed(&k, Some(2), Some(1), &[]);
    assert_eq!(decide(&f, &during).work, Work::Audit);
    let m = Memory {
        stamp: Stamp {
            inventory: f.versions().inventory,
            ..before.stamp.clone()
        },
        ..Memory::after_reconcile(&f)
    };
    assert_eq!(decide(&f, &m).work, Work::Reuse);
}

#[test]
fn a_pod_on_its_own_reaudits_that_pod() {
    let f = Freshness::default();
    let a = mk_running_pod("t", "a", &["app", "istio-proxy"]);
    f.pod_changed(&pod_key("t", "a"), None, Some(&a), &baselines());
    let m = Memory::after_reconcile(&f);
    let b = mk_running_pod("t", "b", &["app", "istio-proxy"]);
    f.pod_changed(&pod_key("t", "b"), None, Some(&b), &baselines());
    let d = decide(&f, &m);
    assert_eq!(d.work, Work::AuditPods([pod_key("t", "b")].into()));
    assert!(d.fast);
    assert_eq!(decide(&f, &m).work, Work::Reuse, "taken");
}

#[test]
fn a_pod_others_read_reaudits_everything() {
    let f = Freshness::default();
    let m = Memory::after_reconcile(&f);
    // The namespace's first pod: DestinationRule host resolution reads it.
    let a = mk_running_pod("t", "a", &["app", "istio-proxy"]);
    f.pod_changed(&pod_key("t", "a"), None, Some(&a), &baselines());
    assert_eq!(decide(&f, &m).work, Work::Audit);
}

#[test]
fn a_deferred_audit_keeps_the_changed_pods() {
    let f = Freshness::default();
    let a = mk_running_pod("t", "a", &["app", "istio-proxy"]);
    f.pod_changed(&pod_key("t", "a"), None, Some(&a), &baselines());
    let m = Memory::after_reconcile(&f);
    let b = mk_running_pod("t", "b", &["app", "istio-proxy"]);
    f.pod_changed(&pod_key("t", "b"), None, Some(&b), &baselines());
    let gone = key("t", "meshbaseline-baseline");
    f.generated_changed(&gone, Some(1), None, &baselines());
    assert!(decide(&f, &m).audit_next);
    // The repair brings the same set of objects back: the pod is still audited.
    f.generated_changed(&gone, None, Some(1), &baselines());
    assert_eq!(
        decide(&f, &m).work,
        Work::AuditPods([pod_key("t", "b")].into())
    );
}

#[test]
fn what_the_audit_reads_reaudits_and_covers_the_changed_pods() {
    let f = Freshness::default();
    let a = mk_running_pod("t", "a", &["app", "istio-proxy"]);
    f.pod_changed(&pod_key("t", "a"), None, Some(&a), &baselines());
    let m = Memory::after_reconcile(&f);
    let b = mk_running_pod("t", "b", &["app", "istio-proxy"]);
    f.pod_changed(&pod_key("t", "b"), None, Some(&b), &baselines());
    f.inventory_changed();
    let d = decide(&f, &m);
    assert_eq!(d.work, Work::Audit);
    assert!(d.fast, "the compile output is the same");
    let m = Memory::after_reconcile(&f);
    assert_eq!(decide(&f, &m).work, Work::Reuse, "the pods were covered");
}

#[test]
fn what_the_compiler_reads_compiles_and_compares_everything() {
    let f = Freshness::default();
    let m = Memory::after_reconcile(&f);
    f.compile_inputs_changed();
    let d = decide(&f, &m);
    assert_eq!(d.work, Work::Compile);
    assert!(!d.fast);
}

#[test]
fn any_baseline_changing_compiles_again() {
    let f = Freshness::default();
    let m = Memory::after_reconcile(&f);
    let d = f.decide("b", m.memo(), "u1/2/t;", &BTreeSet::new(), now());
    assert_eq!(d.work, Work::Compile);
    assert!(f.baseline_applied("b", "u1/1/t".into(), Some("u1")));
    assert!(
        !f.baseline_applied("b", "u1/1/t".into(), Some("u1")),
        "a status update"
    );
    assert!(f.baseline_applied("b", "u1/2/t".into(), Some("u1")));
}

#[test]
fn an_exemption_expiring_compiles_again() {
    let f = Freshness::default();
    let mut m = Memory::after_reconcile(&f);
    m.stamp.valid_until = Some("2026-07-01T00:00:00Z".parse().unwrap());
    assert_eq!(decide(&f, &m).work, Work::Reuse);
    m.stamp.valid_until = Some(now());
    assert_eq!(decide(&f, &m).work, Work::Compile);
}

#[test]
fn posture_counts_are_redone_by_an_audit_once_stale_and_by_a_compile_for_a_new_spec() {
    let f = Freshness::default();
    let at = |m: &Memory, secs: i64| {
        let t = now().checked_add(SignedDuration::from_secs(secs)).unwrap();
        f.decide("b", m.memo(), BASELINES, &BTreeSet::new(), t)
    };
    let fresh = POSTURE_REFRESH.as_secs() - 1;
    let stale = POSTURE_REFRESH.as_secs();
    let mut m = Memory::after_reconcile(&f);
    // Nothing else to redo: the counts stand, however old, unless what they read changed
    // while they were fresh.
    let d = at(&m, stale);
    assert!(d.work == Work::Reuse && !d.posture);
    m.stamp.posture_behind = true;
    assert!(!at(&m, fresh).posture);
    let d = at(&m, stale);
    assert!(d.work == Work::Reuse && d.posture, "behind and due");
    assert_eq!(
        m.stamp.posture_due_at(),
        now().checked_add(POSTURE_REFRESH).ok()
    );
    // Pods on their own, the whole audit: fresh counts stand, stale ones are redone.
    let a = mk_running_pod("t", "a", &["app", "istio-proxy"]);
    f.pod_changed(&pod_key("t", "a"), None, Some(&a), &baselines());
    for (secs, due) in [(fresh, false), (stale, true)] {
        let m = Memory::after_reconcile(&f);
        let name = format!("b{secs}");
        let b = mk_running_pod("t", &name, &["app", "istio-proxy"]);
        f.pod_changed(&pod_key("t", &name), None, Some(&b), &baselines());
        let d = at(&m, secs);
        assert!(matches!(d.work, Work::AuditPods(_)), "{:?}", d.work);
        assert_eq!(d.posture, due, "pods, {secs} s");
        f.inventory_changed();
        let d = at(&m, secs);
        assert_eq!(d.work, Work::Audit);
        assert_eq!(d.posture, due, "audit, {secs} s");
    }
    // A compile: for the same spec, as an audit; for a new spec, always.
    let m = Memory::after_reconcile(&f);
    f.compile_inputs_changed();
    let d = at(&m, fresh);
    assert!(d.work == Work::Compile && !d.posture);
    let d = at(&m, stale);
    assert!(d.work == Work::Compile && d.posture);
    let d = f.decide("b", m.memo(), "u1/2/t;", &BTreeSet::new(), now());
    assert!(d.work == Work::Compile && d.posture, "a new spec");
}

#[test]
fn the_fast_path_needs_a_clean_complete_plan_of_this_compile() {
    let f = Freshness::default();
    let fresh = Memory::after_reconcile(&f);
    assert!(decide(&f, &fresh).fast);
    let mut m = Memory::after_reconcile(&f);
    m.failures = 1;
    assert!(!decide(&f, &m).fast, "after a failure");
    let mut m = Memory::after_reconcile(&f);
    m.status_known = false;
    assert!(!decide(&f, &m).fast, "no status written yet");
    let mut m = Memory::after_reconcile(&f);
    m.planned_this_compile = false;
    assert!(
        !decide(&f, &m).fast,
        "the last complete plan had another compile"
    );
    let mut m = Memory::after_reconcile(&f);
    m.missing.insert(Kind::Sidecar);
    assert!(!decide(&f, &m).fast, "the served kinds changed");
    let m = Memory::after_reconcile(&f);
    f.resync();
    let d = decide(&f, &m);
    assert_eq!(
        d.work,
        Work::Reuse,
        "a resync compares; it does not recompute"
    );
    assert!(!d.fast);
}

#[test]
fn a_deleted_baseline_leaves_nothing_behind() {
    let f = Freshness::default();
    f.baseline_applied("b", "u1/1/t".into(), Some("u1"));
    let k = key("a", "meshbaseline-baseline");
    f.set_records("u1", Arc::new([k.clone()].into()));
    assert!(f.is_ours(Some("u1"), &k));
    f.generated_changed(&k, Some(1), Some(1), &baselines());
    let a = mk_running_pod("t", "a", &["app"]);
    f.pod_changed(&pod_key("t", "a"), None, Some(&a), &baselines());
    let v = f.versions();
    f.baseline_deleted("b", Some("u1"));
    assert!(!f.is_ours(Some("u1"), &k), "its records are gone");
    assert!(f.take_changed("b").is_empty());
    assert_ne!(
        f.versions().inventory,
        v.inventory,
        "claims of it are tenants' now"
    );
    // Deleted while the watch was down: the re-list tells.
    f.baseline_applied("c", "u2/1/t".into(), Some("u2"));
    f.set_records("u2", Arc::new([k.clone()].into()));
    assert!(f.baselines_listed(&BTreeSet::new(), &BTreeSet::new()));
    assert!(!f.is_ours(Some("u2"), &k));
    assert!(!f.baselines_listed(&BTreeSet::new(), &BTreeSet::new()));
}
