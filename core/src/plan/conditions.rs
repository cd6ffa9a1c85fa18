//! The status conditions of a plan: Ready, Reconciling, Degraded, DriftDetected and Invalid
//! (and Stalled for an invalid spec, which Flux's kstatus reads).

use crate::api::baseline::Mode;
use crate::api::Baseline;
use crate::dataplane::{namespace_dataplane, DataPlane};

use super::status::{self, Cond, DEGRADED, DRIFT_DETECTED, INVALID, READY, RECONCILING, STALLED};
use super::{dry_run, plural, PlanInput, Reason, Writes, DRIFT_WINDOW};

/// The conditions of a valid spec's plan.
pub(super) fn valid(input: &PlanInput, baseline: &Baseline, w: &Writes) -> Vec<Cond> {
    vec![
        ready(input, baseline, w),
        Cond::new(RECONCILING, false, Reason::ReconcileComplete, ""),
        degraded(input, baseline, w),
        drift_detected(input, baseline, w),
        Cond::new(INVALID, false, Reason::Valid, ""),
    ]
}

/// The conditions of an invalid spec: the last good objects stay as they are.
pub(super) fn invalid(message: &str) -> Vec<Cond> {
    vec![
        Cond::new(
            READY,
            false,
            Reason::InvalidSpec,
            "the spec is invalid; the last good objects stay in place",
        ),
        Cond::new(RECONCILING, false, Reason::ReconcileComplete, ""),
        Cond::new(DEGRADED, false, Reason::AsExpected, ""),
        Cond::new(DRIFT_DETECTED, false, Reason::NoDrift, ""),
        Cond::new(INVALID, true, Reason::InvalidSpec, message),
        // Flux's kstatus reads an invalid spec as failed only through Stalled.
        Cond::new(
            STALLED,
            true,
            Reason::InvalidSpec,
            "the spec is invalid; fix it to continue",
        ),
    ]
}

/// What is enforced (Enforce), or what would be written (Audit).
fn ready(input: &PlanInput, baseline: &Baseline, w: &Writes) -> Cond {
    let compiled = input.compiled;
    if baseline.mode == Mode::Enforce {
        // Objects of kinds the cluster does not serve are not written: neither counted as
        // enforced nor as managed.
        let unserved: Vec<&str> = input
            .missing_kinds
            .iter()
            .filter(|k| compiled.objects.iter().any(|o| o.key.kind == **k))
            .map(|k| k.name())
            .collect();
        let written = w.written(input);
        let mut message = format!(
            "{} enforced in {}",
            plural(written, "object"),
            plural(compiled.protected.len(), "namespace")
        );
        if !unserved.is_empty() {
            message.push_str(&format!(
                "; {} not written: the cluster does not serve {}",
                plural(compiled.objects.len() - written, "object"),
                unserved.join(", ")
            ));
        }
        return Cond::new(READY, true, Reason::Enforced, message);
    }
    if baseline.dry_run() {
        let others = w.applies.len() - w.dry_run.len();
        return dry_run::ready(dry_run::policies(compiled), others, w.deletes.len());
    }
    let message = format!(
        "Audit mode: {} and {} would be written",
        plural(w.applies.len(), "object"),
        plural(w.deletes.len(), "deletion")
    );
    Cond::new(READY, true, Reason::AuditOnly, message)
}

/// True with the first problem's reason, and every problem in the message.
fn degraded(input: &PlanInput, baseline: &Baseline, w: &Writes) -> Cond {
    let problems = problems(input, baseline, w);
    match problems.first() {
        Some((reason, _)) => {
            let messages: Vec<&str> = problems.iter().map(|(_, m)| m.as_str()).collect();
            Cond::new(DEGRADED, true, *reason, messages.join("; "))
        }
        None => Cond::new(DEGRADED, false, Reason::AsExpected, ""),
    }
}

