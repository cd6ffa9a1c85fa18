//! Compile, audit and overlap resolution per baseline, from a snapshot of the caches, reused
//! while the inventory (and, for the audit, the set of generated objects) stays the same; a
//! pod changed on its own only has its own findings redone.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::baseline::{Mode, PostureStatus};
use crate::api::Baseline;
use crate::audit::{self, audit_in_scope, audit_pod, Finding};
use crate::compile::Scope;
use crate::compile::{compile_reusing, Compiled};
use crate::inventory::Inventory;
use crate::object::ObjectKey;
use crate::plan;
use crate::posture::{Objects, Posture};

use super::super::cache::Key;
use super::super::objects::Typed;
use super::{identity, BaselineState, Computed, Ctx, InventoryVersion};

/// Posture counts are recomputed at most this often, unless the baseline's spec changes: they
/// take a pass over every workload (tens of microseconds each), and a rollout replaces pods one
/// by one, each step changing the counts and the status.
pub const POSTURE_REFRESH: std::time::Duration = std::time::Duration::from_secs(300);

/// The posture counts of `inventory` under `baseline`, its objects as compiled (Enforce: the
/// operator keeps them so; Audit: they are not written) and `findings`.
fn posture(
    baseline: &Baseline,
    inventory: &Inventory,
    compiled: &Compiled,
    scope: &Scope,
    findings: &[Finding],
    now: Timestamp,
) -> Arc<PostureStatus> {
    let objects = match baseline.mode {
        Mode::Enforce => Objects::Desired,
        Mode::Audit => Objects::Observed,
    };
    let p = Posture::new(baseline, inventory, compiled, scope, now, findings, objects);
    Arc::new(p.summary().to_status())
}

