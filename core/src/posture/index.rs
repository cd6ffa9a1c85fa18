//! The policies posture reads, by namespace: what the proxies of a namespace can be given is
//! in its own entry and the root namespace's, so a workload's posture reads those two only.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;

use crate::api::istio::{AuthorizationPolicy, PeerAuthentication, Sidecar};
use crate::api::model::FieldErrors;
use crate::api::selector::Selector;
use crate::compile::Compiled;
use crate::inventory::{Inventory, PodLabels};
use crate::object::{DesiredObject, Kind, ObjectKey};

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

fn ns_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

fn desired_typed<T: DeserializeOwned>(o: &DesiredObject) -> Option<T> {
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
    fn from_desired(o: &DesiredObject) -> Option<Typed> {
        Some(match o.key.kind {
            Kind::PeerAuthentication => Typed::PeerAuthentication(desired_typed(o)?),
            Kind::AuthorizationPolicy => Typed::AuthorizationPolicy(desired_typed(o)?),
            Kind::NetworkPolicy => Typed::NetworkPolicy(desired_typed(o)?),
            Kind::Sidecar => Typed::Sidecar(desired_typed(o)?),
            _ => return None,
        })
    }
}

fn indexed(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::PeerAuthentication | Kind::AuthorizationPolicy | Kind::NetworkPolicy | Kind::Sidecar
    )
}

/// Identifies a desired object's conversion: (kind, spec, metadata) pointers.
type ConvKey = (Kind, usize, usize);

fn conv_key(o: &DesiredObject) -> ConvKey {
    (
        o.key.kind,
        Arc::as_ptr(&o.spec) as usize,
        Arc::as_ptr(&o.meta) as usize,
    )
}

