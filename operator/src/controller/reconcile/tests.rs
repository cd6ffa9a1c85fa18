//! The freshness model end to end: for random sequences of cluster changes (pods, namespace
//! labels, tenants' objects, drift, forged claims, resyncs), the controller's incremental
//! reconciles (reused results, re-audited pods, the drift fast path) end where planning from
//! scratch ends: the same findings, the same desired objects, and a cluster in which a plan
//! made from nothing finds nothing to write; and, once due, the same posture counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use kube::Client;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::audit::{self, Finding};
use crate::compile::names;
use crate::controller::cache::Key;
use crate::controller::freshness::POSTURE_REFRESH;
use crate::controller::lease::Leadership;
use crate::controller::watch::{applied, deleted, trim_namespace, trim_pod};
use crate::controller::{objects, Ctx};
use crate::object::Kind;
use crate::telemetry::{Health, Metrics};

mod changes;
use changes::{apply, change, namespace, put, Change};

const UID: &str = "b-uid";
const NAMESPACES: [&str; 3] = ["payments", "shop", "ledger"];
const ROOT: &str = "istio-system";
const SERVED: [Kind; 4] = [
    Kind::PeerAuthentication,
    Kind::DestinationRule,
    Kind::AuthorizationPolicy,
    Kind::Sidecar,
];

fn now() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

/// The baseline; `revert`: tenantOverrides Revert (else Report).
fn baseline(revert: bool) -> MeshBaseline {
    let overrides = if revert { "Revert" } else { "Report" };
    serde_json::from_value(json!({
        "apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "b", "uid": UID, "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"mode": "Enforce", "rootNamespace": ROOT,
            "namespaceSelector": {"matchLabels": {"mesh": "on"}},
            "tenantOverrides": overrides}
    }))
    .unwrap()
}

/// A client that no request ever reaches: the tests execute plans themselves.
fn no_client() -> Client {
    let svc = tower::service_fn(|_: Request<kube::client::Body>| async {
        Err::<Response<Full<Bytes>>, _>(std::io::Error::other("no API server in this test"))
    });
    Client::new(svc, "default")
}

/// A controller whose caches are filled (empty) and whose Istio kinds are served.
fn controller() -> (Arc<Ctx>, Writer<MeshBaseline>) {
    let (store, writer) = reflector::store::<MeshBaseline>();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health {
        metrics: metrics.clone(),
        ready: Default::default(),
    });
    let leadership = Arc::new(Leadership::always());
    let user = "system:serviceaccount:mb:mb".to_string();
    let ctx = Ctx::new(
        no_client(),
        metrics,
        health,
        leadership,
        store,
        "t".into(),
        user,
    );
    for kind in SERVED {
        ctx.index.served.set(kind, Some(kind.version()));
    }
    let idx = &ctx.index;
    idx.admission_discovered
        .store(true, std::sync::atomic::Ordering::Release);
    idx.namespaces.init();
    idx.namespaces.init_done();
    idx.pods.init();
    idx.pods.init_done();
    idx.services.init();
    idx.services.init_done();
    idx.crds.init();
    idx.crds.init_done();
    for cache in idx.kinds.values() {
        cache.init();
        cache.init_done();
    }
    assert!(idx.synced());
    (Arc::new(ctx), writer)
}

/// The cluster as the API server holds it: objects by (kind, namespace, name).
#[derive(Clone, Default)]
struct Cluster {
    objects: BTreeMap<(String, String, String), Value>,
    version: u64,
}

type Id = (String, String, String);

fn id(kind: &str, ns: &str, name: &str) -> Id {
    (kind.into(), ns.into(), name.into())
}

fn kind_of(name: &str) -> Option<Kind> {
    Kind::from_name(name)
}

impl Cluster {
    /// Stores `obj` as the API server would (a new resourceVersion; uid and creation kept).
    fn store(&mut self, mut obj: Value) -> Value {
        self.version += 1;
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let meta = &obj["metadata"];
        let ns = meta["namespace"].as_str().unwrap_or_default().to_string();
        let name = meta["name"].as_str().unwrap_or_default().to_string();
        let key = id(&kind, &ns, &name);
        let (uid, created) = match self.objects.get(&key) {
            Some(old) => (
                old["metadata"]["uid"].clone(),
                old["metadata"]["creationTimestamp"].clone(),
            ),
            None => (
                Value::String(format!("uid-{}", self.version)),
                Value::String("2026-05-01T00:00:00Z".into()),
            ),
        };
        let m = &mut obj["metadata"];
        m["resourceVersion"] = Value::String(self.version.to_string());
        m["uid"] = uid;
        m["creationTimestamp"] = created;
        self.objects.insert(key, obj.clone());
        obj
    }

    fn remove(&mut self, kind: &str, ns: &str, name: &str) -> bool {
        self.objects.remove(&id(kind, ns, name)).is_some()
    }
}

