//! The object store: objects by (resource, namespace, name), one global resourceVersion counter,
//! a uid index, and a bounded history of changes that watches replay.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

/// Where an object lives: resource key (`group/plural`), namespace (empty when cluster-scoped), name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub res: String,
    pub ns: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(res: &str, ns: &str, name: &str) -> Self {
        ObjKey {
            res: res.to_string(),
            ns: ns.to_string(),
            name: name.to_string(),
        }
    }
}

/// One committed change; `old`/`new` absent for creations/deletions. A deletion's `old` carries
/// the resourceVersion of the deletion, as in the real DELETED watch event. Objects are shared
/// with the store, so history costs little memory beyond the live objects.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub key: ObjKey,
    pub old: Option<Arc<Value>>,
    pub new: Option<Arc<Value>>,
}

/// Everything behind the simulator's lock.
///
/// Simplification: history is compacted by count (`history_capacity`) or on demand
/// (`SimHandle::compact`), not by time as etcd compaction is.
#[derive(Debug)]
pub struct State {
    objects: BTreeMap<ObjKey, Arc<Value>>,
    uids: HashMap<String, ObjKey>,
    /// Objects by the uids their ownerReferences name: the garbage collector's index, so a
    /// deletion does not scan every object.
    dependents: HashMap<String, BTreeSet<ObjKey>>,
    rv: u64,
    history: VecDeque<Change>,
    /// Watches and continue tokens older than this answer 410 Gone.
    compacted_rv: u64,
    history_capacity: usize,
    uid_counter: u64,
    /// While set (a `dryRun=All` request), commits change nothing and record nothing.
    dry_run: bool,
}

impl State {
    pub fn new(history_capacity: usize) -> Self {
        State {
            objects: BTreeMap::new(),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            rv: 0,
            history: VecDeque::new(),
            compacted_rv: 0,
            history_capacity: history_capacity.max(1),
            uid_counter: 0,
            dry_run: false,
        }
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn compacted_rv(&self) -> u64 {
        self.compacted_rv
    }

    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key).map(Arc::as_ref)
    }

    pub fn get_obj(&self, res: &str, ns: &str, name: &str) -> Option<&Value> {
        self.get(&ObjKey::new(res, ns, name))
    }

    /// Objects of one resource, in (namespace, name) order.
    pub fn list_res(&self, res: &str) -> impl Iterator<Item = (&ObjKey, &Value)> + '_ {
        let start = ObjKey::new(res, "", "");
        let res = res.to_string();
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.res == res)
            .map(|(k, v)| (k, v.as_ref()))
    }

    /// Objects of one resource after `after` (exclusive), for continue tokens.
    pub fn list_res_after<'a>(
        &'a self,
        after: ObjKey,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Value)> + 'a {
        let res = after.res.clone();
        self.objects
            .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .take_while(move |(k, _)| k.res == res)
            .map(|(k, v)| (k, v.as_ref()))
    }

    pub fn all(&self) -> impl Iterator<Item = (&ObjKey, &Value)> {
        self.objects.iter().map(|(k, v)| (k, v.as_ref()))
    }

    pub fn key_of_uid(&self, uid: &str) -> Option<&ObjKey> {
        self.uids.get(uid)
    }

    pub fn new_uid(&mut self) -> String {
        self.uid_counter += 1;
        // Deterministic, UUID-shaped.
        format!("5e1a0000-0000-4000-8000-{:012x}", self.uid_counter)
    }

    /// Stores `obj` (or deletes when `None`) at a fresh resourceVersion, records the change, and
    /// returns the stored object (the deleted one, at the deletion's resourceVersion).
    /// Objects whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<ObjKey> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn commit(&mut self, key: ObjKey, obj: Option<Value>) -> Option<Value> {
        if self.dry_run {
            // What the write would store, at the current resourceVersion.
            return obj.or_else(|| self.get(&key).cloned());
        }
        self.rv += 1;
        let rv = self.rv.to_string();
        let new = obj.map(|mut o| {
            o["metadata"]["resourceVersion"] = Value::String(rv.clone());
            Arc::new(o)
        });
        let old = match &new {
            Some(o) => {
                if let Some(uid) = o.pointer("/metadata/uid").and_then(Value::as_str) {
                    self.uids.insert(uid.to_string(), key.clone());
                }
                self.objects.insert(key.clone(), o.clone())
            }
            None => {
                let old = self.objects.remove(&key);
                old.map(|o| {
                    if let Some(uid) = o.pointer("/metadata/uid").and_then(Value::as_str) {
                        self.uids.remove(uid);
                    }
                    let mut o = Arc::unwrap_or_clone(o);
                    o["metadata"]["resourceVersion"] = Value::String(rv.clone());
                    Arc::new(o)
                })
            }
        };
        for uid in old.as_deref().map(owner_uids).unwrap_or_default() {
            if let Some(set) = self.dependents.get_mut(&uid) {
                set.remove(&key);
                if set.is_empty() {
                    self.dependents.remove(&uid);
                }
            }
        }
        for uid in new.as_deref().map(owner_uids).unwrap_or_default() {
            self.dependents.entry(uid).or_default().insert(key.clone());
        }
        let committed = new.as_ref().or(old.as_ref()).map(|o| Value::clone(o));
        self.history.push_back(Change {
            rv: self.rv,
            key,
            old,
            new,
        });
        while self.history.len() > self.history_capacity {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted_rv = dropped.rv;
            }
        }
        committed
    }

    /// Simplification: a dry run still evaluates the whole write (including garbage collection,
    /// which sees the store unchanged) and answers what the first commit would have stored.
    pub fn set_dry_run(&mut self, dry_run: bool) {
        self.dry_run = dry_run;
    }

    /// Drops all history: every watch or continue token from before now answers 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
    }

    /// Changes after `rv`, or `None` when some of them were compacted away.
    pub fn changes_after(&self, rv: u64) -> Option<impl Iterator<Item = &Change>> {
        if rv < self.compacted_rv {
            return None;
        }
        let start = self.history.partition_point(|c| c.rv <= rv);
        Some(self.history.range(start..))
    }
}

/// The uids an object's ownerReferences name.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
