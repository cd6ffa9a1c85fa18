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
/// Shared with inventory snapshots, which copy the pointers.
#[derive(Clone, Debug, PartialEq)]
pub enum Typed {
    PeerAuthentication(Arc<PeerAuthentication>),
    DestinationRule(Arc<DestinationRule>),
    AuthorizationPolicy(Arc<AuthorizationPolicy>),
    Sidecar(Arc<Sidecar>),
    NetworkPolicy(Arc<NetworkPolicy>),
}

/// One object of a generated kind, tenants' and ours alike, in the forms the hot paths read.
#[derive(Clone, Debug, PartialEq)]
pub struct KindEntry {
    /// What the audit reads: inventory snapshots (`Index::snapshot`) and, for objects that
    /// turn out not to be ours, `ownership::audit_inventory`.
    pub audit: AuditForm,
    /// Set for objects whose name has the generated prefix: what the planner compares (through
    /// the `GeneratedIndex`, which shares it), the claim that `ownership` checks (the
    /// ownerReference uid) and the labels a claimed object's typed copy goes without. Whether
    /// the object is ours is never decided from it alone.
    pub generated: Option<Arc<Observed>>,
    /// `metadata.resourceVersion` of objects at other names (`generated` holds it otherwise):
    /// a write's response must not replace a newer watched version (`Ctx::wrote`).
    pub resource_version: Option<Box<str>>,
}

/// The object as the audit reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum AuditForm {
    /// Typed and trimmed. An object claimed by a baseline has its labels in `generated` instead
    /// (one shared copy; 10,000 DestinationRules, 6 MiB).
    Typed(Typed),
    /// An object claimed by a baseline, of a kind the audit skips when it is ours: such
    /// objects are nearly always the operator's own (30,000 at 10,000 namespaces), and a typed
    /// copy of each would be a fifth of the operator's memory. Parsed only if it is not ours.
    Claimed(Claimed),
    /// It does not deserialize into our minimal type: invisible to the audit (and logged).
    Unreadable,
}

/// A claimed object in two parts: what is the same for nearly all of them (labels,
/// ownerReferences and spec: the 10,000 namespaces' NetworkPolicies share one copy) and what
/// is its own (its creation time; name and namespace are the cache key). What the audit
/// reads of the object and nothing else.
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
    /// The uid of the MeshBaseline that an object at one of our names names as its controller.
    /// Whether it really is ours is for `ownership` to say.
    pub fn claimed_by(&self) -> Option<&str> {
        self.generated.as_ref()?.owner_uid.as_deref()
    }

    /// The object as the audit reads the operator's own: a claimed object's typed copy without
    /// its labels; nothing for a claim the audit skips.
    pub fn as_ours(&self) -> Option<Typed> {
        match &self.audit {
            AuditForm::Typed(t) => Some(t.clone()),
            AuditForm::Claimed(_) | AuditForm::Unreadable => None,
        }
    }

    /// The object at `key` whole, as the audit reads a tenant's: the typed copy (a claimed
    /// one's labels given back), or the claimed JSON parsed.
    pub fn as_tenants(&self, kind: Kind, key: &Key) -> Option<Typed> {
        match &self.audit {
            AuditForm::Typed(t) => Some(match &self.generated {
                Some(g) if g.owner_uid.is_some() => t.with_labels(&g.labels),
                _ => t.clone(),
            }),
            AuditForm::Claimed(c) => {
                let typed = typed_of(kind, c.object(key)?);
                if typed.is_none() {
                    tracing::warn!(kind = %kind, namespace = %key.0, name = %key.1, "object does not parse; ignored by the audit");
                }
                typed
            }
            AuditForm::Unreadable => None,
        }
    }

    /// What a change of the object means to the audit when it is not ours: its audited form
    /// and the labels kept apart (nothing is parsed).
    pub fn tenant_view(&self) -> (&AuditForm, Option<&BTreeMap<String, String>>) {
        (&self.audit, self.generated.as_ref().map(|g| &*g.labels))
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

/// Trims a watched object of `kind` into its cache key and entry.
pub fn trim(kind: Kind, obj: DynamicObject) -> Option<(Key, KindEntry)> {
    let namespace = if kind.cluster_scoped() {
        ""
    } else {
        obj.metadata.namespace.as_deref()?
    };
    let key = super::cache::key(namespace, obj.metadata.name.as_deref()?);
    let at_generated_name = key.1.starts_with(GENERATED_PREFIX);
    let owner_uid = controller_uid(&obj.metadata);
    let resource_version = obj
        .metadata
        .resource_version
        .as_deref()
        .filter(|_| !at_generated_name)
        .map(Box::from);
    let keeps_managed_fields = keeps_managed_fields(kind, at_generated_name, &obj.metadata);
    let labels = obj.metadata.labels.clone().unwrap_or_default();
    let mut full = serde_json::to_value(&obj).ok()?;
    let generated = at_generated_name.then(|| observed(kind, &full, owner_uid.as_deref(), labels));
    if !keeps_managed_fields {
        remove_managed_fields(&mut full);
    }
    if kind.is_istio() {
        crate::api::istio::default_spec(&mut full);
    }
    let claimed = owner_uid.is_some() && generated.is_some();
    let audit = audit_form(kind, &key, full, claimed);
    Some((
        key,
        KindEntry {
            audit,
            generated,
            resource_version,
        },
    ))
}

/// Revert mode reads the managedFields of tenants' PeerAuthentications and DestinationRules
/// (fight detection). An object at one of our names that only we wrote is ours, or is
/// replaced whole; one that others wrote too may be a tenant's forgery, which Revert patches
/// like any tenant object, so it keeps them.
fn keeps_managed_fields(kind: Kind, at_generated_name: bool, meta: &kube::api::ObjectMeta) -> bool {
    let others_wrote = meta
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() != Some(crate::object::FIELD_MANAGER));
    matches!(kind, Kind::PeerAuthentication | Kind::DestinationRule)
        && (!at_generated_name || others_wrote)
}

