//! `meshbaseline run`: the operator. Every flag has an environment variable.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::controller::{self, Config};
use crate::telemetry::{init_tracing, LogFormat};

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "MESHBASELINE_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,
    /// Elect a leader with a Lease; only the leader writes.
    #[arg(long, env = "MESHBASELINE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    #[arg(
        long,
        env = "MESHBASELINE_LEASE_NAME",
        default_value = "meshbaseline-leader"
    )]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Identity in the Lease and in Events (default: the hostname).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Client-side rate limit: API requests per second.
    #[arg(long, env = "MESHBASELINE_QPS", default_value_t = 20)]
    pub qps: u32,
    /// Client-side rate limit: burst above the QPS.
    #[arg(long, env = "MESHBASELINE_BURST", default_value_t = 40)]
    pub burst: u32,
    /// How long bursts of namespace, pod and tenant-object changes are gathered, in
    /// milliseconds. Drift of generated objects is repaired without delay.
    #[arg(long, env = "MESHBASELINE_DEBOUNCE_MS", default_value_t = 100)]
    pub debounce_ms: u64,
    /// How long one reconcile writes, in milliseconds, before it plans again with drift
    /// repairs first: a long plan (a first install, a new spec) never holds up a repair for
    /// longer than this.
    #[arg(long, env = "MESHBASELINE_WRITE_BATCH_MS", default_value_t = 2000)]
    pub write_batch_ms: u64,
    /// Seconds between full resyncs: every baseline is planned again from the caches and
    /// whatever differs is written (nothing, when the watches missed nothing). 0 disables.
    #[arg(long, env = "MESHBASELINE_RESYNC_SECONDS", default_value_t = 600)]
    pub resync: u64,
    /// Lease duration in seconds: a follower takes over when the holder has not renewed for
    /// this long (measured on the follower's clock).
    #[arg(
        long,
        env = "MESHBASELINE_LEASE_DURATION_SECONDS",
        default_value_t = 15
    )]
    pub lease_duration: u64,
    /// Seconds between renewals by the holder (must be well below the lease duration).
    #[arg(long, env = "MESHBASELINE_LEASE_RENEW_SECONDS", default_value_t = 5)]
    pub lease_renew: u64,
    /// Safety margin in milliseconds: the holder stops writing this long before its lease
    /// could expire for the others, so clock-rate drift and request latency cannot make two
    /// writers.
    #[arg(long, env = "MESHBASELINE_LEASE_MARGIN_MS", default_value_t = 2000)]
    pub lease_margin_ms: u64,
    /// The operator's username as the API server sees it, which the generated admission
    /// policies let through. Default: asked of the API server (SelfSubjectReview), else
    /// `system:serviceaccount:$POD_NAMESPACE:$SERVICE_ACCOUNT`.
    #[arg(long, env = "MESHBASELINE_OPERATOR_USER")]
    pub operator_user: Option<String>,
    #[arg(
        long,
        env = "MESHBASELINE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("no Kubernetes configuration (kubeconfig or in-cluster): {0}")]
    Client(#[from] kube::Error),
    #[error(transparent)]
    Controller(#[from] controller::Error),
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "meshbaseline".into())
}

impl RunArgs {
    pub fn config(&self) -> Config {
        Config {
            metrics_addr: Some(self.metrics_addr),
            leader_election: self.leader_election,
            lease_name: self.lease_name.clone(),
            lease_namespace: self.lease_namespace.clone(),
            pod_name: self.pod_name.clone().unwrap_or_else(hostname),
            qps: self.qps,
            burst: self.burst,
            debounce: Duration::from_millis(self.debounce_ms),
            resync: (self.resync > 0).then(|| Duration::from_secs(self.resync)),
            write_batch: Duration::from_millis(self.write_batch_ms.max(1)),
            lease_duration: Duration::from_secs(self.lease_duration),
            lease_renew: Duration::from_secs(self.lease_renew),
            lease_margin: Duration::from_millis(self.lease_margin_ms),
            operator_user: self.operator_user.clone(),
            ..Config::default()
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode, RunError> {
    init_tracing(args.log_format);
    let config = args.config();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    rt.block_on(async move {
        let client = kube::Client::try_default().await?;
        tracing::info!(?config, "starting");
        controller::run(client, config, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn flags_become_config() {
        let cli = Cli::try_parse_from([
            "x",
            "--qps",
            "5",
            "--burst",
            "7",
            "--leader-election",
            "false",
            "--pod-name",
            "p-1",
            "--log-format",
            "json",
            "--resync",
            "60",
            "--lease-duration",
            "20",
        ])
        .unwrap();
        let c = cli.run.config();
        assert_eq!((c.qps, c.burst), (5, 7));
        assert!(!c.leader_election);
        assert_eq!(c.pod_name, "p-1");
        assert_eq!(c.lease_name, "meshbaseline-leader");
        assert_eq!(c.metrics_addr, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(cli.run.log_format, LogFormat::Json);
        assert_eq!(c.resync, Some(Duration::from_secs(60)));
        assert_eq!(c.lease_duration, Duration::from_secs(20));
        assert_eq!(c.lease_renew, Duration::from_secs(5));
        assert_eq!(c.lease_margin, Duration::from_secs(2));
        let c = Cli::try_parse_from(["x", "--resync", "0"])
            .unwrap()
            .run
            .config();
        assert_eq!(c.resync, None);
        let c = Cli::try_parse_from(["x"]).unwrap().run.config();
        assert_eq!(c.resync, Some(Duration::from_secs(600)));
    }
}
