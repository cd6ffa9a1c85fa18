//! `tenantOverrides: Revert`: take ownership of only the offending field of a tenant's
//! PeerAuthentication or DestinationRule with a forced server-side apply.
//!
//! Decisions:
//! - PeerAuthentication: `spec.mtls.mode` and every `spec.portLevelMtls.<port>.mode` weaker than
//!   the baseline's mode are set to it (a PERMISSIVE port re-opens plaintext on that port; the
//!   map is granular in SSA, so each entry is owned separately). UNSET (inherit) is left alone.
//! - DestinationRule: `spec.trafficPolicy.tls.mode` becomes ISTIO_MUTUAL when it is set to
//!   anything else. `portLevelSettings` is a list that Istio's schema makes atomic, so owning one
//!   entry would take the whole list from the tenant: those are reported, never reverted.
//! - Every revert also applies the annotation `meshbaseline.dev/reverted` (the fields we took),
//!   which makes fight detection stateless: when the annotation is there, a field is weak again
//!   and `managedFields` shows another manager owning it, that manager set it back after us.
//!   We stop reverting that object and report the manager instead of fighting.
//! - An apply must list every field we already own, or SSA would remove the ones left out; so
//!   fields we own from an earlier revert are re-applied with their current value.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Map, Value};

use crate::api::baseline::MtlsMode;
use crate::api::istio::{DestinationRule, PeerAuthentication};
use crate::api::Baseline;
use crate::audit::{Finding, Rule};
use crate::inventory::Inventory;
use crate::object::{Kind, ObjectKey, FIELD_MANAGER};

pub const REVERTED_ANNOTATION: &str = "meshbaseline.dev/reverted";
const ISTIO_MUTUAL: &str = "ISTIO_MUTUAL";

/// A forced single-field apply on a tenant object.
#[derive(Clone, Debug, PartialEq)]
pub struct Revert {
    pub key: ObjectKey,
    /// The complete apply body (apiVersion, kind, name, namespace, annotation, the fields),
    /// with the uid of the object as observed: an apply creates what is missing, and the uid
    /// makes the API server refuse instead (409), so a revert never creates a partial object
    /// where the tenant's was deleted, nor patches one made again under the same name.
    pub patch: Value,
    /// The weak fields this apply changes, dotted (`spec.mtls.mode`).
    pub fields: Vec<String>,
}

/// Another field manager keeps setting a field back: we stopped reverting the object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fight {
    pub key: ObjectKey,
    pub managers: Vec<String>,
    pub fields: Vec<String>,
}

/// One field of a tenant object that Revert mode may own: its path (for managedFields), the
/// current value and the value the baseline wants.
struct Field {
    path: Vec<String>,
    current: Option<String>,
    target: String,
    weak: bool,
}

fn pa_rank(mode: &str) -> Option<u8> {
    match mode {
        "DISABLE" => Some(0),
        "PERMISSIVE" => Some(1),
        "STRICT" => Some(2),
        _ => None, // UNSET or unknown: inherits, not a weakening by itself
    }
}

fn pa_fields(pa: &PeerAuthentication, baseline: &Baseline) -> Vec<Field> {
    let target = match baseline.mtls.mode {
        MtlsMode::Strict => "STRICT",
        MtlsMode::Permissive => "PERMISSIVE",
    };
    let weak = |m: &Option<String>| {
        m.as_deref()
            .and_then(pa_rank)
            .zip(pa_rank(target))
            .is_some_and(|(c, t)| c < t)
    };
    let mut out = Vec::new();
    let mode = pa.spec.mtls.as_ref().and_then(|m| m.mode.clone());
    out.push(Field {
        path: vec!["spec".into(), "mtls".into(), "mode".into()],
        weak: weak(&mode),
        current: mode,
        target: target.into(),
    });
    for (port, m) in &pa.spec.port_level_mtls {
        out.push(Field {
            path: vec![
                "spec".into(),
                "portLevelMtls".into(),
                port.clone(),
                "mode".into(),
            ],
            weak: weak(&m.mode),
            current: m.mode.clone(),
            target: target.into(),
        });
    }
    out
}

fn dr_fields(dr: &DestinationRule) -> Vec<Field> {
    let mode = dr
        .spec
        .traffic_policy
        .as_ref()
        .and_then(|t| t.tls.as_ref())
        .and_then(|t| t.mode.clone());
    vec![Field {
        path: vec![
            "spec".into(),
            "trafficPolicy".into(),
            "tls".into(),
            "mode".into(),
        ],
        weak: mode.as_deref().is_some_and(|m| m != ISTIO_MUTUAL),
        current: mode,
        target: ISTIO_MUTUAL.into(),
    }]
}

