//! The policies posture reads, by namespace: what the proxies of a namespace can be given is
//! in its own entry and the root namespace's, so a workload's posture reads those two only.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::de::DeserializeOwned;

use crate::api::istio::{AuthorizationPolicy, PeerAuthentication, Sidecar};
use crate::compile::Compiled;
use crate::inventory::Inventory;
use crate::object::{Kind, ObjectKey};

/// Whose objects posture sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objects {
    /// What is in the inventory (a live cluster).
    Observed,
    /// The inventory with the baseline's objects as compiled (manifests, as the operator will
    /// apply them in Enforce mode): objects at the generated names are the desired ones.
    Desired,
}

#[derive(Clone, Debug, Default)]
pub struct NsPolicies {
    pub peer_authentications: Vec<Arc<PeerAuthentication>>,
    pub authorization_policies: Vec<Arc<AuthorizationPolicy>>,
    pub network_policies: Vec<Arc<NetworkPolicy>>,
    pub sidecars: Vec<Arc<Sidecar>>,
}

#[derive(Clone, Debug, Default)]
pub struct Index {
    by_namespace: HashMap<String, NsPolicies>,
    empty: NsPolicies,
}

fn ns_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

fn desired_typed<T: DeserializeOwned>(o: &crate::object::DesiredObject) -> Option<Arc<T>> {
    serde_json::from_value(o.manifest()).ok().map(Arc::new)
}

impl Index {
    pub fn new(inventory: &Inventory, desired: &Compiled, objects: Objects) -> Index {
        let replaced =
            |kind: Kind, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
                objects == Objects::Desired
                    && desired
                        .spec_of(
                            kind,
                            meta.namespace.as_deref().unwrap_or("default"),
                            meta.name.as_deref().unwrap_or_default(),
                        )
                        .is_some()
            };
        let mut index = Index::default();
        for pa in &inventory.peer_authentications {
            if !replaced(Kind::PeerAuthentication, &pa.metadata) {
                index
                    .entry(&pa.metadata)
                    .peer_authentications
                    .push(pa.clone());
            }
        }
        for ap in &inventory.authorization_policies {
            if !replaced(Kind::AuthorizationPolicy, &ap.metadata) {
                index
                    .entry(&ap.metadata)
                    .authorization_policies
                    .push(ap.clone());
            }
        }
        for np in &inventory.network_policies {
            if !replaced(Kind::NetworkPolicy, &np.metadata) {
                index.entry(&np.metadata).network_policies.push(np.clone());
            }
        }
        for sc in &inventory.sidecars {
            if !replaced(Kind::Sidecar, &sc.metadata) {
                index.entry(&sc.metadata).sidecars.push(sc.clone());
            }
        }
        if objects == Objects::Desired {
            for o in &desired.objects {
                index.add_desired(o);
            }
        }
        index
    }

    fn entry(
        &mut self,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> &mut NsPolicies {
        self.by_namespace.entry(ns_of(meta)).or_default()
    }

    fn add_desired(&mut self, o: &crate::object::DesiredObject) {
        let ObjectKey {
            kind, namespace, ..
        } = &o.key;
        let slot = || namespace.to_string();
        match kind {
            Kind::PeerAuthentication => {
                if let Some(t) = desired_typed(o) {
                    self.by_namespace
                        .entry(slot())
                        .or_default()
                        .peer_authentications
                        .push(t);
                }
            }
            Kind::AuthorizationPolicy => {
                if let Some(t) = desired_typed(o) {
                    self.by_namespace
                        .entry(slot())
                        .or_default()
                        .authorization_policies
                        .push(t);
                }
            }
            Kind::NetworkPolicy => {
                if let Some(t) = desired_typed(o) {
                    self.by_namespace
                        .entry(slot())
                        .or_default()
                        .network_policies
                        .push(t);
                }
            }
            Kind::Sidecar => {
                if let Some(t) = desired_typed(o) {
                    self.by_namespace
                        .entry(slot())
                        .or_default()
                        .sidecars
                        .push(t);
                }
            }
            _ => {}
        }
    }

    pub fn of(&self, namespace: &str) -> &NsPolicies {
        self.by_namespace.get(namespace).unwrap_or(&self.empty)
    }
}
