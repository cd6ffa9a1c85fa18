//! The cluster as the watches show it: one trimmed cache per watched resource, the objects at
//! generated names, the namespaces as inventory snapshots share them, what the cluster
//! serves, and the inventory snapshots that compile and audit read. The watchers write it
//! (`watch`), reconciles read it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::inventory::{Inventory, NamespaceInfo, Namespaces, PodInfo, PodShapes, ServiceInfo};
use crate::object::Kind;

use super::cache::{Cache, Key, Readiness};
use super::freshness::Versions;
use super::objects::{GeneratedIndex, KindEntry};
use super::ownership::{self, Claim, Claims, Records};
use super::served::Served;

pub struct Index {
    /// Shared with `namespace_index`.
    pub namespaces: Cache<Arc<NamespaceInfo>>,
    /// Shared with inventory snapshots (which copy the pointers).
    pub pods: Cache<Arc<PodInfo>>,
    /// What pods have in common with their replicas, one copy each (the pod watcher interns).
    pub pod_shapes: Mutex<PodShapes>,
    pub services: Cache<ServiceInfo>,
    /// The generated kinds, tenants' objects and ours alike, one cache per kind.
    pub kinds: BTreeMap<Kind, Cache<KindEntry>>,
    /// The objects at generated names, which the planner compares (kept from `kinds`' changes).
    pub generated: GeneratedIndex,
    /// CRDs of optional kinds by name: (kind, the newest version it serves that we use).
    pub crds: Cache<(Kind, Option<&'static str>)>,
    /// What the cluster serves of the optional kinds, shared with the executor.
    pub served: Arc<Served>,
    /// Discovery has answered once whether the admission API is served: until then a plan
    /// would report it missing (MB901) and announce that in an Event on every start.
    pub admission_discovered: AtomicBool,
    /// Told whenever a cache fills or empties, and when discovery answers.
    pub readiness: Readiness,
    /// The namespaces by name as snapshots share them, kept up to date per Namespace event.
    namespace_index: Mutex<Namespaces>,
    /// The last inventory snapshot, and the versions it was made at.
    snapshot: Mutex<Option<(Versions, Arc<Inventory>)>>,
}

impl Index {
    pub fn new(served: Arc<Served>) -> Index {
        let readiness = Readiness::default();
        Index {
            namespaces: Cache::signalling(&readiness),
            pods: Cache::signalling(&readiness),
            pod_shapes: Mutex::new(PodShapes::default()),
            services: Cache::signalling(&readiness),
            kinds: Kind::ALL
                .into_iter()
                .map(|k| (k, Cache::signalling(&readiness)))
                .collect(),
            generated: GeneratedIndex::default(),
            crds: Cache::signalling(&readiness),
            served,
            admission_discovered: AtomicBool::new(false),
            readiness,
            namespace_index: Mutex::new(Namespaces::default()),
            snapshot: Mutex::new(None),
        }
    }

    /// Optional kinds the cluster does not serve (or whose cache is not filled yet).
    pub fn missing_kinds(&self) -> BTreeSet<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::NetworkPolicy)
            .filter(|k| {
                let served = self.served.version(*k).is_some();
                !(served && self.kinds.get(k).is_some_and(Cache::synced))
            })
            .collect()
    }

    /// Caches filled: reconciling earlier would write objects that merely were not seen yet.
    pub fn synced(&self) -> bool {
        let dynamic_ok = Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::NetworkPolicy && self.served.version(*k).is_some())
            .all(|k| self.kinds.get(&k).is_some_and(Cache::synced));
        self.namespaces.synced()
            && self.pods.synced()
            && self.services.synced()
            && self.crds.synced()
            && self
                .kinds
                .get(&Kind::NetworkPolicy)
                .is_some_and(Cache::synced)
            && dynamic_ok
            && self.admission_discovered.load(Ordering::Acquire)
    }

    /// A Namespace changed (`None`: deleted).
    pub fn set_namespace(&self, name: &str, info: Option<&Arc<NamespaceInfo>>) {
        let mut index = self.namespace_index.lock();
        match info {
            Some(info) => index.insert(name.to_string(), Arc::clone(info)),
            None => index.remove(name),
        };
    }

    /// The inventory as of `versions`, made once per version and shared. Objects claimed by an
    /// existing baseline are in it as the audit reads the operator's own: each audit decides
    /// which of them are really ours (`ownership::audit_inventory`); other claims are audited
    /// as tenants' objects here.
    pub fn snapshot(&self, versions: Versions, records: &Records) -> (Versions, Arc<Inventory>) {
        let mut slot = self.snapshot.lock();
        let same = |v: &Versions| {
            (v.inventory, v.generated, v.pods)
                == (versions.inventory, versions.generated, versions.pods)
        };
        if let Some((v, inv)) = slot.as_ref().filter(|(v, _)| same(v)) {
            return (*v, inv.clone());
        }
        let mut inv = Inventory {
            namespaces: self.namespace_index.lock().clone(),
            pods: self.pods.values(),
            services: self.services.values(),
            ..Inventory::default()
        };
        let mut claims = Claims::new(records);
        for (kind, cache) in &self.kinds {
            for (key, entry) in cache.read().iter() {
                let typed = match claims.claim(entry.claimed_by()) {
                    Claim::Baseline(_) => entry.as_ours(),
                    Claim::Orphaned | Claim::Unclaimed => entry.as_tenants(*kind, key),
                };
                if let Some(t) = typed {
                    ownership::push(&mut inv, t);
                }
            }
        }
        let inv = Arc::new(inv);
        *slot = Some((versions, inv.clone()));
        (versions, inv)
    }

    /// Runs `f` on every object of the generated kinds, one kind's cache locked at a time.
    pub fn for_each_entry(&self, mut f: impl FnMut(Kind, &Key, &KindEntry)) {
        for (kind, cache) in &self.kinds {
            for (key, entry) in cache.read().iter() {
                f(*kind, key, entry);
            }
        }
    }
}
