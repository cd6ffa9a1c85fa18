//! A custom resource checked offline against its CRD's structural schema, as the API server
//! checks it with strict field validation: unknown fields, types, `required`, `enum`,
//! `pattern`, lengths, item counts, ranges, `format: date-time`, and the uniqueness of
//! `x-kubernetes-list-type` set and map lists. Nulls in fields that are not `nullable` are
//! dropped, as the server prunes them. CEL rules (`x-kubernetes-validations`) are not
//! evaluated here: the validated model repeats each of them.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::api::FieldError;

/// Fields of `metadata` (ObjectMeta) a client may send.
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Checks `object` (a whole custom resource) against `schema` (its version's
/// `openAPIV3Schema`); returns it with nulls pruned and `status` dropped (the server ignores
/// it when an object is created), and every problem with its field path.
pub fn validate(object: &Value, schema: &Value) -> (Value, Vec<FieldError>) {
    let mut v = Validator::default();
    let mut out = object.clone();
    if let Value::Object(map) = &mut out {
        for key in map.keys() {
            if !matches!(
                key.as_str(),
                "apiVersion" | "kind" | "metadata" | "spec" | "status"
            ) {
                v.error(key, "unknown field");
            }
        }
        match map.get("metadata") {
            Some(Value::Object(meta)) => {
                for key in meta.keys().filter(|k| !OBJECT_META.contains(&k.as_str())) {
                    v.error(&format!("metadata.{key}"), "unknown field");
                }
            }
            Some(other) => v.error("metadata", &type_error("object", other)),
            None => {}
        }
        if let (Some(spec), Some(spec_schema)) =
            (map.get_mut("spec"), schema.pointer("/properties/spec"))
        {
            v.check(spec, spec_schema, "spec");
        }
        map.remove("status");
    }
    (out, v.errors)
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
    patterns: HashMap<String, Option<regex::Regex>>,
}

impl Validator {
    fn error(&mut self, path: &str, message: &str) {
        self.errors.push(FieldError {
            path: path.to_string(),
            message: message.to_string(),
        });
    }

    fn check(&mut self, value: &mut Value, schema: &Value, path: &str) {
        if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            if !(value.is_string() || value.is_i64() || value.is_u64()) {
                self.error(path, &type_error("integer or string", value));
            }
            return;
        }
        let want = schema.get("type").and_then(Value::as_str).unwrap_or("");
        match (want, &mut *value) {
            ("object", Value::Object(map)) => self.object(map, schema, path),
            ("array", Value::Array(items)) => self.array(items, schema, path),
            ("string", Value::String(s)) => self.string(s, schema, path),
            ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => {
                self.number(value, schema, path)
            }
            ("number", Value::Number(_)) => self.number(value, schema, path),
            ("boolean", Value::Bool(_)) | ("", _) => {}
            (want, other) => {
                let message = type_error(want, other);
                self.error(path, &message);
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                self.error(
                    path,
                    &format!(
                        "Unsupported value: {value}: supported values: {}",
                        list.join(", ")
                    ),
                );
            }
        }
    }

    fn object(&mut self, map: &mut Map<String, Value>, schema: &Value, path: &str) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        let preserve =
            schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        // The server prunes nulls of fields that are not nullable before it validates.
        map.retain(|key, v| {
            let nullable = properties
                .and_then(|p| p.get(key))
                .or(additional)
                .and_then(|s| s.get("nullable"))
                == Some(&Value::Bool(true));
            !v.is_null() || nullable
        });
        for (key, v) in map.iter_mut() {
            let child = join(path, key);
            match properties.and_then(|p| p.get(key)).or(additional) {
                Some(_) if v.is_null() => {}
                Some(s) => self.check(v, s, &child),
                None if preserve => {}
                None => self.error(&child, "unknown field"),
            }
        }
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(req) = req.as_str().filter(|r| !map.contains_key(*r)) {
                self.error(&join(path, req), "Required value");
            }
        }
    }

    fn array(&mut self, items: &mut [Value], schema: &Value, path: &str) {
        let n = items.len() as u64;
        if let Some(min) = schema
            .get("minItems")
            .and_then(Value::as_u64)
            .filter(|m| n < *m)
        {
            self.error(path, &format!("must have at least {min} items"));
        }
        if let Some(max) = schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .filter(|m| n > *m)
        {
            self.error(
                path,
                &format!("Too many: {n}: must have at most {max} items"),
            );
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter_mut().enumerate() {
                self.check(item, item_schema, &format!("{path}[{i}]"));
            }
        }
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => {
                let mut seen = BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    if !seen.insert(item.to_string()) {
                        self.error(&format!("{path}[{i}]"), &format!("Duplicate value: {item}"));
                    }
                }
            }
            Some("map") => {
                let keys: Vec<&str> = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let mut seen = BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    let key: Vec<String> = keys
                        .iter()
                        .map(|k| item.get(*k).map(Value::to_string).unwrap_or_default())
                        .collect();
                    if !seen.insert(key.clone()) {
                        let shown: Vec<String> = keys
                            .iter()
                            .zip(&key)
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect();
                        self.error(
                            &format!("{path}[{i}]"),
                            &format!("Duplicate value: {}", shown.join(", ")),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn string(&mut self, s: &str, schema: &Value, path: &str) {
        let chars = s.chars().count() as u64;
        if let Some(min) = schema
            .get("minLength")
            .and_then(Value::as_u64)
            .filter(|m| chars < *m)
        {
            self.error(path, &format!("{s:?}: should be at least {min} chars long"));
        }
        if let Some(max) = schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .filter(|m| chars > *m)
        {
            self.error(path, &format!("Too long: may not be more than {max} chars"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let re = self
                .patterns
                .entry(pattern.to_string())
                .or_insert_with(|| regex::Regex::new(pattern).ok());
            match re {
                Some(re) if re.is_match(s) => {}
                Some(_) => {
                    let message = format!("{s:?}: should match '{pattern}'");
                    self.error(path, &message);
                }
                None => self.error(
                    path,
                    &format!("the schema's pattern {pattern:?} does not compile"),
                ),
            }
        }
        if schema.get("format").and_then(Value::as_str) == Some("date-time")
            && s.parse::<jiff::Timestamp>().is_err()
        {
            self.error(
                path,
                &format!("{s:?}: must be a date-time such as 2026-12-31T00:00:00Z"),
            );
        }
    }

    fn number(&mut self, value: &Value, schema: &Value, path: &str) {
        let Some(x) = value.as_f64() else { return };
        let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
        let exclusive = |k: &str| schema.get(k) == Some(&Value::Bool(true));
        if let Some(min) = bound("minimum") {
            if x < min || (exclusive("exclusiveMinimum") && x == min) {
                self.error(
                    path,
                    &format!("{value}: should be greater than or equal to {min}"),
                );
            }
        }
        if let Some(max) = bound("maximum") {
            if x > max || (exclusive("exclusiveMaximum") && x == max) {
                self.error(
                    path,
                    &format!("{value}: should be less than or equal to {max}"),
                );
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_error(want: &str, got: &Value) -> String {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("Invalid value: {got:?}: must be of type {want}")
}
