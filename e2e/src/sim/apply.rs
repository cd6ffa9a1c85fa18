//! Field ownership: server-side apply (`operation: Apply`) and the ownership that plain writes
//! (`operation: Update`: create, PUT, merge patch) take, kept in `metadata.managedFields`.
//!
//! Simplifications (see also `fieldset`): lists are atomic; a `null` in an applied configuration
//! removes the field; client-supplied `managedFields` are ignored; managers are not merged or
//! capped; parents left empty by a removal are pruned unless some manager owns them.

use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::fieldset::{self, FieldSet, Path};

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The main resource; `.status` is left alone when the kind has a status subresource.
    Main { status_subresource: bool },
    /// The `/status` subresource: only `.status`.
    Status,
}

impl Scope {
    fn subresource(self) -> Option<&'static str> {
        match self {
            Scope::Main { .. } => None,
            Scope::Status => Some("status"),
        }
    }

    /// The fields of `set` this scope may own.
    pub fn restrict(self, set: &FieldSet) -> FieldSet {
        match self {
            Scope::Main {
                status_subresource: false,
            } => set.clone(),
            Scope::Main {
                status_subresource: true,
            } => fieldset::filter_prefix(set, "status", false),
            Scope::Status => fieldset::filter_prefix(set, "status", true),
        }
    }

    /// The part of `body` this scope writes, as a partial object.
    pub fn restrict_value(self, body: &Value) -> Value {
        let mut out = body.clone();
        match self {
            Scope::Main {
                status_subresource: false,
            } => {}
            Scope::Main {
                status_subresource: true,
            } => {
                if let Some(map) = out.as_object_mut() {
                    map.remove("status");
                }
            }
            Scope::Status => {
                out = json!({"status": body.get("status").cloned().unwrap_or(json!({}))})
            }
        }
        out
    }
}

/// Who writes, how, and when.
#[derive(Clone, Copy, Debug)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub scope: Scope,
    pub now: &'a str,
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    subresource: Option<String>,
    api_version: String,
    time: String,
    set: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

fn read_entries(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let text = |e: &Value, k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    list.iter()
        .map(|e| Entry {
            manager: text(e, "manager"),
            operation: text(e, "operation"),
            subresource: e
                .get("subresource")
                .and_then(Value::as_str)
                .map(str::to_string),
            api_version: text(e, "apiVersion"),
            time: text(e, "time"),
            set: e
                .get("fieldsV1")
                .map(fieldset::from_fields_v1)
                .unwrap_or_default(),
        })
        .collect()
}

fn write_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    // Ownership of fields that no longer exist goes away with them.
    for e in &mut entries {
        e.set.retain(|p| fieldset::get(obj, p).is_some());
    }
    entries.retain(|e| !e.set.is_empty());
    let list: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut v = json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                               "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": fieldset::to_fields_v1(&e.set)});
            if let Some(sub) = e.subresource {
                v["subresource"] = Value::String(sub);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Puts `set` into the writer's entry of `operation`, keeping the old time when nothing changed.
fn upsert(entries: &mut Vec<Entry>, w: &Writer<'_>, operation: &str, set: FieldSet) {
    let sub = w.scope.subresource();
    if let Some(e) = entries.iter_mut().find(|e| e.is(w.manager, operation, sub)) {
        if e.set != set || e.api_version != w.api_version {
            e.set = set;
            e.api_version = w.api_version.to_string();
            e.time = w.now.to_string();
        }
    } else {
        entries.push(Entry {
            manager: w.manager.to_string(),
            operation: operation.to_string(),
            subresource: sub.map(str::to_string),
            api_version: w.api_version.to_string(),
            time: w.now.to_string(),
            set,
        });
    }
}

/// Server-side apply of `config` onto `live` (absent when the apply creates the object).
/// Returns the new object with its `managedFields`; server fields are set by the caller.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, ApiError> {
    let applied = w.scope.restrict(&fieldset::leaf_paths(config));
    let mut entries = read_entries(live);
    let sub = w.scope.subresource();
    let previous = entries
        .iter()
        .find(|e| e.is(w.manager, "Apply", sub))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let empty = Value::Object(Map::new());
    let base = live.unwrap_or(&empty);

    let mut conflicts: Vec<(Path, String, String)> = Vec::new();
    for e in entries.iter().filter(|e| e.manager != w.manager) {
        for p in e.set.intersection(&applied) {
            if fieldset::get(base, p) != fieldset::get(config, p) {
                conflicts.push((p.clone(), e.manager.clone(), e.api_version.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(&conflicts));
        }
        for (p, manager, _) in &conflicts {
            for e in entries.iter_mut().filter(|e| &e.manager == manager) {
                e.set.remove(p);
            }
        }
    }

    let mut obj = base.clone();
    fieldset::merge_into(&mut obj, &w.scope.restrict_value(config));
    // Fields this manager applied before and dropped now go, unless someone else owns them.
    let mut owned_elsewhere = FieldSet::new();
    for e in entries.iter().filter(|e| !e.is(w.manager, "Apply", sub)) {
        owned_elsewhere.extend(e.set.iter().cloned());
    }
    let mut keep = owned_elsewhere.clone();
    keep.extend(applied.iter().cloned());
    for p in previous.difference(&applied) {
        if !owned_elsewhere.contains(p) {
            fieldset::remove(&mut obj, p, &keep);
        }
    }
    upsert(&mut entries, w, "Apply", applied);
    write_entries(&mut obj, entries);
    Ok(obj)
}

fn conflict_error(conflicts: &[(Path, String, String)]) -> ApiError {
    let n = conflicts.len();
    let described: Vec<String> = conflicts
        .iter()
        .map(|(p, m, v)| format!("conflict with \"{m}\" using {v}: {}", fieldset::display(p)))
        .collect();
    let plural = if n == 1 { "" } else { "s" };
    let message = format!(
        "Apply failed with {n} conflict{plural}: {}",
        described.join("; ")
    );
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(p, m, v)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {v}"),
                   "field": fieldset::display(p)})
        })
        .collect();
    ApiError::new(409, "Conflict", message).with_details(json!({"causes": causes}))
}

