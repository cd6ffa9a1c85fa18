//! The policies posture reads, by namespace: what the proxies of a namespace can be given is
//! in its own entry and the root namespace's, so a workload's posture reads those two only.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::de::DeserializeOwned;

use crate::api::istio::{AuthorizationPolicy, PeerAuthentication, Sidecar};
use crate::api::model::FieldErrors;
use crate::api::selector::Selector;
use crate::compile::Compiled;
use crate::inventory::{Inventory, PodLabels};
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
    /// The `podSelector` of each NetworkPolicy, parsed once; `None` when it does not parse (the
    /// API server would have refused it), which selects nothing.
    np_selectors: Vec<Option<Selector>>,
}

#[derive(Clone, Debug, Default)]
pub struct Index {
    by_namespace: HashMap<String, NsPolicies>,
    empty: NsPolicies,
}

fn ns_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

fn desired_typed<T: DeserializeOwned>(o: &crate::object::DesiredObject) -> Option<T> {
    serde_json::from_value(o.manifest()).ok()
}

/// A desired object of a kind posture reads, typed.
#[derive(Clone)]
enum Typed {
    PeerAuthentication(PeerAuthentication),
    AuthorizationPolicy(AuthorizationPolicy),
    NetworkPolicy(NetworkPolicy),
    Sidecar(Sidecar),
}

impl Typed {
    fn from_desired(o: &crate::object::DesiredObject) -> Option<Typed> {
        Some(match o.key.kind {
            Kind::PeerAuthentication => Typed::PeerAuthentication(desired_typed(o)?),
            Kind::AuthorizationPolicy => Typed::AuthorizationPolicy(desired_typed(o)?),
            Kind::NetworkPolicy => Typed::NetworkPolicy(desired_typed(o)?),
            Kind::Sidecar => Typed::Sidecar(desired_typed(o)?),
            _ => return None,
        })
    }
}

/// Conversions by (kind, spec, metadata) pointers.
type Converted = HashMap<(Kind, usize, usize), Typed>;

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
            let mut converted = Converted::new();
            for o in &desired.objects {
                index.add_desired(o, &mut converted);
            }
        }
        for ns in index.by_namespace.values_mut() {
            ns.np_selectors = ns
                .network_policies
                .iter()
                .map(|np| {
                    let sel = np.spec.as_ref().and_then(|s| s.pod_selector.as_ref());
                    match sel {
                        None => Some(Selector::default()),
                        Some(sel) => {
                            let mut errs = FieldErrors::default();
                            let parsed = Selector::parse(sel, "podSelector", &mut errs);
                            errs.0.is_empty().then_some(parsed)
                        }
                    }
                })
                .collect();
        }
        index
    }

    fn entry(
        &mut self,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> &mut NsPolicies {
        self.by_namespace.entry(ns_of(meta)).or_default()
    }

    /// Adds one of the baseline's objects. Objects sharing a spec and metadata (the same
    /// policy in 10,000 namespaces) are converted once and copied with their own key.
    fn add_desired(&mut self, o: &crate::object::DesiredObject, converted: &mut Converted) {
        let ObjectKey {
            kind,
            namespace,
            name,
        } = &o.key;
        let cache_key = (
            *kind,
            Arc::as_ptr(&o.spec) as usize,
            Arc::as_ptr(&o.meta) as usize,
        );
        let typed = match converted.get(&cache_key) {
            Some(t) => t.clone(),
            None => {
                let Some(t) = Typed::from_desired(o) else {
                    return;
                };
                converted.insert(cache_key, t.clone());
                t
            }
        };
        let slot = self.by_namespace.entry(namespace.to_string()).or_default();
        let rename = |meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            meta.name = Some(name.to_string());
            meta.namespace = Some(namespace.to_string());
        };
        match typed {
            Typed::PeerAuthentication(mut t) => {
                rename(&mut t.metadata);
                slot.peer_authentications.push(Arc::new(t));
            }
            Typed::AuthorizationPolicy(mut t) => {
                rename(&mut t.metadata);
                slot.authorization_policies.push(Arc::new(t));
            }
            Typed::NetworkPolicy(mut t) => {
                rename(&mut t.metadata);
                slot.network_policies.push(Arc::new(t));
            }
            Typed::Sidecar(mut t) => {
                rename(&mut t.metadata);
                slot.sidecars.push(Arc::new(t));
            }
        }
    }

    /// The NetworkPolicies of `namespace` that select a pod with `labels`.
    pub fn selecting<'s>(
        &'s self,
        namespace: &str,
        labels: &'s PodLabels<'s>,
    ) -> impl Iterator<Item = &'s NetworkPolicy> + 's {
        let ns = self.of(namespace);
        ns.network_policies
            .iter()
            .zip(&ns.np_selectors)
            .filter(move |(_, sel)| sel.as_ref().is_some_and(|s| s.matches(labels)))
            .map(|(np, _)| &**np)
    }

    pub fn of(&self, namespace: &str) -> &NsPolicies {
        self.by_namespace.get(namespace).unwrap_or(&self.empty)
    }
}
