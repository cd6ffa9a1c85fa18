//! Metadata shared by every generated object: labels and the ownerReference, built once per
//! compile and cloned into each object.

use serde_json::{json, Map, Value};

use crate::api::baseline::API_VERSION;
use crate::api::Baseline;
use crate::object::{
    DesiredObject, Kind, ObjectKey, BASELINE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
};

/// Builds manifests holding exactly the fields the operator owns.
pub(crate) struct ObjectFactory {
    labels: Value,
    owner_references: Option<Value>,
}

impl ObjectFactory {
    pub(crate) fn new(baseline: &Baseline) -> Self {
        let labels = json!({
            MANAGED_BY_LABEL: MANAGED_BY_VALUE,
            BASELINE_LABEL: baseline.name,
        });
        // Without a uid (render, tests) there is nothing to point at; GitOps tools then own
        // the objects' lifecycle instead of the garbage collector.
        let owner_references = baseline.uid.as_ref().map(|uid| {
            json!([{
                "apiVersion": API_VERSION,
                "kind": "MeshBaseline",
                "name": baseline.name,
                "uid": uid,
                "controller": true,
            }])
        });
        ObjectFactory {
            labels,
            owner_references,
        }
    }

    /// A complete manifest for `kind` `namespace`/`name` with `spec`.
    pub(crate) fn object(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        spec: Value,
    ) -> DesiredObject {
        let mut metadata = Map::new();
        metadata.insert("name".into(), Value::String(name.into()));
        metadata.insert("namespace".into(), Value::String(namespace.into()));
        metadata.insert("labels".into(), self.labels.clone());
        if let Some(refs) = &self.owner_references {
            metadata.insert("ownerReferences".into(), refs.clone());
        }
        let mut manifest = Map::new();
        manifest.insert("apiVersion".into(), Value::String(kind.api_version()));
        manifest.insert("kind".into(), Value::String(kind.name().into()));
        manifest.insert("metadata".into(), Value::Object(metadata));
        manifest.insert("spec".into(), spec);
        DesiredObject {
            key: ObjectKey {
                kind,
                namespace: namespace.into(),
                name: name.into(),
            },
            manifest: Value::Object(manifest),
        }
    }
}
