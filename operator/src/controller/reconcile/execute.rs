//! The execute step: every write of a plan goes through the one executor, and what the API
//! server answers goes into the caches at once.

use std::time::Instant;

use kube::{Resource, ResourceExt};

use crate::api::baseline::MeshBaselineStatus;
use crate::api::MeshBaseline;
use crate::plan::{self, status};

use super::super::context::Ctx;
use super::super::executor::WriteError;
use super::ReconcileError;

/// What executing a plan did.
pub struct Outcome {
    /// Writes that succeeded.
    pub progress: usize,
    /// Writes left when the pass ran out of time (`Ctx::write_batch`): the next pass plans
    /// them again. No status or event is written by a pass cut short.
    pub left: usize,
    /// The status written, if any (the planned one, or one naming failed writes).
    pub status: Option<MeshBaselineStatus>,
    /// The first error (retried with backoff), or leadership lost.
    pub result: Result<(), ReconcileError>,
}

/// Failed writes so far: each named with the API's reason, and the first error.
#[derive(Default)]
struct Failures {
    named: Vec<(String, String)>,
    first: Option<kube::Error>,
}

impl Failures {
    /// Notes a failed write; losing leadership stops the plan at once.
    fn note(&mut self, e: WriteError, what: String) -> Result<(), ReconcileError> {
        match e {
            WriteError::NotLeader => Err(ReconcileError::NotLeader),
            WriteError::Api(e) => {
                tracing::warn!(error = %e, "{what} failed");
                self.named.push((what, reason(&e)));
                self.first.get_or_insert(e);
                Ok(())
            }
        }
    }
}

/// What the API said, short enough for a condition message.
fn reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            status::truncate(&format!("{} {}: {}", s.code, s.reason, s.message), 200)
        }
        other => status::truncate(&other.to_string(), 200),
    }
}

/// Executes a plan. Continues past a failed write so one bad object does not block the
/// others. When writes failed the status is still written, `Degraded=True` naming the
/// objects and the API's reasons, so it never freezes.
pub async fn execute(ctx: &Ctx, mb: &MeshBaseline, p: &plan::Plan) -> Outcome {
    let mut progress = 0;
    let mut left = 0;
    let mut status = None;
    let mut failures = Failures::default();
    let result = async {
        left = write_objects(ctx, p, &mut progress, &mut failures).await?;
        if left > 0 {
            return Ok(());
        }
        status = write_status(ctx, mb, p, &mut failures).await?;
        send_events(ctx, mb, p).await?;
        failures.first.take().map_or(Ok(()), |e| Err(e.into()))
    }
    .await;
    Outcome {
        progress,
        left,
        status,
        result,
    }
}

/// Applies, deletes and reverts, until the pass's time is up; returns how many are left.
async fn write_objects(
    ctx: &Ctx,
    p: &plan::Plan,
    progress: &mut usize,
    failures: &mut Failures,
) -> Result<usize, ReconcileError> {
    let started = Instant::now();
    let total = p.applies.len() + p.deletes.len() + p.reverts.len();
    // Checked before every write but the first, so every pass makes progress.
    let mut done = 0;
    let mut out_of_time = || {
        done += 1;
        (done > 1 && started.elapsed() >= ctx.write_batch).then(|| total - (done - 1))
    };
    for a in applies_in_order(&p.applies) {
        if let Some(left) = out_of_time() {
            return Ok(left);
        }
        match ctx.executor.write(a).await {
            Ok(obj) => {
                *progress += 1;
                ctx.wrote(a.key.kind, obj);
                if a.repair {
                    ctx.metrics.drift_repaired(a.key.kind.name());
                    tracing::info!(object = %a.key, "drift repaired");
                }
            }
            Err(e) => failures.note(e, a.key.to_string())?,
        }
    }
    for key in &p.deletes {
        if let Some(left) = out_of_time() {
            return Ok(left);
        }
        let uid = ctx.index.generated.uid(key);
        match ctx.executor.delete(key, uid).await {
            Ok(()) => {
                *progress += 1;
                ctx.deleted(key);
            }
            Err(e) => failures.note(e, format!("delete {key}"))?,
        }
    }
    for r in &p.reverts {
        if let Some(left) = out_of_time() {
            return Ok(left);
        }
        match ctx.executor.revert(r).await {
            Ok(Some(obj)) => {
                *progress += 1;
                ctx.metrics.tenant_reverted(r.key.kind.name());
                tracing::info!(object = %r.key, fields = ?r.fields, "tenant override reverted");
                ctx.wrote(r.key.kind, obj);
            }
            Ok(None) => {
                *progress += 1;
                tracing::debug!(object = %r.key, "not reverted: the object observed is gone");
            }
            Err(e) => failures.note(e, format!("revert {}", r.key))?,
        }
    }
    Ok(0)
}

/// The planned status, or one naming the failed writes; returns what was written.
async fn write_status(
    ctx: &Ctx,
    mb: &MeshBaseline,
    p: &plan::Plan,
    failures: &mut Failures,
) -> Result<Option<MeshBaselineStatus>, ReconcileError> {
    let status = if failures.named.is_empty() {
        p.status.clone()
    } else {
        Some(status::with_write_failures(
            p.status.as_ref(),
            mb.status.as_ref(),
            &failures.named,
            jiff::Timestamp::now(),
        ))
    };
    let Some(status) = status else {
        return Ok(None);
    };
    match ctx.executor.status(&mb.name_any(), &status).await {
        Ok(()) => Ok(Some(status)),
        Err(WriteError::NotLeader) => Err(ReconcileError::NotLeader),
        Err(WriteError::Api(e)) => {
            tracing::warn!(error = %e, "status failed");
            failures.first.get_or_insert(e);
            Ok(None)
        }
    }
}

/// Events are best effort: a lost event must not fail the reconcile.
async fn send_events(ctx: &Ctx, mb: &MeshBaseline, p: &plan::Plan) -> Result<(), ReconcileError> {
    let reference = mb.object_ref(&());
    for ev in &p.events {
        match ctx.executor.event(&reference, ev).await {
            Ok(()) => {}
            Err(WriteError::NotLeader) => return Err(ReconcileError::NotLeader),
            Err(e) => tracing::warn!(error = %e, reason = %ev.reason, "event not recorded"),
        }
    }
    Ok(())
}

/// Repairs of drifted objects first, then changes of objects that exist, then creations; by
/// key within each (the plan's order), so passes cut short make steady progress.
fn applies_in_order(applies: &[plan::Apply]) -> Vec<&plan::Apply> {
    let mut ordered: Vec<&plan::Apply> = applies.iter().collect();
    ordered.sort_by_key(|a| (!a.repair, a.live.is_none()));
    ordered
}
