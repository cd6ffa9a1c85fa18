//! One reconcile of one baseline: caches -> inventory -> compile, audit -> plan -> executor.
//! Compile and audit results are reused while the inventory and the baselines are unchanged,
//! so a watch event on a generated object (drift) costs only the plan and the repair.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tracing::Instrument;

use crate::api::baseline::MeshBaselineStatus;
use crate::api::{Baseline, InvalidBaseline, MeshBaseline};
use crate::audit::{Finding, PodCounts};
use crate::compile::Compiled;
use crate::inventory::{Inventory, NamespaceInfo, Namespaces, PodInfo, PodShapes, ServiceInfo};
use crate::object::{Kind, ObjectKey};
use crate::plan::{self, FindingId, PlanInput, Resolved, Spec};
use crate::telemetry::{Health, Metrics};

use super::cache::{Cache, Key, Triggers};
use super::executor::Executor;
use super::lease::Leadership;
use super::objects::{GeneratedIndex, KindEntry};
use super::served::Served;

/// Compile and audit results, cached per inventory snapshot.
mod compute;
/// Status writes and finding events paced under churn.
mod pacing;
/// What the controller remembers about a baseline between reconciles.
mod records;

#[derive(Default)]
struct BaselineState {
    uid: Option<String>,
    last_good: Option<Baseline>,
    computed: Option<Computed>,
    previous_compiled: Option<Arc<Compiled>>,
    seen: BTreeSet<FindingId>,
    /// The status we last wrote: the watch may not have delivered it yet.
    last_status: Option<MeshBaselineStatus>,
    /// Istio kinds missing at the last successful reconcile.
    last_missing: BTreeSet<Kind>,
    /// Every key this baseline has wanted since the start, while the object may still exist
    /// (`PlanInput::records`), and the compile output last merged into it.
    records: Arc<BTreeSet<ObjectKey>>,
    records_for: Option<Arc<Compiled>>,
    /// The resync epoch of the last complete plan that succeeded.
    resync_epoch: u64,
    pacing: pacing::Pacing,
    failures: u32,
}

/// (inventory, generated-objects, pods) versions of an inventory snapshot.
type InventoryVersion = (u64, u64, u64);

/// Compile and audit output, valid for one inventory version and one set of baselines, until
/// the next exemption expiry.
#[derive(Clone)]
struct Computed {
    inventory_version: u64,
    /// `Triggers::compile_version` when compiled: while it stays, an inventory change only
    /// needs a new audit.
    compile_version: u64,
    /// The audit's input also counts generated objects (`Triggers::generated_presence`).
    generated_presence: u64,
    fingerprint: String,
    valid_until: Option<Timestamp>,
    compiled: Arc<Compiled>,
    findings: Arc<Vec<Finding>>,
    resolved: Resolved,
    inventory: Arc<Inventory>,
    /// Workload posture counts, and when they were computed: again with every full audit,
    /// and for pod changes alone at most every `POSTURE_REFRESH`.
    posture: Arc<crate::api::baseline::PostureStatus>,
    posture_at: std::time::Instant,
}