impl Ctx {
    pub(super) fn inventory(&self) -> (InventoryVersion, Arc<Inventory>) {
        let version = (
            self.triggers.inventory_version(),
            self.triggers.generated_presence(),
            self.triggers.pods_version(),
        );
        let mut slot = self.inventory.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, inv)) = slot.as_ref() {
            if *v == version {
                return (version, inv.clone());
            }
        }
        // Claimed objects of a baseline that exists are left to `audit_inventory`, which knows
        // what that baseline compiled; other claims (a uid of no baseline) are audited here.
        let live = self.live_uids();
        let mut inv = Inventory {
            namespaces: self
                .namespace_index
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            pods: self.pods.values(),
            services: self.services.values(),
            ..Inventory::default()
        };
        for (kind, cache) in &self.kinds {
            for (key, entry) in cache.read().iter() {
                let typed = match entry.claimed_by() {
                    // As the audit reads ours; `audit_inventory` decides.
                    Some(uid) if live.contains(uid) => entry.typed.clone(),
                    Some(_) => entry.audited(*kind, key),
                    None => entry.typed.clone(),
                };
                if let Some(t) = typed {
                    push(&mut inv, t);
                }
            }
        }
        let inv = Arc::new(inv);
        *slot = Some((version, inv.clone()));
        (version, inv)
    }

    /// Compile, audit and overlap resolution for `baseline`, reused while still valid.
    pub(super) fn compute(
        &self,
        baseline: &Baseline,
        state: &mut BaselineState,
        now: Timestamp,
        repairing: bool,
    ) -> Computed {
        // Taken before any snapshot is made: a pod changed later is re-audited next time.
        let dirty_pods = self
            .dirty_pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&baseline.name)
            .unwrap_or_default();
        let all = self.baselines.state();
        let fingerprint: String = all.iter().map(|b| identity(b) + ";").collect();
        let version = self.triggers.inventory_version();
        let compile_version = self.triggers.compile_version();
        if let Some(c) = state.computed.as_mut() {
            let same_spec = c.fingerprint == fingerprint && c.valid_until.is_none_or(|t| now < t);
            // Valid for what the compiler reads: the compile output stays the same `Arc`, so
            // the planner compares no object (its fast path), only findings.
            let same_compile = same_spec && c.compile_version == compile_version;
            if same_compile && c.inventory_version != version {
                // Nothing the compiler reads changed (a tenant's policy, a Service, pods): a
                // new audit of the same desired objects.
                self.reaudit(baseline, c, now);
                return c.clone();
            }
            if same_compile {
                let generated_changed = c.generated_presence != self.triggers.generated_presence();
                if generated_changed && repairing {
                    // A repair is not held up by an audit of the whole inventory: that comes
                    // in the next pass, which sees the repaired object.
                    self.triggers.all();
                }
                if generated_changed && !repairing {
                    self.reaudit(baseline, c, now);
                } else if !dirty_pods.is_empty() {
                    self.reaudit_pods(baseline, c, &dirty_pods, now);
                    if c.posture_at.elapsed() >= POSTURE_REFRESH {
                        let (_, inventory) = self.inventory();
                        let inventory = self.audit_inventory(inventory, baseline, &c.compiled);
                        c.posture = posture(
                            baseline,
                            &inventory,
                            &c.compiled,
                            &c.resolved.scope,
                            &c.findings,
                            now,
                        );
                        c.posture_at = std::time::Instant::now();
                    }
                }
                return c.clone();
            }
        }
        let started = std::time::Instant::now();
        let ((version, generated_presence, _), inventory) = self.inventory();
        // Every baseline takes part in overlap resolution, invalid ones with their last good spec.
        let valid: Vec<Baseline> = {
            let states = self.state.lock().unwrap_or_else(|e| e.into_inner());
            all.iter()
                .filter(|b| b.metadata.name.as_deref() != Some(baseline.name.as_str()))
                .filter_map(|b| {
                    Baseline::try_from(b.as_ref())
                        .ok()
                        .or_else(|| states.get(&b.name_any())?.last_good.clone())
                })
                .collect()
        };
        let mut refs: Vec<&Baseline> = valid.iter().collect();
        refs.push(baseline);
        let mut resolved = plan::resolve_overlaps(&refs, &inventory.namespaces)
            .remove(&baseline.name)
            .unwrap_or_default();
        resolved.scope.operator_user.clone_from(&self.operator_user);
        let previous = state.computed.as_ref().map(|c| c.compiled.clone());
        let compiled = Arc::new(compile_reusing(
            baseline,
            &inventory,
            &resolved.scope,
            now,
            previous.as_deref(),
        ));
        drop(previous);
        let inventory = self.audit_inventory(inventory, baseline, &compiled);
        let findings = Arc::new(audit_in_scope(
            baseline,
            &inventory,
            &compiled,
            &resolved.scope,
            now,
        ));
        // The counts of the same spec are kept while they are fresh.
        let fresh = state
            .computed
            .as_ref()
            .filter(|c| c.fingerprint == fingerprint && c.posture_at.elapsed() < POSTURE_REFRESH);
        let (posture, posture_at) = match fresh {
            Some(c) => (c.posture.clone(), c.posture_at),
            None => (
                posture(
                    baseline,
                    &inventory,
                    &compiled,
                    &resolved.scope,
                    &findings,
                    now,
                ),
                std::time::Instant::now(),
            ),
        };
        self.metrics.audited("full", 1);
        self.triggers.pass_cost(started.elapsed());
        let computed = Computed {
            inventory_version: version,
            compile_version,
            generated_presence,
            fingerprint,
            valid_until: baseline.next_expiry(now),
            compiled,
            findings,
            resolved,
            inventory,
            posture,
            posture_at,
        };
        state.computed = Some(computed.clone());
        computed
    }

    /// The whole inventory audited again against the same compile output. The snapshot's
    /// version is recorded: should it already hold a change the compiler reads, the
    /// `compile_version` kept in `c` makes the next compute compile again.
    fn reaudit(&self, baseline: &Baseline, c: &mut Computed, now: Timestamp) {
        let started = std::time::Instant::now();
        let ((version, generated, _), inventory) = self.inventory();
        let inventory = self.audit_inventory(inventory, baseline, &c.compiled);
        c.findings = Arc::new(audit_in_scope(
            baseline,
            &inventory,
            &c.compiled,
            &c.resolved.scope,
            now,
        ));
        if c.posture_at.elapsed() >= POSTURE_REFRESH {
            c.posture = posture(
                baseline,
                &inventory,
                &c.compiled,
                &c.resolved.scope,
                &c.findings,
                now,
            );
            c.posture_at = std::time::Instant::now();
        }
        self.metrics.audited("full", 1);
        self.triggers.pass_cost(started.elapsed());
        c.inventory_version = version;
        c.generated_presence = generated;
        c.inventory = inventory;
    }

    /// The uids of the baselines that exist.
    fn live_uids(&self) -> BTreeSet<String> {
        self.baselines
            .state()
            .iter()
            .filter_map(|b| b.metadata.uid.clone())
            .collect()
    }

    /// The inventory the audit of `baseline` reads: `base` plus the claimed objects that are
    /// not really ours. A claim (our name and a MeshBaseline ownerReference) is ours when the
    /// key is in what the named baseline compiled: for `baseline`, `compiled`; for another
    /// baseline, its records. Anything else, such as a tenant's object naming our uid at a
    /// key we never wanted, is audited like any tenant object: claimed ones are added, and
    /// typed ones kept without their labels get them back. Usually there is none, and `base`
    /// is shared as it is.
    fn audit_inventory(
        &self,
        base: Arc<Inventory>,
        baseline: &Baseline,
        compiled: &Compiled,
    ) -> Arc<Inventory> {
        let records = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let live = self.live_uids();
        let mut extra = Vec::new();
        let mut relabelled = Vec::new();
        for (kind, cache) in &self.kinds {
            for (key, entry) in cache.read().iter() {
                let (namespace, name) = key;
                let Some(uid) = entry.claimed_by() else {
                    continue;
                };
                if !live.contains(uid) {
                    continue; // in `base` already
                }
                let ours = if baseline.uid.as_deref() == Some(uid) {
                    compiled
                        .objects
                        .binary_search_by(|d| {
                            (d.key.kind, d.key.namespace.as_str(), d.key.name.as_str()).cmp(&(
                                *kind,
                                &**namespace,
                                &**name,
                            ))
                        })
                        .is_ok()
                } else {
                    let key = ObjectKey {
                        kind: *kind,
                        namespace: namespace.clone(),
                        name: name.clone(),
                    };
                    records.get(uid).is_some_and(|r| r.contains(&key))
                };
                if ours {
                    continue;
                }
                match (&entry.typed, entry.audited(*kind, key)) {
                    (Some(t), Some(labelled)) => relabelled.push((t.clone(), labelled)),
                    (None, Some(claimed)) => extra.push(claimed),
                    (_, None) => {}
                }
            }
        }
        if extra.is_empty() && relabelled.is_empty() {
            return base;
        }
        let mut inv = (*base).clone();
        for (unlabelled, labelled) in relabelled {
            replace(&mut inv, &unlabelled, labelled);
        }
        for t in extra {
            push(&mut inv, t);
        }
        Arc::new(inv)
    }

    /// Replaces the findings of `pods` with their findings as the cache has them now: work
    /// proportional to the pods changed, not to the cluster (nothing is compiled or listed).
    fn reaudit_pods(
        &self,
        baseline: &Baseline,
        c: &mut Computed,
        pods: &BTreeSet<Key>,
        now: Timestamp,
    ) {
        let changed: std::collections::HashSet<(&str, &str)> =
            pods.iter().map(|(ns, name)| (&**ns, &**name)).collect();
        let is_changed = |f: &Finding| {
            f.kind == "Pod"
                && f.namespace
                    .as_ref()
                    .is_some_and(|ns| changed.contains(&(ns.as_str(), f.name.as_str())))
        };
        let mut findings: Vec<Finding> = c
            .findings
            .iter()
            .filter(|f| !is_changed(f))
            .cloned()
            .collect();
        let cache = self.pods.read();
        for pod in pods.iter().filter_map(|k| cache.get(k)) {
            findings.extend(audit_pod(
                baseline,
                &c.inventory,
                &c.compiled,
                &c.resolved.scope,
                now,
                pod,
            ));
        }
        drop(cache);
        self.metrics.audited("pod", pods.len() as u64);
        audit::sort(&mut findings);
        c.findings = Arc::new(findings);
    }
}

