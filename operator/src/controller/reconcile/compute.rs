//! Compile, audit and overlap resolution per baseline, from a snapshot of the caches, reused
//! while the inventory (and, for the audit, the set of generated objects) stays the same; a
//! pod changed on its own only has its own findings redone.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::Baseline;
use crate::audit::{self, audit_in_scope, audit_pod, Finding};
use crate::compile::compile;
use crate::inventory::Inventory;
use crate::plan;

use super::super::cache::Key;
use super::super::objects::Typed;
use super::{identity, BaselineState, Computed, Ctx, InventoryVersion};

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
        let mut inv = Inventory {
            namespaces: self
                .namespaces
                .read()
                .values()
                .map(|n| (n.name.clone(), n.clone()))
                .collect(),
            pods: self.pods.values(),
            services: self.services.values(),
            ..Inventory::default()
        };
        for cache in self.kinds.values() {
            for entry in cache.read().values() {
                match entry.typed.clone() {
                    Some(Typed::PeerAuthentication(o)) => inv.peer_authentications.push(o),
                    Some(Typed::DestinationRule(o)) => inv.destination_rules.push(o),
                    Some(Typed::AuthorizationPolicy(o)) => inv.authorization_policies.push(o),
                    Some(Typed::Sidecar(o)) => inv.sidecars.push(o),
                    Some(Typed::NetworkPolicy(o)) => inv.network_policies.push(o),
                    None => {}
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
        if let Some(c) = state.computed.as_mut() {
            if c.inventory_version == version
                && c.fingerprint == fingerprint
                && c.valid_until.is_none_or(|t| now < t)
            {
                let generated_changed = c.generated_presence != self.triggers.generated_presence();
                if generated_changed && repairing {
                    // A repair is not held up by an audit of the whole inventory: that comes
                    // in the next pass, which sees the repaired object.
                    self.triggers.all();
                }
                if generated_changed && !repairing {
                    // Same compile output (the drift fast path keeps it), a fresh audit.
                    let ((_, generated, _), inventory) = self.inventory();
                    c.findings = Arc::new(audit_in_scope(
                        baseline,
                        &inventory,
                        &c.compiled,
                        &c.resolved.scope,
                        now,
                    ));
                    self.metrics.audited("full", 1);
                    c.generated_presence = generated;
                    c.inventory = inventory;
                } else if !dirty_pods.is_empty() {
                    self.reaudit_pods(baseline, c, &dirty_pods, now);
                }
                return c.clone();
            }
        }
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
        let compiled = Arc::new(compile(baseline, &inventory, &resolved.scope, now));
        let findings = Arc::new(audit_in_scope(
            baseline,
            &inventory,
            &compiled,
            &resolved.scope,
            now,
        ));
        self.metrics.audited("full", 1);
        let computed = Computed {
            inventory_version: version,
            generated_presence,
            fingerprint,
            valid_until: baseline.next_expiry(now),
            compiled,
            findings,
            resolved,
            inventory,
        };
        state.computed = Some(computed.clone());
        computed
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
        let is_changed = |f: &Finding| {
            f.kind == "Pod"
                && f.namespace
                    .as_ref()
                    .is_some_and(|ns| pods.contains(&(ns.clone(), f.name.clone())))
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
