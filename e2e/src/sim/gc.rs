//! Deletion and garbage collection: finalizers, ownerReference cascades (by uid), namespace
//! and CRD deletion taking their contents along.
//!
//! Simplifications: collection happens synchronously inside the deleting request (the real
//! garbage collector is asynchronous), so dependents' DELETED events directly follow the owner's;
//! `Foreground` behaves as `Background` (no `foregroundDeletion` finalizer, the owner is gone
//! first); namespaces are deleted at once rather than going through `Terminating`.

use serde_json::Value;

use super::resources::{from_crd, CRD_RES, NAMESPACE_RES};
use super::store::{owner_uids, ObjKey, State};

/// `propagationPolicy` of a delete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Background" => Some(Propagation::Background),
            "Foreground" => Some(Propagation::Foreground),
            "Orphan" => Some(Propagation::Orphan),
            _ => None,
        }
    }
}

fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Deletes the object at `key` (or marks it with `deletionTimestamp` while finalizers remain)
/// and collects what depended on it. Returns the object as last seen by watchers.
pub fn delete_cascade(
    state: &mut State,
    key: &ObjKey,
    propagation: Propagation,
    now: &str,
) -> Option<Value> {
    let live = state.get(key)?.clone();
    if has_finalizers(&live) {
        if live.pointer("/metadata/deletionTimestamp").is_some() {
            return Some(live);
        }
        let mut marked = live;
        marked["metadata"]["deletionTimestamp"] = Value::String(now.to_string());
        return state.commit(key.clone(), Some(marked));
    }
    let deleted = state.commit(key.clone(), None);
    let contents: Vec<ObjKey> = if key.res == NAMESPACE_RES {
        state
            .all()
            .filter(|(k, _)| k.ns == key.name && !k.ns.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    } else if key.res == CRD_RES {
        let res = from_crd(&live).map(|rt| rt.key()).unwrap_or_default();
        state.list_res(&res).map(|(k, _)| k.clone()).collect()
    } else {
        Vec::new()
    };
    for k in contents {
        delete_cascade(state, &k, Propagation::Background, now);
    }
    if let Some(uid) = live.pointer("/metadata/uid").and_then(Value::as_str) {
        collect_dependents(state, uid, propagation, now);
    }
    deleted
}

/// Dependents of a deleted owner: deleted when no other owner of theirs exists, otherwise (and
/// always with `Orphan`) the dangling reference is removed.
fn collect_dependents(state: &mut State, uid: &str, propagation: Propagation, now: &str) {
    let dependents = state.dependents_of(uid);
    for key in dependents {
        let Some(obj) = state.get(&key).cloned() else {
            continue;
        };
        let others_alive = owner_uids(&obj)
            .iter()
            .any(|u| u != uid && state.key_of_uid(u).is_some());
        if propagation == Propagation::Orphan || others_alive {
            let mut updated = obj;
            if let Some(refs) = updated
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
            }
            let no_refs = updated
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
            if let (true, Some(meta)) = (no_refs, updated["metadata"].as_object_mut()) {
                meta.remove("ownerReferences");
            }
            state.commit(key, Some(updated));
        } else {
            delete_cascade(state, &key, Propagation::Background, now);
        }
    }
}

/// An object written with ownerReferences none of which exists is collected right away, as
/// the real garbage collector eventually does.
pub fn collect_if_orphaned(state: &mut State, key: &ObjKey, now: &str) {
    let Some(obj) = state.get(key) else { return };
    let uids = owner_uids(obj);
    if !uids.is_empty() && uids.iter().all(|u| state.key_of_uid(u).is_none()) {
        delete_cascade(state, key, Propagation::Background, now);
    }
}
