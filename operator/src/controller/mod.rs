//! The thin shell: watches the cluster into trimmed caches (`watch`, `index`), marks what each
//! change makes stale (`events`, `freshness`), and for each reconcile calls the pure compile,
//! audit and plan, then executes the plan through the one executor (`reconcile`). Only the
//! leader writes (`lease`). docs/architecture.md describes the data flow, the module map and
//! the rules the modules keep.

mod baselines;
mod cache;
mod context;
mod events;
pub mod executor;
mod freshness;
mod identity;
mod index;
pub mod lease;
mod listing;
mod objects;
mod ownership;
mod packed;
mod ratelimit;
mod reconcile;
mod served;
mod watch;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::reflector;
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::watch as signal;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::api::MeshBaseline;
use crate::telemetry::{self, Health, Metrics};

use context::Ctx;

pub use ratelimit::rate_limited;

/// Everything `meshbaseline run` can be told (see `cli::run` for the flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// Where `/metrics`, `/healthz` and `/readyz` listen; `None`: no HTTP server.
    pub metrics_addr: Option<SocketAddr>,
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_namespace: String,
    /// This replica's identity in the Lease and in Events.
    pub pod_name: String,
    /// Client-side rate limit of API requests.
    pub qps: u32,
    pub burst: u32,
    /// How long inventory changes (namespaces, pods, tenant objects) are gathered before every
    /// baseline is reconciled. Changes of generated objects are not delayed.
    pub debounce: Duration,
    /// A full resync (every baseline planned from the caches) this often; `None`: never.
    pub resync: Option<Duration>,
    /// How long one reconcile writes before it yields and plans again: a plan of 30,000
    /// writes (a first install, a new spec) takes 25 minutes at 20 requests a second, and
    /// drift repairs must not wait for all of it. Repairs go first in every pass.
    pub write_batch: Duration,
    /// Lease timings (see `lease`): how long a lease lasts, how often the holder renews it,
    /// and how long before its deadline the holder stops writing.
    pub lease_duration: Duration,
    pub lease_renew: Duration,
    pub lease_margin: Duration,
    /// While set, renewals are not sent (drills and tests of a stalled leader).
    pub lease_paused: Option<Arc<AtomicBool>>,
    /// The operator's username, which the generated admission policies let through; `None`:
    /// asked of the API server (SelfSubjectReview), else from POD_NAMESPACE and
    /// SERVICE_ACCOUNT.
    pub operator_user: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            metrics_addr: None,
            leader_election: false,
            lease_name: "meshbaseline-leader".into(),
            lease_namespace: "default".into(),
            pod_name: "meshbaseline".into(),
            qps: 20,
            burst: 40,
            debounce: Duration::from_millis(100),
            resync: Some(Duration::from_secs(600)),
            write_batch: Duration::from_secs(2),
            lease_duration: Duration::from_secs(15),
            lease_renew: Duration::from_secs(5),
            lease_margin: Duration::from_secs(2),
            lease_paused: None,
            operator_user: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("serving metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid lease timings: renewing every {renew:?} plus a margin of {margin:?} must stay below the lease duration {duration:?}")]
    LeaseTimings {
        duration: Duration,
        renew: Duration,
        margin: Duration,
    },
}

/// Runs the operator until `shutdown` resolves (SIGTERM/SIGINT in `meshbaseline run`).
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    run_with_metrics(client, config, Arc::new(Metrics::new()), shutdown).await
}

/// [`run`] with the caller's metrics registry, which tests read with [`Metrics::encode`]
/// without an HTTP server.
pub async fn run_with_metrics(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let health = Arc::new(Health {
        metrics: metrics.clone(),
        ready: Default::default(),
    });
    let stop = Stop::on(shutdown);
    let http = serve_metrics(&config, &health, &stop).await?;
    // Renewals get the unlimited client: a burst of repairs must not delay them.
    let lease_client = client.clone();
    let client = rate_limited(client, config.qps, config.burst);
    let election = elect(&config, lease_client, &stop)?;
    let (reader, writer) = reflector::store::<MeshBaseline>();
    let ctx = context(
        &client,
        &config,
        metrics,
        &health,
        &election,
        reader.clone(),
    )
    .await;
    let mut tasks = watch::spawn_all(ctx.clone());
    spawn_resync(&mut tasks, &ctx, config.resync);
    spawn_ready(&mut tasks, &ctx);
    let leader_task = follow_leadership(&ctx, election.leading.clone());
    drive(&ctx, &client, writer, reader, config.debounce, &stop).await;

    tracing::info!("shutting down");
    health.ready.store(false, Ordering::Relaxed);
    leader_task.abort();
    tasks.abort_all();
    if let Some(task) = election.task {
        // The stop signal ends the lease task, which releases the lease.
        drop(election.leading);
        drop(ctx);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    if let Some(h) = http {
        let _ = h.await;
    }
    Ok(())
}

/// The shutdown signal, for every task that must end with the operator.
#[derive(Clone)]
struct Stop(signal::Receiver<bool>);

impl Stop {
    fn on(shutdown: impl Future<Output = ()> + Send + 'static) -> Stop {
        let (tx, rx) = signal::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        Stop(rx)
    }

    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// `/metrics`, `/healthz` and `/readyz`, when an address is configured.
async fn serve_metrics(
    config: &Config,
    health: &Arc<Health>,
    stop: &Stop,
) -> Result<Option<tokio::task::JoinHandle<()>>, Error> {
    let Some(addr) = config.metrics_addr else {
        return Ok(None);
    };
    let listener = telemetry::bind(addr)
        .await
        .map_err(|source| Error::Metrics { addr, source })?;
    let h = health.clone();
    let stopped = stop.stopped();
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = telemetry::serve(listener, h, stopped).await {
            tracing::error!(error = %e, "metrics server failed");
        }
    })))
}

