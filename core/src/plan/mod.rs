//! Pure planner: desired vs observed -> writes, deletes, reverts, status and events.
//! No client, no async; the time is a parameter.

mod diff;
mod dry_run;
mod enforcement;
pub(crate) mod exact;
mod overlap;
mod revert;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

pub use diff::{Apply, Live, Observed};
pub use exact::normalise;
pub use overlap::{resolve_overlaps, Resolved};
pub use revert::{Fight, Revert, REVERTED_ANNOTATION};

use crate::api::baseline::{MeshBaselineStatus, Mode, NamespaceCounts, TenantOverrides};
use crate::api::model::InvalidBaseline;
use crate::api::Baseline;
use crate::audit::Finding;
use crate::compile::Compiled;
use crate::inventory::Inventory;
use crate::object::{Kind, ObjectKey};
use diff::diff;
use status::{Cond, Counts, DEGRADED, DRIFT_DETECTED, INVALID, READY, RECONCILING, STALLED};

/// How long `DriftDetected` stays True after a repair.
pub const DRIFT_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_secs(600);

/// At most this many "new finding" events per namespace per reconcile, so one tenant's flood
/// of findings cannot crowd out another's; the rest are only in the status.
pub const MAX_FINDING_EVENTS: usize = 20;
/// And at most this many in all per reconcile (a first reconcile over a whole cluster).
pub const MAX_FINDING_EVENTS_TOTAL: usize = 100;