/// Ownership for a plain write (create, PUT, merge patch): the writer takes every field whose
/// value it changed, from whoever owned it, without conflicts. `new` gets its `managedFields`.
pub fn record_update(live: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let changed: FieldSet = w
        .scope
        .restrict(&fieldset::leaf_paths(new))
        .into_iter()
        .filter(|p| live.and_then(|l| fieldset::get(l, p)) != fieldset::get(new, p))
        .collect();
    let mut entries = read_entries(live);
    // Fields the update removed are nobody's any more (structured-merge-diff drops
    // `compare.Removed` from every manager's set), so a later apply does not "own" a field
    // that is gone.
    if live.is_some() {
        for e in &mut entries {
            e.set.retain(|p| fieldset::get(new, p).is_some());
        }
        entries.retain(|e| !e.set.is_empty());
    }
    if !changed.is_empty() {
        for e in &mut entries {
            e.set.retain(|p| !changed.contains(p));
        }
        let sub = w.scope.subresource();
        let mut mine = entries
            .iter()
            .find(|e| e.is(w.manager, "Update", sub))
            .map(|e| e.set.clone())
            .unwrap_or_default();
        mine.extend(changed);
        upsert(&mut entries, w, "Update", mine);
    }
    write_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Scope = Scope::Main {
        status_subresource: true,
    };

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            scope: MAIN,
            now: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn conflict_force_and_removal() {
        let a = apply(
            None,
            &json!({"metadata": {"name": "x"}, "spec": {"a": 1, "b": 2}}),
            &writer("one"),
            false,
        )
        .unwrap();
        let err = apply(Some(&a), &json!({"spec": {"a": 9}}), &writer("two"), false).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message
                .contains("conflict with \"one\" using v1: .spec.a"),
            "{}",
            err.message
        );
        // Same value: shared ownership, no conflict.
        let shared = apply(Some(&a), &json!({"spec": {"b": 2}}), &writer("two"), false).unwrap();
        // "one" drops b: it stays because "two" owns it too.
        let dropped = apply(
            Some(&shared),
            &json!({"spec": {"a": 1}}),
            &writer("one"),
            false,
        )
        .unwrap();
        assert_eq!(dropped["spec"], json!({"a": 1, "b": 2}));
        let forced = apply(
            Some(&dropped),
            &json!({"spec": {"a": 9, "b": 2}}),
            &writer("two"),
            true,
        )
        .unwrap();
        assert_eq!(forced["spec"], json!({"a": 9, "b": 2}));
        // "one" lost .spec.a, so dropping it from its config removes nothing.
        let gone = apply(Some(&forced), &json!({}), &writer("two"), false).unwrap();
        assert_eq!(gone.get("spec"), None);
    }
}