/// What keeps the baseline from being enforced as written, most fundamental first. Missing
/// admission and ClusterNetworkPolicy APIs are findings (MB901, MB903) instead: the baseline's
/// own objects are still enforced without them.
fn problems(input: &PlanInput, baseline: &Baseline, w: &Writes) -> Vec<(Reason, String)> {
    let mut problems = Vec::new();
    let missing_istio: Vec<&str> = input
        .missing_kinds
        .iter()
        .filter(|k| k.is_istio())
        .map(|k| k.name())
        .collect();
    if !missing_istio.is_empty() {
        let message = format!(
            "the cluster does not serve {}; NetworkPolicies are still enforced",
            missing_istio.join(", ")
        );
        problems.push((Reason::IstioCrdsMissing, message));
    }
    if input.overlap.overlaps() {
        let older: Vec<&str> = input.overlap.lost_to.iter().map(String::as_str).collect();
        let mut what = plural(input.overlap.scope.claimed_elsewhere.len(), "namespace");
        if !input.overlap.scope.owns_root {
            what.push_str(" and the root namespace");
        }
        let message = format!(
            "{what} also selected by older baseline(s) {}, which win",
            older.join(", ")
        );
        problems.push((Reason::BaselineOverlap, message));
    }
    let http_rules = crate::api::rules::http_deny_rules(&baseline.deny_rules);
    let ambient = || {
        let mut namespaces = input.inventory.namespaces.values();
        namespaces.any(|n| namespace_dataplane(&n.labels) == DataPlane::Ambient)
    };
    if !http_rules.is_empty() && ambient() {
        let message = format!(
            "deny rules {} use HTTP attributes, which ztunnel cannot see: for ambient workloads it enforces them without those attributes and denies more than written; keep deny rules L4",
            http_rules.join(", ")
        );
        problems.push((Reason::AmbientHttpDenyRules, message));
    }
    problems.extend(status::degrading(input.findings));
    for f in &w.fights {
        let message = format!(
            "{} {}/{}: {} set back by {}; not reverting",
            f.key.kind,
            f.key.namespace,
            f.key.name,
            f.fields.join(", "),
            f.managers.join(", ")
        );
        problems.push((Reason::TenantOverrideFight, message));
    }
    problems
}

/// Repairs made now (Enforce), or differences left (Audit). A repair keeps DriftDetected True
/// for a while, so dashboards and `kubectl get` show it (the next full resync after the window
/// sets it back).
fn drift_detected(input: &PlanInput, baseline: &Baseline, w: &Writes) -> Cond {
    let enforce = baseline.mode == Mode::Enforce;
    if enforce && w.repairs > 0 {
        let names: Vec<String> = w.repaired().map(|a| a.key.to_string()).collect();
        let since_start = input.previous.map_or(0, |p| p.drift_repairs) + w.repairs as u64;
        let message = format!(
            "repaired {} ({since_start} repairs since the operator started): {}",
            plural(w.repairs, "object"),
            names.join(", ")
        );
        let message = status::truncate(&message, status::MAX_NOTE);
        return Cond::new(DRIFT_DETECTED, true, Reason::DriftRepaired, message);
    }
    let recent = input
        .previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == DRIFT_DETECTED))
        .filter(|c| c.status == "True" && c.reason == Reason::DriftRepaired.as_str())
        .filter(|c| input.now.duration_since(c.last_transition_time.0) < DRIFT_WINDOW);
    if let Some(c) = recent.filter(|_| enforce) {
        return Cond::new(
            DRIFT_DETECTED,
            true,
            Reason::DriftRepaired,
            c.message.clone(),
        );
    }
    let differ = w.applies.len() - w.dry_run.len() + w.deletes.len();
    if !enforce && differ > 0 {
        let message = format!(
            "Audit mode: {} differ from the baseline",
            plural(differ, "object")
        );
        return Cond::new(DRIFT_DETECTED, true, Reason::DriftNotRepaired, message);
    }
    Cond::new(DRIFT_DETECTED, false, Reason::NoDrift, "")
}
