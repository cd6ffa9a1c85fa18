//! Which version of each optional kind the cluster serves, learnt at runtime: Istio's and
//! network-policy-api's CRDs from the CRD watch, ValidatingAdmissionPolicy from discovery.
//! NetworkPolicy is always there.

use parking_lot::RwLock;
use std::collections::BTreeMap;

use kube::api::ApiResource;

use crate::object::Kind;

#[derive(Default)]
pub struct Served(RwLock<BTreeMap<Kind, &'static str>>);

impl Served {
    /// The version to use for `kind`, or `None` while the cluster does not serve it.
    pub fn version(&self, kind: Kind) -> Option<&'static str> {
        if kind == Kind::NetworkPolicy {
            return Some(kind.version());
        }
        self.0.read().get(&kind).copied()
    }

    /// Records what the cluster serves; returns whether it changed.
    pub fn set(&self, kind: Kind, version: Option<&'static str>) -> bool {
        let mut map = self.0.write();
        let old = match version {
            Some(v) => map.insert(kind, v),
            None => map.remove(&kind),
        };
        old != version
    }

    /// How the API addresses `kind`: at the served version, or the compiler's when unknown
    /// (a request then fails as "not found", which is what it is).
    pub fn api_resource(&self, kind: Kind) -> ApiResource {
        let version = self.version(kind).unwrap_or(kind.version());
        ApiResource {
            group: kind.group().to_string(),
            version: version.to_string(),
            api_version: format!("{}/{version}", kind.group()),
            kind: kind.name().to_string(),
            plural: kind.plural().to_string(),
        }
    }
}

/// The newest version of `kind` among `served` (a CRD's served version names).
pub fn newest_served<'a>(
    kind: Kind,
    served: impl Iterator<Item = &'a str> + Clone,
) -> Option<&'static str> {
    kind.served_versions()
        .iter()
        .find(|v| served.clone().any(|s| s == **v))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_served_version_wins() {
        let k = Kind::ClusterNetworkPolicy;
        assert_eq!(
            newest_served(k, ["v1alpha2", "v1beta1"].into_iter()),
            Some("v1beta1")
        );
        assert_eq!(newest_served(k, ["v1alpha2"].into_iter()), Some("v1alpha2"));
        assert_eq!(newest_served(k, ["v1alpha1"].into_iter()), None);
        let s = Served::default();
        assert_eq!(s.version(k), None);
        assert!(s.set(k, Some("v1alpha2")));
        assert!(!s.set(k, Some("v1alpha2")));
        assert_eq!(
            s.api_resource(k).api_version,
            "policy.networking.k8s.io/v1alpha2"
        );
        assert_eq!(s.version(Kind::NetworkPolicy), Some("v1"));
    }
}