pub struct Ctx {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// The local lease deadline: checked before every reconcile and every write.
    pub leadership: Arc<Leadership>,
    /// Bumped by every full resync: a baseline whose last complete plan is older takes the
    /// complete path, not the drift fast path.
    resync_epoch: AtomicU64,
    pub baselines: Store<MeshBaseline>,
    pub triggers: Arc<Triggers>,
    pub executor: Executor,
    /// Shared with `namespace_index`.
    pub namespaces: Cache<Arc<NamespaceInfo>>,
    /// Shared with inventory snapshots (which copy the pointers).
    pub pods: Cache<Arc<PodInfo>>,
    /// What pods have in common with their replicas, one copy each.
    pub pod_shapes: Mutex<PodShapes>,
    pub services: Cache<ServiceInfo>,
    pub kinds: BTreeMap<Kind, Cache<KindEntry>>,
    pub generated: GeneratedIndex,
    /// CRDs of optional kinds by name: (kind, the newest version it serves that we use).
    pub crds: Cache<(Kind, Option<&'static str>)>,
    /// What the cluster serves of the optional kinds, shared with the executor.
    pub served: Arc<Served>,
    /// Watches of the optional kinds (Istio's, ClusterNetworkPolicy, the admission kinds),
    /// started and stopped as the cluster starts or stops serving them.
    pub dynamic_tasks: Mutex<HashMap<Kind, tokio::task::AbortHandle>>,
    /// The operator's own username, which the generated admission policies let through.
    pub operator_user: String,
    /// See `Config::write_batch`.
    pub write_batch: Duration,
    /// Discovery has answered once whether the admission API is served: until then a plan
    /// would report it missing (MB901) and announce that in an Event on every start.
    pub admission_discovered: AtomicBool,
    state: Mutex<HashMap<String, BaselineState>>,
    inventory: Mutex<Option<(InventoryVersion, Arc<Inventory>)>>,
    /// (uid, generation, creation) per baseline: a change re-reconciles every baseline
    /// (overlaps), status-only updates do not.
    identities: Mutex<BTreeMap<String, String>>,
    /// Generated objects changed by someone else since the baseline's last reconcile.
    dirty: Mutex<HashMap<String, BTreeSet<ObjectKey>>>,
    /// Our own records (`BaselineState::records`) by baseline uid. With the ownerReference uid
    /// they decide which objects are ours; labels do not.
    records: Mutex<HashMap<String, Arc<BTreeSet<ObjectKey>>>>,
    /// What the audit reads across pods; decides whether a pod event is that pod's alone.
    pod_counts: Mutex<PodCounts>,
    /// The namespaces by name as snapshots share them, kept up to date per Namespace event.
    namespace_index: Mutex<Namespaces>,
    /// Pods changed on their own since the baseline's findings were computed.
    dirty_pods: Mutex<HashMap<String, BTreeSet<Key>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// Leadership was lost during the plan; the rest of it was not executed.
    #[error("leadership lost")]
    NotLeader,
}

impl ReconcileError {
    fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            ReconcileError::Kube(kube::Error::Api(_)) => "api",
            ReconcileError::Kube(_) => "other",
            ReconcileError::NotLeader => "not_leader",
        }
    }
}

fn identity(mb: &MeshBaseline) -> String {
    format!(
        "{:?}/{:?}/{:?}",
        mb.metadata.uid,
        mb.metadata.generation,
        mb.metadata.creation_timestamp.as_ref().map(|t| t.0)
    )
}

impl Ctx {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        leadership: Arc<Leadership>,
        baselines: Store<MeshBaseline>,
        pod_name: String,
        operator_user: String,
    ) -> Ctx {
        let served = Arc::new(Served::default());
        Ctx {
            executor: Executor::new(
                client.clone(),
                metrics.clone(),
                Some(pod_name),
                leadership.clone(),
                served.clone(),
            ),
            client,
            metrics,
            health,
            leadership,
            resync_epoch: AtomicU64::new(0),
            baselines,
            triggers: Arc::new(Triggers::default()),
            namespaces: Cache::default(),
            pods: Cache::default(),
            services: Cache::default(),
            kinds: Kind::ALL
                .into_iter()
                .map(|k| (k, Cache::default()))
                .collect(),
            generated: GeneratedIndex::default(),
            crds: Cache::default(),
            served,
            dynamic_tasks: Mutex::new(HashMap::new()),
            operator_user,
            write_batch: Duration::from_secs(2),
            admission_discovered: AtomicBool::new(false),
            state: Mutex::new(HashMap::new()),
            inventory: Mutex::new(None),
            identities: Mutex::new(BTreeMap::new()),
            dirty: Mutex::new(HashMap::new()),
            records: Mutex::new(HashMap::new()),
            pod_counts: Mutex::new(PodCounts::default()),
            namespace_index: Mutex::new(Namespaces::default()),
            pod_shapes: Mutex::new(PodShapes::default()),
            dirty_pods: Mutex::new(HashMap::new()),
        }
    }

    /// Baseline watch events: a new, deleted or re-specified baseline can change every
    /// baseline's scope.
    pub fn baseline_event(&self, ev: &Result<watcher::Event<MeshBaseline>, watcher::Error>) {
        let Ok(ev) = ev else { return };
        let mut ids = self.identities.lock().unwrap_or_else(|e| e.into_inner());
        match ev {
            watcher::Event::Apply(mb) | watcher::Event::InitApply(mb) => {
                let name = mb.name_any();
                let id = identity(mb);
                if ids.get(&name) != Some(&id) {
                    ids.insert(name, id);
                    self.triggers.all();
                }
            }
            watcher::Event::Delete(mb) => {
                let name = mb.name_any();
                if let Some(uid) = &mb.metadata.uid {
                    self.records
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(uid);
                }
                ids.remove(&name);
                self.state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&name);
                self.dirty_pods
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&name);
                self.metrics.set_baseline(&name, None);
                self.metrics.set_posture(&name, None);
                self.triggers.all();
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    /// Optional kinds the cluster does not serve (or whose cache is not filled yet).
    fn missing_kinds(&self) -> BTreeSet<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::NetworkPolicy)
            .filter(|k| {
                let served = self.served.version(*k).is_some();
                !(served && self.kinds.get(k).is_some_and(Cache::synced))
            })
            .collect()
    }

    /// Caches filled: reconciling earlier would write objects that merely were not seen yet.
    pub fn caches_synced(&self) -> bool {
        let dynamic_ok = Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::NetworkPolicy && self.served.version(*k).is_some())
            .all(|k| self.kinds.get(&k).is_some_and(Cache::synced));
        self.namespaces.synced()
            && self.pods.synced()
            && self.services.synced()
            && self.crds.synced()
            && self
                .kinds
                .get(&Kind::NetworkPolicy)
                .is_some_and(Cache::synced)
            && dynamic_ok
            && self.admission_discovered.load(Ordering::Acquire)
    }
}