/// Only what the planner reads of an object at a generated name: the spec, and the metadata a
/// replace checks or carries over; labels are kept apart, interned.
fn observed(
    kind: Kind,
    full: &Value,
    owner_uid: Option<&str>,
    labels: BTreeMap<String, String>,
) -> Arc<Observed> {
    let pick = |from: &Value, keys: &[&str]| -> Value {
        let m = keys
            .iter()
            .filter_map(|k| Some((k.to_string(), from.get(*k)?.clone())))
            .collect();
        Value::Object(m)
    };
    let mut manifest = pick(full, &["spec"]);
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
    let (owner, labels) = intern(owner_uid, labels);
    Arc::new(Observed::new(manifest, owner, labels))
}

/// The form the audit reads. A claimed object (one of our names, a MeshBaseline as its
/// controller) of a kind the audit skips when it is ours is kept as JSON; other claimed ones
/// are typed without the metadata the audit does not read of the operator's own (their labels
/// are in `generated`).
fn audit_form(kind: Kind, key: &Key, mut full: Value, claimed: bool) -> AuditForm {
    if claimed && crate::audit::skips_ours(kind, &key.1) {
        return Claimed::new(&full).map_or(AuditForm::Unreadable, AuditForm::Claimed);
    }
    if claimed {
        if let Some(m) = full.pointer_mut("/metadata").and_then(Value::as_object_mut) {
            m.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "name"
                        | "namespace"
                        | "uid"
                        | "creationTimestamp"
                        | "ownerReferences"
                        | "managedFields"
                )
            });
        }
    }
    match typed_of(kind, full) {
        Some(t) => AuditForm::Typed(t),
        None => {
            if kind.is_tenant_kind() {
                tracing::warn!(kind = %kind, namespace = %key.0, name = %key.1, "object does not parse; ignored by the audit");
            }
            AuditForm::Unreadable
        }
    }
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

    /// The uid of the object at `key`, if known (a delete is made only of that instance).
    pub fn uid(&self, key: &ObjectKey) -> Option<String> {
        let objects = self.objects.read();
        objects.get(key)?.uid.as_deref().map(String::from)
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
