//! Trimming of watched objects into cache values, and the index of generated objects by
//! baseline.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::DynamicObject;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::istio::{AuthorizationPolicy, DestinationRule, PeerAuthentication, Sidecar};
use crate::compile::names::{self, GENERATED_PREFIX};
use crate::object::{Kind, ObjectKey};
use crate::plan::Observed;

use super::cache::Key;

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
    pub claimed: Option<Arc<str>>,
    /// Set for objects whose name has the generated prefix: what the planner compares. Whether
    /// the object is really ours is decided by the planner and the audit from the desired set
    /// and the ownerReference uid, never from this. Shared with the `GeneratedIndex`.
    pub generated: Option<Arc<Observed>>,
    /// `metadata.resourceVersion`: a write's response must not replace a newer watched version.
    pub resource_version: Option<String>,
}

impl KindEntry {
    /// The object as the audit reads it: the typed copy, or the claimed object parsed.
    pub fn audited(&self, kind: Kind) -> Option<Typed> {
        if let Some(t) = &self.typed {
            return Some(t.clone());
        }
        let json = self.claimed.as_deref()?;
        let typed = parse_typed(kind, json);
        if typed.is_none() {
            tracing::warn!(kind = %kind, "object does not parse; ignored by the audit");
        }
        typed
    }