/// What the watches deliver of a stored (or deleted) object.
fn deliver(ctx: &Ctx, obj: &Value, gone: bool, by_others: bool) {
    let kind = obj["kind"].as_str().unwrap_or_default();
    match kind {
        "Namespace" => {
            let ns: Namespace = serde_json::from_value(obj.clone()).unwrap();
            let changed =
                |k: &Key, o: Option<&Arc<_>>, n: Option<&Arc<_>>| ctx.namespace_changed(&k.1, o, n);
            if gone {
                deleted(
                    &ctx.index.namespaces,
                    trim_namespace(ns).map(|(k, _)| k),
                    changed,
                );
            } else {
                applied(&ctx.index.namespaces, trim_namespace(ns), changed);
            }
        }
        "Pod" => {
            let pod: Pod = serde_json::from_value(obj.clone()).unwrap();
            let changed = |k: &Key, o: Option<&Arc<_>>, n: Option<&Arc<_>>| {
                ctx.pod_changed(k, o.map(|p| &**p), n.map(|p| &**p))
            };
            let trimmed = trim_pod(&ctx.index, pod);
            if gone {
                deleted(&ctx.index.pods, trimmed.map(|(k, _)| k), changed);
            } else {
                applied(&ctx.index.pods, trimmed, changed);
            }
        }
        _ => {
            let kind = kind_of(kind).unwrap();
            let dynamic: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
            let cache = &ctx.index.kinds[&kind];
            let changed =
                |k: &Key, o: Option<&_>, n: Option<&_>| ctx.kind_changed(kind, k, o, n, by_others);
            let trimmed = objects::trim(kind, dynamic);
            if gone {
                deleted(cache, trimmed.map(|(k, _)| k), changed);
            } else {
                applied(cache, trimmed, changed);
            }
        }
    }
}

/// Executes a plan as the API server and the executor would: writes stored, their responses
/// written through to the caches.
fn execute(ctx: &Ctx, cluster: &mut Cluster, plan: &Plan) -> execute::Outcome {
    let mut progress = 0;
    for a in &plan.applies {
        let stored = cluster.store(a.manifest());
        ctx.wrote(a.key.kind, serde_json::from_value(stored).unwrap());
        progress += 1;
    }
    for k in &plan.deletes {
        assert!(cluster.remove(k.kind.name(), &k.namespace, &k.name));
        ctx.deleted(k);
        progress += 1;
    }
    for r in &plan.reverts {
        let at = id(r.key.kind.name(), &r.key.namespace, &r.key.name);
        // The patch's uid is a precondition: a gone or re-made object is left alone (409).
        let uid = r
            .patch
            .pointer("/metadata/uid")
            .expect("a revert names the uid");
        let Some(mut obj) = cluster.objects.get(&at).cloned() else {
            progress += 1;
            continue;
        };
        if obj.pointer("/metadata/uid") != Some(uid) {
            progress += 1;
            continue;
        }
        merge(&mut obj, &r.patch);
        let stored = cluster.store(obj);
        ctx.wrote(r.key.kind, serde_json::from_value(stored).unwrap());
        progress += 1;
    }
    execute::Outcome {
        progress,
        left: 0,
        status: plan.status.clone(),
        result: Ok(()),
    }
}

