//! Trimming of watched objects into cache values, and the index of generated objects by
//! baseline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::DynamicObject;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::istio::{AuthorizationPolicy, DestinationRule, PeerAuthentication, Sidecar};
use crate::compile::names::GENERATED_PREFIX;
use crate::inventory::Interner;
use crate::object::{Kind, Name, ObjectKey};
use crate::plan::Observed;

use super::cache::Key;
use super::packed::Packed;

/// A watched object of a generated kind, typed and trimmed for the inventory.
#[derive(Clone, Debug, PartialEq)]
/// Shared with inventory snapshots, which copy the pointers.
pub enum Typed {
    PeerAuthentication(Arc<PeerAuthentication>),
    DestinationRule(Arc<DestinationRule>),
    AuthorizationPolicy(Arc<AuthorizationPolicy>),
    Sidecar(Arc<Sidecar>),
    NetworkPolicy(Arc<NetworkPolicy>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct KindEntry {
    /// `None` when the object does not deserialize into our minimal type (it is then invisible
    /// to the audit, and logged), and for claimed objects (see `claimed`).
    pub typed: Option<Typed>,
    /// Objects at one of our names whose controller ownerReference names a MeshBaseline: the
    /// trimmed object as JSON, parsed only if the audit needs it. Such objects are nearly
    /// always the operator's own (30,000 at 10,000 namespaces), which the audit skips; a typed
    /// copy of each would be a fifth of the operator's memory. Whether one really is ours is
    /// decided after compiling (`Ctx::audit_inventory`), from the desired set and our records.
    pub claimed: Option<Claimed>,
    /// Set for objects whose name has the generated prefix: what the planner compares. Whether
    /// the object is really ours is decided by the planner and the audit from the desired set
    /// and the ownerReference uid, never from this. Shared with the `GeneratedIndex`.
    pub generated: Option<Arc<Observed>>,
    /// `metadata.resourceVersion` (see `resource_version()`) of objects that have no
    /// `generated`, which holds it otherwise.
    pub resource_version: Option<Box<str>>,
}

/// A claimed object in two parts: what is the same for nearly all of them (labels,
/// ownerReferences and spec: the 10,000 namespaces' NetworkPolicies share one copy) and what
/// is its own (its creation time; name and namespace are the cache key). What the audit
/// reads of the object and nothing else: it is parsed only if the object is not ours.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    created: Option<Box<str>>,
    shared: Arc<str>,
}

impl Claimed {
    fn new(full: &Value) -> Option<Self> {
        let meta = full.get("metadata")?;
        let mut shared = serde_json::Map::new();
        let mut m = serde_json::Map::new();
        for field in ["labels", "ownerReferences"] {
            if let Some(v) = meta.get(field) {
                m.insert(field.into(), v.clone());
            }
        }
        shared.insert("metadata".into(), Value::Object(m));
        if let Some(spec) = full.get("spec") {
            shared.insert("spec".into(), spec.clone());
        }
        let text = serde_json::to_string(&shared).ok()?;
        Some(Claimed {
            created: meta
                .get("creationTimestamp")
                .and_then(Value::as_str)
                .map(Box::from),
            shared: intern_claim(text),
        })
    }

    /// The object as it was trimmed, with its key's name and namespace.
    fn object(&self, key: &Key) -> Option<Value> {
        let mut full: Value = serde_json::from_str(&self.shared).ok()?;
        let meta = full.get_mut("metadata")?.as_object_mut()?;
        meta.insert("name".into(), Value::String(key.1.to_string()));
        if !key.0.is_empty() {
            meta.insert("namespace".into(), Value::String(key.0.to_string()));
        }
        if let Some(c) = &self.created {
            meta.insert("creationTimestamp".into(), Value::String(c.to_string()));
        }
        Some(full)
    }
}

impl KindEntry {
    /// The uid of the MeshBaseline that an object at one of our names claims as its
    /// controller. Such an entry holds the object as the audit reads the operator's own: as
    /// JSON (`claimed`, where the audit skips ours) or typed without its labels, which stay in
    /// `generated` (one shared copy; 10,000 DestinationRules, 6 MiB). Whether it really is
    /// ours is decided after compiling; if not, it is audited as `audited` gives it.
    pub fn claimed_by(&self) -> Option<&str> {
        self.generated.as_ref()?.owner_uid.as_deref()
    }

    /// The object at `key` whole, as the audit reads a tenant's: the typed copy (labels given
    /// back to a claim's), or the claimed JSON parsed.
    pub fn audited(&self, kind: Kind, key: &Key) -> Option<Typed> {
        if let Some(t) = &self.typed {
            return Some(match &self.generated {
                Some(g) if g.owner_uid.is_some() => t.with_labels(&g.labels),
                _ => t.clone(),
            });
        }
        let full = self.claimed.as_ref()?.object(key)?;
        let typed = typed_of(kind, full);
        if typed.is_none() {
            tracing::warn!(kind = %kind, namespace = %key.0, name = %key.1, "object does not parse; ignored by the audit");
        }
        typed
    }

