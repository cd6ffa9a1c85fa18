//! The thin shell: watches the cluster into trimmed caches, maps changes to the baselines
//! they affect, and for each reconcile calls the pure compile, audit and plan, then executes
//! the plan through the one executor.

mod cache;
mod execute;
pub mod executor;
mod identity;
pub mod lease;
mod listing;
mod objects;
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
use tracing::Instrument;

use crate::api::MeshBaseline;
use crate::telemetry::{self, Health, Metrics};

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
    let (stop_tx, stop_rx) = signal::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = {
        let stop_rx = stop_rx.clone();
        move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        }
    };

    let mut http = None;
    if let Some(addr) = config.metrics_addr {
        let listener = telemetry::bind(addr)
            .await
            .map_err(|source| Error::Metrics { addr, source })?;
        let h = health.clone();
        let stop = stopped();
        http = Some(tokio::spawn(async move {
            if let Err(e) = telemetry::serve(listener, h, stop).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        }));
    }

    // Renewals get the unlimited client: a burst of repairs must not delay them.
    let lease_client = client.clone();
    let client = rate_limited(client, config.qps, config.burst);

    // Leadership: only the leader writes, and only before its local deadline; followers keep
    // their caches warm.
    let (leader_tx, leader_rx) = signal::channel(!config.leader_election);
    let (leadership, lease_task) = if config.leader_election {
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
            lease_client,
            cfg,
            leadership.clone(),
            leader_tx,
            stop_rx.clone(),
        ));
        (leadership, Some(task))
    } else {
        // The only replica leads for good: the leadership task reports it once, then sees the
        // channel closed and ends.
        drop(leader_tx);
        (Arc::new(lease::Leadership::always()), None)
    };

    let (reader, writer) = reflector::store::<MeshBaseline>();
    let operator_user = match &config.operator_user {
        Some(u) => u.clone(),
        None => identity::operator_user(&client).await,
    };
    tracing::info!(%operator_user, "the admission policies let this user through");
    let mut ctx = reconcile::Ctx::new(
        client.clone(),
        metrics.clone(),
        health.clone(),
        leadership,
        reader.clone(),
        config.pod_name.clone(),
        operator_user,
    );
    ctx.write_batch = config.write_batch;
    let ctx = Arc::new(ctx);
    let mut watchers = watch::spawn_all(ctx.clone());
    // The periodic full resync: everything is planned again from the caches, so a missed
    // watch event cannot leave drift in place for longer than this.
    if let Some(period) = config.resync {
        let ctx = ctx.clone();
        watchers.spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tick.tick().await;
                ctx.resync();
            }
        });
    }
    // Startup only: once every cache is filled, report ready and reconcile everything.
    {
        let ctx = ctx.clone();
        watchers.spawn(async move {
            ctx.readiness.until(|| ctx.caches_synced()).await;
            tracing::info!("caches synced");
            ctx.health.ready.store(true, Ordering::Relaxed);
            ctx.triggers.all();
        });
    }

    // Leadership changes: the gauge, and a full pass when we become leader.
    let leader_task = {
        let ctx = ctx.clone();
        let mut rx = leader_rx.clone();
        tokio::spawn(async move {
            loop {
                let leading = *rx.borrow_and_update();
                ctx.metrics.leader.set(i64::from(leading));
                if leading {
                    tracing::info!("leading");
                    ctx.triggers.all();
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
    };

    let baseline_events = {
        let ctx = ctx.clone();
        reflector(
            writer,
            watcher(
                Api::<MeshBaseline>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff(),
        )
        .inspect(move |ev| ctx.baseline_event(ev))
        .touched_objects()
    };
    let names = {
        let reader = reader.clone();
        move || {
            reader
                .state()
                .iter()
                .filter_map(|b| b.metadata.name.clone())
                .collect::<Vec<_>>()
        }
    };
    let requests = ctx.triggers.clone().stream(config.debounce, names);

    Controller::for_stream(baseline_events, reader)
        .reconcile_on(requests)
        .graceful_shutdown_on(stopped())
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller");
            }
        })
        .instrument(tracing::info_span!("controller"))
        .await;

    tracing::info!("shutting down");
    health.ready.store(false, Ordering::Relaxed);
    leader_task.abort();
    watchers.abort_all();
    if let Some(task) = lease_task {
        // The stop signal ends the lease task, which releases the lease.
        drop(leader_rx);
        drop(ctx);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    if let Some(h) = http {
        let _ = h.await;
    }
    Ok(())
}
