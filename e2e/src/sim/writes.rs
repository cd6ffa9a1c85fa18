//! Create, replace, patch (merge and apply) and delete, with the server-set fields
//! (uid, creationTimestamp, resourceVersion, generation) and the status subresource rules.

use serde_json::{json, Value};

use super::apply::{self, Scope, Writer};
use super::errors::ApiError;
use super::gc;
use super::resources::{ResourceType, NAMESPACE_RES};
use super::server_fields::{
    check_body, check_precondition, server_defaults, spec_part, validate_name,
};
use super::store::{ObjKey, State};

/// The object a request addresses.
#[derive(Clone, Debug)]
pub struct Target {
    pub rt: ResourceType,
    pub version: String,
    pub ns: String,
    pub name: Option<String>,
    pub status: bool,
    /// Reads answer `PartialObjectMetadata` (requested through the `Accept` header, as
    /// kube's metadata watchers do).
    pub metadata_only: bool,
}

impl Target {
    pub fn key(&self, name: &str) -> ObjKey {
        ObjKey::new(&self.rt.key(), &self.ns, name)
    }

    pub fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }

    fn scope(&self) -> Scope {
        if self.status {
            Scope::Status
        } else {
            Scope::Main {
                status_subresource: self.rt.status_subresource,
            }
        }
    }

    fn name(&self) -> Result<&str, ApiError> {
        self.name
            .as_deref()
            .ok_or_else(|| ApiError::method_not_allowed("write without a name"))
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(&self.rt.group, &self.rt.plural, name)
    }
}