/// `patch` applied over `obj` as a server-side apply of its fields does.
fn merge(obj: &mut Value, patch: &Value) {
    match (obj, patch) {
        (Value::Object(o), Value::Object(p)) => {
            for (k, v) in p {
                merge(o.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (o, p) => *o = p.clone(),
    }
}

/// Reconciles at `at` until nothing is written and nothing is pending, as the controller's
/// queue would; returns the passes it took.
fn settle(
    ctx: &Ctx,
    cluster: &mut Cluster,
    mb: &MeshBaseline,
    at: Timestamp,
) -> Result<usize, TestCaseError> {
    for passes in 1..=10 {
        let pass = prepare(ctx, mb, at);
        let outcome = execute(ctx, cluster, &pass.plan);
        let wrote = outcome.progress > 0;
        prop_assert!(record::record(ctx, pass, outcome, Duration::ZERO).is_ok());
        let (pending, all) = ctx.triggers.take();
        if !wrote && pending.is_empty() && !all {
            return Ok(passes);
        }
    }
    Err(TestCaseError::fail("not settled after 10 passes"))
}

fn sorted(findings: &[Finding]) -> Vec<Finding> {
    let mut f = findings.to_vec();
    audit::sort(&mut f);
    f
}

/// The first reconcile, at `at`, of a fresh controller that sees `cluster` as it is.
fn from_scratch(cluster: &Cluster, mb: &MeshBaseline, at: Timestamp) -> Pass {
    let (ctx, mut writer) = controller();
    writer.apply_watcher_event(&watcher::Event::Apply(mb.clone()));
    ctx.baseline_event(&Ok(watcher::Event::Apply(mb.clone())));
    for obj in cluster.objects.values() {
        deliver(&ctx, obj, false, true);
    }
    prepare(&ctx, mb, at)
}

/// The incremental controller agrees with a fresh one that sees the same cluster at `at`
/// (posture counts aside: they may be kept while fresh, see `posture_agrees_once_due`).
fn agrees_with_scratch(
    ctx: &Ctx,
    cluster: &Cluster,
    mb: &MeshBaseline,
    at: Timestamp,
) -> Result<(), TestCaseError> {
    let scratch = from_scratch(cluster, mb, at);
    let fresh = scratch.results.as_ref().unwrap();
    let held = ctx
        .baselines
        .with_memory("b", |m| m.results.clone())
        .flatten();
    let held = held.ok_or_else(|| TestCaseError::fail("no results"))?;
    prop_assert_eq!(sorted(&held.findings), sorted(&fresh.findings));
    prop_assert_eq!(&held.compiled.objects, &fresh.compiled.objects);
    let writes: Vec<String> = scratch
        .plan
        .applies
        .iter()
        .map(|a| a.key.to_string())
        .collect();
    prop_assert!(
        writes.is_empty(),
        "left for a fresh controller to write: {writes:?}"
    );
    // Nothing the baseline claims is left behind but the tenant's forgeries.
    let desired: BTreeSet<String> = fresh
        .compiled
        .objects
        .iter()
        .map(|o| o.key.to_string())
        .collect();
    for ((kind, ns, name), obj) in &cluster.objects {
        let claimed = obj.pointer("/metadata/ownerReferences/0/uid") == Some(&json!(UID));
        let key = format!("{kind} {ns}/{name}");
        if claimed && name != "meshbaseline-forged" {
            prop_assert!(desired.contains(&key), "{key} left behind");
        }
    }
    Ok(())
}

/// Once the posture counts are due, with nothing else changed, a pass brings them to what a
/// fresh controller computes. Returns the time it used.
fn posture_agrees_once_due(
    ctx: &Ctx,
    cluster: &mut Cluster,
    mb: &MeshBaseline,
    at: Timestamp,
) -> Result<Timestamp, TestCaseError> {
    let due = at.checked_add(POSTURE_REFRESH).unwrap();
    settle(ctx, cluster, mb, due)?;
    let scratch = from_scratch(cluster, mb, due);
    let held = ctx
        .baselines
        .with_memory("b", |m| m.results.clone())
        .flatten();
    let held = held.ok_or_else(|| TestCaseError::fail("no results"))?;
    prop_assert_eq!(&held.posture, &scratch.results.unwrap().posture);
    Ok(due)
}

/// Changes come in batches: all of a batch happen before the controller reconciles (a
/// debounce gathers them).
fn run(
    revert: bool,
    start: Vec<u8>,
    pods: Vec<u8>,
    batches: Vec<Vec<Change>>,
) -> Result<(), TestCaseError> {
    // The client's request buffer needs a runtime to exist; no request is ever sent.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (ctx, mut writer) = controller();
    let mut cluster = Cluster::default();
    put(
        &ctx,
        &mut cluster,
        id("Namespace", "", ROOT),
        Some(namespace(ROOT, 0)),
    );
    for (n, labels) in start.iter().enumerate() {
        let ns = NAMESPACES[n];
        put(
            &ctx,
            &mut cluster,
            id("Namespace", "", ns),
            Some(namespace(ns, *labels)),
        );
    }
    for (slot, shape) in pods.iter().enumerate() {
        apply(&ctx, &mut cluster, &Change::Pod(slot, *shape));
    }
    let mb = baseline(revert);
    writer.apply_watcher_event(&watcher::Event::Apply(mb.clone()));
    ctx.baseline_event(&Ok(watcher::Event::Apply(mb.clone())));
    settle(&ctx, &mut cluster, &mb, now())?;
    agrees_with_scratch(&ctx, &cluster, &mb, now())?;
    let mut at = posture_agrees_once_due(&ctx, &mut cluster, &mb, now())?;
    for batch in &batches {
        for change in batch {
            apply(&ctx, &mut cluster, change);
        }
        settle(&ctx, &mut cluster, &mb, at)?;
        agrees_with_scratch(&ctx, &cluster, &mb, at)?;
        at = posture_agrees_once_due(&ctx, &mut cluster, &mb, at)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn incremental_reconciles_end_where_planning_from_scratch_ends(
        start in proptest::collection::vec(0u8..16, 3),
        pods in proptest::collection::vec(0u8..5, 7),
        batches in proptest::collection::vec(proptest::collection::vec(change(), 1..4), 1..16),
        // Last, so that the saved seeds still give the cases they were saved for.
        revert in any::<bool>(),
    ) {
        run(revert, start, pods, batches)?;
    }
}

/// A fresh controller's first pass is what the property compares with: it must compile and
/// compare everything, or the comparison would prove nothing.
#[test]
fn scratch_compiles_and_compares_everything() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut cluster = Cluster::default();
    cluster.store(namespace(ROOT, 0));
    cluster.store(namespace("payments", 0b11));
    let pass = from_scratch(&cluster, &baseline(false), now());
    let d = pass.decision.as_ref().unwrap();
    assert_eq!(d.work, crate::controller::freshness::Work::Compile);
    assert!(!d.fast);
    assert!(
        !pass.plan.applies.is_empty(),
        "nothing written yet: everything is planned"
    );
}