    /// `metadata.resourceVersion`: a write's response must not replace a newer watched version.
    pub fn resource_version(&self) -> Option<&str> {
        match &self.generated {
            Some(g) => g.resource_version.as_deref(),
            None => self.resource_version.as_deref(),
        }
    }

    /// Whether this entry is an older version of the object than `other`. resourceVersions
    /// are opaque strings in general; where both parse as integers (etcd revisions, as every
    /// known API server serves them) they are ordered numerically. Otherwise nothing is known
    /// and the caller keeps what the watch delivered.
    pub fn newer_than(&self, other: &KindEntry) -> Option<bool> {
        let parse = |e: &KindEntry| e.resource_version()?.parse::<u64>().ok();
        Some(parse(self)? > parse(other)?)
    }
}

impl Typed {
    /// A copy with `labels` (none when empty).
    fn with_labels(&self, labels: &BTreeMap<String, String>) -> Typed {
        fn set<T: kube::Resource + Clone>(o: &Arc<T>, labels: &BTreeMap<String, String>) -> Arc<T> {
            let mut o = (**o).clone();
            o.meta_mut().labels = (!labels.is_empty()).then(|| labels.clone());
            Arc::new(o)
        }
        match self {
            Typed::PeerAuthentication(o) => Typed::PeerAuthentication(set(o, labels)),
            Typed::DestinationRule(o) => Typed::DestinationRule(set(o, labels)),
            Typed::AuthorizationPolicy(o) => Typed::AuthorizationPolicy(set(o, labels)),
            Typed::Sidecar(o) => Typed::Sidecar(set(o, labels)),
            Typed::NetworkPolicy(o) => Typed::NetworkPolicy(set(o, labels)),
        }
    }
}

fn typed_as<T: DeserializeOwned>(v: Value) -> Option<T> {
    serde_json::from_value(v).ok()
}

fn typed_of(kind: Kind, full: Value) -> Option<Typed> {
    match kind {
        Kind::PeerAuthentication => typed_as(full).map(|o| Typed::PeerAuthentication(Arc::new(o))),
        Kind::DestinationRule => typed_as(full).map(|o| Typed::DestinationRule(Arc::new(o))),
        Kind::AuthorizationPolicy => {
            typed_as(full).map(|o| Typed::AuthorizationPolicy(Arc::new(o)))
        }
        Kind::Sidecar => typed_as(full).map(|o| Typed::Sidecar(Arc::new(o))),
        Kind::NetworkPolicy => typed_as(full).map(|o| Typed::NetworkPolicy(Arc::new(o))),
        // Only the operator writes these: nothing for the audit to read.
        Kind::ValidatingAdmissionPolicy
        | Kind::ValidatingAdmissionPolicyBinding
        | Kind::ClusterNetworkPolicy => None,
    }
}

fn remove_managed_fields(v: &mut Value) {
    if let Some(m) = v.pointer_mut("/metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
}

/// The uid of the MeshBaseline an object's controller ownerReference names.
pub fn controller_uid(meta: &kube::api::ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "MeshBaseline" && o.controller == Some(true))
        .map(|o| o.uid.clone())
}

/// Owner uids, label sets and claims' shared parts of objects at generated names: a few
/// distinct values (one per baseline, unless tenants write others) over 30,000 objects, so one
/// copy of each.
#[derive(Default)]
struct Interned {
    labels: Interner<Arc<BTreeMap<String, String>>>,
    claims: Interner<Arc<str>>,
}

static INTERNED: Mutex<Option<Interned>> = Mutex::new(None);

fn interned<R>(f: impl FnOnce(&mut Interned) -> R) -> R {
    let mut guard = INTERNED.lock();
    f(guard.get_or_insert_with(Interned::default))
}

fn intern(
    uid: Option<&str>,
    labels: BTreeMap<String, String>,
) -> (Option<Name>, Arc<BTreeMap<String, String>>) {
    let uid = uid.map(super::cache::intern);
    let labels = interned(|i| {
        let new = || Arc::new(labels.clone());
        i.labels.get_or_insert_with(&labels, new)
    });
    (uid, labels)
}

/// The shared part of a claimed object: one copy per distinct content.
fn intern_claim(text: String) -> Arc<str> {
    interned(|i| {
        i.claims
            .get_or_insert_with(text.as_str(), || Arc::from(text.as_str()))
    })
}

/// Trims a watched object of `kind`. managedFields stay only on PeerAuthentications and
/// DestinationRules, where Revert mode's fight detection reads them.
pub fn trim(kind: Kind, obj: DynamicObject) -> Option<(Key, KindEntry)> {
    let namespace = if kind.cluster_scoped() {
        ""
    } else {
        obj.metadata.namespace.as_deref()?
    };
    let key = super::cache::key(namespace, obj.metadata.name.as_deref()?);
    let at_generated_name = key.1.starts_with(GENERATED_PREFIX);
    let labels = obj.metadata.labels.clone().unwrap_or_default();
    let owner_uid = controller_uid(&obj.metadata);
    let resource_version = obj
        .metadata
        .resource_version
        .as_deref()
        .filter(|_| !at_generated_name)
        .map(Box::from);
    let mut full = serde_json::to_value(&obj).ok()?;
    // Revert mode reads the managedFields of tenants' PeerAuthentications and DestinationRules
    // (fight detection). An object at one of our names that only we wrote is ours, or is
    // replaced whole; one that others wrote too may be a tenant's forgery, which Revert
    // patches like any tenant object, so it keeps them.
    let others_wrote = obj
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() != Some(crate::object::FIELD_MANAGER));
    let keeps_managed_fields = matches!(kind, Kind::PeerAuthentication | Kind::DestinationRule)
        && (!at_generated_name || others_wrote);
    let generated = if at_generated_name {
        // Only what the planner reads: the spec, and the metadata a replace checks or carries
        // over; labels are kept apart in `Observed`. The rest is the typed copy's.
        let pick = |from: &Value, keys: &[&str]| -> Value {
            let m = keys
                .iter()
                .filter_map(|k| Some((k.to_string(), from.get(*k)?.clone())))
                .collect();
            Value::Object(m)
        };
        let mut manifest = pick(&full, &["spec"]);
        manifest["kind"] = Value::String(kind.name().to_string());
        manifest["metadata"] = pick(
            &full["metadata"],
            &[
                "uid",
                "resourceVersion",
                "ownerReferences",
                "annotations",
                "finalizers",
            ],
        );
        let (owner, labels) = intern(owner_uid.as_deref(), labels);
        Some(Arc::new(Observed::new(manifest, owner, labels)))
    } else {
        None
    };
    if !keeps_managed_fields {
        remove_managed_fields(&mut full);
    }
    if kind.is_istio() {
        crate::api::istio::default_spec(&mut full);
    }
    // Only where the audit never reads our own objects; the others stay typed (one
    // DestinationRule per namespace, and a few objects in the root).
    let claimable = crate::audit::skips_ours(kind, &key.1);
    if claimable && owner_uid.is_some() && generated.is_some() {
        let claimed = Claimed::new(&full);
        return Some((
            key,
            KindEntry {
                typed: None,
                claimed,
                generated,
                resource_version,
            },
        ));
    }
    // Typed but claimed (a DestinationRule, a root object): the audit reads nothing else of
    // the metadata of the operator's own, and the labels are in `generated`.
    if owner_uid.is_some() && generated.is_some() {
        if let Some(m) = full.pointer_mut("/metadata").and_then(Value::as_object_mut) {
            m.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "name"
                        | "namespace"
                        | "creationTimestamp"
                        | "ownerReferences"
                        | "managedFields"
                )
            });
        }
    }
    let typed = typed_of(kind, full);
    if typed.is_none() && kind.is_tenant_kind() {
        tracing::warn!(kind = %kind, namespace = %key.0, name = %key.1, "object does not parse; ignored by the audit");
    }
    Some((
        key,
        KindEntry {
            typed,
            claimed: None,
            generated,
            resource_version,
        },
    ))
}

