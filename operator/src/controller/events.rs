//! What each change of the cluster means: watch events (and the responses of our own writes)
//! update the index, mark in the freshness model what went stale, and ask for the reconciles
//! that must follow. One handler per resource, for an object applied or deleted.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::api::DynamicObject;
use kube::runtime::watcher;
use kube::ResourceExt;

use crate::api::MeshBaseline;
use crate::inventory::{namespace_change_matters, NamespaceInfo, PodInfo};
use crate::object::{Kind, ObjectKey};

use super::baselines::identity;
use super::cache::{key, Key};
use super::context::Ctx;
use super::objects::{trim, KindEntry};

impl Ctx {
    /// Baseline watch events: a new, deleted or re-specified baseline can change every
    /// baseline's scope (overlaps).
    pub fn baseline_event(&self, ev: &Result<watcher::Event<MeshBaseline>, watcher::Error>) {
        let Ok(ev) = ev else { return };
        match ev {
            watcher::Event::Apply(mb) | watcher::Event::InitApply(mb) => {
                let uid = mb.metadata.uid.as_deref();
                if self
                    .freshness
                    .baseline_applied(&mb.name_any(), identity(mb), uid)
                {
                    self.triggers.all();
                }
            }
            watcher::Event::Delete(mb) => {
                let name = mb.name_any();
                self.freshness
                    .baseline_deleted(&name, mb.metadata.uid.as_deref());
                self.baselines.forget(&name);
                self.metrics.set_baseline(&name, None);
                self.metrics.set_posture(&name, None);
                self.triggers.all();
            }
            // The store holds what was listed: baselines deleted while the watch was down are
            // not in it, and no Delete event tells of them.
            watcher::Event::InitDone => {
                let state = self.baselines.store.state();
                let names: BTreeSet<String> = state
                    .iter()
                    .filter_map(|b| b.metadata.name.clone())
                    .collect();
                let uids = state
                    .iter()
                    .filter_map(|b| b.metadata.uid.clone())
                    .collect();
                if self.freshness.baselines_listed(&names, &uids) {
                    self.triggers.all();
                }
            }
            watcher::Event::Init => {}
        }
    }

    /// A full resync: every baseline is planned completely from the caches (writing only what
    /// differs), whatever the watches said.
    pub fn resync(&self) {
        self.freshness.resync();
        tracing::debug!("full resync");
        self.triggers.all();
    }

    /// A Namespace changed (`None`: deleted or not there before). The index always follows;
    /// compile, audit and plan run again only when the change can change their results.
    pub fn namespace_changed(
        &self,
        name: &str,
        old: Option<&Arc<NamespaceInfo>>,
        new: Option<&Arc<NamespaceInfo>>,
    ) {
        self.index.set_namespace(name, new);
        let (old, new) = (old.map(|o| &**o), new.map(|n| &**n));
        let baselines: Option<Vec<_>> = self.baselines.as_compiled(None).into_iter().collect();
        if baselines.is_none_or(|b| namespace_change_matters(name, old, new, &b)) {
            self.freshness.compile_inputs_changed();
            self.triggers.all();
        }
    }

    /// A pod changed. Only that pod's findings change, unless it changes what the audit reads
    /// across pods: then the whole inventory is audited again.
    pub fn pod_changed(&self, key: &Key, old: Option<&PodInfo>, new: Option<&PodInfo>) {
        let names = self.baselines.names();
        self.freshness.pod_changed(key, old, new, &names);
        self.triggers.all();
    }

    /// Something the audit reads changed (a Service; a kind the cluster starts or stops
    /// serving).
    pub fn inventory_changed(&self) {
        self.freshness.inventory_changed();
        self.triggers.all();
    }

    /// A change in a kind cache. Objects at generated names go to every baseline's drift fast
    /// path at once (unless the change is our own write, `by_others == false`): which baseline
    /// wants the key is the planner's business. Changes of anything that is not ours (tenants'
    /// objects, and objects only claiming to be ours) change the inventory; edits of our own
    /// objects do not invalidate compile and audit results (they are repaired, not audited).
    pub fn kind_changed(
        &self,
        kind: Kind,
        key: &Key,
        old: Option<&KindEntry>,
        new: Option<&KindEntry>,
        by_others: bool,
    ) {
        let okey = ObjectKey {
            kind,
            namespace: key.0.clone(),
            name: key.1.clone(),
        };
        if self.index.generated.update(kind, key, old, new) {
            // Appeared or gone, even by our own write: the audit counts such objects, so the
            // baselines are reconciled again to refresh their findings.
            let existence = old.is_some() != new.is_some();
            let names = if existence || by_others {
                self.baselines.names()
            } else {
                Vec::new()
            };
            let fingerprint =
                |e: Option<&KindEntry>| e.and_then(|e| e.generated.as_ref()).map(|g| g.fingerprint);
            let (was, is) = (fingerprint(old), fingerprint(new));
            if self.freshness.generated_changed(&okey, was, is, &names) {
                for b in &names {
                    self.triggers.baseline(b);
                }
            }
        }
        // Also after our own write (a revert): the audit must see the tenant object as it is
        // now, or a cached finding would plan the same revert again.
        let tenant = |e: &&KindEntry| !self.freshness.is_ours(e.claimed_by(), &okey);
        let (was, is) = (old.filter(tenant), new.filter(tenant));
        if was.map(KindEntry::tenant_view) != is.map(KindEntry::tenant_view) {
            // The compiler reads tenants' DestinationRules (a rule for a namespace's hosts
            // replaces ours); the other kinds only change findings.
            if kind == Kind::DestinationRule {
                self.freshness.compile_inputs_changed();
            } else {
                self.freshness.inventory_changed();
            }
            self.triggers.all();
        }
    }

    /// The stored object from our own write goes into the cache at once, so the next
    /// reconcile does not see the stale version before the watch delivers the event. Never
    /// over a newer version the watch already delivered (a tenant's edit right after our write
    /// would otherwise be hidden until its event came again): the response wins only when its
    /// resourceVersion is numerically greater; when the versions cannot be compared, the
    /// watch's copy stays.
    pub fn wrote(&self, kind: Kind, obj: DynamicObject) {
        let (Some(cache), Some((key, entry))) = (self.index.kinds.get(&kind), trim(kind, obj))
        else {
            return;
        };
        let new = entry.clone();
        let keep =
            |current: &KindEntry, response: &KindEntry| response.newer_than(current) != Some(true);
        if let Some(old) = cache.apply_unless(key.clone(), entry, keep) {
            self.kind_changed(kind, &key, old.as_ref(), Some(&new), false);
        }
    }

    /// Our own delete succeeded: the object leaves the cache at once.
    pub fn deleted(&self, okey: &ObjectKey) {
        let k = key(&okey.namespace, okey.name.as_str());
        if let Some(cache) = self.index.kinds.get(&okey.kind) {
            if let Some(old) = cache.delete(&k) {
                self.kind_changed(okey.kind, &k, Some(&old), None, false);
            }
        }
    }
}
