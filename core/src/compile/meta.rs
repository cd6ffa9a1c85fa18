//! Metadata shared by every generated object: labels and the ownerReference, built once per
//! compile and shared by every object.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::api::baseline::API_VERSION;
use crate::api::Baseline;
use crate::object::{
    DesiredObject, Kind, ObjectKey, ObjectSpec, OwnedMeta, BASELINE_LABEL, MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
};

/// Builds objects holding exactly the fields the operator owns.
pub(crate) struct ObjectFactory {
    meta: Arc<OwnedMeta>,
}

impl ObjectFactory {
    pub(crate) fn new(baseline: &Baseline) -> Self {
        let labels = BTreeMap::from([
            (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
            (BASELINE_LABEL.to_string(), baseline.name.clone()),
        ]);
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
            meta: Arc::new(OwnedMeta {
                labels,
                owner_references,
            }),
        }
    }

    /// The object `kind` `namespace`/`name` with `spec`.
    pub(crate) fn object(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        spec: Arc<Value>,
    ) -> DesiredObject {
        self.object_shared(
            kind,
            namespace,
            name,
            Arc::new(ObjectSpec::new(kind, &spec)),
        )
    }

    /// The object `kind` `namespace`/`name` with `spec`, shared where it is the same.
    pub(crate) fn object_shared(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        spec: Arc<ObjectSpec>,
    ) -> DesiredObject {
        DesiredObject {
            key: ObjectKey {
                kind,
                namespace: namespace.into(),
                name: name.into(),
            },
            meta: Arc::clone(&self.meta),
            spec,
        }
    }

    /// A cluster-scoped object (its key's namespace is empty).
    pub(crate) fn cluster_object(&self, kind: Kind, name: &str, spec: Arc<Value>) -> DesiredObject {
        debug_assert!(kind.cluster_scoped());
        self.object(kind, "", name, spec)
    }
}