pub async fn reconcile(mb: Arc<MeshBaseline>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let name = mb.name_any();
    let span = tracing::info_span!("reconcile", baseline = %name);
    reconcile_inner(mb, ctx).instrument(span).await
}

async fn reconcile_inner(mb: Arc<MeshBaseline>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if !ctx.caches_synced() || !ctx.leadership.may_write() {
        // Re-triggered when the caches sync or leadership is acquired.
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let now = Timestamp::now();
    let name = mb.name_any();
    let uid = mb.metadata.uid.clone();
    let validated: Result<Baseline, InvalidBaseline> = Baseline::try_from(mb.as_ref());
    let dirty = ctx
        .dirty
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&name)
        .unwrap_or_default();

    let epoch = ctx.resync_epoch.load(Ordering::Acquire);
    let (plan, computed, next_expiry, fast, status_wait) = {
        let mut states = ctx.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = states.remove(&name).unwrap_or_default();
        drop(states);
        if state.uid != uid {
            state = BaselineState {
                uid: uid.clone(),
                ..BaselineState::default()
            };
        }
        if let Ok(b) = &validated {
            state.last_good = Some(b.clone());
        }
        let computed = validated
            .as_ref()
            .ok()
            .map(|b| ctx.compute(b, &mut state, now, !dirty.is_empty()));
        if let Some(c) = &computed {
            ctx.update_records(&mut state, &c.compiled);
        }
        let empty = Compiled::default();
        let no_overlap = Resolved::default();
        let no_inventory = Inventory::default();
        let missing = ctx.missing_kinds();
        let previous = state.last_status.clone().or_else(|| mb.status.clone());
        // Drift fast path: when nothing but generated objects changed since a successful
        // reconcile with the same compile output, only those objects need comparing.
        let fast = state.failures == 0
            && state.resync_epoch == epoch
            && state.last_status.is_some()
            && state.last_missing == missing
            && computed.as_ref().is_some_and(|c| {
                state
                    .previous_compiled
                    .as_ref()
                    .is_some_and(|p| Arc::ptr_eq(p, &c.compiled))
            });
        let spec = match &validated {
            Ok(b) => Spec::Valid(b),
            Err(e) => Spec::Invalid(e),
        };
        let p = ctx.generated.with(|observed| {
            plan::plan(&PlanInput {
                name: &name,
                uid: uid.as_deref(),
                generation: mb.metadata.generation,
                spec,
                compiled: computed.as_ref().map_or(&empty, |c| &c.compiled),
                observed,
                findings: computed.as_ref().map_or(&[], |c| c.findings.as_slice()),
                posture: computed.as_ref().map(|c| &*c.posture),
                inventory: computed.as_ref().map_or(&no_inventory, |c| &c.inventory),
                overlap: computed.as_ref().map_or(&no_overlap, |c| &c.resolved),
                missing_kinds: &missing,
                previous: previous.as_ref(),
                previous_compiled: state.previous_compiled.as_deref(),
                records: &state.records,
                previous_findings: &state.seen,
                only: fast.then_some(&dirty),
                now,
            })
        });
        let mut p = p;
        let status_wait = state
            .pacing
            .pace(&mut p, state.last_status.as_ref(), Instant::now());
        let next_expiry = computed.as_ref().and_then(|c| c.valid_until);
        state.last_missing = missing;
        ctx.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), state);
        (p, computed, next_expiry, fast, status_wait)
    };
    // Error counters count errors, not reconciles: an invalid spec is counted when the status
    // first reports it (a new generation or message), not again on every later drift repair,
    // resync or inventory change while it stays invalid; missing CRDs likewise.
    if validated.is_err()
        && plan.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Invalid" && c.status == "True")
        })
    {
        ctx.metrics.reconcile_error("invalid_spec");
    }
    if plan.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.reason == "IstioCRDsMissing" && c.status == "True")
    }) {
        ctx.metrics.reconcile_error("crd_missing");
    }

    let mut outcome = super::execute::Outcome {
        progress: 0,
        left: 0,
        status: None,
    };
    let result = super::execute::execute(&ctx, &mb, &plan, &mut outcome).await;
    let progress = outcome.progress;
    let elapsed = started.elapsed();
    ctx.metrics
        .reconcile_duration
        .observe(elapsed.as_secs_f64());
    {
        let mut states = ctx.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = states.get_mut(&name) {
            match &result {
                // Cut short: what the plan remembers (announced findings, the compile
                // output of the fast path) waits for the pass that finishes.
                Ok(()) if outcome.left > 0 => state.failures = 0,
                Ok(()) => {
                    state.failures = 0;
                    state.seen = plan.findings_seen.clone();
                    if let Some(c) = &computed {
                        state.previous_compiled = Some(c.compiled.clone());
                    }
                    if !fast {
                        state.resync_epoch = epoch;
                    }
                }
                // Backoff grows only while nothing gets through: under a share of failing
                // requests, a reconcile that wrote something starts the backoff over, so
                // convergence is not held up by long waits.
                Err(_) if progress > 0 => state.failures = 1,
                Err(_) => state.failures = state.failures.saturating_add(1),
            }
            // What was written is what the next plan compares with (the watch may not have
            // delivered it yet), also after a failure: a status naming failed writes must be
            // replaced once they succeed.
            if let Some(s) = outcome.status.take() {
                state
                    .pacing
                    .status_written(Instant::now(), &s, state.last_status.as_ref());
                state.last_status = Some(s);
            }
        }
    }
    if let Some(c) = &computed {
        ctx.metrics.set_posture(&name, Some(&c.posture.total));
        ctx.metrics.set_baseline(
            &name,
            Some((
                &c.findings,
                ctx.generated.count(uid.as_deref()),
                c.compiled.protected.len(),
            )),
        );
    }
    match result {
        Ok(()) if outcome.left > 0 => {
            tracing::debug!(
                written = progress,
                left = outcome.left,
                "write batch done; planning again"
            );
            Ok(Action::requeue(Duration::ZERO))
        }
        Ok(()) => {
            ctx.metrics.reconciled(true);
            tracing::debug!(
                applies = plan.applies.len(),
                deletes = plan.deletes.len(),
                reverts = plan.reverts.len(),
                status = plan.status.is_some(),
                micros = elapsed.as_micros() as u64,
                "reconciled"
            );
            // Timed wake-ups: an exemption expires, a held-back status is due.
            let expiry = next_expiry.map(|t| {
                Duration::try_from(t.duration_since(Timestamp::now()))
                    .unwrap_or(Duration::ZERO)
                    .max(Duration::from_millis(100))
            });
            let status_due = status_wait.map(|w| w.max(Duration::from_millis(10)));
            Ok(match (expiry, status_due) {
                (Some(a), Some(b)) => Action::requeue(a.min(b)),
                (Some(a), None) | (None, Some(a)) => Action::requeue(a),
                (None, None) => Action::await_change(),
            })
        }
        // Not an error: another replica writes now; leadership changes trigger a full pass.
        Err(ReconcileError::NotLeader) => {
            tracing::info!("leadership lost; plan stopped");
            Ok(Action::await_change())
        }
        Err(e) => {
            ctx.metrics.reconciled(false);
            ctx.metrics.reconcile_error(e.reason());
            Err(e)
        }
    }
}

pub fn error_policy(mb: Arc<MeshBaseline>, err: &ReconcileError, ctx: Arc<Ctx>) -> Action {
    let failures = ctx
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&mb.name_any())
        .map_or(1, |s| s.failures.max(1));
    let delay = Duration::from_millis(200)
        .saturating_mul(1 << failures.min(9))
        .min(Duration::from_secs(60));
    tracing::warn!(baseline = %mb.name_any(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