/// Whether a managedFields entry's fieldsV1 contains `path`.
fn owns(entry: &ManagedFieldsEntry, path: &[String]) -> bool {
    let Some(fields) = entry.fields_v1.as_ref() else {
        return false;
    };
    let mut node = &fields.0;
    for seg in path {
        match node.get(format!("f:{seg}")) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

fn managers_of(meta: &ObjectMeta, path: &[String]) -> (bool, BTreeSet<String>) {
    let mut ours = false;
    let mut others = BTreeSet::new();
    for e in meta.managed_fields.iter().flatten() {
        if e.subresource.as_deref().is_some_and(|s| !s.is_empty()) || !owns(e, path) {
            continue;
        }
        match e.manager.as_deref() {
            Some(FIELD_MANAGER) => ours = true,
            Some(m) => {
                others.insert(m.to_string());
            }
            None => {
                others.insert("<unknown>".to_string());
            }
        }
    }
    (ours, others)
}

fn set_path(root: &mut Map<String, Value>, path: &[String], value: &str) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = root;
    for seg in parents {
        let entry = node
            .entry(seg.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        match entry {
            Value::Object(m) => node = m,
            _ => return, // replaced by an object just above
        }
    }
    node.insert(last.clone(), Value::String(value.to_string()));
}

enum Outcome {
    Nothing,
    Revert(Revert),
    Fight(Fight),
}

fn decide(kind: Kind, meta: &ObjectMeta, fields: Vec<Field>) -> Outcome {
    // Without the uid observed, an apply could create the object where it is gone.
    let (namespace, name, uid) = match (&meta.namespace, &meta.name, &meta.uid) {
        (Some(ns), Some(n), Some(uid)) => (ns.into(), n.into(), uid),
        _ => return Outcome::Nothing,
    };
    let key = ObjectKey {
        kind,
        namespace,
        name,
    };
    let annotated = meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(REVERTED_ANNOTATION));
    let mut body = Map::new();
    let mut weak_fields = Vec::new();
    let mut fight_managers = BTreeSet::new();
    let mut fight_fields = Vec::new();
    for f in &fields {
        let (ours, others) = managers_of(meta, &f.path);
        let dotted = f.path.join(".");
        if f.weak {
            if annotated && !others.is_empty() {
                fight_managers.extend(others);
                fight_fields.push(dotted);
                continue;
            }
            set_path(&mut body, &f.path, &f.target);
            weak_fields.push(dotted);
        } else if ours {
            if let Some(current) = &f.current {
                set_path(&mut body, &f.path, current);
            }
        }
    }
    if !fight_fields.is_empty() {
        return Outcome::Fight(Fight {
            key,
            managers: fight_managers.into_iter().collect(),
            fields: fight_fields,
        });
    }
    if weak_fields.is_empty() {
        return Outcome::Nothing;
    }
    let mut patch = json!({
        "apiVersion": kind.api_version(),
        "kind": kind.name(),
        "metadata": {
            "name": key.name,
            "namespace": key.namespace,
            "uid": uid,
            "annotations": {REVERTED_ANNOTATION: weak_fields.join(",")},
        },
    });
    if let (Value::Object(p), Some(spec)) = (&mut patch, body.remove("spec")) {
        p.insert("spec".into(), spec);
    }
    Outcome::Revert(Revert {
        key,
        patch,
        fields: weak_fields,
    })
}

/// The reverts and fights for the tenant objects that findings name as weaker than the baseline.
pub fn plan_reverts(
    baseline: &Baseline,
    findings: &[Finding],
    inventory: &Inventory,
) -> (Vec<Revert>, Vec<Fight>) {
    let mut targets: BTreeSet<(Kind, &str, &str)> = BTreeSet::new();
    for f in findings {
        let kind = match f.rule {
            Rule::MB101 | Rule::MB102 => Kind::PeerAuthentication,
            Rule::MB201 => Kind::DestinationRule,
            _ => continue,
        };
        if f.kind != kind.name() {
            continue;
        }
        if let Some(ns) = &f.namespace {
            targets.insert((kind, ns.as_str(), f.name.as_str()));
        }
    }
    if targets.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let pas: BTreeMap<(&str, &str), &PeerAuthentication> = inventory
        .peer_authentications
        .iter()
        .map(|o| &**o)
        .filter_map(|p| {
            Some((
                (
                    p.metadata.namespace.as_deref()?,
                    p.metadata.name.as_deref()?,
                ),
                p,
            ))
        })
        .collect();
    let drs: BTreeMap<(&str, &str), &DestinationRule> = inventory
        .destination_rules
        .iter()
        .map(|o| &**o)
        .filter_map(|d| {
            Some((
                (
                    d.metadata.namespace.as_deref()?,
                    d.metadata.name.as_deref()?,
                ),
                d,
            ))
        })
        .collect();
    let mut reverts = Vec::new();
    let mut fights = Vec::new();
    for (kind, ns, name) in targets {
        let outcome = match kind {
            Kind::PeerAuthentication => match pas.get(&(ns, name)) {
                Some(pa) => decide(kind, &pa.metadata, pa_fields(pa, baseline)),
                _ => Outcome::Nothing,
            },
            Kind::DestinationRule => match drs.get(&(ns, name)) {
                Some(dr) => decide(kind, &dr.metadata, dr_fields(dr)),
                _ => Outcome::Nothing,
            },
            _ => Outcome::Nothing,
        };
        match outcome {
            Outcome::Nothing => {}
            Outcome::Revert(r) => reverts.push(r),
            Outcome::Fight(f) => fights.push(f),
        }
    }
    (reverts, fights)
}
