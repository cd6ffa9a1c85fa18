//! Pure planner: desired vs observed -> writes, deletes, reverts, status and events.
//! No client, no async; the time is a parameter. `plan` diffs (and plans reverts), then builds
//! the status's conditions (`conditions`) and counts (`counts`), and the events (`events`).

mod conditions;
mod counts;
mod diff;
mod dry_run;
mod enforcement;
mod events;
pub(crate) mod exact;
mod overlap;
mod reason;
mod revert;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

pub use diff::{Apply, Live, Observed};
pub use events::{FindingBudget, EVENT_WINDOW, MAX_FINDING_EVENTS, MAX_FINDING_EVENTS_TOTAL};
pub use exact::normalise;
pub use overlap::{resolve_overlaps, Resolved};
pub use reason::Reason;
pub use revert::{Fight, Revert, REVERTED_ANNOTATION};

use crate::api::baseline::{MeshBaselineStatus, Mode, TenantOverrides};
use crate::api::model::InvalidBaseline;
use crate::api::Baseline;
use crate::audit::Finding;
use crate::compile::Compiled;
use crate::inventory::Inventory;
use crate::object::{Kind, ObjectKey};
use diff::diff;

/// How long `DriftDetected` stays True after a repair.
pub const DRIFT_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_secs(600);

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
    /// What is left of the "Finding" events' budget since the last plan.
    pub finding_budget: &'a FindingBudget,
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
    pub reason: Reason,
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
    /// What is left of the "Finding" events' budget (to pass as `finding_budget` next time).
    pub finding_budget: FindingBudget,
}

impl Plan {
    /// Whether the status this plan writes (if any) has a condition True for `reason`.
    pub fn reports(&self, reason: Reason) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.status == "True" && c.reason == reason.as_str())
        })
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// What a valid spec's plan writes, before Audit mode keeps only the dry run.
struct Writes {
    applies: Vec<Apply>,
    deletes: Vec<ObjectKey>,
    /// The AuthorizationPolicies a dry run writes (Audit mode with `dryRunPolicies`).
    dry_run: Vec<Apply>,
    reverts: Vec<Revert>,
    fights: Vec<Fight>,
    /// Applies that restore what was written before and someone changed.
    repairs: usize,
}

impl Writes {
    fn new(input: &PlanInput, baseline: &Baseline) -> Writes {
        let (applies, deletes) = diff(input, &input.compiled.objects);
        let dry_run = dry_run::applies(baseline, &applies);
        let (mut reverts, fights) = if baseline.tenant_overrides == TenantOverrides::Revert {
            revert::plan_reverts(baseline, input.findings, input.inventory)
        } else {
            (Vec::new(), Vec::new())
        };
        // An object at one of our keys is replaced as a whole, or deleted when no longer
        // desired, never patched field by field: a revert of it would race its own write.
        let ours = |key: &ObjectKey| {
            let objects = &input.compiled.objects;
            objects.binary_search_by(|d| d.key.cmp(key)).is_ok() || deletes.contains(key)
        };
        reverts.retain(|r| !ours(&r.key));
        let repairs = applies.iter().filter(|a| a.repair).count();
        Writes {
            applies,
            deletes,
            dry_run,
            reverts,
            fights,
            repairs,
        }
    }

    fn repaired(&self) -> impl Iterator<Item = &Apply> {
        self.applies.iter().filter(|a| a.repair)
    }

    /// Desired objects of kinds the cluster serves: the others are not written.
    fn written(&self, input: &PlanInput) -> usize {
        let objects = input.compiled.objects.iter();
        objects
            .filter(|o| !input.missing_kinds.contains(&o.key.kind))
            .count()
    }
}

/// The plan for one baseline.
pub fn plan(input: &PlanInput) -> Plan {
    let baseline = match input.spec {
        Spec::Valid(b) => b,
        Spec::Invalid(err) => return plan_invalid(input, err),
    };
    let enforce = baseline.mode == Mode::Enforce;
    let w = Writes::new(input, baseline);
    let enforcement = enforcement::enforcement(
        baseline,
        enforce,
        input.compiled,
        &w.applies,
        input.missing_kinds,
    );
    // Few (at most one per generated admission object): kept apart, the audit's findings are
    // never copied.
    let own_findings = enforcement.findings;
    let new_status = status::build(
        input.generation,
        conditions::valid(input, baseline, &w),
        counts::valid(input, baseline, &w, enforcement.status),
        Some((input.findings, &own_findings)),
        input.previous,
        input.now,
    );
    let announced = events::valid(input, enforce, &w, &own_findings);
    Plan {
        applies: if enforce { w.applies } else { w.dry_run },
        deletes: if enforce { w.deletes } else { Vec::new() },
        reverts: if enforce { w.reverts } else { Vec::new() },
        fights: w.fights,
        status: changed(new_status, input.previous),
        events: announced.events,
        findings_seen: announced.seen,
        finding_budget: announced.budget,
    }
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
    let new_status = status::build(
        input.generation,
        conditions::invalid(&message),
        counts::kept(input.previous),
        None,
        input.previous,
        input.now,
    );
    Plan {
        status: changed(new_status, input.previous),
        events: events::invalid(input, &message),
        findings_seen: input.previous_findings.clone(),
        finding_budget: input.finding_budget.clone(),
        ..Plan::default()
    }
}

#[cfg(test)]
mod tests;
