//! One reconcile of one baseline, top to bottom: gate → decide → compute → plan → execute →
//! record the outcome. Compile and audit results are reused as the freshness model allows,
//! so a watch event on a generated object (drift) costs only the plan and the repair. See
//! docs/architecture.md for the data flow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use tracing::Instrument;

use crate::api::{Baseline, MeshBaseline};
use crate::plan::Plan;

use super::context::Ctx;
use super::freshness::Decision;

/// Compile and audit results, reused or redone as the freshness model decides.
mod compute;
/// Executing a plan through the one executor.
mod execute;
/// What the controller remembers of a baseline between reconciles.
mod memory;
/// Status writes and finding events paced under churn.
mod pacing;
/// The planner's input from the memory and the index, and its output paced.
mod planning;
/// What a pass's outcome leaves in the memory and the metrics, and what comes next.
mod record;
#[cfg(test)]
mod tests;

pub use memory::Memory;
pub use record::error_policy;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// Leadership was lost during the plan; the rest of it was not executed.
    #[error("leadership lost")]
    NotLeader,
}

/// One pass's plan and what recording its outcome needs.
pub(super) struct Pass {
    pub name: String,
    pub uid: Option<String>,
    /// The freshness model's decision (`None`: the spec is invalid).
    pub decision: Option<Decision>,
    pub results: Option<memory::Results>,
    pub plan: Plan,
    /// A status held back by pacing is due after this long.
    pub status_wait: Option<Duration>,
}

pub async fn reconcile(mb: Arc<MeshBaseline>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let span = tracing::info_span!("reconcile", baseline = %mb.name_any());
    async move {
        if !gate(&ctx) {
            // Reconciled again when the caches sync or leadership is acquired.
            return Ok(Action::await_change());
        }
        let started = Instant::now();
        let pass = prepare(&ctx, &mb, Timestamp::now());
        planning::count_reported_errors(&ctx, &pass);
        let outcome = execute::execute(&ctx, &mb, &pass.plan).await;
        record::record(&ctx, pass, outcome, started.elapsed())
    }
    .instrument(span)
    .await
}

/// Reconciles run only once every cache is filled (earlier, objects that merely were not seen
/// yet would be written) and only while this replica may write.
fn gate(ctx: &Ctx) -> bool {
    ctx.index.synced() && ctx.leadership.may_write()
}

/// Decide, compute and plan: no await and no write. The baseline's memory is taken out for
/// the pass and put back with what the plan used.
pub(super) fn prepare(ctx: &Ctx, mb: &MeshBaseline, now: Timestamp) -> Pass {
    let name = mb.name_any();
    let mut memory = ctx.baselines.take_memory(&name, mb.metadata.uid.as_deref());
    let validated = Baseline::try_from(mb);
    let missing = ctx.index.missing_kinds();
    let (decision, results) = match &validated {
        Ok(baseline) => {
            memory.last_good = Some(baseline.clone());
            let fingerprint = ctx.baselines.fingerprint();
            let decision = ctx
                .freshness
                .decide(&name, memory.memo(), &fingerprint, &missing, now);
            let results = compute::compute(ctx, baseline, &mut memory, &decision, fingerprint, now);
            let merged = memory.merge_records(&results.compiled, &ctx.index.generated);
            if let (Some(uid), Some(records)) = (&memory.uid, merged) {
                ctx.freshness.set_records(uid, records);
            }
            (Some(decision), Some(results))
        }
        Err(_) => {
            // An invalid spec plans no object: what changed is compared once it is valid.
            ctx.freshness.take_changed(&name);
            (None, None)
        }
    };
    let (plan, status_wait) = planning::plan(
        ctx,
        mb,
        &validated,
        &mut memory,
        decision.as_ref(),
        results.as_ref(),
        &missing,
        now,
    );
    memory.missing = missing;
    ctx.baselines.put_memory(name.clone(), memory);
    Pass {
        name,
        uid: mb.metadata.uid.clone(),
        decision,
        results,
        plan,
        status_wait,
    }
}
