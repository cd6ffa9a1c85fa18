//! The freshness model: what changed since each baseline's last reconcile, and so how much of
//! it the next reconcile redoes. Watch events only mark things stale here (version counters,
//! dirty sets); a reconcile asks [`Freshness::decide`] for its work, cheapest first:
//!
//! | what changed since the results were made                     | work              |
//! |--------------------------------------------------------------|-------------------|
//! | only generated objects (drift, our own writes)                | [`Work::Reuse`]   |
//! | pods, each on its own                                         | [`Work::AuditPods`] |
//! | what the audit reads (tenants' objects, Services, pods seen across pods, which generated objects exist) | [`Work::Audit`] |
//! | what the compiler reads (namespaces, tenants' DestinationRules, Gateways' pods, any baseline, an exemption's expiry) | [`Work::Compile`] |
//!
//! The posture counts are redone with an audit of the inventory once they are
//! [`POSTURE_REFRESH`] old, with every compile for a changed spec, and on their own once due
//! when what they read changed while they were fresh.
//!
//! Independently, the plan compares only the generated objects that changed (the drift fast
//! path) while the last complete plan still stands; otherwise it compares every object.
//! docs/architecture.md describes the model as a whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;

use crate::audit::PodCounts;
use crate::compile::Compiled;
use crate::inventory::PodInfo;
use crate::object::{Kind, ObjectKey};

use super::cache::Key;
use super::ownership::Records;

#[cfg(test)]
mod tests;

/// Posture counts are recomputed at most this often, unless a baseline's spec changes: they
/// take a pass over every workload (tens of microseconds each), and a rollout replaces pods one
/// by one, each step changing the counts and the status.
pub const POSTURE_REFRESH: SignedDuration = SignedDuration::from_secs(300);

/// The counters watch events bump. Results carry the versions they were made from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Versions {
    /// Anything the audit reads changed (every change below but pods and generated objects
    /// bumps it too).
    pub inventory: u64,
    /// Something the compiler reads changed: namespaces, tenants' DestinationRules, Gateways'
    /// pods.
    pub compile: u64,
    /// A pod changed: inventory snapshots go stale, findings do not (the pod is re-audited on
    /// its own, from the dirty set).
    pub pods: u64,
    /// Which objects exist at generated keys and what their specs say, as an XOR of hashes of
    /// (key, owned fingerprint): the audit reads them (a second mesh-wide PeerAuthentication,
    /// a NetworkPolicy selecting istiod), the compiler does not. A deletion or an edit that is
    /// repaired brings the value back: nothing is redone. Results made while an object was
    /// drifted keep the drifted value, and are audited again once it is repaired.
    pub generated: u64,
    /// Full resyncs: a baseline whose last complete plan is older compares every object.
    pub resync: u64,
}

/// What a baseline's compile and audit results were made from.
#[derive(Clone, Debug, PartialEq)]
pub struct Stamp {
    pub inventory: u64,
    pub compile: u64,
    pub generated: u64,
    /// The identities of all baselines (uid, generation, creation): through overlaps, each
    /// baseline's compile depends on every one of them.
    pub baselines: String,
    /// The next exemption expiry: the compile is stale from then on.
    pub valid_until: Option<Timestamp>,
    /// When the posture counts were computed.
    pub posture_at: Timestamp,
    /// What the counts read may have changed since (they were kept as fresh): they are
    /// computed again once due, even when nothing else is redone.
    pub posture_behind: bool,
}

impl Stamp {
    /// When counts that are behind are due.
    pub fn posture_due_at(&self) -> Option<Timestamp> {
        let due = self.posture_at.checked_add(POSTURE_REFRESH).ok()?;
        self.posture_behind.then_some(due)
    }
}

/// What a baseline's memory says about its last reconcile, as [`Freshness::decide`] reads it.
#[derive(Clone, Copy, Debug)]
pub struct Memo<'a> {
    /// The results held, if any.
    pub stamp: Option<&'a Stamp>,
    /// The last complete plan that succeeded was made with the compile output held now.
    pub planned_this_compile: bool,
    /// The resync epoch of the last complete plan that compared every object.
    pub resync: u64,
    /// Kinds the cluster did not serve at the last plan.
    pub missing: &'a BTreeSet<Kind>,
    /// Reconciles that failed in a row.
    pub failures: u32,
    /// A status was written (the next plan compares with it).
    pub status_known: bool,
}

/// How much of the compile and audit a reconcile redoes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// Nothing the compiler or the audit reads changed: the results stand.
    Reuse,
    /// Only these pods changed, each on its own: their findings are redone.
    AuditPods(BTreeSet<Key>),
    /// Something the audit reads changed: the inventory is audited again against the same
    /// compile output.
    Audit,
    /// Something the compiler reads changed, or there is nothing to reuse.
    Compile,
}

