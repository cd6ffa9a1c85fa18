//! CustomResourceDefinition objects the suite installs: the Istio kinds the operator uses and
//! MeshBaseline. Istio's are minimal (names, scope, served versions, status subresource, an
//! open schema): the simulator does not validate schemas, and the real ones come with Istio.

use kube::CustomResourceExt;
use meshbaseline::api::MeshBaseline;
use serde_json::{json, Value};

/// (group, kind, plural) of the Istio kinds the operator reads and writes.
pub const ISTIO_KINDS: &[(&str, &str, &str)] = &[
    (
        "security.istio.io",
        "PeerAuthentication",
        "peerauthentications",
    ),
    (
        "security.istio.io",
        "AuthorizationPolicy",
        "authorizationpolicies",
    ),
    ("networking.istio.io", "DestinationRule", "destinationrules"),
    ("networking.istio.io", "Sidecar", "sidecars"),
];

/// A minimal namespaced CRD serving `v1` (storage) and `v1beta1`, with a status subresource.
pub fn istio_crd(group: &str, kind: &str, plural: &str) -> Value {
    let version = |name: &str, storage: bool| {
        json!({"name": name, "served": true, "storage": storage, "subresources": {"status": {}},
               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
    };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}"), "labels": {"app": "istio-pilot"}},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "scope": "Namespaced",
            "versions": [version("v1", true), version("v1beta1", false)],
        },
    })
}

/// The Istio CRDs the operator uses.
pub fn istio_crds() -> Vec<Value> {
    ISTIO_KINDS
        .iter()
        .map(|(g, k, p)| istio_crd(g, k, p))
        .collect()
}

/// The MeshBaseline CRD, generated from the operator's types (as `meshbaseline crdgen` is).
pub fn meshbaseline_crd() -> Value {
    serde_json::to_value(MeshBaseline::crd()).unwrap_or(Value::Null)
}