/// The baseline's spec: valid, or rejected (the last good objects then stay as they are).
#[derive(Clone, Copy, Debug)]
pub enum Spec<'a> {
    Valid(&'a Baseline),
    Invalid(&'a InvalidBaseline),
}

/// Identity of a finding (or a fight) for event deduplication; the message is not part of it.
/// A hash of (rule, kind, namespace, name), not the strings: the drift-repair path compares
/// thousands of them on every plan, and building and comparing strings was most of its time.
/// The hasher is keyed per process, so names cannot be chosen to collide; a collision would
/// only leave one event unsent (the status and metrics still list the finding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FindingId(u64);

impl FindingId {
    fn of(rule: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
        let keys = KEYS.get_or_init(std::hash::RandomState::new);
        FindingId(std::hash::BuildHasher::hash_one(
            keys,
            (rule, kind, namespace, name),
        ))
    }
}

impl From<&Finding> for FindingId {
    fn from(f: &Finding) -> Self {
        FindingId::of(f.rule.id(), &f.kind, f.namespace.as_deref(), &f.name)
    }
}

pub struct PlanInput<'a> {
    pub name: &'a str,
    pub uid: Option<&'a str>,
    pub generation: Option<i64>,
    pub spec: Spec<'a>,
    /// The compiler's output for the valid spec (ignored when the spec is invalid).
    pub compiled: &'a Compiled,
    /// Objects at the names the operator generates, whatever their labels or owner (the
    /// controller indexes every object whose name has the generated prefix).
    /// Shared with the controller's caches (`Arc`): the index is not copied per plan.
    pub observed: &'a BTreeMap<ObjectKey, std::sync::Arc<Observed>>,
    pub findings: &'a [Finding],
    /// Workload posture counts (`meshbaseline posture`), when computed.
    pub posture: Option<&'a crate::api::baseline::PostureStatus>,
    /// Tenant PeerAuthentications and DestinationRules (with managedFields) for Revert mode.
    pub inventory: &'a Inventory,
    pub overlap: &'a Resolved,
    /// Generated kinds whose CRD the cluster does not serve.
    pub missing_kinds: &'a BTreeSet<Kind>,
    pub previous: Option<&'a MeshBaselineStatus>,
    /// What the previous reconcile wanted: an apply of an unchanged desired object is a repair.
    pub previous_compiled: Option<&'a Compiled>,
    /// Our own records: every key this baseline has wanted (and so may have written) since the
    /// operator started, while the object may still exist. Only these are ever deleted.
    pub records: &'a BTreeSet<ObjectKey>,
    /// Findings (and fights) already announced by events.
    pub previous_findings: &'a BTreeSet<FindingId>,
    /// Compare only these keys (the generated objects that changed since the last complete
    /// plan, which the controller knows from its watch): the drift-repair fast path. `None`:
    /// compare everything.
    pub only: Option<&'a BTreeSet<ObjectKey>>,
    pub now: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// An event about the baseline; `note` names the object concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub type_: EventType,
    pub reason: String,
    pub action: String,
    pub note: String,
    /// The namespace of the tenant object a `Finding` event is about: event budgets are kept
    /// per namespace.
    pub namespace: Option<String>,
    /// The object the event is about besides the baseline (the event's `related`). Events are
    /// grouped into series by reason and objects, not by note: without it every `Finding` or
    /// `DriftRepaired` of a baseline would count up one event showing the first note.
    pub related: Option<Related>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Related {
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

impl Related {
    fn of(key: &ObjectKey) -> Related {
        Related {
            kind: key.kind.name().to_string(),
            namespace: (!key.namespace.is_empty()).then(|| key.namespace.to_string()),
            name: key.name.to_string(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub applies: Vec<Apply>,
    pub deletes: Vec<ObjectKey>,
    pub reverts: Vec<Revert>,
    pub fights: Vec<Fight>,
    /// `None`: the stored status is already right.
    pub status: Option<MeshBaselineStatus>,
    pub events: Vec<PlannedEvent>,
    /// Findings and fights announced so far (to pass as `previous_findings` next time).
    pub findings_seen: BTreeSet<FindingId>,
}

/// A warning event; the note is cut below 1 KiB (the API server refuses longer notes, and a
/// refused event would be retried forever).
fn warning(reason: &str, action: &str, note: String) -> PlannedEvent {
    PlannedEvent {
        type_: EventType::Warning,
        reason: reason.into(),
        action: action.into(),
        note: status::truncate(&note, status::MAX_NOTE),
        namespace: None,
        related: None,
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The plan for one baseline.
pub fn plan(input: &PlanInput) -> Plan {
    let baseline = match input.spec {
        Spec::Valid(b) => b,
        Spec::Invalid(err) => return plan_invalid(input, err),
    };
    let enforce = baseline.mode == Mode::Enforce;
    let (applies, deletes) = diff(input, &input.compiled.objects);
    let dry_run = dry_run::applies(baseline, &applies);
    let (mut reverts, fights) = if baseline.tenant_overrides == TenantOverrides::Revert {
        revert::plan_reverts(baseline, input.findings, input.inventory)
    } else {
        (Vec::new(), Vec::new())
    };
    // An object at one of our keys is replaced as a whole, never patched field by field.
    reverts.retain(|r| {
        input
            .compiled
            .objects
            .binary_search_by(|d| d.key.cmp(&r.key))
            .is_err()
    });
    let repairs = applies.iter().filter(|a| a.repair).count();

    // Objects of kinds the cluster does not serve are not written: neither counted as
    // enforced nor as managed.
    let unserved: Vec<&str> = input
        .missing_kinds
        .iter()
        .filter(|k| input.compiled.objects.iter().any(|o| o.key.kind == **k))
        .map(|k| k.name())
        .collect();
    let written = input
        .compiled
        .objects
        .iter()
        .filter(|o| !input.missing_kinds.contains(&o.key.kind))
        .count();
    let mut conds = Vec::new();
    conds.push(if enforce {
        let mut message = format!(
            "{} enforced in {}",
            plural(written, "object"),
            plural(input.compiled.protected.len(), "namespace")
        );
        if !unserved.is_empty() {
            message.push_str(&format!(
                "; {} not written: the cluster does not serve {}",
                plural(input.compiled.objects.len() - written, "object"),
                unserved.join(", ")
            ));
        }
        Cond::new(READY, true, "Enforced", message)
    } else if baseline.dry_run() {
        dry_run::ready(
            dry_run::policies(input.compiled),
            applies.len() - dry_run.len(),
            deletes.len(),
        )
    } else {
        Cond::new(
            READY,
            true,
            "AuditOnly",
            format!(
                "Audit mode: {} and {} would be written",
                plural(applies.len(), "object"),
                plural(deletes.len(), "deletion")
            ),
        )
    });
    conds.push(Cond::new(RECONCILING, false, "ReconcileComplete", ""));
    let mut problems: Vec<(&str, String)> = Vec::new();
    // Missing admission and ClusterNetworkPolicy APIs are findings (MB901, MB903): the
    // baseline's own objects are still enforced without them.
    let missing_istio: Vec<&str> = input
        .missing_kinds
        .iter()
        .filter(|k| k.is_istio())
        .map(|k| k.name())
        .collect();
    if !missing_istio.is_empty() {
        let kinds = missing_istio;
        problems.push((
            "IstioCRDsMissing",
            format!(
                "the cluster does not serve {}; NetworkPolicies are still enforced",
                kinds.join(", ")
            ),
        ));
    }
    if input.overlap.overlaps() {
        let older: Vec<&str> = input.overlap.lost_to.iter().map(String::as_str).collect();
        let mut what = plural(input.overlap.scope.claimed_elsewhere.len(), "namespace");
        if !input.overlap.scope.owns_root {
            what.push_str(" and the root namespace");
        }
        problems.push((
            "BaselineOverlap",
            format!(
                "{what} also selected by older baseline(s) {}, which win",
                older.join(", ")
            ),
        ));
    }
    let http_rules = crate::api::rules::http_deny_rules(&baseline.deny_rules);
    if !http_rules.is_empty()
        && input.inventory.namespaces.values().any(|n| {
            crate::dataplane::namespace_dataplane(&n.labels) == crate::dataplane::DataPlane::Ambient
        })
    {
        problems.push((
            "AmbientHttpDenyRules",
            format!(
                "deny rules {} use HTTP attributes, which ztunnel cannot see: for ambient workloads it enforces them without those attributes and denies more than written; keep deny rules L4",
                http_rules.join(", ")
            ),
        ));
    }
    problems.extend(status::degrading(input.findings));
    for f in &fights {
        problems.push((
            "TenantOverrideFight",
            format!(
                "{} {}/{}: {} set back by {}; not reverting",
                f.key.kind,
                f.key.namespace,
                f.key.name,
                f.fields.join(", "),
                f.managers.join(", ")
            ),
        ));
    }
    conds.push(match problems.first() {
        Some((reason, _)) => Cond::new(
            DEGRADED,
            true,
            reason,
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        None => Cond::new(DEGRADED, false, "AsExpected", ""),
    });
    // A repair keeps DriftDetected True for a while, so dashboards and `kubectl get` show it
    // (the next full resync after the window sets it back).
    let recent_drift = input
        .previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == DRIFT_DETECTED))
        .filter(|c| c.status == "True" && c.reason == "DriftRepaired")
        .filter(|c| input.now.duration_since(c.last_transition_time.0) < DRIFT_WINDOW);
    conds.push(if enforce && repairs > 0 {
        let names: Vec<String> = applies
            .iter()
            .filter(|a| a.repair)
            .map(|a| a.key.to_string())
            .collect();
        Cond::new(
            DRIFT_DETECTED,
            true,
            "DriftRepaired",
            status::truncate(
                &format!(
                    "repaired {} ({} repairs since the operator started): {}",
                    plural(repairs, "object"),
                    input.previous.map_or(0, |p| p.drift_repairs) + repairs as u64,
                    names.join(", ")
                ),
                status::MAX_NOTE,
            ),
        )
    } else if let Some(c) = recent_drift.filter(|_| enforce) {
        Cond::new(DRIFT_DETECTED, true, "DriftRepaired", c.message.clone())
    } else if !enforce && (applies.len() > dry_run.len() || !deletes.is_empty()) {
        Cond::new(
            DRIFT_DETECTED,
            true,
            "DriftNotRepaired",
            format!(
                "Audit mode: {} differ from the baseline",
                plural(applies.len() - dry_run.len() + deletes.len(), "object")
            ),
        )
    } else {
        Cond::new(DRIFT_DETECTED, false, "NoDrift", "")
    });
    conds.push(Cond::new(INVALID, false, "Valid", ""));

    let enforcement = enforcement::enforcement(
        baseline,
        enforce,
        input.compiled,
        &applies,
        input.missing_kinds,
    );
    // Few (at most one per generated admission object): kept apart, the audit's findings are
    // never copied.
    let own_findings = enforcement.findings;
    let findings = || own_findings.iter().chain(input.findings);
    let previous_repairs = input.previous.map_or(0, |p| p.drift_repairs);
    let counts = Counts {
        namespaces: NamespaceCounts {
            protected: u32::try_from(input.compiled.protected.len()).unwrap_or(u32::MAX),
            exempt: u32::try_from(input.compiled.exempt.len()).unwrap_or(u32::MAX),
        },
        // Objects of kinds the cluster does not serve are not written, so not managed.
        managed_objects: if baseline.dry_run()
            && !input.missing_kinds.contains(&Kind::AuthorizationPolicy)
        {
            u32::try_from(dry_run::policies(input.compiled)).unwrap_or(u32::MAX)
        } else if enforce {
            u32::try_from(written).unwrap_or(u32::MAX)
        } else {
            0
        },
        drift_repairs: previous_repairs + if enforce { repairs as u64 } else { 0 },
        enforcement: Some(enforcement.status),
        posture: input.posture.cloned(),
    };
    let new_status = status::build(
        input.generation,
        conds,
        counts,
        Some((input.findings, &own_findings)),
        input.previous,
        input.now,
    );

    let mut events = Vec::new();
    // Hashed once: the drift-repair path plans with every finding, thousands of them.
    let ids: Vec<FindingId> = findings().map(FindingId::from).collect();
    let mut seen: BTreeSet<FindingId> = ids.iter().copied().collect();
    seen.extend(fights.iter().map(fight_id));
    if enforce {
        for a in applies.iter().filter(|a| a.repair) {
            let mut event = warning("DriftRepaired", "Apply", format!("restored {}", a.key));
            event.related = Some(Related::of(&a.key));
            events.push(event);
        }
        for r in &reverts {
            let mut event = warning(
                "TenantOverrideReverted",
                "Revert",
                format!("took ownership of {} on {}", r.fields.join(", "), r.key),
            );
            event.related = Some(Related::of(&r.key));
            events.push(event);
        }
        for f in fights
            .iter()
            .filter(|f| !input.previous_findings.contains(&fight_id(f)))
        {
            let mut event = warning(
                "TenantOverrideFight",
                "Revert",
                format!(
                    "{} keeps setting {} on {}; no longer reverting",
                    f.managers.join(", "),
                    f.fields.join(", "),
                    f.key
                ),
            );
            event.related = Some(Related::of(&f.key));
            events.push(event);
        }
        let new_findings = findings()
            .zip(&ids)
            .filter(|(_, id)| !input.previous_findings.contains(id))
            .map(|(f, _)| f);
        let mut per_namespace: BTreeMap<Option<&str>, usize> = BTreeMap::new();
        let announced = new_findings
            .filter(|f| {
                let n = per_namespace.entry(f.namespace.as_deref()).or_default();
                *n += 1;
                *n <= MAX_FINDING_EVENTS
            })
            .take(MAX_FINDING_EVENTS_TOTAL);
        for f in announced {
            let at = match &f.namespace {
                Some(ns) => format!("{} {ns}/{}", f.kind, f.name),
                None => format!("{} {}", f.kind, f.name),
            };
            let mut event = warning(
                "Finding",
                "Audit",
                format!("{} ({}) {at}: {}", f.rule, f.severity, f.message),
            );
            event.namespace.clone_from(&f.namespace);
            event.related = Some(Related {
                kind: f.kind.clone(),
                namespace: f.namespace.clone(),
                name: f.name.clone(),
            });
            events.push(event);
        }
    } else {
        // Audit mode writes nothing but status: nothing is announced, so nothing is "seen".
        seen = input.previous_findings.clone();
    }

    Plan {
        applies: if enforce { applies } else { dry_run },
        deletes: if enforce { deletes } else { Vec::new() },
        reverts: if enforce { reverts } else { Vec::new() },
        fights,
        status: changed(new_status, input.previous),
        events,
        findings_seen: seen,
    }
}

fn fight_id(f: &Fight) -> FindingId {
    FindingId::of(
        "TenantOverrideFight",
        f.key.kind.name(),
        Some(&f.key.namespace),
        &f.key.name,
    )
}

fn changed(
    new: MeshBaselineStatus,
    previous: Option<&MeshBaselineStatus>,
) -> Option<MeshBaselineStatus> {
    // Transition times were carried over, so equality ignores timestamps of unchanged conditions.
    (previous != Some(&new)).then_some(new)
}

fn plan_invalid(input: &PlanInput, err: &InvalidBaseline) -> Plan {
    let message = err.to_string();
    let conds = vec![
        Cond::new(
            READY,
            false,
            "InvalidSpec",
            "the spec is invalid; the last good objects stay in place",
        ),
        Cond::new(RECONCILING, false, "ReconcileComplete", ""),
        Cond::new(DEGRADED, false, "AsExpected", ""),
        Cond::new(DRIFT_DETECTED, false, "NoDrift", ""),
        Cond::new(INVALID, true, "InvalidSpec", message.clone()),
        // Flux's kstatus reads an invalid spec as failed only through Stalled.
        Cond::new(
            STALLED,
            true,
            "InvalidSpec",
            "the spec is invalid; fix it to continue",
        ),
    ];
    let counts = input
        .previous
        .map(|p| Counts {
            namespaces: p.namespaces.clone(),
            managed_objects: p.managed_objects,
            drift_repairs: p.drift_repairs,
            enforcement: p.enforcement.clone(),
            posture: p.posture.clone(),
        })
        .unwrap_or_default();
    let new_status = status::build(
        input.generation,
        conds,
        counts,
        None,
        input.previous,
        input.now,
    );
    let was_invalid = input
        .previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == INVALID))
        .is_some_and(|c| c.status == "True" && c.message == message);
    let events = if was_invalid {
        Vec::new()
    } else {
        vec![warning("InvalidSpec", "Validate", message)]
    };
    Plan {
        status: changed(new_status, input.previous),
        events,
        findings_seen: input.previous_findings.clone(),
        ..Plan::default()
    }
}

#[cfg(test)]
mod tests;
