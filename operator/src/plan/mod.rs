//! Pure planner: desired vs observed -> writes, deletes, reverts, status and events.
//! No client, no async; the time is a parameter.

mod exact;
mod overlap;
mod revert;
pub mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;

pub use exact::normalise;
pub use overlap::{resolve_overlaps, Resolved};
pub use revert::{Fight, Revert, REVERTED_ANNOTATION};

use crate::api::baseline::{MeshBaselineStatus, Mode, NamespaceCounts, TenantOverrides};
use crate::api::model::InvalidBaseline;
use crate::api::Baseline;
use crate::audit::Finding;
use crate::compile::Compiled;
use crate::inventory::Inventory;
use crate::object::{DesiredObject, Kind, ObjectKey, OwnedMeta};
use status::{Cond, Counts, DEGRADED, DRIFT_DETECTED, INVALID, READY, RECONCILING, STALLED};

/// How long `DriftDetected` stays True after a repair.
pub const DRIFT_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_secs(600);

/// At most this many "new finding" events per reconcile; the rest are only in the status.
pub const MAX_FINDING_EVENTS: usize = 20;

/// An object at a name the operator generates, as the cluster has it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// `kind`, `spec`, and of `metadata`: `uid`, `resourceVersion`, `ownerReferences`,
    /// `annotations` and `finalizers` (what a replace must carry over or check).
    pub manifest: Value,
    /// The uid of the MeshBaseline named by the controller ownerReference, if any.
    pub owner_uid: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `exact::owned_fingerprint` of the manifest, computed once when the object is cached.
    pub fingerprint: u64,
}

impl Observed {
    /// `manifest["kind"]` names the kind (its spec is normalised by kind).
    pub fn new(
        manifest: Value,
        owner_uid: Option<String>,
        labels: BTreeMap<String, String>,
    ) -> Self {
        let kind = manifest
            .get("kind")
            .and_then(Value::as_str)
            .and_then(Kind::from_name)
            .unwrap_or(Kind::AuthorizationPolicy);
        let fingerprint = exact::owned_fingerprint(
            kind,
            manifest.get("spec"),
            manifest.pointer("/metadata/ownerReferences"),
        );
        Observed {
            manifest,
            owner_uid,
            labels,
            fingerprint,
        }
    }

    fn meta_str(&self, field: &str) -> Option<String> {
        self.manifest
            .get("metadata")?
            .get(field)?
            .as_str()
            .map(String::from)
    }

    /// What a replace of this object keeps or checks (see `Live`).
    pub fn live(&self) -> Option<Live> {
        let meta = self.manifest.get("metadata");
        Some(Live {
            resource_version: self.meta_str("resourceVersion")?,
            uid: self.meta_str("uid"),
            labels: self.labels.clone(),
            annotations: meta.and_then(|m| m.get("annotations")).cloned(),
            finalizers: meta.and_then(|m| m.get("finalizers")).cloned(),
        })
    }
}

/// The live object an apply replaces: its version (the precondition of the replace, so a
/// concurrent change is never overwritten unseen) and the metadata tenants may keep.
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    pub resource_version: String,
    pub uid: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: Option<Value>,
    pub finalizers: Option<Value>,
}

