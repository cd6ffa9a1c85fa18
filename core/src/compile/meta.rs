//! Metadata shared by every generated object: labels and the ownerReference, built once per
//! compile and shared by every object.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::api::baseline::API_VERSION;
use crate::api::Baseline;
use crate::object::{
    DesiredObject, Kind, Name, ObjectKey, ObjectSpec, OwnedMeta, BASELINE_LABEL,
    DRY_RUN_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
};

/// Builds objects holding exactly the fields the operator owns.
pub(crate) struct ObjectFactory {
    meta: Arc<OwnedMeta>,
    /// AuthorizationPolicies' metadata: `meta` with `istio.io/dry-run` set, "true" in a dry
    /// run and "false" otherwise.
    authz_meta: Arc<OwnedMeta>,
    /// Names handed out: the objects of a namespace share its name (they are made one
    /// namespace after another) and all objects share the few generated names.
    names: RefCell<Names>,
}

#[derive(Default)]
struct Names {
    namespace: Name,
    names: Vec<Name>,
}

impl Names {
    fn key(&mut self, kind: Kind, namespace: &str, name: &str) -> ObjectKey {
        if *self.namespace != *namespace {
            self.namespace = namespace.into();
        }
        let name = match self.names.iter().find(|n| ***n == *name) {
            Some(n) => n.clone(),
            None => {
                let n = Name::from(name);
                // A few names repeat in every namespace; the others are one-offs.
                if self.names.len() < 16 {
                    self.names.push(n.clone());
                }
                n
            }
        };
        ObjectKey {
            kind,
            namespace: self.namespace.clone(),
            name,
        }
    }
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
        let meta = OwnedMeta {
            labels,
            annotations: BTreeMap::new(),
            owner_references,
        };
        let dry_run = if baseline.dry_run() { "true" } else { "false" };
        let authz_meta = OwnedMeta {
            annotations: BTreeMap::from([(DRY_RUN_ANNOTATION.to_string(), dry_run.to_string())]),
            ..meta.clone()
        };
        ObjectFactory {
            meta: Arc::new(meta),
            authz_meta: Arc::new(authz_meta),
            names: RefCell::default(),
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
        let meta = if kind == Kind::AuthorizationPolicy {
            &self.authz_meta
        } else {
            &self.meta
        };
        DesiredObject {
            key: self.names.borrow_mut().key(kind, namespace, name),
            meta: Arc::clone(meta),
            spec,
        }
    }

    /// A cluster-scoped object (its key's namespace is empty).
    pub(crate) fn cluster_object(&self, kind: Kind, name: &str, spec: Arc<Value>) -> DesiredObject {
        debug_assert!(kind.cluster_scoped());
        self.object(kind, "", name, spec)
    }
}
