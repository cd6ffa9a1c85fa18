//! Get and list (selectors, limit/continue).
//!
//! Simplification: every list is served from the latest state whatever `resourceVersion` /
//! `resourceVersionMatch` ask for. A continued list keeps the first page's resourceVersion and
//! reads later pages from the then-current state (objects after the last returned key), so a
//! change between pages can show up early; the watch that follows replays it, which is harmless
//! for reflectors. Continue tokens older than the compacted history answer 410 like expired ones.

use serde_json::{json, Value};

use super::errors::ApiError;
use super::selectors::Selector;
use super::store::{ObjKey, State};
use super::writes::{present, Target};

pub fn get(state: &State, t: &Target) -> Result<Value, ApiError> {
    let name = t.name.as_deref().unwrap_or_default();
    state
        .get(&t.key(name))
        .map(|o| present(o.clone(), t))
        .ok_or_else(|| ApiError::not_found(&t.rt.group, &t.rt.plural, name))
}

/// Whether `key` is in the namespace a request is scoped to (all namespaces when empty).
pub fn in_scope(t: &Target, key: &ObjKey) -> bool {
    key.res == t.rt.key() && (t.ns.is_empty() || key.ns == t.ns)
}

pub fn list(
    state: &State,
    t: &Target,
    sel: &Selector,
    limit: Option<usize>,
    cont: Option<&str>,
) -> Result<Value, ApiError> {
    let (list_rv, after) = match cont.filter(|c| !c.is_empty()) {
        Some(token) => {
            let mut parts = token.splitn(3, ':');
            let (Some(rv), Some(ns), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(ApiError::bad_request("invalid continue token"));
            };
            let rv: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request("invalid continue token"))?;
            if rv < state.compacted_rv() {
                return Err(ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                ));
            }
            (rv, Some(ObjKey::new(&t.rt.key(), ns, name)))
        }
        None => (state.rv(), None),
    };
    let res = t.rt.key();
    let candidates: Box<dyn Iterator<Item = (&ObjKey, &Value)>> = match after {
        Some(after) => Box::new(state.list_res_after(after)),
        None => Box::new(state.list_res(&res)),
    };
    let mut matching = candidates.filter(|(k, o)| in_scope(t, k) && sel.matches(o));
    let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let mut items = Vec::new();
    let mut last = None;
    for (k, o) in matching.by_ref() {
        items.push(present(o.clone(), t));
        last = Some(k);
        if items.len() == limit {
            break;
        }
    }
    let more = items.len() == limit && matching.next().is_some();
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if let (true, Some(k)) = (more, last) {
        metadata["continue"] = Value::String(format!("{list_rv}:{}:{}", k.ns, k.name));
    }
    let (kind, api_version) = if t.metadata_only {
        (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (format!("{}List", t.rt.kind), t.api_version())
    };
    Ok(json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": metadata,
        "items": items,
    }))
}
