//! Trimmed caches filled by the watchers (`watch`), and the triggers that turn cache changes into
//! reconciles. Only real changes of the trimmed value trigger anything, so a watch restart
//! (a re-list of identical objects) and pod status churn cost no reconcile.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::ObjectRef;
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use tokio::sync::{watch as signal, Notify};

use crate::api::MeshBaseline;
use crate::inventory::Interner;
use crate::object::Name;

use super::packed::Packed;

/// (namespace, name); the namespace is empty for cluster-scoped objects. Namespaces are
/// interned (`key`): 100,000 pods and 30,000 generated objects name 10,000 namespaces. A pod's
/// name is shared with its `PodInfo`.
pub type Key = (Name, Name);

/// The key of `namespace`/`name`, with the namespace's one shared copy; the few names the
/// operator generates are shared too.
pub fn key(namespace: &str, name: &str) -> Key {
    let name = if name.starts_with(crate::compile::names::GENERATED_PREFIX) {
        intern(name)
    } else {
        Name::from(name)
    };
    (intern(namespace), name)
}

/// The key of a pod, whose name is shared with its `PodInfo`.
pub fn pod_key(namespace: &str, name: Name) -> Key {
    (intern(namespace), name)
}

/// Namespace names, generated names and owner uids in use, one copy each.
pub(super) fn intern(s: &str) -> Name {
    static NAMES: Mutex<Option<Interner<Name>>> = Mutex::new(None);
    let mut guard = NAMES.lock();
    guard
        .get_or_insert_with(Interner::default)
        .get_or_insert_with(s, || Name::from(s))
}

/// One kind's trimmed objects. A re-list applies what it lists in place, like watch events,
/// and notes the keys it saw; at its end the keys it did not see (objects deleted while the watch was down) are
/// removed. So a re-list costs a vector of keys, not a second map. Kept packed: a list and the
/// operator's own creations arrive in key order.
pub struct Cache<V> {
    map: RwLock<Packed<Key, V>>,
    /// The keys listed so far, while a list is under way.
    seen: Mutex<Option<Vec<Key>>>,
    synced: AtomicBool,
    /// Told when `synced` changes.
    readiness: Readiness,
}

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Cache::signalling(&Readiness::default())
    }
}

/// Wakes whoever waits for caches to fill, each time one fills or empties (or what the cluster
/// serves changes): like kube-runtime's reflector readiness, a signal rather than polling.
#[derive(Clone, Default)]
pub struct Readiness(signal::Sender<()>);

impl Readiness {
    pub fn changed(&self) {
        self.0.send_replace(());
    }

