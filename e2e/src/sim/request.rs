//! Decoding requests: query parameters, the verb, the field manager, the body.

use std::collections::HashMap;

use http::{header, Method, Request};
use hyper::body::Incoming;
use serde_json::Value;

use super::accounting::Verb;
use super::errors::ApiError;

/// Percent-decoding of a query component (`+` is a space, as form encoding has it).
pub(super) fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(v)) => {
                out.push(v as u8);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

pub fn verb_of(
    method: &Method,
    named: bool,
    q: &HashMap<String, String>,
    content_type: &str,
) -> Result<Verb, ApiError> {
    let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    Ok(match (method.as_str(), named) {
        ("GET", _) if watching => Verb::Watch,
        ("GET", true) => Verb::Get,
        ("GET", false) => Verb::List,
        ("POST", false) => Verb::Create,
        ("PUT", true) => Verb::Update,
        ("PATCH", true) => match content_type {
            "application/apply-patch+yaml" | "application/apply-patch+json" => Verb::Apply,
            "application/merge-patch+json" => Verb::MergePatch,
            "application/strategic-merge-patch+json" => Verb::StrategicPatch,
            "application/json-patch+json" => Verb::JsonPatch,
            other => return Err(ApiError::unsupported_media(other)),
        },
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        (m, _) => return Err(ApiError::method_not_allowed(m)),
    })
}

/// The default field manager of writes without `fieldManager`: the user agent's program name,
/// as the real server derives it (`kubectl-edit/v1.33` -> `kubectl-edit`). kube-client sends no
/// user agent; such writes are attributed to `unknown`.
pub fn manager_of(q: &HashMap<String, String>, req: &Request<Incoming>) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    agent.split('/').next().unwrap_or("unknown").to_string()
}

pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes)
        .or_else(|_| serde_norway::from_slice(bytes))
        .map_err(|e| ApiError::bad_request(format!("cannot decode the request body: {e}")))
}
