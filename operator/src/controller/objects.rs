//! Trimming of watched objects into cache values, and the index of generated objects by
//! baseline.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::DynamicObject;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::istio::{AuthorizationPolicy, DestinationRule, PeerAuthentication, Sidecar};
use crate::object::{Kind, ObjectKey, BASELINE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::plan::Observed;

use super::cache::Key;

/// A watched object of a generated kind, typed and trimmed for the inventory.
#[derive(Clone, Debug, PartialEq)]
pub enum Typed {
    PeerAuthentication(PeerAuthentication),
    DestinationRule(DestinationRule),
    AuthorizationPolicy(AuthorizationPolicy),
    Sidecar(Sidecar),
    NetworkPolicy(NetworkPolicy),
}

#[derive(Clone, Debug, PartialEq)]
pub struct KindEntry {
    /// `None` when the object does not deserialize into our minimal type (it is then invisible
    /// to the audit, and logged).
    pub typed: Option<Typed>,
    /// Set for objects labelled `app.kubernetes.io/managed-by: meshbaseline`: (baseline, object).
    pub generated: Option<(String, Observed)>,
}

fn typed_as<T: DeserializeOwned>(v: Value) -> Option<T> {
    serde_json::from_value(v).ok()
}

fn remove_managed_fields(v: &mut Value) {
    if let Some(m) = v.pointer_mut("/metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
}

/// Trims a watched object of `kind`. managedFields stay only on PeerAuthentications and
/// DestinationRules, where Revert mode's fight detection reads them.
pub fn trim(kind: Kind, obj: DynamicObject) -> Option<(Key, KindEntry)> {
    let key = (obj.metadata.namespace.clone()?, obj.metadata.name.clone()?);
    let labels = obj.metadata.labels.clone().unwrap_or_default();
    let ours = labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE);
    let owner_uid = obj
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "MeshBaseline" && o.controller == Some(true))
        .map(|o| o.uid.clone());
    let mut full = serde_json::to_value(&obj).ok()?;
    let keeps_managed_fields = matches!(kind, Kind::PeerAuthentication | Kind::DestinationRule);
    let generated = if ours {
        // Only what the planner reads: the spec, ownerReferences and the uid (for deletes);
        // labels are kept apart in `Observed`. The rest of the object is the typed copy's.
        let pick = |from: &Value, keys: &[&str]| -> Value {
            let m = keys
                .iter()
                .filter_map(|k| Some((k.to_string(), from.get(*k)?.clone())))
                .collect();
            Value::Object(m)
        };
        let mut manifest = pick(&full, &["spec"]);
        manifest["metadata"] = pick(&full["metadata"], &["uid", "ownerReferences"]);
        let baseline = labels.get(BASELINE_LABEL).cloned().unwrap_or_default();
        Some((baseline, Observed::new(manifest, owner_uid, labels)))
    } else {
        None
    };
    if !keeps_managed_fields {
        remove_managed_fields(&mut full);
    }
    if kind != Kind::NetworkPolicy {
        crate::api::istio::default_spec(&mut full);
    }
    let typed = match kind {
        Kind::PeerAuthentication => typed_as(full).map(Typed::PeerAuthentication),
        Kind::DestinationRule => typed_as(full).map(Typed::DestinationRule),
        Kind::AuthorizationPolicy => typed_as(full).map(Typed::AuthorizationPolicy),
        Kind::Sidecar => typed_as(full).map(Typed::Sidecar),
        Kind::NetworkPolicy => typed_as(full).map(Typed::NetworkPolicy),
    };
    if typed.is_none() {
        tracing::warn!(kind = %kind, namespace = %key.0, name = %key.1, "object does not parse; ignored by the audit");
    }
    Some((key, KindEntry { typed, generated }))
}

/// Generated objects by baseline name, maintained from the kind caches' changes.
#[derive(Default)]
pub struct GeneratedIndex {
    by_baseline: RwLock<HashMap<String, BTreeMap<ObjectKey, Observed>>>,
}

