//! Whether an object at a generated name is the operator's: decided here and nowhere else.
//!
//! An object is ours when its controller ownerReference names a baseline that exists, and that
//! baseline wants its key: the key is in its records (every key it has wanted since the
//! operator started, while the object may still exist) or, for the baseline being audited, in
//! what it compiled just now. Labels and names prove nothing, and an ownerReference alone
//! neither: tenants can write all three. A key the baseline never wanted cannot be forged.
//! See docs/architecture.md ("Ownership").

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::compile::Compiled;
use crate::inventory::Inventory;
use crate::object::{DesiredObject, Kind, Name, ObjectKey};

use super::index::Index;
use super::objects::Typed;

/// Our own records by baseline uid: one entry for every baseline that exists.
#[derive(Clone, Debug, Default)]
pub struct Records(HashMap<String, Arc<BTreeSet<ObjectKey>>>);

/// Who claims an object at a generated name, as far as can be told before an audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim<'a> {
    /// No MeshBaseline ownerReference: a tenant's object.
    Unclaimed,
    /// It names a baseline that does not exist: nobody's, audited as a tenant's.
    Orphaned,
    /// It names a baseline that exists: ours if that baseline wants the key (`is_ours`).
    Baseline(&'a str),
}

impl Records {
    /// A baseline exists (its records may still be empty).
    pub fn known(&mut self, uid: &str) {
        self.0.entry(uid.to_string()).or_default();
    }

    pub fn forget(&mut self, uid: &str) {
        self.0.remove(uid);
    }

    /// Keeps the baselines with these uids only.
    pub fn retain(&mut self, uids: &BTreeSet<String>) {
        self.0.retain(|uid, _| uids.contains(uid));
    }

    pub fn set(&mut self, uid: &str, records: Arc<BTreeSet<ObjectKey>>) {
        self.0.insert(uid.to_string(), records);
    }

    /// Who the controller ownerReference `claimed_by` (a MeshBaseline uid) names.
    pub fn claim<'a>(&self, claimed_by: Option<&'a str>) -> Claim<'a> {
        match claimed_by {
            None => Claim::Unclaimed,
            Some(uid) if self.0.contains_key(uid) => Claim::Baseline(uid),
            Some(_) => Claim::Orphaned,
        }
    }

    /// The rule. `compiled_now`: the uid of the baseline being audited and what it compiled
    /// just now, which its records may not hold yet (and which wins over them).
    pub fn is_ours(
        &self,
        claimed_by: Option<&str>,
        key: &ObjectKey,
        compiled_now: Option<(&str, &Compiled)>,
    ) -> bool {
        let Claim::Baseline(uid) = self.claim(claimed_by) else {
            return false;
        };
        self.wants(uid, key.kind, &key.namespace, &key.name, compiled_now)
    }

    /// Whether the existing baseline with `uid` wants the key (kind, namespace, name).
    fn wants(
        &self,
        uid: &str,
        kind: Kind,
        namespace: &Name,
        name: &Name,
        compiled_now: Option<(&str, &Compiled)>,
    ) -> bool {
        match compiled_now {
            Some((now, compiled)) if now == uid => {
                let key = (kind, namespace.as_str(), name.as_str());
                compiled
                    .objects
                    .binary_search_by(|d| at(d).cmp(&key))
                    .is_ok()
            }
            _ => self.0.get(uid).is_some_and(|r| {
                r.contains(&ObjectKey {
                    kind,
                    namespace: namespace.clone(),
                    name: name.clone(),
                })
            }),
        }
    }
}

/// Where a desired object sorts (the compiler sorts by key), without building a key.
fn at(d: &DesiredObject) -> (Kind, &str, &str) {
    (d.key.kind, d.key.namespace.as_str(), d.key.name.as_str())
}

/// `Records` asked about many objects in a row (a snapshot, an audit): nearly all name the
/// same baseline, so the answer for the last uid is kept rather than looked up again.
pub struct Claims<'r> {
    records: &'r Records,
    last: Option<(String, bool)>,
}