/// Leadership: only the leader writes, and only before its local deadline; followers keep
/// their caches warm.
struct Election {
    leadership: Arc<lease::Leadership>,
    /// Whether this replica leads, as it changes.
    leading: signal::Receiver<bool>,
    /// The lease loop, when leader election is on.
    task: Option<tokio::task::JoinHandle<()>>,
}

fn elect(config: &Config, client: Client, stop: &Stop) -> Result<Election, Error> {
    let (leading_tx, leading) = signal::channel(!config.leader_election);
    if !config.leader_election {
        // The only replica leads for good: the leadership task reports it once, then sees the
        // channel closed and ends.
        drop(leading_tx);
        return Ok(Election {
            leadership: Arc::new(lease::Leadership::always()),
            leading,
            task: None,
        });
    }
    if config.lease_renew + config.lease_margin >= lease::whole_seconds(config.lease_duration) {
        return Err(Error::LeaseTimings {
            duration: config.lease_duration,
            renew: config.lease_renew,
            margin: config.lease_margin,
        });
    }
    let leadership = Arc::new(lease::Leadership::new());
    let cfg = lease::LeaseConfig {
        name: config.lease_name.clone(),
        namespace: config.lease_namespace.clone(),
        identity: config.pod_name.clone(),
        duration: config.lease_duration,
        renew: config.lease_renew,
        margin: config.lease_margin,
        paused: config.lease_paused.clone(),
    };
    let task = tokio::spawn(lease::run(
        client,
        cfg,
        leadership.clone(),
        leading_tx,
        stop.0.clone(),
    ));
    Ok(Election {
        leadership,
        leading,
        task: Some(task),
    })
}

async fn context(
    client: &Client,
    config: &Config,
    metrics: Arc<Metrics>,
    health: &Arc<Health>,
    election: &Election,
    baselines: reflector::Store<MeshBaseline>,
) -> Arc<Ctx> {
    let operator_user = match &config.operator_user {
        Some(u) => u.clone(),
        None => identity::operator_user(client).await,
    };
    tracing::info!(%operator_user, "the admission policies let this user through");
    let mut ctx = Ctx::new(
        client.clone(),
        metrics,
        health.clone(),
        election.leadership.clone(),
        baselines,
        config.pod_name.clone(),
        operator_user,
    );
    ctx.write_batch = config.write_batch;
    Arc::new(ctx)
}

/// The periodic full resync: everything is planned again from the caches, so a missed watch
/// event cannot leave drift in place for longer than this.
fn spawn_resync(tasks: &mut JoinSet<()>, ctx: &Arc<Ctx>, period: Option<Duration>) {
    let Some(period) = period else { return };
    let ctx = ctx.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tick.tick().await;
            ctx.resync();
        }
    });
}

/// Once every cache is filled: ready, and everything reconciled.
fn spawn_ready(tasks: &mut JoinSet<()>, ctx: &Arc<Ctx>) {
    let ctx = ctx.clone();
    tasks.spawn(async move {
        ctx.index.readiness.until(|| ctx.index.synced()).await;
        tracing::info!("caches synced");
        ctx.health.ready.store(true, Ordering::Relaxed);
        ctx.triggers.all();
    });
}

/// Leadership changes: the gauge, and a full pass when this replica becomes the leader.
fn follow_leadership(
    ctx: &Arc<Ctx>,
    mut leading: signal::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        loop {
            let now = *leading.borrow_and_update();
            ctx.metrics.leader.set(i64::from(now));
            if now {
                tracing::info!("leading");
                ctx.triggers.all();
            }
            if leading.changed().await.is_err() {
                break;
            }
        }
    })
}

/// The baselines' watch and kube-runtime's controller, fed by the triggers, until stopped.
async fn drive(
    ctx: &Arc<Ctx>,
    client: &Client,
    writer: reflector::store::Writer<MeshBaseline>,
    reader: reflector::Store<MeshBaseline>,
    debounce: Duration,
    stop: &Stop,
) {
    let baseline_events = {
        let ctx = ctx.clone();
        let api = Api::<MeshBaseline>::all(client.clone());
        reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        )
        .inspect(move |ev| ctx.baseline_event(ev))
        .touched_objects()
    };
    let names = {
        let ctx = ctx.clone();
        move || ctx.baselines.names()
    };
    let requests = ctx.triggers.clone().stream(debounce, names);
    Controller::for_stream(baseline_events, reader)
        .reconcile_on(requests)
        .graceful_shutdown_on(stop.stopped())
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller");
            }
        })
        .instrument(tracing::info_span!("controller"))
        .await;
}
