//! The watchers: Namespaces, Pods, Services, the generated kinds (tenant and generated
//! objects alike, one watch per kind), and CustomResourceDefinitions, which start and stop
//! the watchers of optional kinds (Istio's, ClusterNetworkPolicy) when their CRDs appear or
//! disappear. The admission kinds are built in; discovery tells whether they are served.
//!
//! Lists are streamed (a watch with `sendInitialEvents`, Kubernetes' WatchList): objects are
//! decoded one at a time, where a page of 500 took megabytes while it was decoded (500
//! DestinationRules as JSON values), and every kind lists at once after an API server restart.
//! Where the API server refuses it (the WatchList feature gate is off: Kubernetes 1.27 to 1.31
//! and 1.33 by default), that watcher lists in pages instead.

use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::DynamicObject;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;

use crate::inventory::{NamespaceInfo, PodInfo, ServiceInfo};
use crate::object::Kind;
use crate::telemetry::Metrics;

use super::cache::{key, pod_key, Cache, Key};
use super::context::Ctx;
use super::index::Index;
use super::listing::{Listing, Lists};
use super::objects::trim;
use super::served::newest_served;

/// Objects per page where lists go in pages (the WatchList gate off). Half kube-runtime's
/// default: a page is decoded whole, pods with their managedFields, and every kind lists at
/// once after an API server restart.
pub(super) const PAGE: u32 = 250;
/// The same for the generated kinds, decoded as JSON values: a page of 500 DestinationRules
/// took about 4 MiB while it was decoded.
const KIND_PAGE: u32 = 100;

/// How often discovery is asked whether the admission API is served, until it is.
const DISCOVERY_PERIOD: Duration = Duration::from_secs(30);

fn key_of(meta: &kube::api::ObjectMeta) -> Option<Key> {
    Some(key(
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref()?,
    ))
}

/// Starts every watcher; the Istio ones start later, from the CRD watcher.
pub fn spawn_all(ctx: Arc<Ctx>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let client = ctx.client.clone();
    let c = ctx.clone();
    let api = Api::<Namespace>::all(client.clone());
    set.spawn(async move {
        let changed = |key: &Key, old: Option<&Arc<NamespaceInfo>>, new: Option<&_>| {
            c.namespace_changed(&key.1, old, new)
        };
        let cache = &c.index.namespaces;
        run_watcher(
            "namespaces",
            api,
            PAGE,
            &c.metrics,
            cache,
            trim_namespace,
            changed,
        )
        .await
    });
    let c = ctx.clone();
    let api = Api::<Pod>::all(client.clone());
    set.spawn(async move {
        let trim = |pod| trim_pod(&c.index, pod);
        let changed = |key: &Key, old: Option<&Arc<PodInfo>>, new: Option<&Arc<PodInfo>>| {
            c.pod_changed(key, old.map(|p| &**p), new.map(|p| &**p))
        };
        run_watcher("pods", api, PAGE, &c.metrics, &c.index.pods, trim, changed).await
    });
    let c = ctx.clone();
    let api = Api::<Service>::all(client.clone());
    set.spawn(async move {
        let changed =
            |_: &Key, _: Option<&ServiceInfo>, _: Option<&ServiceInfo>| c.inventory_changed();
        let cache = &c.index.services;
        run_watcher(
            "services",
            api,
            PAGE,
            &c.metrics,
            cache,
            trim_service,
            changed,
        )
        .await
    });
    set.spawn(watch_kind(ctx.clone(), Kind::NetworkPolicy));
    set.spawn(discover_admission(ctx.clone()));
    let c = ctx.clone();
    let api = Api::<CustomResourceDefinition>::all(client);
    set.spawn(async move {
        let changed = |_: &Key, old: Option<&Served>, new: Option<&Served>| {
            if let Some(kind) = new.or(old).map(|(k, _)| *k) {
                kind_served(&c, kind, new.and_then(|(_, v)| *v));
            }
        };
        let (what, cache) = ("customresourcedefinitions", &c.index.crds);
        run_watcher(what, api, PAGE, &c.metrics, cache, trim_crd, changed).await
    });
    set
}

