//! What the controller remembers of one baseline between reconciles.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::api::baseline::{MeshBaselineStatus, PostureStatus};
use crate::api::Baseline;
use crate::audit::Finding;
use crate::compile::Compiled;
use crate::inventory::Inventory;
use crate::object::{Kind, ObjectKey};
use crate::plan::{FindingBudget, FindingId, Resolved};

use super::super::freshness::{same_compile, Memo, Stamp};
use super::super::objects::GeneratedIndex;
use super::pacing::Pacing;

#[derive(Default)]
pub struct Memory {
    /// The baseline's uid: a baseline re-created under its name starts with a fresh memory.
    pub uid: Option<String>,
    /// The last valid spec: while the spec is invalid, overlaps are resolved with it.
    pub last_good: Option<Baseline>,
    /// Compile and audit results, and what they were made from.
    pub results: Option<Results>,
    /// The compile output of the last complete plan that succeeded: an apply of an unchanged
    /// desired object is a repair. Set only by a plan that finished, so a pass cut short
    /// plans its creations again as creations.
    pub planned: Option<Arc<Compiled>>,
    /// The resync epoch of the last complete plan that compared every object.
    pub resync: u64,
    /// Kinds the cluster did not serve at the last plan.
    pub missing: BTreeSet<Kind>,
    /// Findings and fights announced by events.
    pub announced: BTreeSet<FindingId>,
    /// What is left of the "Finding" events' budget.
    pub finding_budget: FindingBudget,
    /// The status we last wrote: the watch may not have delivered it yet.
    pub last_status: Option<MeshBaselineStatus>,
    /// Every key this baseline has wanted since the start, while the object may still exist
    /// (the plan deletes only these), and the compile output last merged into it.
    pub records: Arc<BTreeSet<ObjectKey>>,
    records_for: Option<Arc<Compiled>>,
    /// Status writes and finding events paced under churn.
    pub pacing: Pacing,
    /// Reconciles that failed in a row.
    pub failures: u32,
}

/// Compile and audit output, valid for the versions in its stamp.
#[derive(Clone)]
pub struct Results {
    pub stamp: Stamp,
    pub compiled: Arc<Compiled>,
    pub findings: Arc<Vec<Finding>>,
    pub resolved: Resolved,
    /// The inventory the audit read (tenants' objects for Revert mode, namespaces).
    pub inventory: Arc<Inventory>,
    /// Workload posture counts, computed when the freshness model says they are due.
    pub posture: Arc<PostureStatus>,
}

impl Memory {
    /// A fresh memory for the baseline with `uid`.
    pub fn new(uid: Option<&str>) -> Memory {
        Memory {
            uid: uid.map(String::from),
            ..Memory::default()
        }
    }

    /// What the freshness model reads of this memory.
    pub fn memo(&self) -> Memo<'_> {
        Memo {
            stamp: self.results.as_ref().map(|r| &r.stamp),
            planned_this_compile: same_compile(
                self.planned.as_ref(),
                self.results.as_ref().map(|r| &r.compiled),
            ),
            resync: self.resync,
            missing: &self.missing,
            failures: self.failures,
            status_known: self.last_status.is_some(),
        }
    }

    /// Merges a new compile output into the records before its plan is executed (a write may
    /// succeed even when the reconcile fails later), and forgets keys that are neither wanted
    /// nor in the cluster any more. Returns the records when they changed.
    pub fn merge_records(
        &mut self,
        compiled: &Arc<Compiled>,
        live: &GeneratedIndex,
    ) -> Option<Arc<BTreeSet<ObjectKey>>> {
        if same_compile(self.records_for.as_ref(), Some(compiled)) {
            return None;
        }
        // Collected at once, sorted, so the set's nodes are full: inserted one by one in key
        // order, 30,000 keys took twice the memory.
        let mut keys: Vec<ObjectKey> = live.with(|live| {
            self.records
                .iter()
                .filter(|k| live.contains_key(*k))
                .cloned()
                .collect()
        });
        keys.extend(compiled.objects.iter().map(|o| o.key.clone()));
        self.records = Arc::new(keys.into_iter().collect());
        self.records_for = Some(compiled.clone());
        Some(self.records.clone())
    }
}