/// Replaces the object `old` holds with `new` (of the same kind).
fn replace(inv: &mut Inventory, old: &Typed, new: Typed) {
    fn swap<T>(list: &mut [Arc<T>], old: &Arc<T>, new: Arc<T>) {
        if let Some(slot) = list.iter_mut().find(|o| Arc::ptr_eq(o, old)) {
            *slot = new;
        }
    }
    match (old, new) {
        (Typed::PeerAuthentication(o), Typed::PeerAuthentication(n)) => {
            swap(&mut inv.peer_authentications, o, n)
        }
        (Typed::DestinationRule(o), Typed::DestinationRule(n)) => {
            swap(&mut inv.destination_rules, o, n)
        }
        (Typed::AuthorizationPolicy(o), Typed::AuthorizationPolicy(n)) => {
            swap(&mut inv.authorization_policies, o, n)
        }
        (Typed::Sidecar(o), Typed::Sidecar(n)) => swap(&mut inv.sidecars, o, n),
        (Typed::NetworkPolicy(o), Typed::NetworkPolicy(n)) => swap(&mut inv.network_policies, o, n),
        _ => {}
    }
}

fn push(inv: &mut Inventory, typed: Typed) {
    match typed {
        Typed::PeerAuthentication(o) => inv.peer_authentications.push(o),
        Typed::DestinationRule(o) => inv.destination_rules.push(o),
        Typed::AuthorizationPolicy(o) => inv.authorization_policies.push(o),
        Typed::Sidecar(o) => inv.sidecars.push(o),
        Typed::NetworkPolicy(o) => inv.network_policies.push(o),
    }
}
