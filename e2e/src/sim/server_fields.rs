//! What the server decides about an object: name and body validation against the URL,
//! resourceVersion preconditions, server-maintained content, and what counts as spec for
//! `metadata.generation`.

use serde_json::{json, Value};

use super::errors::ApiError;
use super::resources::{from_crd, CRD_RES, NAMESPACE_RES};
use super::writes::Target;

pub fn validate_name(t: &Target, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        let msg = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'";
        Err(ApiError::invalid(
            &t.rt.group,
            &t.rt.plural,
            name,
            "metadata.name",
            msg,
        ))
    }
}

/// Checks `apiVersion`/`kind`/namespace of a body against the URL.
pub fn check_body(t: &Target, body: &Value, name: &str) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the request body is not an object"));
    }
    if let Some(kind) = body
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| *k != t.rt.kind)
    {
        return Err(ApiError::bad_request(format!(
            "kind {kind} does not match the resource {}",
            t.rt.kind
        )));
    }
    if let Some(av) = body
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|av| *av != t.api_version())
    {
        return Err(ApiError::bad_request(format!(
            "apiVersion {av} does not match {}",
            t.api_version()
        )));
    }
    let body_ns = body.pointer("/metadata/namespace").and_then(Value::as_str);
    if t.rt.namespaced && body_ns.is_some_and(|ns| ns != t.ns) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if let Some(n) = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| *n != name)
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// Server-maintained content of some kinds.
pub fn server_defaults(t: &Target, obj: &mut Value, name: &str) {
    match t.rt.key().as_str() {
        NAMESPACE_RES => {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] =
                Value::String(name.to_string());
            obj["status"] = json!({"phase": if obj.pointer("/metadata/deletionTimestamp").is_some() { "Terminating" } else { "Active" }});
        }
        CRD_RES => {
            let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
            obj["status"] = json!({
                "acceptedNames": names,
                "storedVersions": from_crd(obj).map(|rt| vec![rt.versions[0].clone()]).unwrap_or_default(),
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
                ],
            });
        }
        _ => {}
    }
}

/// The part of an object whose change bumps `metadata.generation`.
pub fn spec_part(obj: &Value, status_subresource: bool) -> Value {
    let mut out = obj.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("metadata");
        if status_subresource {
            map.remove("status");
        }
    }
    out
}

/// A PUT or patch carrying `metadata.resourceVersion` must match the live object.
pub fn check_precondition(
    t: &Target,
    name: &str,
    body: &Value,
    live: &Value,
) -> Result<(), ApiError> {
    let want = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let have = live
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    match want {
        Some(want) if Some(want) != have => Err(ApiError::conflict(
            &t.rt.group,
            &t.rt.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )),
        _ => Ok(()),
    }
}