/// Objects at generated names, by key, maintained from the kind caches' changes, with how
/// many name each owner (kept as they change: every reconcile reports it, and counting
/// 60,000 objects each time was on the drift-repair path).
#[derive(Default)]
pub struct GeneratedIndex {
    objects: RwLock<Packed<ObjectKey, Arc<Observed>>>,
    by_owner: Mutex<HashMap<Name, usize>>,
}

impl GeneratedIndex {
    /// Records a change; returns whether an object at a generated name changed.
    pub fn update(
        &self,
        kind: Kind,
        key: &Key,
        old: Option<&KindEntry>,
        new: Option<&KindEntry>,
    ) -> bool {
        let okey = ObjectKey {
            kind,
            namespace: key.0.clone(),
            name: key.1.clone(),
        };
        let old = old.and_then(|o| o.generated.as_ref());
        let new = new.and_then(|n| n.generated.as_ref());
        if old.is_none() && new.is_none() {
            return false;
        }
        let mut idx = self.objects.write();
        let replaced = match new {
            Some(obs) => idx.insert(okey, obs.clone()),
            None => idx.remove(&okey),
        };
        // From what the index held, not from `old`: the two agree, but only the index's own
        // contents make the counts exact.
        let mut owners = self.by_owner.lock();
        if let Some(uid) = replaced.as_ref().and_then(|o| o.owner_uid.clone()) {
            if let Some(n) = owners.get_mut(&uid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    owners.remove(&uid);
                }
            }
        }
        if let Some(uid) = new.and_then(|o| o.owner_uid.clone()) {
            *owners.entry(uid).or_default() += 1;
        }
        true
    }

    /// Runs `f` on the objects at generated names.
    pub fn with<R>(&self, f: impl FnOnce(&BTreeMap<ObjectKey, Arc<Observed>>) -> R) -> R {
        f(&self.objects.read())
    }

    /// How many of them name the baseline with `uid` as their owner.
    pub fn count(&self, uid: Option<&str>) -> usize {
        let Some(uid) = uid else { return 0 };
        let owners = self.by_owner.lock();
        owners.get(uid).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
