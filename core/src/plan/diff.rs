//! The diff of desired and observed objects: which to create or replace, which to delete.
//! Pure, like the rest of the planner.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::{exact, PlanInput};
use crate::object::{DesiredObject, Kind, Name, ObjectKey, ObjectSpec, OwnedMeta};

/// An object at a name the operator generates, as the cluster has it: what the planner
/// compares (a fingerprint, not the object: 30,000 of them are held) and what a replace must
/// carry over or check.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The uid of the MeshBaseline named by the controller ownerReference, if any.
    pub owner_uid: Option<Name>,
    /// Shared: the 30,000 objects of a baseline nearly all carry the same labels, and the
    /// controller passes one copy of them (a B-tree node of half a KiB each otherwise).
    pub labels: Arc<BTreeMap<String, String>>,
    /// `exact::owned_fingerprint` of the spec and ownerReferences, computed once when the
    /// object is cached.
    pub fingerprint: u64,
    pub resource_version: Option<Box<str>>,
    pub uid: Option<Box<str>>,
    /// Tenants' annotations and finalizers (a replace keeps them); usually absent, so boxed:
    /// 30,000 objects hold a pointer each instead of two empty values.
    kept: Option<Box<Kept>>,
}

#[derive(Clone, Debug, PartialEq)]
struct Kept {
    annotations: Option<Value>,
    finalizers: Option<Value>,
}

impl Observed {
    /// `manifest["kind"]` names the kind (its spec is normalised by kind).
    pub fn new(
        manifest: Value,
        owner_uid: Option<Name>,
        labels: Arc<BTreeMap<String, String>>,
    ) -> Self {
        let kind = manifest
            .get("kind")
            .and_then(Value::as_str)
            .and_then(Kind::from_name)
            .unwrap_or(Kind::AuthorizationPolicy);
        let fingerprint = exact::owned_fingerprint(
            kind,
            manifest.get("spec"),
            manifest.pointer("/metadata/ownerReferences"),
        );
        let meta = manifest.get("metadata");
        let text = |field: &str| {
            meta.and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .map(Box::from)
        };
        let value = |field: &str| meta.and_then(|m| m.get(field)).cloned();
        let kept = Kept {
            annotations: value("annotations"),
            finalizers: value("finalizers"),
        };
        Observed {
            owner_uid,
            labels,
            fingerprint,
            resource_version: text("resourceVersion"),
            uid: text("uid"),
            kept: (kept.annotations.is_some() || kept.finalizers.is_some()).then(|| Box::new(kept)),
        }
    }

    /// The value of annotation `key`, if the object has it.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.kept.as_ref()?.annotations.as_ref()?.get(key)?.as_str()
    }

    /// What a replace of this object keeps or checks (see `Live`).
    pub fn live(&self) -> Option<Live> {
        Some(Live {
            resource_version: self.resource_version.as_deref()?.to_string(),
            uid: self.uid.as_deref().map(String::from),
            labels: (*self.labels).clone(),
            annotations: self.kept.as_ref().and_then(|k| k.annotations.clone()),
            finalizers: self.kept.as_ref().and_then(|k| k.finalizers.clone()),
        })
    }
}

/// The live object an apply replaces: its version (the precondition of the replace, so a
/// concurrent change is never overwritten unseen) and the metadata tenants may keep.
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    pub resource_version: String,
    pub uid: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: Option<Value>,
    pub finalizers: Option<Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Apply {
    pub key: ObjectKey,
    /// Shares its spec with the compiled output; the manifest is built when it is written, so
    /// a first convergence of 30,000 objects does not hold 30,000 manifests at once.
    pub object: DesiredObject,
    /// The object was as desired before and someone changed or deleted it.
    pub repair: bool,
    /// `Some`: the object exists and is replaced as a whole (foreign fields removed); `None`:
    /// it is created.
    pub live: Option<Live>,
}

impl Apply {
    /// The full object to write. For a replace: the desired spec, our labels, annotations and
    /// ownerReference, the live version as precondition, and the tenant's other labels,
    /// annotations and finalizers carried over (they do not change what the policy means).
    pub fn manifest(&self) -> Value {
        let mut m = self.object.manifest();
        let Some(live) = &self.live else { return m };
        let mut labels = live.labels.clone();
        labels.extend(self.object.meta.labels.clone());
        let meta = &mut m["metadata"];
        meta["labels"] = serde_json::to_value(labels).unwrap_or_default();
        meta["resourceVersion"] = Value::String(live.resource_version.clone());
        if let Some(uid) = &live.uid {
            meta["uid"] = Value::String(uid.clone());
        }
        if let Some(Value::Object(theirs)) = &live.annotations {
            let mut annotations = theirs.clone();
            for (k, v) in &self.object.meta.annotations {
                annotations.insert(k.clone(), Value::String(v.clone()));
            }
            meta["annotations"] = Value::Object(annotations);
        }
        if let Some(v) = &live.finalizers {
            meta["finalizers"] = v.clone();
        }
        m
    }
}

