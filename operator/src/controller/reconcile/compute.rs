//! The compute step: as much compile and audit as the freshness model's decision asks for,
//! from an inventory snapshot. A pod changed on its own only has its own findings redone.
//! The posture counts are computed with them when the decision says they are due.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;

use crate::api::baseline::{Mode, PostureStatus};
use crate::api::Baseline;
use crate::audit::{self, audit_in_scope, audit_pod, Finding};
use crate::compile::{compile_reusing, Compiled};
use crate::inventory::Inventory;
use crate::plan::{self, Resolved};
use crate::posture::{Objects, Posture};

use super::super::cache::Key;
use super::super::context::Ctx;
use super::super::freshness::{Decision, Stamp, Versions, Work};
use super::super::ownership;
use super::memory::{Memory, Results};

/// Compile, audit and overlap resolution for `baseline`, reused or redone as `decision` says.
pub(super) fn compute(
    ctx: &Ctx,
    baseline: &Baseline,
    memory: &mut Memory,
    decision: &Decision,
    fingerprint: String,
    now: Timestamp,
) -> Results {
    if decision.audit_next {
        ctx.triggers.all();
    }
    match (&decision.work, memory.results.as_mut()) {
        (Work::Reuse, Some(r)) => {
            if decision.posture {
                refresh_posture(ctx, baseline, r, now);
            }
            r.clone()
        }
        (Work::AuditPods(pods), Some(r)) => {
            reaudit_pods(ctx, baseline, r, pods, now);
            if decision.posture {
                refresh_posture(ctx, baseline, r, now);
            } else {
                r.stamp.posture_behind = true;
            }
            r.clone()
        }
        (Work::Audit, Some(r)) => {
            reaudit(ctx, baseline, r, decision.posture, now);
            r.clone()
        }
        _ => {
            let results = compile(ctx, baseline, memory, decision, fingerprint, now);
            memory.results = Some(results.clone());
            results
        }
    }
}

/// The inventory as it is now, and the versions it was made at.
fn snapshot(ctx: &Ctx) -> (Versions, Arc<Inventory>) {
    ctx.index
        .snapshot(ctx.freshness.versions(), &ctx.freshness.records())
}

/// Everything from the start: overlaps, compile (reusing unchanged objects of the last
/// one), audit.
fn compile(
    ctx: &Ctx,
    baseline: &Baseline,
    memory: &Memory,
    decision: &Decision,
    fingerprint: String,
    now: Timestamp,
) -> Results {
    let started = Instant::now();
    let (v, inventory) = snapshot(ctx);
    let resolved = resolve(ctx, baseline, &inventory);
    let previous = memory.results.as_ref().map(|r| &*r.compiled);
    let compiled = Arc::new(compile_reusing(
        baseline,
        &inventory,
        &resolved.scope,
        now,
        previous,
    ));
    let (inventory, findings) = audit(ctx, baseline, inventory, &compiled, &resolved, now);
    // The counts of the same spec are kept while they are fresh.
    let kept = memory.results.as_ref().filter(|_| !decision.posture);
    let (posture, posture_at, posture_behind) = match kept {
        Some(r) => (r.posture.clone(), r.stamp.posture_at, true),
        None => {
            let p = posture(baseline, &inventory, &compiled, &resolved, &findings, now);
            (p, now, false)
        }
    };
    ctx.triggers.pass_cost(started.elapsed());
    Results {
        // The compile version as the decision read it: a change the snapshot already holds
        // is compiled again next time, which is safe.
        stamp: Stamp {
            inventory: v.inventory,
            compile: decision.versions.compile,
            generated: v.generated,
            baselines: fingerprint,
            valid_until: baseline.next_expiry(now),
            posture_at,
            posture_behind,
        },
        compiled,
        findings,
        resolved,
        inventory,
        posture,
    }
}

/// The namespaces this baseline enforces, after every baseline (invalid ones with their last
/// good spec) has taken part in overlap resolution.
fn resolve(ctx: &Ctx, baseline: &Baseline, inventory: &Inventory) -> Resolved {
    let others: Vec<Baseline> = ctx
        .baselines
        .as_compiled(Some(&baseline.name))
        .into_iter()
        .flatten()
        .collect();
    let mut all: Vec<&Baseline> = others.iter().collect();
    all.push(baseline);
    let mut resolved = plan::resolve_overlaps(&all, &inventory.namespaces)
        .remove(&baseline.name)
        .unwrap_or_default();
    resolved.scope.operator_user.clone_from(&ctx.operator_user);
    resolved
}