/// What one reconcile of a baseline must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub work: Work,
    /// Generated objects changed by others (or appeared or gone) since the last plan.
    pub changed: BTreeSet<ObjectKey>,
    /// The drift fast path: the plan compares only `changed`. Otherwise every object.
    pub fast: bool,
    /// A generated object appeared or vanished while it is being repaired: the audit that
    /// counts it comes in the next pass (which sees the repair), so the repair is not held up.
    pub audit_next: bool,
    /// The posture counts are computed again (otherwise the last ones stand).
    pub posture: bool,
    /// The counters as the decision read them.
    pub versions: Versions,
}

/// The freshness model's state, behind one lock: watch events and reconciles update it from
/// many tasks.
#[derive(Default)]
pub struct Freshness(Mutex<State>);

#[derive(Default)]
struct State {
    versions: Versions,
    /// Keyed per process, so tenants cannot choose names whose hashes cancel out.
    hasher: RandomState,
    /// (uid, generation, creation) per baseline name: a change re-reconciles every baseline
    /// (overlaps); status-only updates do not.
    identities: BTreeMap<String, String>,
    /// What the audit reads across pods; decides whether a pod event is that pod's alone.
    pod_counts: PodCounts,
    /// Per baseline name: generated objects changed since its last plan.
    changed: HashMap<String, BTreeSet<ObjectKey>>,
    /// Per baseline name: pods changed on their own since its findings were made.
    pods: HashMap<String, BTreeSet<Key>>,
    /// Our own records, which decide ownership (see `ownership`).
    records: Records,
}

impl Freshness {
    pub fn versions(&self) -> Versions {
        self.0.lock().versions
    }

    /// A baseline was applied; `true` when its identity is new (every baseline is then
    /// reconciled again).
    pub fn baseline_applied(&self, name: &str, identity: String, uid: Option<&str>) -> bool {
        let mut s = self.0.lock();
        if let Some(uid) = uid {
            s.records.known(uid);
        }
        if s.identities.get(name) == Some(&identity) {
            return false;
        }
        s.identities.insert(name.to_string(), identity);
        // Which claims name a baseline that exists changed: snapshots must be made again.
        s.versions.inventory += 1;
        true
    }

    /// A baseline was deleted: everything kept for it goes.
    pub fn baseline_deleted(&self, name: &str, uid: Option<&str>) {
        let mut s = self.0.lock();
        if let Some(uid) = uid {
            s.records.forget(uid);
        }
        s.versions.inventory += 1;
        s.identities.remove(name);
        s.changed.remove(name);
        s.pods.remove(name);
    }

    /// After a re-list of the baselines: those not listed were deleted while the watch was
    /// down. Returns whether any was.
    pub fn baselines_listed(&self, names: &BTreeSet<String>, uids: &BTreeSet<String>) -> bool {
        let mut s = self.0.lock();
        let gone: Vec<String> = s
            .identities
            .keys()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect();
        for name in &gone {
            s.identities.remove(name);
            s.changed.remove(name);
            s.pods.remove(name);
        }
        s.records.retain(uids);
        if !gone.is_empty() {
            s.versions.inventory += 1;
        }
        !gone.is_empty()
    }

    /// A full resync: every baseline's next plan compares every object.
    pub fn resync(&self) {
        self.0.lock().versions.resync += 1;
    }

    /// Something the audit reads changed.
    pub fn inventory_changed(&self) {
        self.0.lock().versions.inventory += 1;
    }

    /// Something the compiler reads changed (and so the audit's input too).
    pub fn compile_inputs_changed(&self) {
        let mut s = self.0.lock();
        s.versions.compile += 1;
        s.versions.inventory += 1;
    }

    /// A pod changed. Only its own findings change, unless it changes what the audit reads
    /// across pods (then the whole inventory is audited again) or the compiler reads it.
    pub fn pod_changed(
        &self,
        key: &Key,
        old: Option<&PodInfo>,
        new: Option<&PodInfo>,
        baselines: &[String],
    ) {
        let mut s = self.0.lock();
        s.versions.pods += 1;
        if s.pod_counts.update(old, new) {
            s.versions.inventory += 1;
            // A waypoint's pods: their ServiceAccounts are compiled into its policy.
            if old.into_iter().chain(new).any(crate::compile::reads_pod) {
                s.versions.compile += 1;
            }
            return;
        }
        for b in baselines {
            s.pods.entry(b.clone()).or_default().insert(key.clone());
        }
    }

