//! Field sets for server-side apply: which leaf fields of an object a manager owns, and their
//! `fieldsV1` encoding (`{"f:spec": {"f:mtls": {"f:mode": {}}}}`).
//!
//! Simplification: every list is atomic (owned as one leaf field, replaced whole). That is what
//! the real server does for the Istio CRDs (no `x-kubernetes-list-type` there) and for
//! NetworkPolicy rules; it differs for a few built-in lists (Pod containers, Service ports,
//! `metadata.ownerReferences`, `metadata.finalizers`, built-in status conditions), which the real
//! server merges by key. So `k:`/`v:`/`i:` path elements never appear.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A path of map keys from the object root.
pub type Path = Vec<String>;

/// The leaf paths a manager owns.
pub type FieldSet = BTreeSet<Path>;

/// Server-owned fields that no manager owns (they are set by the server, never merged).
const SERVER_FIELDS: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "uid"],
    &["metadata", "resourceVersion"],
    &["metadata", "generation"],
    &["metadata", "creationTimestamp"],
    &["metadata", "deletionTimestamp"],
    &["metadata", "deletionGracePeriodSeconds"],
    &["metadata", "managedFields"],
    &["metadata", "selfLink"],
];

fn is_server_field(path: &[String]) -> bool {
    SERVER_FIELDS
        .iter()
        .any(|f| f.len() <= path.len() && f.iter().zip(path).all(|(a, b)| *a == b.as_str()))
}

/// Leaf paths of `value` (scalars, lists, empty maps), without server-owned fields.
pub fn leaf_paths(value: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    collect(value, &mut path, &mut out);
    out.retain(|p| !is_server_field(p));
    out
}

fn collect(value: &Value, path: &mut Path, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(k.clone());
                collect(v, path, out);
                path.pop();
            }
        }
        _ if !path.is_empty() => {
            out.insert(path.clone());
        }
        _ => {}
    }
}

pub fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

/// Removes the field at `path`, then every parent map that became empty and is not in `keep`.
pub fn remove(value: &mut Value, path: &[String], keep: &FieldSet) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some(parent) = get_mut(value, parents).and_then(Value::as_object_mut) else {
        return;
    };
    parent.remove(last);
    if parent.is_empty() && !parents.is_empty() && !keep.contains(parents) {
        remove(value, parents, keep);
    }
}

fn get_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, k| v.get_mut(k))
}

/// Merges `patch` into `target` as a JSON merge patch (RFC 7386): maps merge key by key,
/// everything else (scalars, lists) is replaced, a `null` removes the field. Server-side apply
/// merges an applied configuration the same way.
pub fn merge_into(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_into(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Keeps only the paths under `prefix` (or none under it when `inside` is false).
pub fn filter_prefix(set: &FieldSet, prefix: &str, inside: bool) -> FieldSet {
    set.iter()
        .filter(|p| (p.first().map(String::as_str) == Some(prefix)) == inside)
        .cloned()
        .collect()
}

/// `fieldsV1` encoding of a set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for key in path {
            let entry = node
                .entry(format!("f:{key}"))
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(next) = entry else {
                unreachable!("fieldsV1 nodes are always objects: only objects are inserted")
            };
            node = next;
        }
    }
    Value::Object(root)
}

/// Decodes `fieldsV1`; unknown element kinds (`k:`, `v:`, `i:`) are kept as opaque leaves.
pub fn from_fields_v1(fields: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    decode(fields, &mut path, &mut out);
    out
}

fn decode(node: &Value, path: &mut Path, out: &mut FieldSet) {
    let Some(map) = node.as_object() else { return };
    if (map.is_empty() || map.contains_key(".")) && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, v) in map {
        if k == "." {
            continue;
        }
        path.push(k.strip_prefix("f:").unwrap_or(k).to_string());
        decode(v, path, out);
        path.pop();
    }
}

/// `.spec.mtls.mode`, as the real server prints conflicting fields.
pub fn display(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_v1_round_trips_and_skips_server_fields() {
        let obj = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"k": "v"}},
                         "spec": {"list": [1, 2], "m": {"x": 1}, "empty": {}}});
        let set = leaf_paths(&obj);
        let encoded = to_fields_v1(&set);
        assert_eq!(
            encoded,
            json!({"f:metadata": {"f:labels": {"f:k": {}}},
                   "f:spec": {"f:empty": {}, "f:list": {}, "f:m": {"f:x": {}}}})
        );
        assert_eq!(from_fields_v1(&encoded), set);
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1]});
        merge_into(
            &mut target,
            &json!({"a": "z", "c": {"f": null}, "l": [2], "n": {"x": null, "y": 1}}),
        );
        assert_eq!(
            target,
            json!({"a": "z", "c": {"d": "e"}, "l": [2], "n": {"y": 1}})
        );
    }

    #[test]
    fn remove_prunes_empty_parents_not_kept() {
        let mut obj = json!({"spec": {"a": {"b": 1}, "c": 2}});
        remove(
            &mut obj,
            &["spec".into(), "a".into(), "b".into()],
            &FieldSet::new(),
        );
        assert_eq!(obj, json!({"spec": {"c": 2}}));
        let mut obj = json!({"spec": {"a": {"b": 1}}});
        let keep: FieldSet = [vec!["spec".to_string(), "a".to_string()]]
            .into_iter()
            .collect();
        remove(&mut obj, &["spec".into(), "a".into(), "b".into()], &keep);
        assert_eq!(obj, json!({"spec": {"a": {}}}));
    }
}
