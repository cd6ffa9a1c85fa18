//! Executing a plan: every write goes through the executor, and what the API server answers
//! goes into the caches at once.

use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};

use crate::api::baseline::MeshBaselineStatus;
use crate::api::MeshBaseline;
use crate::object::{Kind, ObjectKey};
use crate::plan::{self, status};

use super::executor::WriteError;
use super::objects::{trim, KindEntry};
use super::reconcile::{Ctx, ReconcileError};

/// What the API said, short enough for a condition message.
fn reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            status::truncate(&format!("{} {}: {}", s.code, s.reason, s.message), 200)
        }
        other => status::truncate(&other.to_string(), 200),
    }
}

/// What executing a plan did.
pub(super) struct Outcome {
    /// Writes that succeeded.
    pub progress: usize,
    /// Writes left when the pass ran out of time (`Ctx::write_batch`): the next pass plans
    /// them again. No status or event is written by a pass cut short.
    pub left: usize,
    /// The status written, if any (the planned one, or one naming failed writes).
    pub status: Option<MeshBaselineStatus>,
}

/// Executes a plan: every write goes through the executor. Continues past a failed write so
/// one bad object does not block the others; the first error is returned (retried with
/// backoff). When writes failed the status is still written, `Degraded=True` naming the
/// objects and the API's reasons, so it never freezes. Losing leadership stops the plan at
/// once.
pub(super) async fn execute(
    ctx: &Ctx,
    mb: &MeshBaseline,
    p: &plan::Plan,
    out: &mut Outcome,
) -> Result<(), ReconcileError> {
    let mut first_err: Option<kube::Error> = None;
    let mut failures: Vec<(String, String)> = Vec::new();
    let mut note = |e: WriteError, what: String| -> Result<(), ReconcileError> {
        match e {
            WriteError::NotLeader => Err(ReconcileError::NotLeader),
            WriteError::Api(e) => {
                tracing::warn!(error = %e, "{what} failed");
                failures.push((what, reason(&e)));
                if first_err.is_none() {
                    first_err = Some(e);
                }
                Ok(())
            }
        }
    };
    let started = std::time::Instant::now();
    let total = p.applies.len() + p.deletes.len() + p.reverts.len();
    let mut done = 0;
    // Checked before every write but the first, so every pass makes progress.
    let out_of_time = |done: &mut usize| {
        *done += 1;
        *done > 1 && started.elapsed() >= ctx.write_batch
    };
    for a in applies_in_order(&p.applies) {
        if out_of_time(&mut done) {
            out.left = total - (done - 1);
            return Ok(());
        }
        match ctx.executor.write(a).await {
            Ok(obj) => {
                out.progress += 1;
                write_through(ctx, a.key.kind, obj);
                if a.repair {
                    ctx.metrics.drift_repaired(a.key.kind.name());
                    tracing::info!(object = %a.key, "drift repaired");
                }
            }
            Err(e) => note(e, a.key.to_string())?,
        }
    }
    for key in &p.deletes {
        if out_of_time(&mut done) {
            out.left = total - (done - 1);
            return Ok(());
        }
        let uid = ctx
            .generated
            .with(|o| o.get(key).and_then(|o| o.uid.as_deref().map(String::from)));
        match ctx.executor.delete(key, uid).await {
            Ok(()) => {
                out.progress += 1;
                forget(ctx, key);
            }
            Err(e) => note(e, format!("delete {key}"))?,
        }
    }
    for r in &p.reverts {
        if out_of_time(&mut done) {
            out.left = total - (done - 1);
            return Ok(());
        }
        match ctx.executor.revert(r).await {
            Ok(obj) => {
                out.progress += 1;
                ctx.metrics.tenant_reverted(r.key.kind.name());
                tracing::info!(object = %r.key, fields = ?r.fields, "tenant override reverted");
                write_through(ctx, r.key.kind, obj);
            }
            Err(e) => note(e, format!("revert {}", r.key))?,
        }
    }
    let status = if failures.is_empty() {
        p.status.clone()
    } else {
        Some(status::with_write_failures(
            p.status.as_ref(),
            mb.status.as_ref(),
            &failures,
            jiff::Timestamp::now(),
        ))
    };
    if let Some(status) = status {
        match ctx.executor.status(&mb.name_any(), &status).await {
            Ok(()) => out.status = Some(status),
            Err(WriteError::NotLeader) => return Err(ReconcileError::NotLeader),
            Err(WriteError::Api(e)) => {
                tracing::warn!(error = %e, "status failed");
                first_err.get_or_insert(e);
            }
        }
    }
    let reference = mb.object_ref(&());
    for ev in &p.events {
        // Events are best effort: a lost event must not fail the reconcile.
        match ctx.executor.event(&reference, ev).await {
            Ok(()) => {}
            Err(WriteError::NotLeader) => return Err(ReconcileError::NotLeader),
            Err(e) => tracing::warn!(error = %e, reason = %ev.reason, "event not recorded"),
        }
    }
    match first_err {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Repairs of drifted objects first, then changes of objects that exist, then creations; by
/// key within each (the plan's order), so passes cut short make steady progress.
fn applies_in_order(applies: &[plan::Apply]) -> Vec<&plan::Apply> {
    let mut ordered: Vec<&plan::Apply> = applies.iter().collect();
    ordered.sort_by_key(|a| (!a.repair, a.live.is_none()));
    ordered
}

/// The stored object from a write goes into the cache at once, so the next reconcile does not
/// see the stale version before the watch delivers the event. Never over a newer version the
/// watch already delivered (a tenant's edit right after our write would otherwise be hidden
/// until its event came again): the response wins only when its resourceVersion is
/// numerically greater; when the versions cannot be compared, the watch's copy stays.
fn write_through(ctx: &Ctx, kind: Kind, obj: DynamicObject) {
    let (Some(cache), Some((key, entry))) = (ctx.kinds.get(&kind), trim(kind, obj)) else {
        return;
    };
    let new = entry.clone();
    let keep =
        |current: &KindEntry, response: &KindEntry| response.newer_than(current) != Some(true);
    if let Some(old) = cache.apply_unless(key.clone(), entry, keep) {
        ctx.kind_changed(kind, &key, old.as_ref(), Some(&new), false);
    }
}

fn forget(ctx: &Ctx, key: &ObjectKey) {
    let k = super::cache::key(&key.namespace, key.name.as_str());
    if let Some(cache) = ctx.kinds.get(&key.kind) {
        if let Some(old) = cache.delete(&k) {
            ctx.kind_changed(key.kind, &k, Some(&old), None, false);
        }
    }
}