impl<'r> Claims<'r> {
    pub fn new(records: &'r Records) -> Self {
        Claims {
            records,
            last: None,
        }
    }

    /// `Records::claim`.
    pub fn claim<'a>(&mut self, claimed_by: Option<&'a str>) -> Claim<'a> {
        let Some(uid) = claimed_by else {
            return Claim::Unclaimed;
        };
        let exists = match &self.last {
            Some((last, exists)) if last == uid => *exists,
            _ => {
                let exists = self.records.0.contains_key(uid);
                self.last = Some((uid.to_string(), exists));
                exists
            }
        };
        if exists {
            Claim::Baseline(uid)
        } else {
            Claim::Orphaned
        }
    }
}

/// The inventory the audit of one baseline reads: `base` (where objects claimed by existing
/// baselines are as the audit reads the operator's own), with the claimed objects that are not
/// ours after all as the audit reads a tenant's: claims parsed, typed copies given their labels
/// back. Usually there is none, and `base` is shared as it is.
pub fn audit_inventory(
    base: Arc<Inventory>,
    records: &Records,
    index: &Index,
    compiled_now: (&str, &Compiled),
) -> Arc<Inventory> {
    let mut extra = Vec::new();
    let mut relabelled = Vec::new();
    let mut claims = Claims::new(records);
    index.for_each_entry(|kind, key, entry| {
        let Claim::Baseline(uid) = claims.claim(entry.claimed_by()) else {
            return; // in `base` as a tenant's already
        };
        if records.wants(uid, kind, &key.0, &key.1, Some(compiled_now)) {
            return;
        }
        match (entry.as_ours(), entry.as_tenants(kind, key)) {
            (Some(t), Some(labelled)) => relabelled.push((t, labelled)),
            (None, Some(claimed)) => extra.push(claimed),
            (_, None) => {}
        }
    });
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

/// Adds an object to the inventory.
pub fn push(inv: &mut Inventory, typed: Typed) {
    match typed {
        Typed::PeerAuthentication(o) => inv.peer_authentications.push(o),
        Typed::DestinationRule(o) => inv.destination_rules.push(o),
        Typed::AuthorizationPolicy(o) => inv.authorization_policies.push(o),
        Typed::Sidecar(o) => inv.sidecars.push(o),
        Typed::NetworkPolicy(o) => inv.network_policies.push(o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind: Kind::NetworkPolicy,
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn ours_only_by_an_existing_baselines_records() {
        let mut r = Records::default();
        let wanted = key("a", "meshbaseline-baseline");
        assert!(!r.is_ours(Some("u1"), &wanted, None), "no such baseline");
        r.known("u1");
        assert_eq!(r.claim(Some("u1")), Claim::Baseline("u1"));
        assert_eq!(r.claim(Some("u2")), Claim::Orphaned);
        assert_eq!(r.claim(None), Claim::Unclaimed);
        assert!(!r.is_ours(Some("u1"), &wanted, None), "not wanted yet");
        r.set("u1", Arc::new([wanted.clone()].into()));
        assert!(r.is_ours(Some("u1"), &wanted, None));
        assert!(!r.is_ours(None, &wanted, None), "no ownerReference");
        assert!(
            !r.is_ours(Some("u1"), &key("a", "meshbaseline-forged"), None),
            "a key never wanted"
        );
        r.forget("u1");
        assert!(!r.is_ours(Some("u1"), &wanted, None));
    }

    #[test]
    fn what_the_audited_baseline_compiled_wins_over_its_records() {
        let mut r = Records::default();
        let old = key("a", "meshbaseline-old");
        r.set("u1", Arc::new([old.clone()].into()));
        let compiled = Compiled::default();
        assert!(!r.is_ours(Some("u1"), &old, Some(("u1", &compiled))));
        assert!(
            r.is_ours(Some("u1"), &old, Some(("u2", &compiled))),
            "another baseline's compile says nothing about u1"
        );
    }
}
