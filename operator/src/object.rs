//! One generic representation of the objects the operator generates, whatever their kind.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

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
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::AuthorizationPolicy,
        Kind::DestinationRule,
        Kind::NetworkPolicy,
        Kind::PeerAuthentication,
        Kind::Sidecar,
    ];

    pub fn group(self) -> &'static str {
        match self {
            Kind::AuthorizationPolicy | Kind::PeerAuthentication => "security.istio.io",
            Kind::DestinationRule | Kind::Sidecar => "networking.istio.io",
            Kind::NetworkPolicy => "networking.k8s.io",
        }
    }

    pub fn version(self) -> &'static str {
        "v1"
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
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::AuthorizationPolicy => "authorizationpolicies",
            Kind::DestinationRule => "destinationrules",
            Kind::NetworkPolicy => "networkpolicies",
            Kind::PeerAuthentication => "peerauthentications",
            Kind::Sidecar => "sidecars",
        }
    }

    /// Whether the kind comes from Istio's CRDs (which may be missing from a cluster).
    pub fn is_istio(self) -> bool {
        self != Kind::NetworkPolicy
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

/// Identifies a generated object. All generated kinds are namespaced.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A generated object: its key and the full manifest to apply (apiVersion, kind, metadata
/// with labels and ownerReferences, spec). The manifest holds exactly the fields the
/// operator owns.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObject {
    pub key: ObjectKey,
    pub manifest: Value,
}

impl DesiredObject {
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.manifest
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default()
    }
}
