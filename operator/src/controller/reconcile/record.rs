//! The record step: what a pass's outcome leaves in the baseline's memory and in the metrics,
//! and when the baseline is reconciled next.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::ResourceExt;

use crate::api::MeshBaseline;

use super::super::context::Ctx;
use super::execute::Outcome;
use super::memory::Memory;
use super::{Pass, ReconcileError};

pub(super) fn record(
    ctx: &Ctx,
    mut pass: Pass,
    mut outcome: Outcome,
    elapsed: Duration,
) -> Result<Action, ReconcileError> {
    ctx.metrics
        .reconcile_duration
        .observe(elapsed.as_secs_f64());
    let name = pass.name.clone();
    ctx.baselines
        .with_memory(&name, |m| remember(m, &mut pass, &mut outcome));
    if let Some(r) = &pass.results {
        let uid = pass.uid.as_deref();
        ctx.metrics.set_posture(&pass.name, Some(&r.posture.total));
        ctx.metrics.set_baseline(
            &pass.name,
            Some((
                &r.findings,
                ctx.index.generated.count(uid),
                r.compiled.protected.len(),
            )),
        );
    }
    next(ctx, &pass, outcome, elapsed)
}

/// What the next pass must know of this one.
fn remember(m: &mut Memory, pass: &mut Pass, outcome: &mut Outcome) {
    match &outcome.result {
        // Cut short: what the plan remembers (announced findings, the compile output of the
        // fast path) waits for the pass that finishes.
        Ok(()) if outcome.left > 0 => m.failures = 0,
        Ok(()) => {
            m.failures = 0;
            m.announced = std::mem::take(&mut pass.plan.findings_seen);
            if let Some(r) = &pass.results {
                m.planned = Some(r.compiled.clone());
            }
            if let Some(d) = pass.decision.as_ref().filter(|d| !d.fast) {
                m.resync = d.versions.resync;
            }
        }
        // Backoff grows only while nothing gets through: under a share of failing requests,
        // a reconcile that wrote something starts the backoff over, so convergence is not
        // held up by long waits.
        Err(_) if outcome.progress > 0 => m.failures = 1,
        Err(_) => m.failures = m.failures.saturating_add(1),
    }
    // What was written is what the next plan compares with (the watch may not have delivered
    // it yet), also after a failure: a status naming failed writes must be replaced once
    // they succeed.
    if let Some(s) = outcome.status.take() {
        m.pacing
            .status_written(Instant::now(), &s, m.last_status.as_ref());
        m.last_status = Some(s);
    }
}

/// When to reconcile next: at once when a write batch was cut short, at the next exemption
/// expiry or when a held-back status is due, with backoff after an error.
fn next(
    ctx: &Ctx,
    pass: &Pass,
    outcome: Outcome,
    elapsed: Duration,
) -> Result<Action, ReconcileError> {
    let plan = &pass.plan;
    match outcome.result {
        Ok(()) if outcome.left > 0 => {
            tracing::debug!(
                written = outcome.progress,
                left = outcome.left,
                "write batch done; planning again"
            );
            Ok(Action::requeue(Duration::ZERO))
        }
        Ok(()) => {
            ctx.metrics.reconciled(true);
            tracing::debug!(
                applies = plan.applies.len(),
                deletes = plan.deletes.len(),
                reverts = plan.reverts.len(),
                status = plan.status.is_some(),
                micros = elapsed.as_micros() as u64,
                "reconciled"
            );
            let stamp = pass.results.as_ref().map(|r| &r.stamp);
            let expiry = stamp.and_then(|s| s.valid_until);
            let posture_due = stamp.and_then(|s| s.posture_due_at());
            let at = expiry.into_iter().chain(posture_due).min();
            Ok(wake_up(at, pass.status_wait))
        }
        // Not an error: another replica writes now; leadership changes trigger a full pass.
        Err(ReconcileError::NotLeader) => {
            tracing::info!("leadership lost; plan stopped");
            Ok(Action::await_change())
        }
        Err(e) => {
            ctx.metrics.reconciled(false);
            ctx.metrics.reconcile_error(e.reason());
            Err(e)
        }
    }
}

/// Timed wake-ups: an exemption expires or posture counts behind are due (`at`), a held-back
/// status is due.
fn wake_up(at: Option<Timestamp>, status_wait: Option<Duration>) -> Action {
    let expiry = at.map(|t| {
        Duration::try_from(t.duration_since(Timestamp::now()))
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(100))
    });
    let status_due = status_wait.map(|w| w.max(Duration::from_millis(10)));
    match (expiry, status_due) {
        (Some(a), Some(b)) => Action::requeue(a.min(b)),
        (Some(a), None) | (None, Some(a)) => Action::requeue(a),
        (None, None) => Action::await_change(),
    }
}

impl ReconcileError {
    /// The `reason` label of the error counter.
    fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            ReconcileError::Kube(kube::Error::Api(_)) => "api",
            ReconcileError::Kube(_) => "other",
            ReconcileError::NotLeader => "not_leader",
        }
    }
}

/// Backoff after a failed reconcile: it doubles with every failure in a row, up to a minute.
pub fn error_policy(mb: Arc<MeshBaseline>, err: &ReconcileError, ctx: Arc<Ctx>) -> Action {
    let failures = ctx
        .baselines
        .with_memory(&mb.name_any(), |m| m.failures.max(1))
        .unwrap_or(1);
    let delay = Duration::from_millis(200)
        .saturating_mul(1 << failures.min(9))
        .min(Duration::from_secs(60));
    tracing::warn!(baseline = %mb.name_any(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