/// The audit of the whole inventory, with the claimed objects that are not ours after all.
fn audit(
    ctx: &Ctx,
    baseline: &Baseline,
    inventory: Arc<Inventory>,
    compiled: &Compiled,
    resolved: &Resolved,
    now: Timestamp,
) -> (Arc<Inventory>, Arc<Vec<Finding>>) {
    let inventory = owned(ctx, baseline, inventory, compiled);
    let findings = audit_in_scope(baseline, &inventory, compiled, &resolved.scope, now);
    ctx.metrics.audited("full", 1);
    (inventory, Arc::new(findings))
}

/// The snapshot with the claimed objects that `baseline` (compiled to `compiled`) does not
/// want put back as tenants' objects.
fn owned(
    ctx: &Ctx,
    baseline: &Baseline,
    inventory: Arc<Inventory>,
    compiled: &Compiled,
) -> Arc<Inventory> {
    let records = ctx.freshness.records();
    let uid = baseline.uid.as_deref().unwrap_or_default();
    ownership::audit_inventory(inventory, &records, &ctx.index, (uid, compiled))
}

/// The posture counts computed again from a new snapshot (the audit's inventory may predate
/// pods changed since), with the findings held.
fn refresh_posture(ctx: &Ctx, baseline: &Baseline, r: &mut Results, now: Timestamp) {
    let (_, inventory) = snapshot(ctx);
    let inventory = owned(ctx, baseline, inventory, &r.compiled);
    r.posture = posture(
        baseline,
        &inventory,
        &r.compiled,
        &r.resolved,
        &r.findings,
        now,
    );
    r.stamp.posture_at = now;
    r.stamp.posture_behind = false;
}

/// The posture counts of `inventory` under `baseline`, its objects as compiled (Enforce: the
/// operator keeps them so; Audit: they are not written) and `findings`.
fn posture(
    baseline: &Baseline,
    inventory: &Inventory,
    compiled: &Compiled,
    resolved: &Resolved,
    findings: &[Finding],
    now: Timestamp,
) -> Arc<PostureStatus> {
    let objects = match baseline.mode {
        Mode::Enforce => Objects::Desired,
        Mode::Audit => Objects::Observed,
    };
    let summary = Posture::counts(
        baseline,
        inventory,
        compiled,
        &resolved.scope,
        now,
        findings,
        objects,
    );
    Arc::new(summary.to_status())
}

/// The whole inventory audited again against the same compile output. The snapshot's version
/// is recorded: should it already hold a change the compiler reads, the compile version kept
/// in the stamp makes the next decision compile again. The posture counts with it, when due.
fn reaudit(ctx: &Ctx, baseline: &Baseline, r: &mut Results, posture_due: bool, now: Timestamp) {
    let started = Instant::now();
    let (v, inventory) = snapshot(ctx);
    let (inventory, findings) = audit(ctx, baseline, inventory, &r.compiled, &r.resolved, now);
    if posture_due {
        r.posture = posture(
            baseline,
            &inventory,
            &r.compiled,
            &r.resolved,
            &findings,
            now,
        );
        r.stamp.posture_at = now;
    }
    r.stamp.posture_behind = !posture_due;
    ctx.triggers.pass_cost(started.elapsed());
    r.findings = findings;
    r.inventory = inventory;
    r.stamp.inventory = v.inventory;
    r.stamp.generated = v.generated;
}

/// Replaces the findings of `pods` with their findings as the cache has them now: work
/// proportional to the pods changed, not to the cluster (nothing is compiled or listed).
fn reaudit_pods(
    ctx: &Ctx,
    baseline: &Baseline,
    r: &mut Results,
    pods: &BTreeSet<Key>,
    now: Timestamp,
) {
    let changed: HashSet<(&str, &str)> = pods.iter().map(|(ns, n)| (&**ns, &**n)).collect();
    let is_changed = |f: &Finding| {
        f.kind == "Pod"
            && f.namespace
                .as_ref()
                .is_some_and(|ns| changed.contains(&(ns.as_str(), f.name.as_str())))
    };
    let mut findings: Vec<Finding> = r
        .findings
        .iter()
        .filter(|f| !is_changed(f))
        .cloned()
        .collect();
    let cache = ctx.index.pods.read();
    for pod in pods.iter().filter_map(|k| cache.get(k)) {
        findings.extend(audit_pod(
            baseline,
            &r.inventory,
            &r.compiled,
            &r.resolved.scope,
            now,
            pod,
        ));
    }
    drop(cache);
    ctx.metrics.audited("pod", pods.len() as u64);
    audit::sort(&mut findings);
    r.findings = Arc::new(findings);
}