    /// Whether this entry is an older version of the object than `other`. resourceVersions
    /// are opaque strings in general; where both parse as integers (etcd revisions, as every
    /// known API server serves them) they are ordered numerically. Otherwise nothing is known
    /// and the caller keeps what the watch delivered.
    pub fn newer_than(&self, other: &KindEntry) -> Option<bool> {
        let parse = |e: &KindEntry| e.resource_version.as_deref()?.parse::<u64>().ok();
        Some(parse(self)? > parse(other)?)
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

fn parse_typed(kind: Kind, json: &str) -> Option<Typed> {
    typed_of(kind, serde_json::from_str(json).ok()?)
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

/// Owner uids and label sets of objects at generated names: a few distinct values (one per
/// baseline, unless tenants add labels) over 30,000 objects, so one shared copy of each.
/// Bounded: a tenant labelling objects differently only costs copies beyond the bound.
#[derive(Default)]
struct Interned {
    uids: Vec<Arc<str>>,
    labels: Vec<Arc<BTreeMap<String, String>>>,
}

const INTERNED_MAX: usize = 16;

fn intern(
    uid: Option<&str>,
    labels: BTreeMap<String, String>,
) -> (Option<Arc<str>>, Arc<BTreeMap<String, String>>) {
    static INTERNED: Mutex<Interned> = Mutex::new(Interned {
        uids: Vec::new(),
        labels: Vec::new(),
    });
    fn find_or_add<T: ?Sized + PartialEq>(
        v: &mut Vec<Arc<T>>,
        found: impl Fn(&T) -> bool,
        new: impl FnOnce() -> Arc<T>,
    ) -> Arc<T> {
        if let Some(a) = v.iter().find(|a| found(a)) {
            return a.clone();
        }
        let a = new();
        if v.len() == INTERNED_MAX {
            v.remove(0);
        }
        v.push(a.clone());
        a
    }
    let mut i = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    let uid = uid.map(|u| find_or_add(&mut i.uids, |a| a == u, || Arc::from(u)));
    let labels = find_or_add(&mut i.labels, |a| *a == labels, || Arc::new(labels.clone()));
    (uid, labels)
}

/// Trims a watched object of `kind`. managedFields stay only on PeerAuthentications and
/// DestinationRules, where Revert mode's fight detection reads them.
pub fn trim(kind: Kind, obj: DynamicObject) -> Option<(Key, KindEntry)> {
    let namespace = if kind.cluster_scoped() {
        String::new()
    } else {
        obj.metadata.namespace.clone()?
    };
    let key = (namespace, obj.metadata.name.clone()?);
    let labels = obj.metadata.labels.clone().unwrap_or_default();
    let owner_uid = controller_uid(&obj.metadata);
    let resource_version = obj.metadata.resource_version.clone();
    let mut full = serde_json::to_value(&obj).ok()?;
    let at_generated_name = key.1.starts_with(GENERATED_PREFIX);
    // Revert mode never patches an object at one of our names (it is replaced whole), so
    // only tenants' PeerAuthentications and DestinationRules keep their managedFields.
    let keeps_managed_fields =
        !at_generated_name && matches!(kind, Kind::PeerAuthentication | Kind::DestinationRule);
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
    // Only where the audit never reads our own objects: it skips our AuthorizationPolicies
    // and namespace NetworkPolicies, but resolves DestinationRule hosts among all rules (ours
    // included), counts root PeerAuthentications and Sidecars, and sees istiod restricted by
    // our istiod NetworkPolicy. Those stay typed (one per namespace, and a few in the root).
    let claimable = kind == Kind::AuthorizationPolicy
        || (kind == Kind::NetworkPolicy && key.1 == names::BASELINE_NETWORK_POLICY);
    if claimable && owner_uid.is_some() && generated.is_some() {
        let claimed = serde_json::to_string(&full).ok().map(Arc::from);
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

/// Objects at generated names, by key, maintained from the kind caches' changes.
#[derive(Default)]
pub struct GeneratedIndex {
    objects: RwLock<BTreeMap<ObjectKey, Arc<Observed>>>,
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
        let mut idx = self.objects.write().unwrap_or_else(|e| e.into_inner());
        match new {
            Some(obs) => idx.insert(okey, obs.clone()),
            None => idx.remove(&okey),
        };
        true
    }

    /// Runs `f` on the objects at generated names.
    pub fn with<R>(&self, f: impl FnOnce(&BTreeMap<ObjectKey, Arc<Observed>>) -> R) -> R {
        f(&self.objects.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// How many of them name the baseline with `uid` as their owner.
    pub fn count(&self, uid: Option<&str>) -> usize {
        self.with(|m| {
            m.values()
                .filter(|o| uid.is_some() && o.owner_uid.as_deref() == uid)
                .count()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{BASELINE_LABEL, MANAGED_BY_LABEL};
    use serde_json::json;

    #[test]
    fn generated_objects_are_indexed_and_trimmed() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "meshbaseline-deny-plaintext", "namespace": "a",
                "labels": {MANAGED_BY_LABEL: "meshbaseline", BASELINE_LABEL: "default"},
                "ownerReferences": [{"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                    "name": "default", "uid": "u1", "controller": true}],
                "annotations": {"tenant": "note"}, "resourceVersion": "17", "uid": "o1",
                "managedFields": [{"manager": "meshbaseline", "operation": "Apply"}]},
            "spec": {"action": "DENY"}
        }))
        .unwrap();
        let (key, entry) = trim(Kind::AuthorizationPolicy, obj).unwrap();
        let obs = entry.generated.clone().unwrap();
        assert_eq!(obs.owner_uid.as_deref(), Some("u1"));
        let live = obs.live().unwrap();
        assert_eq!(live.resource_version, "17");
        assert_eq!(live.uid.as_deref(), Some("o1"));
        assert_eq!(live.annotations, Some(json!({"tenant": "note"})));
        assert_eq!(entry.resource_version.as_deref(), Some("17"));
        // Claimed (our name, a MeshBaseline owner): no typed copy, parsed only when audited.
        assert!(entry.typed.is_none());
        match entry.audited(Kind::AuthorizationPolicy) {
            Some(Typed::AuthorizationPolicy(ap)) => {
                assert!(ap.metadata.managed_fields.is_none());
                assert_eq!(ap.spec.action.as_deref(), Some("DENY"));
            }
            other => panic!("{other:?}"),
        }
        let idx = GeneratedIndex::default();
        assert!(idx.update(Kind::AuthorizationPolicy, &key, None, Some(&entry)));
        assert_eq!(idx.count(Some("u1")), 1);
        assert_eq!(idx.count(Some("u2")), 0);
        idx.update(Kind::AuthorizationPolicy, &key, Some(&entry), None);
        assert_eq!(idx.count(Some("u1")), 0);
    }

    #[test]
    fn only_claims_the_audit_skips_go_untyped() {
        let dr = |name: &str, owned: bool| -> KindEntry {
            let mut meta = json!({"name": name, "namespace": "a"});
            if owned {
                meta["ownerReferences"] = json!([{"apiVersion": "meshbaseline.dev/v1alpha1",
                    "kind": "MeshBaseline", "name": "default", "uid": "u1", "controller": true}]);
            }
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                "metadata": meta, "spec": {"host": "*.a.svc.cluster.local"}
            }))
            .unwrap();
            trim(Kind::DestinationRule, obj).unwrap().1
        };
        // The audit resolves hosts among all DestinationRules, ours included: always typed.
        for e in [
            dr(names::MTLS_DESTINATION_RULE, true),
            dr("meshbaseline-other", false),
        ] {
            assert!(e.typed.is_some() && e.claimed.is_none());
        }
        let np = |name: &str| -> KindEntry {
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": "a", "ownerReferences": [{
                    "apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                    "name": "default", "uid": "u1", "controller": true}]},
                "spec": {"podSelector": {}}
            }))
            .unwrap();
            trim(Kind::NetworkPolicy, obj).unwrap().1
        };
        // A namespace's NetworkPolicy is claimed; istiod's stays typed (MB701 counts it).
        let ours = np(names::BASELINE_NETWORK_POLICY);
        assert!(ours.typed.is_none() && ours.claimed.is_some());
        assert!(matches!(
            ours.audited(Kind::NetworkPolicy),
            Some(Typed::NetworkPolicy(_))
        ));
        let istiod = np(names::ISTIOD_NETWORK_POLICY);
        assert!(istiod.typed.is_some() && istiod.claimed.is_none());
    }