/// A CRD of an optional kind: the kind, and the newest version it serves that we use.
type Served = (Kind, Option<&'static str>);

pub(super) fn trim_namespace(ns: Namespace) -> Option<(Key, Arc<NamespaceInfo>)> {
    Some((key_of(&ns.metadata)?, Arc::new(NamespaceInfo::from(&ns))))
}

/// Only the trimmed `PodInfo` is kept: status churn other than the phase is invisible.
pub(super) fn trim_pod(index: &Index, pod: Pod) -> Option<(Key, Arc<PodInfo>)> {
    let mut info = PodInfo::from_pod(&pod).interned(&mut index.pod_shapes.lock());
    // A known pod (most events: status updates) takes its key's names; only a new one interns
    // its namespace.
    let probe = (info.namespace.clone(), info.name.clone());
    let key = index
        .pods
        .key_of(&probe)
        .unwrap_or_else(|| pod_key(&info.namespace, info.name.clone()));
    info.namespace = key.0.clone();
    info.name = key.1.clone();
    Some((key, Arc::new(info)))
}

fn trim_service(svc: Service) -> Option<(Key, ServiceInfo)> {
    Some((key_of(&svc.metadata)?, ServiceInfo::from(&svc)))
}

fn trim_crd(crd: CustomResourceDefinition) -> Option<(Key, Served)> {
    let kind = Kind::ALL.into_iter().find(|k| {
        k.from_crd() && crd.spec.group == k.group() && crd.spec.names.plural == k.plural()
    })?;
    let served = crd.spec.versions.iter().filter(|v| v.served);
    let version = newest_served(kind, served.map(|v| v.name.as_str()));
    Some((key_of(&crd.metadata)?, (kind, version)))
}

/// Asks discovery whether the cluster serves ValidatingAdmissionPolicy (Kubernetes 1.30+),
/// until it does; the admission watches start then.
async fn discover_admission(ctx: Arc<Ctx>) {
    let kinds = [
        Kind::ValidatingAdmissionPolicy,
        Kind::ValidatingAdmissionPolicyBinding,
    ];
    let gv = Kind::ValidatingAdmissionPolicy.api_version();
    loop {
        let served = match ctx.client.list_api_group_resources(&gv).await {
            Ok(list) => kinds
                .iter()
                .all(|k| list.resources.iter().any(|r| r.name == k.plural())),
            // Not served at all answers 404 here.
            Err(e) => {
                tracing::warn!(%gv, error = %e, "discovery failed");
                false
            }
        };
        if served {
            for k in kinds {
                kind_served(&ctx, k, Some(k.version()));
            }
        } else {
            tracing::warn!(%gv, "ValidatingAdmissionPolicy not served: no admission guards");
        }
        // Known either way now: reconciles may start (the watches must still fill).
        if !ctx.index.admission_discovered.swap(true, Ordering::AcqRel) {
            ctx.index.readiness.changed();
            ctx.triggers.all();
        }
        if served {
            return;
        }
        tokio::time::sleep(DISCOVERY_PERIOD).await;
    }
}

/// One watch per generated kind, for tenant and generated objects alike.
async fn watch_kind(ctx: Arc<Ctx>, kind: Kind) {
    let api =
        Api::<DynamicObject>::all_with(ctx.client.clone(), &ctx.index.served.api_resource(kind));
    let Some(cache) = ctx.index.kinds.get(&kind) else {
        return; // every kind has a cache (Ctx::new)
    };
    run_watcher(
        kind.plural(),
        api,
        KIND_PAGE,
        &ctx.metrics,
        cache,
        |obj| trim(kind, obj),
        |key, old, new| ctx.kind_changed(kind, key, old, new, true),
    )
    .await
}

/// An optional kind appeared, disappeared or changed its served version.
fn kind_served(ctx: &Arc<Ctx>, kind: Kind, version: Option<&'static str>) {
    let mut tasks = ctx.dynamic_watches.lock();
    let changed = ctx.index.served.set(kind, version);
    if changed {
        ctx.index.readiness.changed();
    }
    if changed && version.is_some() {
        // A different version: watch at the new one.
        if let Some(task) = tasks.remove(&kind) {
            task.abort();
        }
    }
    let served = version.is_some();
    if served && !tasks.contains_key(&kind) {
        tracing::info!(%kind, "CRD available: watching");
        // Everything is reconciled once the new cache is filled; in the watch's task, so that
        // stopping the watch stops the wait too.
        let c = ctx.clone();
        let filled = async move {
            if let Some(cache) = c.index.kinds.get(&kind) {
                c.index.readiness.until(|| cache.synced()).await;
                c.inventory_changed();
            }
        };
        let watch = watch_kind(ctx.clone(), kind);
        let handle = tokio::spawn(async move {
            tokio::join!(watch, filled);
        });
        tasks.insert(kind, handle.abort_handle());
    } else if !served {
        if let Some(task) = tasks.remove(&kind) {
            tracing::warn!(%kind, "CRD gone: no longer watching");
            task.abort();
            if let Some(cache) = ctx.index.kinds.get(&kind) {
                for (key, old, new) in cache.clear() {
                    ctx.kind_changed(kind, &key, old.as_ref(), new.as_ref(), true);
                }
            }
            ctx.inventory_changed();
        }
    }
}

/// Feeds a watch of `api` into `cache`. `trim` turns an object into its key and trimmed value;
/// `on_change(key, old, new)` runs for every real change, listed objects included.
/// `page_size`: objects per page where lists go in pages.
pub(super) async fn run_watcher<K, V>(
    what: &'static str,
    api: Api<K>,
    page_size: u32,
    metrics: &Metrics,
    cache: &Cache<V>,
    trim: impl Fn(K) -> Option<(Key, V)>,
    on_change: impl Fn(&Key, Option<&V>, Option<&V>),
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    V: Clone + PartialEq,
{
    let mut lists = Lists::new();
    let watch = |how: Listing| {
        watcher(api.clone(), how.config(page_size))
            .default_backoff()
            .boxed()
    };
    let mut stream = watch(lists.how);
    while let Some(ev) = stream.next().await {
        if let Some(how) = lists.next(&ev) {
            match &ev {
                Err(e) => tracing::info!(what, error = %e, listing = how.as_str(), "listing again"),
                Ok(_) => tracing::info!(
                    what,
                    listing = how.as_str(),
                    "a streamed list broke off: listing again"
                ),
            }
            stream = watch(how);
            continue;
        }
        match ev {
            // Listed objects are applied like watch events: the cache notes their keys.
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                applied(cache, trim(obj), &on_change)
            }
            Ok(watcher::Event::Delete(obj)) => {
                deleted(cache, trim(obj).map(|(key, _)| key), &on_change)
            }
            Ok(watcher::Event::Init) => cache.init(),
            Ok(watcher::Event::InitDone) => {
                for (key, old) in cache.init_done() {
                    on_change(&key, Some(&old), None);
                }
                metrics.watch_listed(what, lists.how.as_str());
                tracing::debug!(what, listing = lists.how.as_str(), "cache synced");
            }
            // The watcher retries with backoff; the cache keeps its last content meanwhile.
            Err(e) => tracing::warn!(what, error = %e, "watch failed"),
        }
    }
}

/// An object applied (or listed): into the cache, and `on_change` when its trimmed value is
/// new or differs.
pub(super) fn applied<V: Clone + PartialEq>(
    cache: &Cache<V>,
    trimmed: Option<(Key, V)>,
    on_change: impl Fn(&Key, Option<&V>, Option<&V>),
) {
    let Some((key, v)) = trimmed else { return };
    let new = v.clone();
    if let Some(old) = cache.apply(key.clone(), v) {
        on_change(&key, old.as_ref(), Some(&new));
    }
}

/// An object deleted: out of the cache, and `on_change` when it was there.
pub(super) fn deleted<V: Clone + PartialEq>(
    cache: &Cache<V>,
    key: Option<Key>,
    on_change: impl Fn(&Key, Option<&V>, Option<&V>),
) {
    let Some(key) = key else { return };
    if let Some(old) = cache.delete(&key) {
        on_change(&key, Some(&old), None);
    }
}
