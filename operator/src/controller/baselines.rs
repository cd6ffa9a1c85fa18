//! The MeshBaselines as their watch shows them (kube-runtime's reflector `Store`), and what the
//! controller remembers of each between reconciles.

use std::collections::HashMap;

use kube::runtime::reflector::Store;
use kube::ResourceExt;
use parking_lot::Mutex;

use crate::api::{Baseline, MeshBaseline};

use super::reconcile::Memory;

pub struct Baselines {
    pub store: Store<MeshBaseline>,
    /// By baseline name. A reconcile takes its baseline's memory out while it plans, so the
    /// lock is never held across compile, audit or plan.
    memory: Mutex<HashMap<String, Memory>>,
}

/// What changes a baseline's identity (and so every baseline's compile, through overlaps):
/// not status updates.
pub fn identity(mb: &MeshBaseline) -> String {
    format!(
        "{:?}/{:?}/{:?}",
        mb.metadata.uid,
        mb.metadata.generation,
        mb.metadata.creation_timestamp.as_ref().map(|t| t.0)
    )
}

impl Baselines {
    pub fn new(store: Store<MeshBaseline>) -> Baselines {
        Baselines {
            store,
            memory: Mutex::new(HashMap::new()),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.store
            .state()
            .iter()
            .filter_map(|b| b.metadata.name.clone())
            .collect()
    }

    /// The identities of every baseline, in one string.
    pub fn fingerprint(&self) -> String {
        self.store
            .state()
            .iter()
            .map(|b| identity(b) + ";")
            .collect()
    }

    /// Every baseline as compile sees it: its spec, or its last good one while invalid;
    /// `None` for one that never was valid. `except`: left out.
    pub fn as_compiled(&self, except: Option<&str>) -> Vec<Option<Baseline>> {
        let memory = self.memory.lock();
        self.store
            .state()
            .iter()
            .filter(|b| except.is_none() || b.metadata.name.as_deref() != except)
            .map(|b| {
                Baseline::try_from(b.as_ref())
                    .ok()
                    .or_else(|| memory.get(&b.name_any())?.last_good.clone())
            })
            .collect()
    }

    /// The baseline's memory, taken out while it is reconciled; a fresh one when the baseline
    /// is new or was re-created (another uid).
    pub fn take_memory(&self, name: &str, uid: Option<&str>) -> Memory {
        let memory = self.memory.lock().remove(name).unwrap_or_default();
        if memory.uid.as_deref() == uid {
            return memory;
        }
        Memory::new(uid)
    }

    pub fn put_memory(&self, name: String, memory: Memory) {
        self.memory.lock().insert(name, memory);
    }

    /// Runs `f` on the baseline's memory, if any.
    pub fn with_memory<R>(&self, name: &str, f: impl FnOnce(&mut Memory) -> R) -> Option<R> {
        self.memory.lock().get_mut(name).map(f)
    }

    pub fn forget(&self, name: &str) {
        self.memory.lock().remove(name);
    }
}
