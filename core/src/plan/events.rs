//! The Events of a plan: objects restored, tenants' fields reverted, fights given up, new
//! findings; and the one budget that "Finding" events are sent within.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};

use crate::audit::Finding;

use super::revert::Fight;
use super::{status, EventType, FindingId, PlanInput, PlannedEvent, Reason, Related, Writes};

/// "Finding" events per namespace of the objects concerned, per `EVENT_WINDOW`: per namespace,
/// so a tenant who floods findings in theirs uses up only their own budget.
pub const MAX_FINDING_EVENTS: usize = 20;
/// And at most this many in all per plan (a first reconcile over a whole cluster).
pub const MAX_FINDING_EVENTS_TOTAL: usize = 100;
pub const EVENT_WINDOW: SignedDuration = SignedDuration::from_secs(60);

/// What is left of the "Finding" events' budget. Findings over it are in the status only (and
/// counted as announced: they get no event later). The controller keeps it between plans; each
/// plan spends it and returns what is left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FindingBudget {
    /// Per namespace (`None`: cluster-scoped objects): when its window started, events sent.
    windows: BTreeMap<Option<String>, (Timestamp, usize)>,
}

impl FindingBudget {
    /// The budget at `now`: windows that have ended are forgotten.
    fn at(&self, now: Timestamp) -> FindingBudget {
        let mut windows = self.windows.clone();
        windows.retain(|_, (start, _)| now.duration_since(*start) < EVENT_WINDOW);
        FindingBudget { windows }
    }

    /// Spends one event about an object in `namespace`, if its window has room left.
    fn spend(&mut self, namespace: Option<&str>, now: Timestamp) -> bool {
        let (_, sent) = self
            .windows
            .entry(namespace.map(String::from))
            .or_insert((now, 0));
        if *sent >= MAX_FINDING_EVENTS {
            return false;
        }
        *sent += 1;
        true
    }
}

/// What a plan announces.
pub(super) struct Announced {
    pub events: Vec<PlannedEvent>,
    /// Findings and fights announced so far.
    pub seen: BTreeSet<FindingId>,
    pub budget: FindingBudget,
}

/// A warning event; the note is cut below 1 KiB (the API server refuses longer notes, and a
/// refused event would be retried forever).
pub(super) fn warning(reason: Reason, action: &str, note: String) -> PlannedEvent {
    PlannedEvent {
        type_: EventType::Warning,
        reason,
        action: action.into(),
        note: status::truncate(&note, status::MAX_NOTE),
        namespace: None,
        related: None,
    }
}

pub(super) fn fight_id(f: &Fight) -> FindingId {
    let (kind, ns, name) = (f.key.kind.name(), &f.key.namespace, &f.key.name);
    FindingId::of(Reason::TenantOverrideFight.as_str(), kind, Some(ns), name)
}

/// The events of a valid spec's plan. Audit mode writes nothing but status: nothing is
/// announced, so nothing new is "seen". `own`: the plan's own findings (MB901–MB903).
pub(super) fn valid(input: &PlanInput, enforce: bool, w: &Writes, own: &[Finding]) -> Announced {
    if !enforce {
        return Announced {
            events: Vec::new(),
            seen: input.previous_findings.clone(),
            budget: input.finding_budget.clone(),
        };
    }
    let findings = || own.iter().chain(input.findings);
    // Hashed once: the drift-repair path plans with every finding, thousands of them.
    let ids: Vec<FindingId> = findings().map(FindingId::from).collect();
    let mut seen: BTreeSet<FindingId> = ids.iter().copied().collect();
    seen.extend(w.fights.iter().map(fight_id));
    let mut events = of_writes(input, w);
    let mut budget = input.finding_budget.at(input.now);
    let new = findings()
        .zip(&ids)
        .filter(|(_, id)| !input.previous_findings.contains(id))
        .map(|(f, _)| f);
    let announced = new
        .filter(|f| budget.spend(f.namespace.as_deref(), input.now))
        .take(MAX_FINDING_EVENTS_TOTAL);
    events.extend(announced.map(finding));
    Announced {
        events,
        seen,
        budget,
    }
}

/// Objects restored, tenants' fields reverted, and fights not announced before.
fn of_writes(input: &PlanInput, w: &Writes) -> Vec<PlannedEvent> {
    let mut events = Vec::new();
    for a in w.repaired() {
        let mut event = warning(
            Reason::DriftRepaired,
            "Apply",
            format!("restored {}", a.key),
        );
        event.related = Some(Related::of(&a.key));
        events.push(event);
    }
    for r in &w.reverts {
        let note = format!("took ownership of {} on {}", r.fields.join(", "), r.key);
        let mut event = warning(Reason::TenantOverrideReverted, "Revert", note);
        event.related = Some(Related::of(&r.key));
        events.push(event);
    }
    let new_fights = w
        .fights
        .iter()
        .filter(|f| !input.previous_findings.contains(&fight_id(f)));
    for f in new_fights {
        let note = format!(
            "{} keeps setting {} on {}; no longer reverting",
            f.managers.join(", "),
            f.fields.join(", "),
            f.key
        );
        let mut event = warning(Reason::TenantOverrideFight, "Revert", note);
        event.related = Some(Related::of(&f.key));
        events.push(event);
    }
    events
}

fn finding(f: &Finding) -> PlannedEvent {
    let at = match &f.namespace {
        Some(ns) => format!("{} {ns}/{}", f.kind, f.name),
        None => format!("{} {}", f.kind, f.name),
    };
    let note = format!("{} ({}) {at}: {}", f.rule, f.severity, f.message);
    let mut event = warning(Reason::Finding, "Audit", note);
    event.namespace.clone_from(&f.namespace);
    event.related = Some(Related {
        kind: f.kind.clone(),
        namespace: f.namespace.clone(),
        name: f.name.clone(),
    });
    event
}

/// The event of an invalid spec: once per message (a new generation or another error).
pub(super) fn invalid(input: &PlanInput, message: &str) -> Vec<PlannedEvent> {
    let was_invalid = input
        .previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == status::INVALID))
        .is_some_and(|c| c.status == "True" && c.message == message);
    if was_invalid {
        return Vec::new();
    }
    vec![warning(
        Reason::InvalidSpec,
        "Validate",
        message.to_string(),
    )]
}