/// What the diff collects, and the fingerprints of desired specs: specs are shared between
/// namespaces, so each distinct one is hashed once.
#[derive(Default)]
struct DiffOut {
    applies: Vec<Apply>,
    deletes: Vec<ObjectKey>,
    fingerprints: Fingerprints,
}

#[derive(Default)]
struct Fingerprints(HashMap<(*const ObjectSpec, *const OwnedMeta), u64>);

impl Fingerprints {
    fn of(&mut self, d: &DesiredObject) -> u64 {
        // Pointers are valid keys: every Arc outlives the plan call that hashes it.
        *self
            .0
            .entry((Arc::as_ptr(&d.spec), Arc::as_ptr(&d.meta)))
            .or_insert_with(|| {
                exact::owned_fingerprint_of(d.spec.fingerprint(), d.meta.owner_references.as_ref())
            })
    }
}

/// Whether the previous status reported the baseline enforced.
fn was_enforced(input: &PlanInput) -> bool {
    input.previous.is_some_and(|p| {
        p.conditions.iter().any(|c| {
            c.type_ == super::status::READY && c.reason == super::Reason::Enforced.as_str()
        })
    })
}

/// One desired/observed pair: what to do with it.
fn decide_one(
    input: &PlanInput,
    key: &ObjectKey,
    desired: Option<&DesiredObject>,
    observed: Option<&Observed>,
    out: &mut DiffOut,
) {
    let DiffOut {
        applies,
        deletes,
        fingerprints,
    } = out;
    if input.missing_kinds.contains(&key.kind) {
        return;
    }
    match (desired, observed) {
        (Some(d), o) => {
            let matches = o.is_some_and(|o| {
                let desired_fp = fingerprints.of(d);
                exact::matches_exactly(d, desired_fp, o)
            });
            if matches {
                return;
            }
            // A repair restores what was written before: after Audit mode (or an invalid
            // spec) nothing was, so the first writes are no repairs.
            let repair = was_enforced(input)
                && input.previous_compiled.is_some_and(|prev| {
                    prev.objects
                        .binary_search_by(|p| p.key.cmp(&d.key))
                        .is_ok_and(|i| prev.objects[i] == *d)
                });
            applies.push(Apply {
                key: d.key.clone(),
                object: d.clone(),
                repair,
                live: o.and_then(Observed::live),
            });
        }
        (None, Some(o)) => {
            // Ours to delete only by our own records: we wanted this object before, and it
            // still names this baseline as its owner. Labels, names and even an
            // ownerReference can be written by tenants; a key we never wanted cannot.
            if input.records.contains(key)
                && input.uid.is_some()
                && o.owner_uid.as_deref() == input.uid
            {
                deletes.push(key.clone());
            }
        }
        (None, None) => {}
    }
}

/// Applies for desired objects that are missing or differ, deletes for generated objects no
/// longer desired. A merge of the two sorted sequences, or only `input.only` when given.
pub(super) fn diff(input: &PlanInput, desired: &[DesiredObject]) -> (Vec<Apply>, Vec<ObjectKey>) {
    let mut out = DiffOut::default();
    if let Some(only) = input.only {
        // The drift-repair path: a few keys among 30,000, looked up without touching the rest.
        // The compiler sorts by key; a binary search that finds the key is right whatever the
        // order, and a miss is confirmed by a scan, so unsorted input stays correct too.
        for key in only {
            let d = match desired.binary_search_by(|d| d.key.cmp(key)) {
                Ok(i) => Some(&desired[i]),
                Err(_) => desired.iter().find(|d| d.key == *key),
            };
            let o = input.observed.get(key).map(|o| &**o);
            decide_one(input, key, d, o, &mut out);
        }
        return (out.applies, out.deletes);
    }
    let mut sorted: Vec<&DesiredObject> = desired.iter().collect();
    // The compiler sorts by key; stay correct if some input does not.
    if !sorted.is_sorted_by(|a, b| a.key <= b.key) {
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
    }
    let mut ds = sorted.into_iter().peekable();
    let mut os = input.observed.iter().peekable();
    loop {
        let (key, d, o) = match (ds.peek(), os.peek()) {
            (None, None) => break,
            (Some(d), None) => (&d.key, ds.next(), None),
            (None, Some((k, _))) => (*k, None, os.next().map(|(_, o)| &**o)),
            (Some(d), Some((k, _))) => match d.key.cmp(k) {
                std::cmp::Ordering::Less => (&d.key, ds.next(), None),
                std::cmp::Ordering::Greater => (*k, None, os.next().map(|(_, o)| &**o)),
                std::cmp::Ordering::Equal => {
                    let key = &d.key;
                    (key, ds.next(), os.next().map(|(_, o)| &**o))
                }
            },
        };
        decide_one(input, key, d, o, &mut out);
    }
    (out.applies, out.deletes)
}