/// How a patch body is interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Apply {
        force: bool,
    },
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`. Simplification: handled as a JSON merge patch
    /// (no patch strategies or directives; lists replaced), which is exact for Leases.
    Strategic,
    /// `application/json-patch+json` (RFC 6902): every operation, atomically; a failed `test`
    /// or a path that does not exist is 422, as on a real server.
    Json,
}

/// The object as a client sees it through the requested version.
pub fn present(mut obj: Value, t: &Target) -> Value {
    if t.metadata_only {
        let metadata = obj.get_mut("metadata").map(Value::take).unwrap_or_default();
        return json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": metadata});
    }
    obj["apiVersion"] = Value::String(t.api_version());
    obj["kind"] = Value::String(t.rt.kind.clone());
    obj
}

pub fn create(
    state: &mut State,
    t: &Target,
    body: &Value,
    manager: &str,
    now: &str,
) -> Result<Value, ApiError> {
    if t.status {
        return Err(ApiError::method_not_allowed("POST on a subresource"));
    }
    let name = match body.pointer("/metadata/name").and_then(Value::as_str) {
        Some(n) => n.to_string(),
        None => match body
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
        {
            Some(prefix) => {
                let uid = state.new_uid();
                format!("{prefix}{}", &uid[uid.len() - 5..])
            }
            None => {
                return Err(ApiError::invalid(
                    &t.rt.group,
                    &t.rt.plural,
                    "",
                    "metadata.name",
                    "name or generateName is required",
                ))
            }
        },
    };
    check_body(t, body, &name)?;
    let mut obj = body.clone();
    obj["metadata"]["name"] = Value::String(name.clone());
    insert_new(state, t, obj, None, manager, now)
}

/// Stores a new object: `applied` is set when server-side apply creates it (ownership done).
fn insert_new(
    state: &mut State,
    t: &Target,
    mut obj: Value,
    applied: Option<()>,
    manager: &str,
    now: &str,
) -> Result<Value, ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    validate_name(t, &name)?;
    if t.rt.namespaced && state.get_obj(NAMESPACE_RES, "", &t.ns).is_none() {
        return Err(ApiError::not_found("", "namespaces", &t.ns));
    }
    let key = t.key(&name);
    if state.get(&key).is_some() {
        return Err(ApiError::already_exists(&t.rt.group, &t.rt.plural, &name));
    }
    obj["apiVersion"] = Value::String(t.api_version());
    obj["kind"] = Value::String(t.rt.kind.clone());
    if let (true, Some(map)) = (t.rt.status_subresource, obj.as_object_mut()) {
        // Status is written through the subresource only.
        map.remove("status");
    }
    if t.rt.group.is_empty() && t.rt.kind == "Pod" {
        // As the real pod strategy does: a new pod is Pending until the kubelet reports.
        obj["status"] = serde_json::json!({"phase": "Pending"});
    }
    let uid = state.new_uid();
    let meta = obj["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "generation",
        "creationTimestamp",
        "uid",
    ] {
        meta.remove(server_owned);
    }
    if applied.is_none() {
        meta.remove("managedFields");
    }
    if t.rt.namespaced {
        meta.insert("namespace".into(), Value::String(t.ns.clone()));
    } else {
        meta.remove("namespace");
    }
    meta.insert("uid".into(), Value::String(uid));
    meta.insert("creationTimestamp".into(), Value::String(now.to_string()));
    meta.insert("generation".into(), json!(1));
    server_defaults(t, &mut obj, &name);
    if applied.is_none() {
        let api_version = t.api_version();
        let w = Writer {
            manager,
            api_version: &api_version,
            scope: t.scope(),
            now,
        };
        apply::record_update(None, &mut obj, &w);
    }
    let stored = state.commit(key.clone(), Some(obj)).unwrap_or_default();
    gc::collect_if_orphaned(state, &key, now);
    Ok(stored)
}

pub fn replace(
    state: &mut State,
    t: &Target,
    body: &Value,
    manager: &str,
    now: &str,
) -> Result<Value, ApiError> {
    let name = t.name()?;
    check_body(t, body, name)?;
    let key = t.key(name);
    let live = state.get(&key).cloned().ok_or_else(|| t.not_found(name))?;
    check_precondition(t, name, body, &live)?;
    let api_version = t.api_version();
    let w = Writer {
        manager,
        api_version: &api_version,
        scope: t.scope(),
        now,
    };
    finish(state, t, key, &live, body.clone(), &w, false)
}

pub fn patch(
    state: &mut State,
    t: &Target,
    kind: PatchKind,
    body: &Value,
    manager: &str,
    now: &str,
) -> Result<(u16, Value), ApiError> {
    let name = t.name()?;
    let key = t.key(name);
    let live = state.get(&key).cloned();
    let api_version = t.api_version();
    let w = Writer {
        manager,
        api_version: &api_version,
        scope: t.scope(),
        now,
    };
    match (kind, live) {
        (PatchKind::Apply { force }, live) => {
            check_body(t, body, name)?;
            if body.get("apiVersion").is_none() || body.get("kind").is_none() {
                return Err(ApiError::bad_request(
                    "apiVersion and kind must be set in an applied configuration",
                ));
            }
            if let Some(live) = &live {
                check_precondition(t, name, body, live)?;
            }
            let mut config = body.clone();
            config["metadata"]["name"] = Value::String(name.to_string());
            let new = apply::apply(live.as_ref(), &config, &w, force)?;
            match live {
                Some(live) => finish(state, t, key, &live, new, &w, true).map(|o| (200, o)),
                None if t.status => Err(t.not_found(name)),
                None => insert_new(state, t, new, Some(()), manager, now).map(|o| (201, o)),
            }
        }
        (PatchKind::Merge | PatchKind::Strategic, Some(live)) => {
            check_precondition(t, name, body, &live)?;
            let mut new = live.clone();
            super::fieldset::merge_into(&mut new, body);
            check_body(t, &new, name)?;
            finish(state, t, key, &live, new, &w, false).map(|o| (200, o))
        }
        (PatchKind::Json, Some(live)) => {
            let ops: json_patch::Patch = serde_json::from_value(body.clone())
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
            let mut new = live.clone();
            json_patch::patch(&mut new, &ops).map_err(|e| {
                ApiError::new(422, "Invalid", format!("the JSON patch failed: {e}"))
            })?;
            check_precondition(t, name, &new, &live)?;
            check_body(t, &new, name)?;
            finish(state, t, key, &live, new, &w, false).map(|o| (200, o))
        }
        (_, None) => Err(t.not_found(name)),
    }
}

/// Completes an update of `live` to `new`: server fields, subresource rules, ownership,
/// generation; stores it unless nothing changed (a no-op write keeps the resourceVersion).
fn finish(
    state: &mut State,
    t: &Target,
    key: ObjKey,
    live: &Value,
    mut new: Value,
    w: &Writer<'_>,
    applied: bool,
) -> Result<Value, ApiError> {
    if !new.get("metadata").is_some_and(Value::is_object) {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    new = if t.status {
        let mut merged = live.clone();
        merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        if !applied {
            merged["metadata"]["managedFields"] = live
                .pointer("/metadata/managedFields")
                .cloned()
                .unwrap_or(Value::Null);
        } else {
            merged["metadata"]["managedFields"] = new
                .pointer("/metadata/managedFields")
                .cloned()
                .unwrap_or(Value::Null);
        }
        merged
    } else {
        if t.rt.status_subresource {
            match live.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        new
    };
    if new.get("status").is_some_and(Value::is_null) {
        if let Some(m) = new.as_object_mut() {
            m.remove("status");
        }
    }
    for server_owned in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
        "resourceVersion",
        "namespace",
        "name",
    ] {
        match live["metadata"].get(server_owned) {
            Some(v) => new["metadata"][server_owned] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(server_owned);
                }
            }
        }
    }
    if !applied {
        if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        if let Some(mf) = live.pointer("/metadata/managedFields") {
            new["metadata"]["managedFields"] = mf.clone();
        }
        apply::record_update(Some(live), &mut new, w);
    }
    new["apiVersion"] = live["apiVersion"].clone();
    new["kind"] = live["kind"].clone();
    let name = key.name.clone();
    server_defaults(t, &mut new, &name);
    if spec_part(live, t.rt.status_subresource) != spec_part(&new, t.rt.status_subresource) {
        let generation = live
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        new["metadata"]["generation"] = json!(generation + 1);
    }
    if &new == live {
        return Ok(live.clone());
    }
    let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
        && new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    if finalized {
        state.commit(key.clone(), Some(new));
        return Ok(
            gc::delete_cascade(state, &key, gc::Propagation::Background, w.now).unwrap_or_default(),
        );
    }
    let stored = state.commit(key.clone(), Some(new)).unwrap_or_default();
    gc::collect_if_orphaned(state, &key, w.now);
    Ok(stored)
}

/// `DeleteOptions` that the simulator honours.
#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    pub propagation: gc::Propagation,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

pub fn delete(
    state: &mut State,
    t: &Target,
    opts: &DeleteOpts,
    now: &str,
) -> Result<Value, ApiError> {
    let name = t.name()?;
    let key = t.key(name);
    let live = state.get(&key).cloned().ok_or_else(|| t.not_found(name))?;
    let meta = |k: &str| {
        live.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
    };
    if opts.uid.as_deref().is_some_and(|u| Some(u) != meta("uid"))
        || opts
            .resource_version
            .as_deref()
            .is_some_and(|rv| Some(rv) != meta("resourceVersion"))
    {
        return Err(ApiError::conflict(
            &t.rt.group,
            &t.rt.plural,
            name,
            "the precondition of the delete failed",
        ));
    }
    gc::delete_cascade(state, &key, opts.propagation, now).ok_or_else(|| t.not_found(name))
}
