//! Our own records and the routing of cache changes: which objects are the operator's
//! (records + ownerReference uid, never labels), which changes go to the drift fast path and
//! which change the inventory, and the full resync.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::compile::Compiled;
use kube::ResourceExt;

use crate::api::Baseline;
use crate::inventory::{namespace_change_matters, NamespaceInfo, PodInfo};
use crate::object::{Kind, ObjectKey};

use super::super::cache::Key;
use super::super::objects::{Claimed, KindEntry, Typed};
use super::{BaselineState, Ctx};

impl Ctx {
    /// A full resync: every baseline is planned completely from the caches (writing only what
    /// differs), whatever the watches said.
    pub fn resync(&self) {
        self.resync_epoch.fetch_add(1, Ordering::AcqRel);
        tracing::debug!("full resync");
        self.triggers.all();
    }

    /// Whether `entry` at `key` is one of our objects: its key is in the records of the
    /// baseline its ownerReference names.
    fn is_ours(&self, key: &ObjectKey, entry: Option<&KindEntry>) -> bool {
        let Some(uid) = entry
            .and_then(|e| e.generated.as_ref())
            .and_then(|o| o.owner_uid.as_deref())
        else {
            return false;
        };
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.get(uid).is_some_and(|r| r.contains(key))
    }

    /// Merges a new compile output into the baseline's records before its plan is executed
    /// (a write may succeed even when the reconcile fails later), and forgets keys that are
    /// neither wanted nor in the cluster any more.
    pub(super) fn update_records(&self, state: &mut BaselineState, compiled: &Arc<Compiled>) {
        if state
            .records_for
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, compiled))
        {
            return;
        }
        // Collected at once, sorted, so the set's nodes are full: inserted one by one in key
        // order, 30,000 keys took twice the memory.
        let mut keys: Vec<ObjectKey> = self.generated.with(|live| {
            state
                .records
                .iter()
                .filter(|k| live.contains_key(*k))
                .cloned()
                .collect()
        });
        keys.extend(compiled.objects.iter().map(|o| o.key.clone()));
        state.records = Arc::new(keys.into_iter().collect());
        state.records_for = Some(compiled.clone());
        if let Some(uid) = &state.uid {
            self.records
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid.clone(), state.records.clone());
        }
    }

    /// A pod changed. Only that pod's findings change, unless it changes what the audit reads
    /// across pods (`PodCounts`): then the whole inventory is audited again.
    pub fn pod_changed(&self, key: &Key, old: Option<&PodInfo>, new: Option<&PodInfo>) {
        let shared = self
            .pod_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(old, new);
        if shared {
            self.triggers.pod_changed();
            if old.into_iter().chain(new).any(crate::compile::reads_pod) {
                // A waypoint's pods: their ServiceAccounts are compiled into its policy.
                self.triggers.compile_inputs_changed();
            } else {
                self.triggers.inventory_changed();
            }
            return;
        }
        let names = self.baseline_names();
        let mut dirty = self.dirty_pods.lock().unwrap_or_else(|e| e.into_inner());
        for b in names {
            dirty.entry(b).or_default().insert(key.clone());
        }
        drop(dirty);
        self.triggers.pod_changed();
    }

    /// A Namespace changed (`None`: deleted or not there before). The index always follows;
    /// compile, audit and plan run again only when the change can change their results.
    pub fn namespace_changed(
        &self,
        name: &str,
        old: Option<&Arc<NamespaceInfo>>,
        new: Option<&Arc<NamespaceInfo>>,
    ) {
        let mut index = self
            .namespace_index
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match new {
            Some(info) => index.insert(name.to_string(), Arc::clone(info)),
            None => index.remove(name),
        };
        drop(index);
        let (old, new) = (old.map(|o| &**o), new.map(|n| &**n));
        // Each baseline as compute sees it: its spec, or its last good one while invalid.
        let baselines: Option<Vec<Baseline>> = {
            let states = self.state.lock().unwrap_or_else(|e| e.into_inner());
            self.baselines
                .state()
                .iter()
                .map(|b| {
                    Baseline::try_from(b.as_ref())
                        .ok()
                        .or_else(|| states.get(&b.name_any())?.last_good.clone())
                })
                .collect()
        };
        let matters = baselines.is_none_or(|b| namespace_change_matters(name, old, new, &b));
        if matters {
            self.triggers.compile_inputs_changed();
        }
    }

    fn baseline_names(&self) -> Vec<String> {
        self.baselines
            .state()
            .iter()
            .filter_map(|b| b.metadata.name.clone())
            .collect()
    }

    /// A change in a kind cache. Objects at generated names go to every baseline's drift fast
    /// path at once (unless the change is our own write, `trigger == false`): which baseline
    /// wants the key is the planner's business. Changes of anything that is not ours (tenant
    /// objects, and objects only claiming to be ours) change the inventory; edits of our own
    /// objects do not invalidate compile and audit results (they are repaired, not audited).
    pub fn kind_changed(
        &self,
        kind: Kind,
        key: &Key,
        old: Option<&KindEntry>,
        new: Option<&KindEntry>,
        trigger: bool,
    ) {
        let at_generated_name = self.generated.update(kind, key, old, new);
        // Appeared or gone, even by our own write: the audit counts such objects, so the
        // baselines are reconciled again to refresh their findings.
        let existence = at_generated_name && old.is_some() != new.is_some();
        let okey = ObjectKey {
            kind,
            namespace: key.0.clone(),
            name: key.1.clone(),
        };
        if existence {
            self.triggers.generated_changed(&okey);
        }
        if (trigger && at_generated_name) || existence {
            let names = self.baseline_names();
            let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
            for b in &names {
                dirty.entry(b.clone()).or_default().insert(okey.clone());
            }
            drop(dirty);
            for b in &names {
                self.triggers.baseline(b);
            }
        }
        // Also after our own write (a revert): the audit must see the tenant object as it is
        // now, or a cached finding would plan the same revert again.
        type Audited = (Option<Typed>, Option<Claimed>);
        let tenant = |e: Option<&KindEntry>| -> Option<Audited> {
            e.filter(|_| !self.is_ours(&okey, e))
                .map(|e| (e.audited(kind, key), e.claimed.clone()))
        };
        if tenant(old) != tenant(new) {
            // The compiler reads tenants' DestinationRules (a rule for a namespace's hosts
            // replaces ours); the other kinds only change findings.
            if kind == Kind::DestinationRule {
                self.triggers.compile_inputs_changed();
            } else {
                self.triggers.inventory_changed();
            }
        }
    }
}