/// One object of a namespace's entry, not yet typed.
enum Source<'a> {
    PeerAuthentication(&'a Arc<PeerAuthentication>),
    AuthorizationPolicy(&'a Arc<AuthorizationPolicy>),
    NetworkPolicy(&'a Arc<NetworkPolicy>),
    Sidecar(&'a Arc<Sidecar>),
    Desired(&'a DesiredObject),
}

/// The objects posture reads, grouped by namespace as references: an entry of the index is
/// built from them when it is needed, so one namespace's entry can be built, used and dropped
/// before the next.
pub(super) struct Sources<'a> {
    by_namespace: HashMap<&'a str, Vec<Source<'a>>>,
    /// Conversions of desired objects sharing a spec and metadata (the same policy in 10,000
    /// namespaces), with the uses left: each is converted once and dropped after its last use.
    converted: HashMap<ConvKey, (Option<Typed>, usize)>,
}

impl<'a> Sources<'a> {
    pub fn new(inventory: &'a Inventory, desired: &'a Compiled, objects: Objects) -> Sources<'a> {
        let replaced = |kind: Kind, meta: &ObjectMeta| {
            objects == Objects::Desired
                && desired
                    .spec_of(kind, ns_of(meta), meta.name.as_deref().unwrap_or_default())
                    .is_some()
        };
        let mut s = Sources {
            by_namespace: HashMap::new(),
            converted: HashMap::new(),
        };
        for pa in &inventory.peer_authentications {
            if !replaced(Kind::PeerAuthentication, &pa.metadata) {
                s.push(ns_of(&pa.metadata), Source::PeerAuthentication(pa));
            }
        }
        for ap in &inventory.authorization_policies {
            if !replaced(Kind::AuthorizationPolicy, &ap.metadata) {
                s.push(ns_of(&ap.metadata), Source::AuthorizationPolicy(ap));
            }
        }
        for np in &inventory.network_policies {
            if !replaced(Kind::NetworkPolicy, &np.metadata) {
                s.push(ns_of(&np.metadata), Source::NetworkPolicy(np));
            }
        }
        for sc in &inventory.sidecars {
            if !replaced(Kind::Sidecar, &sc.metadata) {
                s.push(ns_of(&sc.metadata), Source::Sidecar(sc));
            }
        }
        if objects == Objects::Desired {
            for o in desired.objects.iter().filter(|o| indexed(o.key.kind)) {
                s.converted.entry(conv_key(o)).or_insert((None, 0)).1 += 1;
                s.push(o.key.namespace.as_str(), Source::Desired(o));
            }
        }
        s
    }

    fn push(&mut self, namespace: &'a str, source: Source<'a>) {
        self.by_namespace.entry(namespace).or_default().push(source);
    }

    /// The namespaces with objects.
    pub fn namespaces(&self) -> Vec<&'a str> {
        self.by_namespace.keys().copied().collect()
    }

    /// The entry of `namespace`, typed: observed objects in inventory order, then the
    /// baseline's in compile order, as a whole index holds them. Each namespace is built once.
    pub fn build(&mut self, namespace: &str) -> NsPolicies {
        let mut out = NsPolicies::default();
        for source in self.by_namespace.remove(namespace).unwrap_or_default() {
            match source {
                Source::PeerAuthentication(o) => out.peer_authentications.push(o.clone()),
                Source::AuthorizationPolicy(o) => out.authorization_policies.push(o.clone()),
                Source::NetworkPolicy(o) => out.network_policies.push(o.clone()),
                Source::Sidecar(o) => out.sidecars.push(o.clone()),
                Source::Desired(o) => {
                    if let Some(t) = self.typed(o) {
                        out.add_desired(o, t);
                    }
                }
            }
        }
        out.np_selectors = out
            .network_policies
            .iter()
            .map(|np| np_selector(np))
            .collect();
        out
    }

    /// `o` typed, converted at its first use and forgotten after its last.
    fn typed(&mut self, o: &DesiredObject) -> Option<Typed> {
        let key = conv_key(o);
        let Some((cached, uses)) = self.converted.get_mut(&key) else {
            return Typed::from_desired(o);
        };
        let typed = match cached {
            Some(t) => Some(t.clone()),
            None => Typed::from_desired(o),
        };
        *uses = uses.saturating_sub(1);
        if *uses == 0 {
            self.converted.remove(&key);
        } else if cached.is_none() {
            cached.clone_from(&typed);
        }
        typed
    }
}

/// A NetworkPolicy's `podSelector`, parsed; `None` when it does not parse (the API server
/// would have refused it), which selects nothing.
fn np_selector(np: &NetworkPolicy) -> Option<Selector> {
    let sel = np.spec.as_ref().and_then(|s| s.pod_selector.as_ref());
    match sel {
        None => Some(Selector::default()),
        Some(sel) => {
            let mut errs = FieldErrors::default();
            let parsed = Selector::parse(sel, "podSelector", &mut errs);
            errs.0.is_empty().then_some(parsed)
        }
    }
}

impl NsPolicies {
    /// Adds one of the baseline's objects, typed, under its own key.
    fn add_desired(&mut self, o: &DesiredObject, typed: Typed) {
        let ObjectKey {
            namespace, name, ..
        } = &o.key;
        let rename = |meta: &mut ObjectMeta| {
            meta.name = Some(name.to_string());
            meta.namespace = Some(namespace.to_string());
        };
        match typed {
            Typed::PeerAuthentication(mut t) => {
                rename(&mut t.metadata);
                self.peer_authentications.push(Arc::new(t));
            }
            Typed::AuthorizationPolicy(mut t) => {
                rename(&mut t.metadata);
                self.authorization_policies.push(Arc::new(t));
            }
            Typed::NetworkPolicy(mut t) => {
                rename(&mut t.metadata);
                self.network_policies.push(Arc::new(t));
            }
            Typed::Sidecar(mut t) => {
                rename(&mut t.metadata);
                self.sidecars.push(Arc::new(t));
            }
        }
    }
}

impl Index {
    /// Every namespace's entry.
    pub fn new(inventory: &Inventory, desired: &Compiled, objects: Objects) -> Index {
        let mut sources = Sources::new(inventory, desired, objects);
        let by_namespace = sources
            .namespaces()
            .into_iter()
            .map(|ns| (ns.to_string(), sources.build(ns)))
            .collect();
        Index {
            by_namespace,
            empty: NsPolicies::default(),
        }
    }

    /// Sets the entry of `namespace` (an index built namespace by namespace).
    pub(super) fn insert(&mut self, namespace: &str, policies: NsPolicies) {
        self.by_namespace.insert(namespace.to_string(), policies);
    }

    pub(super) fn remove(&mut self, namespace: &str) {
        self.by_namespace.remove(namespace);
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