    /// An object at a generated key changed: `old` and `new` are its owned fingerprints before
    /// and after (`None`: absent). The audit reads such objects, even the ones we write.
    /// `look`: the baselines whose next plan must compare it (every baseline, unless the change
    /// is our own write's response). Returns whether any must.
    pub fn generated_changed(
        &self,
        key: &ObjectKey,
        old: Option<u64>,
        new: Option<u64>,
        look: &[String],
    ) -> bool {
        let mut s = self.0.lock();
        if old != new {
            for fingerprint in [old, new].into_iter().flatten() {
                let h = s.hasher.hash_one((key, fingerprint));
                s.versions.generated ^= h;
            }
        }
        for b in look {
            s.changed.entry(b.clone()).or_default().insert(key.clone());
        }
        !look.is_empty()
    }

    /// Whether the object at `key` claimed by `claimed_by` is ours (see `ownership`).
    pub fn is_ours(&self, claimed_by: Option<&str>, key: &ObjectKey) -> bool {
        self.0.lock().records.is_ours(claimed_by, key, None)
    }

    /// The records of every baseline that exists, as they are now.
    pub fn records(&self) -> Records {
        self.0.lock().records.clone()
    }

    /// Publishes a baseline's records (merged with a new compile output).
    pub fn set_records(&self, uid: &str, records: Arc<BTreeSet<ObjectKey>>) {
        self.0.lock().records.set(uid, records);
    }

    /// The generated objects changed since the baseline's last plan, taken (an invalid spec
    /// plans no object).
    pub fn take_changed(&self, name: &str) -> BTreeSet<ObjectKey> {
        self.0.lock().changed.remove(name).unwrap_or_default()
    }

    /// What the reconcile of baseline `name` must do now, given what its memory says, the
    /// identities of all baselines (`baselines`), the kinds the cluster does not serve now
    /// and the time. Takes the dirty sets the work covers.
    pub fn decide(
        &self,
        name: &str,
        memo: Memo<'_>,
        baselines: &str,
        missing: &BTreeSet<Kind>,
        now: Timestamp,
    ) -> Decision {
        let mut s = self.0.lock();
        let v = s.versions;
        let changed = s.changed.remove(name).unwrap_or_default();
        let (work, audit_next) = match memo.stamp {
            None => (Work::Compile, false),
            Some(st)
                if st.baselines != baselines
                    || st.valid_until.is_some_and(|t| now >= t)
                    || st.compile != v.compile =>
            {
                (Work::Compile, false)
            }
            Some(st) if st.inventory != v.inventory => (Work::Audit, false),
            Some(st) if st.generated != v.generated && !changed.is_empty() => (Work::Reuse, true),
            Some(st) if st.generated != v.generated => (Work::Audit, false),
            Some(_) => match s.pods.get(name).filter(|p| !p.is_empty()) {
                Some(_) => (Work::AuditPods(BTreeSet::new()), false),
                None => (Work::Reuse, false),
            },
        };
        // Pods are taken by the work that covers them: their own audit, or the whole one. A
        // deferred audit leaves them for the next pass.
        let work = match work {
            Work::AuditPods(_) => Work::AuditPods(s.pods.remove(name).unwrap_or_default()),
            Work::Audit | Work::Compile => {
                s.pods.remove(name);
                work
            }
            Work::Reuse => work,
        };
        let posture = posture_due(memo.stamp, &work, baselines, now);
        let fast = work != Work::Compile
            && memo.planned_this_compile
            && memo.failures == 0
            && memo.status_known
            && memo.resync == v.resync
            && memo.missing == missing;
        Decision {
            work,
            changed,
            fast,
            audit_next,
            posture,
            versions: v,
        }
    }
}

/// Whether `work` computes the posture counts again: a compile does unless the spec of every
/// baseline is the same and the counts are fresh; an audit does once they are stale; a pass
/// that redoes nothing else does once they are stale and behind.
fn posture_due(stamp: Option<&Stamp>, work: &Work, baselines: &str, now: Timestamp) -> bool {
    let Some(st) = stamp else {
        return true;
    };
    let stale = now.duration_since(st.posture_at) >= POSTURE_REFRESH;
    match work {
        Work::Reuse => stale && st.posture_behind,
        Work::AuditPods(_) | Work::Audit => stale,
        Work::Compile => stale || st.baselines != baselines,
    }
}

/// Whether `compiled` is the compile output a plan was made with (results keep one `Arc`
/// until the next compile).
pub fn same_compile(planned: Option<&Arc<Compiled>>, held: Option<&Arc<Compiled>>) -> bool {
    matches!((planned, held), (Some(p), Some(h)) if Arc::ptr_eq(p, h))
}
