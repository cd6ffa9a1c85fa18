//! A validated Kubernetes label selector.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::model::FieldErrors;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A set of labels a selector reads: a map, or the compact `SmallMap` namespaces and pods keep.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for crate::inventory::SmallMap {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// Matches every label set when empty, as `namespaceSelector: {}` does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    pub fn matches(&self, labels: &(impl Labels + ?Sized)) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.label(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.label(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.label(k).is_some(),
            Requirement::DoesNotExist(k) => labels.label(k).is_none(),
        })
    }

    /// Parses `selector`, recording problems under `path` in `errs`.
    pub fn parse(selector: &LabelSelector, path: &str, errs: &mut FieldErrors) -> Selector {
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            check_label_key(k, &format!("{path}.matchLabels"), errs);
            check_label_value(v, &format!("{path}.matchLabels[{k}]"), errs);
            requirements.push(Requirement::In(k.clone(), BTreeSet::from([v.clone()])));
        }
        for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
            let p = format!("{path}.matchExpressions[{i}]");
            check_label_key(&e.key, &format!("{p}.key"), errs);
            let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
            for v in &values {
                check_label_value(v, &format!("{p}.values"), errs);
            }
            let needs_values = matches!(e.operator.as_str(), "In" | "NotIn");
            if needs_values && values.is_empty() {
                errs.push(
                    format!("{p}.values"),
                    format!("operator {} needs at least one value", e.operator),
                );
            }
            let known = needs_values || matches!(e.operator.as_str(), "Exists" | "DoesNotExist");
            if known && !needs_values && !values.is_empty() {
                errs.push(
                    format!("{p}.values"),
                    format!("operator {} takes no values", e.operator),
                );
            }
            let key = e.key.clone();
            match e.operator.as_str() {
                "In" => requirements.push(Requirement::In(key, values)),
                "NotIn" => requirements.push(Requirement::NotIn(key, values)),
                "Exists" => requirements.push(Requirement::Exists(key)),
                "DoesNotExist" => requirements.push(Requirement::DoesNotExist(key)),
                other => errs.push(
                    format!("{p}.operator"),
                    format!("{other:?} is not one of In, NotIn, Exists, DoesNotExist"),
                ),
            }
        }
        Selector { requirements }
    }
}

pub(crate) fn check_label_key(key: &str, path: &str, errs: &mut FieldErrors) {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty() && name.len() <= 63 && is_label_token(name);
    let prefix_ok = prefix.is_none_or(super::model::is_dns1123_subdomain);
    if !name_ok || !prefix_ok {
        errs.push(
            path.to_string(),
            format!("{key:?} is not a valid label key"),
        );
    }
}

pub(crate) fn check_label_value(value: &str, path: &str, errs: &mut FieldErrors) {
    if value.len() > 63 || !(value.is_empty() || is_label_token(value)) {
        errs.push(
            path.to_string(),
            format!("{value:?} is not a valid label value"),
        );
    }
}

fn is_label_token(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}
