//! One generic representation of the objects the operator generates, whatever their kind.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// Labels every generated object carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "meshbaseline";
pub const BASELINE_LABEL: &str = "meshbaseline.dev/baseline";
/// The server-side apply field manager for every write.
pub const FIELD_MANAGER: &str = "meshbaseline";

/// The kinds the operator generates, with what the API needs to address them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    AuthorizationPolicy,
    DestinationRule,
    NetworkPolicy,
    PeerAuthentication,
    Sidecar,
    /// The admission guards (cluster-scoped).
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
    /// The Admin network-policy tier (cluster-scoped; from the network-policy-api CRDs).
    ClusterNetworkPolicy,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::AuthorizationPolicy,
        Kind::DestinationRule,
        Kind::NetworkPolicy,
        Kind::PeerAuthentication,
        Kind::Sidecar,
        Kind::ValidatingAdmissionPolicy,
        Kind::ValidatingAdmissionPolicyBinding,
        Kind::ClusterNetworkPolicy,
    ];

    pub fn group(self) -> &'static str {
        match self {
            Kind::AuthorizationPolicy | Kind::PeerAuthentication => "security.istio.io",
            Kind::DestinationRule | Kind::Sidecar => "networking.istio.io",
            Kind::NetworkPolicy => "networking.k8s.io",
            Kind::ValidatingAdmissionPolicy | Kind::ValidatingAdmissionPolicyBinding => {
                "admissionregistration.k8s.io"
            }
            Kind::ClusterNetworkPolicy => "policy.networking.k8s.io",
        }
    }

    /// Versions the operator can use, newest first. ClusterNetworkPolicy's v1beta1 and
    /// v1alpha2 have the same schema; the controller writes whichever the cluster serves.
    pub fn served_versions(self) -> &'static [&'static str] {
        match self {
            Kind::ClusterNetworkPolicy => &["v1beta1", "v1alpha2"],
            _ => &["v1"],
        }
    }

    /// The version the compiler writes: the newest.
    pub fn version(self) -> &'static str {
        self.served_versions()[0]
    }

    pub fn cluster_scoped(self) -> bool {
        matches!(
            self,
            Kind::ValidatingAdmissionPolicy
                | Kind::ValidatingAdmissionPolicyBinding
                | Kind::ClusterNetworkPolicy
        )
    }

    /// Kinds tenants write too: audited, indexed for the inventory. The others only the
    /// operator (and cluster admins) write.
    pub fn is_tenant_kind(self) -> bool {
        !self.cluster_scoped()
    }

    pub fn api_version(self) -> String {
        format!("{}/{}", self.group(), self.version())
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::DestinationRule => "DestinationRule",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::Sidecar => "Sidecar",
            Kind::ValidatingAdmissionPolicy => "ValidatingAdmissionPolicy",
            Kind::ValidatingAdmissionPolicyBinding => "ValidatingAdmissionPolicyBinding",
            Kind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::AuthorizationPolicy => "authorizationpolicies",
            Kind::DestinationRule => "destinationrules",
            Kind::NetworkPolicy => "networkpolicies",
            Kind::PeerAuthentication => "peerauthentications",
            Kind::Sidecar => "sidecars",
            Kind::ValidatingAdmissionPolicy => "validatingadmissionpolicies",
            Kind::ValidatingAdmissionPolicyBinding => "validatingadmissionpolicybindings",
            Kind::ClusterNetworkPolicy => "clusternetworkpolicies",
        }
    }

    /// Whether the kind comes from Istio's CRDs (which may be missing from a cluster).
    pub fn is_istio(self) -> bool {
        self.group().ends_with(".istio.io")
    }

    /// Whether the kind comes from a CRD (Istio's, network-policy-api's): the controller
    /// watches it only while the CRD is there, without a restart.
    pub fn from_crd(self) -> bool {
        self.is_istio() || self == Kind::ClusterNetworkPolicy
    }

    pub fn from_name(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Identifies a generated object; `namespace` is empty for cluster-scoped kinds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: Name,
    pub name: Name,
}

