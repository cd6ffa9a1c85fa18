//! The names of the objects the audit reads, checked as the API server checks them: an object
//! the server would refuse is not one the cluster can hold, and a name such as `Bad_NS!` must
//! never reach a generated object.

use serde_json::Value;

use crate::api::model::{is_dns1123_label, is_dns1123_subdomain, FieldErrors};
use crate::api::selector::{check_label_key, check_label_value};

/// The rule a kind's names follow.
#[derive(Clone, Copy)]
pub enum NameRule {
    /// Namespaces: a DNS-1123 label.
    Label,
    /// Services: a DNS-1035 label (starts with a letter).
    Dns1035,
    /// Everything else the audit reads: a DNS-1123 subdomain.
    Subdomain,
}

impl NameRule {
    pub fn for_kind(kind: &str) -> NameRule {
        match kind {
            "Namespace" => NameRule::Label,
            "Service" => NameRule::Dns1035,
            _ => NameRule::Subdomain,
        }
    }

    fn check(self, name: &str) -> Result<(), &'static str> {
        let ok = match self {
            NameRule::Label => is_dns1123_label(name),
            NameRule::Dns1035 => {
                is_dns1123_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
            }
            NameRule::Subdomain => is_dns1123_subdomain(name),
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            NameRule::Label => "a DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit",
            NameRule::Dns1035 => "a DNS-1035 label: at most 63 lower-case letters, digits and '-', starting with a letter",
            NameRule::Subdomain => "a DNS-1123 subdomain: at most 253 lower-case letters, digits, '-' and '.'",
        })
    }
}

/// `metadata.name`, `metadata.namespace`, and the labels of an object of `kind`.
pub fn check_metadata(object: &Value, kind: &str, errs: &mut FieldErrors) {
    let meta = object.get("metadata");
    match meta.and_then(|m| m.get("name")) {
        None | Some(Value::Null) => errs.push("metadata.name", "must be set"),
        Some(Value::String(name)) => {
            if let Err(rule) = NameRule::for_kind(kind).check(name) {
                errs.push("metadata.name", format!("{name:?} is not {rule}"));
            }
        }
        Some(_) => errs.push("metadata.name", "must be a string"),
    }
    match meta.and_then(|m| m.get("namespace")) {
        None | Some(Value::Null) => {}
        Some(Value::String(ns)) if is_dns1123_label(ns) => {}
        Some(ns) => errs.push(
            "metadata.namespace",
            format!("{ns} is not a namespace name (a DNS-1123 label)"),
        ),
    }
    if let Some(Value::Object(labels)) = meta.and_then(|m| m.get("labels")) {
        for (k, v) in labels {
            check_label_key(k, "metadata.labels", errs);
            if let Some(v) = v.as_str() {
                check_label_value(v, &format!("metadata.labels[{k}]"), errs);
            }
        }
    }
}