    #[test]
    fn write_responses_are_ordered_by_resource_version() {
        let entry = |rv: Option<&str>| KindEntry {
            typed: None,
            claimed: None,
            generated: None,
            resource_version: rv.map(String::from),
        };
        assert_eq!(entry(Some("10")).newer_than(&entry(Some("9"))), Some(true));
        assert_eq!(entry(Some("9")).newer_than(&entry(Some("10"))), Some(false));
        assert_eq!(entry(Some("a")).newer_than(&entry(Some("9"))), None);
        assert_eq!(entry(None).newer_than(&entry(Some("9"))), None);
    }

    #[test]
    fn peer_authentications_keep_managed_fields() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "p", "namespace": "a",
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"mtls": {"mode": "PERMISSIVE"}}
        }))
        .unwrap();
        let (_, entry) = trim(Kind::PeerAuthentication, obj).unwrap();
        assert!(entry.generated.is_none());
        match entry.typed {
            Some(Typed::PeerAuthentication(pa)) => {
                assert_eq!(
                    pa.metadata.managed_fields.as_ref().unwrap()[0]
                        .manager
                        .as_deref(),
                    Some("kubectl")
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn objects_at_generated_names_drop_managed_fields() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "meshbaseline-mtls", "namespace": "a",
                "managedFields": [{"manager": "meshbaseline", "operation": "Apply"}]},
            "spec": {"host": "*.a.svc.cluster.local"}
        }))
        .unwrap();
        let (_, entry) = trim(Kind::DestinationRule, obj).unwrap();
        assert!(entry.generated.is_some());
        match entry.typed {
            Some(Typed::DestinationRule(dr)) => assert!(dr.metadata.managed_fields.is_none()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn istio_objects_without_a_spec_are_seen_with_an_empty_one() {
        // Istio's schemas accept a Sidecar or AuthorizationPolicy without `spec`.
        for (kind, k) in [
            (Kind::Sidecar, "Sidecar"),
            (Kind::AuthorizationPolicy, "AuthorizationPolicy"),
        ] {
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "networking.istio.io/v1", "kind": k,
                "metadata": {"name": "empty", "namespace": "a"}
            }))
            .unwrap();
            let (_, entry) = trim(kind, obj).unwrap();
            assert!(entry.typed.is_some(), "{k} must parse");
        }
    }
}