impl GeneratedIndex {
    /// Records a change; returns the baselines concerned.
    pub fn update(
        &self,
        kind: Kind,
        key: &Key,
        old: Option<&KindEntry>,
        new: Option<&KindEntry>,
    ) -> Vec<String> {
        let okey = ObjectKey {
            kind,
            namespace: key.0.clone(),
            name: key.1.clone(),
        };
        let mut idx = self.by_baseline.write().unwrap_or_else(|e| e.into_inner());
        let mut touched = Vec::new();
        if let Some((b, _)) = old.and_then(|o| o.generated.as_ref()) {
            if let Some(m) = idx.get_mut(b) {
                m.remove(&okey);
                if m.is_empty() {
                    idx.remove(b);
                }
            }
            touched.push(b.clone());
        }
        if let Some((b, obs)) = new.and_then(|n| n.generated.as_ref()) {
            idx.entry(b.clone()).or_default().insert(okey, obs.clone());
            if !touched.contains(b) {
                touched.push(b.clone());
            }
        }
        touched
    }

    /// Runs `f` on the generated objects of `baseline` (empty if none).
    pub fn with<R>(
        &self,
        baseline: &str,
        f: impl FnOnce(&BTreeMap<ObjectKey, Observed>) -> R,
    ) -> R {
        let idx = self.by_baseline.read().unwrap_or_else(|e| e.into_inner());
        match idx.get(baseline) {
            Some(m) => f(m),
            None => f(&BTreeMap::new()),
        }
    }

    pub fn count(&self, baseline: &str) -> usize {
        self.with(baseline, BTreeMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generated_objects_are_indexed_and_trimmed() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "meshbaseline-deny-plaintext", "namespace": "a",
                "labels": {MANAGED_BY_LABEL: "meshbaseline", BASELINE_LABEL: "default"},
                "ownerReferences": [{"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                    "name": "default", "uid": "u1", "controller": true}],
                "managedFields": [{"manager": "meshbaseline", "operation": "Apply"}]},
            "spec": {"action": "DENY"}
        }))
        .unwrap();
        let (key, entry) = trim(Kind::AuthorizationPolicy, obj).unwrap();
        let (b, obs) = entry.generated.clone().unwrap();
        assert_eq!(b, "default");
        assert_eq!(obs.owner_uid.as_deref(), Some("u1"));
        assert!(obs.manifest["metadata"].get("managedFields").is_none());
        assert_eq!(obs.manifest["spec"], json!({"action": "DENY"}));
        assert_eq!(obs.manifest["metadata"]["ownerReferences"][0]["uid"], "u1");
        match &entry.typed {
            Some(Typed::AuthorizationPolicy(ap)) => assert!(ap.metadata.managed_fields.is_none()),
            other => panic!("{other:?}"),
        }
        let idx = GeneratedIndex::default();
        assert_eq!(
            idx.update(Kind::AuthorizationPolicy, &key, None, Some(&entry)),
            ["default"]
        );
        assert_eq!(idx.count("default"), 1);
        idx.update(Kind::AuthorizationPolicy, &key, Some(&entry), None);
        assert_eq!(idx.count("default"), 0);
    }

    #[test]
    fn peer_authentications_keep_managed_fields() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "p", "namespace": "a",
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"mtls": {"mode": "PERMISSIVE"}}
        }))
        .unwrap();
        let (_, entry) = trim(Kind::PeerAuthentication, obj).unwrap();
        assert!(entry.generated.is_none());
        match entry.typed {
            Some(Typed::PeerAuthentication(pa)) => {
                assert_eq!(
                    pa.metadata.managed_fields.unwrap()[0].manager.as_deref(),
                    Some("kubectl")
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn istio_objects_without_a_spec_are_seen_with_an_empty_one() {
        // Istio's schemas accept a Sidecar or AuthorizationPolicy without `spec`.
        for (kind, k) in [
            (Kind::Sidecar, "Sidecar"),
            (Kind::AuthorizationPolicy, "AuthorizationPolicy"),
        ] {
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "networking.istio.io/v1", "kind": k,
                "metadata": {"name": "empty", "namespace": "a"}
            }))
            .unwrap();
            let (_, entry) = trim(kind, obj).unwrap();
            assert!(entry.typed.is_some(), "{k} must parse");
        }
    }
}
