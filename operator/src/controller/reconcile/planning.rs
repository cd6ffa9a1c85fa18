//! The plan step: the planner's input from the baseline's memory, the results and the index;
//! its output paced (status writes and finding events under churn).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{Baseline, InvalidBaseline, MeshBaseline};
use crate::compile::Compiled;
use crate::inventory::Inventory;
use crate::object::Kind;
use crate::plan::{self, Plan, PlanInput, Reason, Resolved, Spec};

use super::super::context::Ctx;
use super::super::freshness::Decision;
use super::memory::{Memory, Results};
use super::Pass;

/// The plan for this pass. On the drift fast path (`decision.fast`) it compares only the
/// generated objects that changed; otherwise every one.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan(
    ctx: &Ctx,
    mb: &MeshBaseline,
    validated: &Result<Baseline, InvalidBaseline>,
    memory: &mut Memory,
    decision: Option<&Decision>,
    results: Option<&Results>,
    missing: &BTreeSet<Kind>,
    now: Timestamp,
) -> (Plan, Option<Duration>) {
    let empty = Compiled::default();
    let no_overlap = Resolved::default();
    let no_inventory = Inventory::default();
    let name = mb.name_any();
    let spec = match validated {
        Ok(b) => Spec::Valid(b),
        Err(e) => Spec::Invalid(e),
    };
    let mut plan = ctx.index.generated.with(|observed| {
        plan::plan(&PlanInput {
            name: &name,
            uid: mb.metadata.uid.as_deref(),
            generation: mb.metadata.generation,
            spec,
            compiled: results.map_or(&empty, |r| &r.compiled),
            observed,
            findings: results.map_or(&[], |r| r.findings.as_slice()),
            posture: results.map(|r| &*r.posture),
            inventory: results.map_or(&no_inventory, |r| &r.inventory),
            overlap: results.map_or(&no_overlap, |r| &r.resolved),
            missing_kinds: missing,
            previous: memory.last_status.as_ref().or(mb.status.as_ref()),
            previous_compiled: memory.planned.as_deref(),
            records: &memory.records,
            previous_findings: &memory.announced,
            finding_budget: &memory.finding_budget,
            only: decision.filter(|d| d.fast).map(|d| &d.changed),
            now,
        })
    });
    // Spent when planned, whether or not the events go out.
    memory.finding_budget = std::mem::take(&mut plan.finding_budget);
    let status_wait = memory
        .pacing
        .pace(&mut plan, memory.last_status.as_ref(), Instant::now());
    (plan, status_wait)
}

/// Error counters count errors, not reconciles: an invalid spec is counted when a status first
/// reports it (a new generation or message), not again on every later drift repair, resync or
/// inventory change while it stays invalid; missing Istio CRDs likewise. A status is planned
/// only when it changes, and a change of conditions is never held back.
pub(super) fn count_reported_errors(ctx: &Ctx, pass: &Pass) {
    if pass.plan.reports(Reason::InvalidSpec) {
        ctx.metrics.reconcile_error("invalid_spec");
    }
    if pass.plan.reports(Reason::IstioCrdsMissing) {
        ctx.metrics.reconcile_error("crd_missing");
    }
}