/// A namespace or object name (or a uid), shared rather than copied: the 30,000 generated
/// objects of 10,000 namespaces have three distinct names, and each namespace's name is held
/// by its objects and pods, the planner's index, the records and the caches' keys. Compares,
/// orders and hashes as its text. One pointer wide (`ArcStr` keeps the length with the text):
/// 100,000 pods and 30,000 objects hold several each.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(arcstr::ArcStr);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both are the same shared copy.
    pub fn ptr_eq(a: &Name, b: &Name) -> bool {
        arcstr::ArcStr::ptr_eq(&a.0, &b.0)
    }

    /// Whether another holder shares this copy (what interners keep).
    pub fn is_shared(&self) -> bool {
        arcstr::ArcStr::strong_count(&self.0).is_none_or(|n| n > 1)
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(s.into())
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name(s.as_str().into())
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name(s.into())
    }
}

impl From<&Name> for Name {
    fn from(s: &Name) -> Self {
        s.clone()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// The annotation that makes Istio evaluate an AuthorizationPolicy without enforcing it.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// `metadata.labels`, `metadata.annotations` and `metadata.ownerReferences` of the generated
/// objects: the same for every object of one kind and baseline, so built once per compile and
/// shared.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedMeta {
    pub labels: BTreeMap<String, String>,
    /// Annotations that change what the object means, set to our value whoever wrote them:
    /// `istio.io/dry-run` on AuthorizationPolicies ("false" unless we mean a dry run), since a
    /// tenant who adds it with "true" switches the policy off without touching its spec.
    pub annotations: BTreeMap<String, String>,
    /// Absent without a baseline uid (render, tests): then GitOps owns the lifecycle.
    pub owner_references: Option<Value>,
}

/// A generated object's spec, kept as compact JSON with the fingerprint the planner compares.
/// A `serde_json` object costs a B-tree node of about 600 bytes however few its fields: the
/// 10,000 namespaces' DestinationRules (three objects each) took 18 MiB as values and take
/// about 1 MiB as text. Parsed only to write the object.
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    text: Box<str>,
    /// `plan::exact::spec_fingerprint` for the object's kind.
    fingerprint: u64,
}

impl ObjectSpec {
    pub fn new(kind: Kind, value: &Value) -> Self {
        ObjectSpec {
            // A `Value` always serializes: its map keys are strings.
            text: serde_json::to_string(value)
                .expect("a JSON value serializes")
                .into(),
            fingerprint: crate::plan::exact::spec_fingerprint(kind, value),
        }
    }

    pub fn value(&self) -> Value {
        // The text was serialized from a `Value` in `new` and never changes.
        serde_json::from_str(&self.text).expect("a serialized JSON value parses")
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl fmt::Debug for ObjectSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A generated object: its key, the metadata the operator owns, and its spec. Specs are shared
/// between the namespaces where they are identical (most are), which keeps compiling 10,000
/// namespaces to a few allocations each; the full manifest is built only when written.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObject {
    pub key: ObjectKey,
    pub meta: Arc<OwnedMeta>,
    pub spec: Arc<ObjectSpec>,
}

impl DesiredObject {
    /// The manifest to apply: exactly the fields the operator owns (apiVersion, kind,
    /// metadata.{name,namespace,labels,annotations,ownerReferences}, spec).
    pub fn manifest(&self) -> Value {
        let mut metadata = Map::new();
        metadata.insert("name".into(), Value::String(self.key.name.to_string()));
        if !self.key.kind.cluster_scoped() {
            metadata.insert(
                "namespace".into(),
                Value::String(self.key.namespace.to_string()),
            );
        }
        let labels = self
            .meta
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        metadata.insert("labels".into(), Value::Object(labels));
        if !self.meta.annotations.is_empty() {
            let annotations = self
                .meta
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            metadata.insert("annotations".into(), Value::Object(annotations));
        }
        if let Some(refs) = &self.meta.owner_references {
            metadata.insert("ownerReferences".into(), refs.clone());
        }
        let mut manifest = Map::new();
        manifest.insert(
            "apiVersion".into(),
            Value::String(self.key.kind.api_version()),
        );
        manifest.insert("kind".into(), Value::String(self.key.kind.name().into()));
        manifest.insert("metadata".into(), Value::Object(metadata));
        manifest.insert("spec".into(), self.spec.value());
        Value::Object(manifest)
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.meta.labels
    }
}
