//! The resource types the simulator serves: a fixed set of built-in kinds plus every kind that a
//! stored `CustomResourceDefinition` declares (Istio kinds, MeshBaseline, anything else).

use serde_json::Value;

use super::store::State;

/// Key of the CRD kind itself, served unconditionally.
pub const CRD_RES: &str = "apiextensions.k8s.io/customresourcedefinitions";
/// Key of Namespaces (deleting one deletes everything in it).
pub const NAMESPACE_RES: &str = "/namespaces";

/// One served resource (a plural in a group), as the routes and the store see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    /// Served versions; the first is the preferred one.
    pub versions: Vec<String>,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    pub status_subresource: bool,
}

impl ResourceType {
    /// Store key: `group/plural` (`/plural` for the core group).
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
}

fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    status: bool,
) -> ResourceType {
    ResourceType {
        group: group.to_string(),
        versions: vec![version.to_string()],
        plural: plural.to_string(),
        kind: kind.to_string(),
        namespaced,
        status_subresource: status,
    }
}

/// The built-in kinds: what the operator uses plus what tests seed.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        builtin("", "v1", "namespaces", "Namespace", false, true),
        builtin("", "v1", "pods", "Pod", true, true),
        builtin("", "v1", "services", "Service", true, true),
        builtin("", "v1", "events", "Event", true, false),
        builtin(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            true,
            false,
        ),
        builtin("coordination.k8s.io", "v1", "leases", "Lease", true, false),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicies",
            "ValidatingAdmissionPolicy",
            false,
            true,
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicybindings",
            "ValidatingAdmissionPolicyBinding",
            false,
            false,
        ),
        builtin("events.k8s.io", "v1", "events", "Event", true, false),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            true,
        ),
    ]
}

/// The resource type a stored CRD object declares, if it is well-formed enough to serve.
///
/// Simplification: no schema validation, pruning, defaulting or version conversion; an object
/// read through another served version only gets its `apiVersion` rewritten.
pub fn from_crd(crd: &Value) -> Option<ResourceType> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let plural = names.get("plural")?.as_str()?.to_string();
    let kind = names.get("kind")?.as_str()?.to_string();
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let mut versions = Vec::new();
    let mut status_subresource = false;
    for v in spec.get("versions")?.as_array()? {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let name = v.get("name")?.as_str()?.to_string();
        if v.pointer("/subresources/status").is_some() {
            status_subresource = true;
        }
        // The storage version is the preferred one.
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            versions.insert(0, name);
        } else {
            versions.push(name);
        }
    }
    if versions.is_empty() {
        return None;
    }
    Some(ResourceType {
        group,
        versions,
        plural,
        kind,
        namespaced,
        status_subresource,
    })
}

/// Every resource type currently served: built-ins, then installed CRDs.
pub fn served(state: &State) -> Vec<ResourceType> {
    let mut all = builtins();
    all.extend(state.list_res(CRD_RES).filter_map(|(_, crd)| from_crd(crd)));
    all
}

/// The resource type behind `group/version/plural`, if served.
pub fn resolve(state: &State, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
    if let Some(rt) = builtins()
        .into_iter()
        .find(|rt| rt.group == group && rt.plural == plural)
    {
        return rt.serves(version).then_some(rt);
    }
    let crd_name = format!("{plural}.{group}");
    let crd = state.get_obj(CRD_RES, "", &crd_name)?;
    from_crd(crd).filter(|rt| rt.serves(version) && rt.plural == plural && rt.group == group)
}

/// The resource type with this store key, if still served (watches stop when it disappears).
pub fn by_key(state: &State, key: &str) -> Option<ResourceType> {
    served(state).into_iter().find(|rt| rt.key() == key)
}