/// The baseline's spec: valid, or rejected (the last good objects then stay as they are).
#[derive(Clone, Copy, Debug)]
pub enum Spec<'a> {
    Valid(&'a Baseline),
    Invalid(&'a InvalidBaseline),
}

/// Identity of a finding (or a fight) for event deduplication; the message is not part of it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FindingId {
    pub rule: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl From<&Finding> for FindingId {
    fn from(f: &Finding) -> Self {
        FindingId {
            rule: f.rule.id().to_string(),
            kind: f.kind.clone(),
            namespace: f.namespace.clone(),
            name: f.name.clone(),
        }
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
    pub observed: &'a BTreeMap<ObjectKey, Observed>,
    pub findings: &'a [Finding],
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

#[derive(Clone, Debug, PartialEq)]
pub struct Apply {
    pub key: ObjectKey,
    /// Shares its spec with the compiled output; the manifest is built when it is written, so
    /// a first convergence of 30,000 objects does not hold 30,000 manifests at once.
    pub object: DesiredObject,
    /// The object was as desired before and someone changed or deleted it.
    pub repair: bool,
    /// `Some`: the object exists and is replaced as a whole (foreign fields removed); `None`:
    /// it is created.
    pub live: Option<Live>,
}

impl Apply {
    /// The full object to write. For a replace: the desired spec, our labels and
    /// ownerReference, the live version as precondition, and the tenant's other labels,
    /// annotations and finalizers carried over (they do not change what the policy means).
    pub fn manifest(&self) -> Value {
        let mut m = self.object.manifest();
        let Some(live) = &self.live else { return m };
        let mut labels = live.labels.clone();
        labels.extend(self.object.meta.labels.clone());
        let meta = &mut m["metadata"];
        meta["labels"] = serde_json::to_value(labels).unwrap_or_default();
        meta["resourceVersion"] = Value::String(live.resource_version.clone());
        if let Some(uid) = &live.uid {
            meta["uid"] = Value::String(uid.clone());
        }
        for (field, v) in [
            ("annotations", &live.annotations),
            ("finalizers", &live.finalizers),
        ] {
            if let Some(v) = v {
                meta[field] = v.clone();
            }
        }
        m
    }
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
    }
}

/// What the diff collects, and the fingerprints of desired specs: specs are shared between
/// namespaces, so each distinct one is hashed once.
#[derive(Default)]
struct DiffOut {
    applies: Vec<Apply>,
    deletes: Vec<ObjectKey>,
    fingerprints: Fingerprints,
}

#[derive(Default)]
struct Fingerprints(HashMap<(Kind, *const Value, *const OwnedMeta), u64>);

impl Fingerprints {
    fn of(&mut self, d: &DesiredObject) -> u64 {
        // Pointers are valid keys: every Arc outlives the plan call that hashes it.
        *self
            .0
            .entry((d.key.kind, Arc::as_ptr(&d.spec), Arc::as_ptr(&d.meta)))
            .or_insert_with(|| {
                exact::owned_fingerprint(
                    d.key.kind,
                    Some(&d.spec),
                    d.meta.owner_references.as_ref(),
                )
            })
    }
}

/// One desired/observed pair: what to do with it.
fn decide_one(
    input: &PlanInput,
    key: &ObjectKey,
    desired: Option<&DesiredObject>,
    observed: Option<&Observed>,
    out: &mut DiffOut,
) {
    let DiffOut {
        applies,
        deletes,
        fingerprints,
    } = out;
    if input.missing_kinds.contains(&key.kind) {
        return;
    }
    match (desired, observed) {
        (Some(d), o) => {
            let matches = o.is_some_and(|o| {
                let desired_fp = fingerprints.of(d);
                exact::matches_exactly(d, desired_fp, o)
            });
            if matches {
                return;
            }
            let repair = input.previous_compiled.is_some_and(|prev| {
                prev.objects
                    .binary_search_by(|p| p.key.cmp(&d.key))
                    .is_ok_and(|i| prev.objects[i] == *d)
            });
            applies.push(Apply {
                key: d.key.clone(),
                object: d.clone(),
                repair,
                live: o.and_then(Observed::live),
            });
        }
        (None, Some(o)) => {
            // Ours to delete only by our own records: we wanted this object before, and it
            // still names this baseline as its owner. Labels, names and even an
            // ownerReference can be written by tenants; a key we never wanted cannot.
            if input.records.contains(key)
                && input.uid.is_some()
                && o.owner_uid.as_deref() == input.uid
            {
                deletes.push(key.clone());
            }
        }
        (None, None) => {}
    }
}

/// Applies for desired objects that are missing or differ, deletes for generated objects no
/// longer desired. A merge of the two sorted sequences, or only `input.only` when given.
fn diff(input: &PlanInput, desired: &[DesiredObject]) -> (Vec<Apply>, Vec<ObjectKey>) {
    let mut out = DiffOut::default();
    let mut sorted: Vec<&DesiredObject> = desired.iter().collect();
    // The compiler sorts by key; stay correct if some input does not.
    if !sorted.is_sorted_by(|a, b| a.key <= b.key) {
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
    }
    if let Some(only) = input.only {
        for key in only {
            let d = sorted
                .binary_search_by(|d| d.key.cmp(key))
                .ok()
                .map(|i| sorted[i]);
            let o = input.observed.get(key);
            decide_one(input, key, d, o, &mut out);
        }
        return (out.applies, out.deletes);
    }
    let mut ds = sorted.into_iter().peekable();
    let mut os = input.observed.iter().peekable();
    loop {
        let (key, d, o) = match (ds.peek(), os.peek()) {
            (None, None) => break,
            (Some(d), None) => (&d.key, ds.next(), None),
            (None, Some((k, _))) => (*k, None, os.next().map(|(_, o)| o)),
            (Some(d), Some((k, _))) => match d.key.cmp(k) {
                std::cmp::Ordering::Less => (&d.key, ds.next(), None),
                std::cmp::Ordering::Greater => (*k, None, os.next().map(|(_, o)| o)),
                std::cmp::Ordering::Equal => {
                    let key = &d.key;
                    (key, ds.next(), os.next().map(|(_, o)| o))
                }
            },
        };
        decide_one(input, key, d, o, &mut out);
    }
    (out.applies, out.deletes)
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

    let mut conds = Vec::new();
    conds.push(if enforce {
        Cond::new(
            READY,
            true,
            "Enforced",
            format!(
                "{} enforced in {}",
                plural(input.compiled.objects.len(), "object"),
                plural(input.compiled.protected.len(), "namespace")
            ),
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
    if !input.missing_kinds.is_empty() {
        let kinds: Vec<&str> = input.missing_kinds.iter().map(|k| k.name()).collect();
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
    } else if !enforce && (!applies.is_empty() || !deletes.is_empty()) {
        Cond::new(
            DRIFT_DETECTED,
            true,
            "DriftNotRepaired",
            format!(
                "Audit mode: {} differ from the baseline",
                plural(applies.len() + deletes.len(), "object")
            ),
        )
    } else {
        Cond::new(DRIFT_DETECTED, false, "NoDrift", "")
    });
    conds.push(Cond::new(INVALID, false, "Valid", ""));

    let previous_repairs = input.previous.map_or(0, |p| p.drift_repairs);
    let counts = Counts {
        namespaces: NamespaceCounts {
            protected: u32::try_from(input.compiled.protected.len()).unwrap_or(u32::MAX),
            exempt: u32::try_from(input.compiled.exempt.len()).unwrap_or(u32::MAX),
        },
        managed_objects: if enforce {
            u32::try_from(input.compiled.objects.len()).unwrap_or(u32::MAX)
        } else {
            0
        },
        drift_repairs: previous_repairs + if enforce { repairs as u64 } else { 0 },
    };
    let new_status = status::build(
        input.generation,
        conds,
        counts,
        Some(input.findings),
        input.previous,
        input.now,
    );

    let mut events = Vec::new();
    let mut seen: BTreeSet<FindingId> = input.findings.iter().map(FindingId::from).collect();
    seen.extend(fights.iter().map(fight_id));
    if enforce {
        for a in applies.iter().filter(|a| a.repair) {
            events.push(warning(
                "DriftRepaired",
                "Apply",
                format!("restored {}", a.key),
            ));
        }
        for r in &reverts {
            events.push(warning(
                "TenantOverrideReverted",
                "Revert",
                format!("took ownership of {} on {}", r.fields.join(", "), r.key),
            ));
        }
        for f in fights
            .iter()
            .filter(|f| !input.previous_findings.contains(&fight_id(f)))
        {
            events.push(warning(
                "TenantOverrideFight",
                "Revert",
                format!(
                    "{} keeps setting {} on {}; no longer reverting",
                    f.managers.join(", "),
                    f.fields.join(", "),
                    f.key
                ),
            ));
        }
        let new_findings = input
            .findings
            .iter()
            .filter(|f| !input.previous_findings.contains(&FindingId::from(*f)));
        for f in new_findings.take(MAX_FINDING_EVENTS) {
            let at = match &f.namespace {
                Some(ns) => format!("{} {ns}/{}", f.kind, f.name),
                None => format!("{} {}", f.kind, f.name),
            };
            events.push(warning(
                "Finding",
                "Audit",
                format!("{} ({}) {at}: {}", f.rule, f.severity, f.message),
            ));
        }
    } else {
        // Audit mode writes nothing but status: nothing is announced, so nothing is "seen".
        seen = input.previous_findings.clone();
    }

    Plan {
        applies: if enforce { applies } else { Vec::new() },
        deletes: if enforce { deletes } else { Vec::new() },
        reverts: if enforce { reverts } else { Vec::new() },
        fights,
        status: changed(new_status, input.previous),
        events,
        findings_seen: seen,
    }
}

fn fight_id(f: &Fight) -> FindingId {
    FindingId {
        rule: "TenantOverrideFight".into(),
        kind: f.key.kind.name().into(),
        namespace: Some(f.key.namespace.clone()),
        name: f.key.name.clone(),
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
