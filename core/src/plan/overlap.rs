//! Two baselines selecting the same namespace: the older one (creationTimestamp, then name)
//! wins the namespace, and the root namespace when both use the same one.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::api::Baseline;
use crate::compile::Scope;
use crate::inventory::Namespaces;

/// What one baseline may generate, and which older baselines took something from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub scope: Scope,
    /// Older baselines that won namespaces (or the root namespace) this one selects, sorted.
    pub lost_to: BTreeSet<String>,
}

impl Resolved {
    /// True when this baseline lost something to an older one (it reports the overlap).
    pub fn overlaps(&self) -> bool {
        !self.lost_to.is_empty()
    }
}

/// Resolves overlaps between all (valid or last-good) baselines. The result has one entry per
/// baseline name.
pub fn resolve_overlaps(
    baselines: &[&Baseline],
    namespaces: &Namespaces,
) -> BTreeMap<String, Resolved> {
    let mut ordered: Vec<&Baseline> = baselines.to_vec();
    // A baseline without a creation time (not yet stored) counts as the newest.
    ordered.sort_by(|a, b| {
        let ta = a.created.unwrap_or(Timestamp::MAX);
        let tb = b.created.unwrap_or(Timestamp::MAX);
        ta.cmp(&tb).then_with(|| a.name.cmp(&b.name))
    });
    // namespace -> the baseline that won it
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    let mut root_owner: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for b in ordered {
        let mut resolved = Resolved::default();
        for ns in namespaces.values() {
            if !b.selects(&ns.name, &ns.labels) {
                continue;
            }
            match owner.get(ns.name.as_str()) {
                Some(winner) => {
                    resolved.scope.claimed_elsewhere.insert(ns.name.clone());
                    resolved.lost_to.insert((*winner).to_string());
                }
                None => {
                    owner.insert(&ns.name, &b.name);
                }
            }
        }
        match root_owner.get(b.root_namespace.as_str()) {
            Some(winner) => {
                resolved.scope.owns_root = false;
                resolved.lost_to.insert((*winner).to_string());
            }
            None => {
                root_owner.insert(&b.root_namespace, &b.name);
            }
        }
        out.insert(b.name.clone(), resolved);
    }
    out
}