    /// Returns once `ready()` holds, asking again after every change.
    pub async fn until(&self, ready: impl Fn() -> bool) {
        // Subscribed before the first look: a change in between wakes the loop.
        let mut rx = self.0.subscribe();
        while !ready() {
            // `self` holds the sender, so the channel never closes while this waits.
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

impl<V> Cache<V> {
    /// An empty cache that tells `readiness` when it fills or empties.
    pub fn signalling(readiness: &Readiness) -> Self {
        Cache {
            map: RwLock::new(Packed::default()),
            seen: Mutex::new(None),
            synced: AtomicBool::new(false),
            readiness: readiness.clone(),
        }
    }
}

impl<V: Clone + PartialEq> Cache<V> {
    pub fn read(&self) -> RwLockReadGuard<'_, Packed<Key, V>> {
        self.map.read()
    }

    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// The key as the cache holds it, names shared with its value (a pod's `PodInfo`): a new
    /// version of an object takes them, so that the names stay one copy (`BTreeMap::insert`
    /// keeps the old key).
    pub fn key_of(&self, key: &Key) -> Option<Key> {
        self.read().get_key_value(key).map(|(k, _)| k.clone())
    }

    pub fn values(&self) -> Vec<V> {
        self.read().values().cloned().collect()
    }

    /// Returns the previous value when the new one differs (`None` inside: it was absent).
    pub fn apply(&self, key: Key, value: V) -> Option<Option<V>> {
        self.apply_unless(key, value, |_, _| false)
    }

    /// `apply`, unless `keep(current, value)` says the current value must stay; one lock, so
    /// no watch event slips in between the check and the write. While a list is under way the
    /// key counts as seen, whether it comes from the list or from a write's response (an
    /// object created after the list began exists, though the list does not show it).
    pub fn apply_unless(
        &self,
        key: Key,
        value: V,
        keep: impl Fn(&V, &V) -> bool,
    ) -> Option<Option<V>> {
        let mut map = self.map.write();
        // An unchanged object keeps the key and value the map holds (nothing is copied), and
        // `insert` keeps the held key too.
        let (held, change) = match map.get_key_value(&key) {
            Some((held, old)) if *old == value || keep(old, &value) => (held.clone(), None),
            Some((held, _)) => (held.clone(), Some(map.insert(key, value))),
            None => (key.clone(), Some(map.insert(key, value))),
        };
        // Under the map's lock, so `init_done` cannot take the keys between the two.
        if let Some(seen) = self.seen.lock().as_mut() {
            seen.push(held);
        }
        change
    }

    pub fn delete(&self, key: &Key) -> Option<V> {
        self.map.write().remove(key)
    }

    /// A list starts. A re-list sees about as many keys as the cache holds: room for them at
    /// once, rather than doubling (at 100,000 pods, 1.6 MiB instead of 3 at the last growth).
    pub(super) fn init(&self) {
        let len = self.map.read().len();
        *self.seen.lock() = Some(Vec::with_capacity(len));
    }

    /// The list is complete: what it did not list is gone. Returns the removed entries.
    pub(super) fn init_done(&self) -> Vec<(Key, V)> {
        // The map's lock first, as in `apply_unless`: no write slips between the two.
        let mut map = self.map.write();
        let Some(mut seen) = self.seen.lock().take() else {
            return Vec::new();
        };
        seen.sort_unstable();
        seen.dedup();
        // Both in key order: one walk finds the keys not listed.
        let mut listed = seen.iter().peekable();
        let unseen: Vec<Key> = map
            .keys()
            .filter(|k| {
                while listed.next_if(|s| *s < *k).is_some() {}
                listed.next_if(|s| *s == *k).is_none()
            })
            .cloned()
            .collect();
        drop(seen);
        let removed = unseen
            .into_iter()
            .filter_map(|k| {
                let v = map.remove(&k)?;
                Some((k, v))
            })
            .collect();
        // Listed objects that were new went in one by one: in full nodes again.
        map.compact();
        drop(map);
        self.synced.store(true, Ordering::Release);
        self.readiness.changed();
        removed
    }

    /// Forget everything (a CRD went away).
    pub fn clear(&self) -> Vec<(Key, Option<V>, Option<V>)> {
        let mut map = self.map.write();
        self.synced.store(false, Ordering::Release);
        // A list cut short by the watcher's end leaves no keys behind.
        *self.seen.lock() = None;
        self.readiness.changed();
        map.take()
            .into_iter()
            .map(|(k, v)| (k, Some(v), None))
            .collect()
    }
}

/// Pending reconcile requests: specific baselines at once (drift repair must be fast), and
/// "every baseline" debounced (inventory changes come in bursts). Bounded by the number of
/// baselines: a request already pending is not queued twice.
pub struct Triggers {
    pending: Mutex<BTreeSet<String>>,
    all: AtomicBool,
    notify: Notify,
    /// What the last compile or audit of the whole inventory cost, in microseconds.
    pass_cost_us: AtomicU64,
}

/// Inventory passes are spaced at least this many times their own cost apart, so under a
/// steady flow of changes (tenants editing policies) they take at most about a fifth of a
/// core, whatever the cluster's size; drift repairs are not spaced.
pub const PASS_SPACING: u32 = 4;

impl Default for Triggers {
    fn default() -> Self {
        Triggers {
            pending: Mutex::new(BTreeSet::new()),
            all: AtomicBool::new(false),
            notify: Notify::new(),
            pass_cost_us: AtomicU64::new(0),
        }
    }
}

impl Triggers {
    /// Reconcile this baseline at once.
    pub fn baseline(&self, name: &str) {
        self.pending.lock().insert(name.to_string());
        self.notify.notify_one();
    }

    /// Reconcile every baseline, after the debounce.
    pub fn all(&self) {
        self.all.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Records what a pass over the whole inventory cost (see `PASS_SPACING`).
    pub fn pass_cost(&self, cost: Duration) {
        let us = u64::try_from(cost.as_micros()).unwrap_or(u64::MAX);
        self.pass_cost_us.store(us, Ordering::Release);
    }

    /// How long inventory changes are gathered: the debounce, or more after costly passes.
    fn gather(&self, debounce: Duration) -> Duration {
        let cost = Duration::from_micros(self.pass_cost_us.load(Ordering::Acquire));
        debounce.max(cost.saturating_mul(PASS_SPACING))
    }

    /// Takes what is pending: the baselines asked for, and whether every one is (for tests
    /// that drive reconciles themselves).
    #[cfg(test)]
    pub fn take(&self) -> (BTreeSet<String>, bool) {
        let specific = std::mem::take(&mut *self.pending.lock());
        (specific, self.all.swap(false, Ordering::AcqRel))
    }

    /// The stream of reconcile requests for the controller. `names` lists the current baselines.
    pub fn stream(
        self: Arc<Self>,
        debounce: Duration,
        names: impl Fn() -> Vec<String> + Send + Sync + 'static,
    ) -> impl Stream<Item = ObjectRef<MeshBaseline>> + Send + 'static {
        let names = Arc::new(names);
        // The state carries when the pending "every baseline" request is due, so that specific
        // requests arriving meanwhile are served at once: a drift repair must not wait out the
        // debounce of an inventory change (that wait would be the repair latency's tail).
        futures::stream::unfold((self, None), move |(this, mut due)| {
            let names = names.clone();
            async move {
                let t = &this;
                loop {
                    // Due first: under a steady flow of specific requests (a long plan's own
                    // creations) the inventory pass must still come, not wait for a pause.
                    if t.all.load(Ordering::Acquire) {
                        let at = *due.get_or_insert_with(|| {
                            tokio::time::Instant::now() + t.gather(debounce)
                        });
                        if tokio::time::Instant::now() >= at {
                            t.all.store(false, Ordering::Release);
                            return Some((names(), (this, None)));
                        }
                    }
                    let specific: Vec<String> =
                        std::mem::take(&mut *t.pending.lock()).into_iter().collect();
                    if !specific.is_empty() {
                        return Some((specific, (this, due)));
                    }
                    if t.all.load(Ordering::Acquire) {
                        let at = *due.get_or_insert_with(|| {
                            tokio::time::Instant::now() + t.gather(debounce)
                        });
                        tokio::select! {
                            _ = tokio::time::sleep_until(at) => {
                                t.all.store(false, Ordering::Release);
                                return Some((names(), (this, None)));
                            }
                            // A specific request (or another "all") came: look again.
                            _ = t.notify.notified() => continue,
                        }
                    }
                    t.notify.notified().await;
                }
            }
        })
        .flat_map(|names| futures::stream::iter(names.into_iter().map(|n| ObjectRef::new(&n))))
    }
}

#[cfg(test)]
mod tests;
