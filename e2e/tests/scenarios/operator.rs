//! The operator under test, in-process on the simulator, as its own process on a real server.

use std::sync::Arc;
use std::time::Duration;

use meshbaseline::controller::{self, Config};
use meshbaseline::telemetry::Metrics;
use meshbaseline_e2e::process::OperatorProcess;
use meshbaseline_e2e::Cluster;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::fixtures::TestResult;

/// The operator under test: on the simulator, started in-process through the library entry
/// point of `meshbaseline run` with the simulator's (counted, faulted) client and its own
/// metrics registry; on a real cluster, the `meshbaseline run` binary as its own process,
/// configured by flags, connected through the fault proxy as the chart's ServiceAccount, its
/// metrics read over HTTP.
pub struct Operator {
    run: Running,
}

enum Running {
    InProcess {
        metrics: Arc<Metrics>,
        stop: Option<oneshot::Sender<()>>,
        task: Option<JoinHandle<Result<(), controller::Error>>>,
    },
    Process(Option<OperatorProcess>),
}

/// The config the scenarios run the operator with: no HTTP server (the registry is read
/// directly), a short debounce so scenarios stay fast.
pub fn test_config() -> Config {
    Config {
        pod_name: "meshbaseline-e2e".into(),
        debounce: Duration::from_millis(20),
        ..Config::default()
    }
}

/// The flags of `meshbaseline run` that give `config`.
fn flags(config: &Config) -> Vec<String> {
    vec![
        format!("--leader-election={}", config.leader_election),
        format!("--lease-name={}", config.lease_name),
        format!("--lease-namespace={}", config.lease_namespace),
        format!("--pod-name={}", config.pod_name),
        format!("--qps={}", config.qps),
        format!("--burst={}", config.burst),
        format!("--debounce-ms={}", config.debounce.as_millis()),
        format!("--write-batch-ms={}", config.write_batch.as_millis()),
        // The flag is in whole seconds (0 disables); sub-second test periods round up to 1 s.
        format!(
            "--resync={}",
            config
                .resync
                .map_or(0, |r| r.as_millis().div_ceil(1000).max(1))
        ),
        format!(
            "--lease-duration={}",
            config.lease_duration.as_secs().max(1)
        ),
        format!("--lease-renew={}", config.lease_renew.as_secs().max(1)),
        format!("--lease-margin-ms={}", config.lease_margin.as_millis()),
        "--log-format=text".into(),
    ]
}

impl Operator {
    pub fn start(cluster: &Cluster) -> Operator {
        Operator::start_with(cluster, test_config())
    }

    pub fn start_with(cluster: &Cluster, config: Config) -> Operator {
        if let Some(url) = cluster.proxy_url() {
            // A failure to start shows as a dead operator in the scenario's first wait.
            let process = OperatorProcess::spawn(&url, &flags(&config))
                .map_err(|e| eprintln!("meshbaseline run: {e}"))
                .ok();
            return Operator {
                run: Running::Process(process),
            };
        }
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run_with_metrics(
            cluster.client(),
            config,
            metrics.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Operator {
            run: Running::InProcess {
                metrics,
                stop: Some(stop),
                task: Some(task),
            },
        }
    }

    /// The operator's metrics in Prometheus' text format.
    pub fn metrics_text(&self) -> String {
        match &self.run {
            Running::InProcess { metrics, .. } => metrics.encode(),
            Running::Process(Some(p)) => p.metrics_text(),
            Running::Process(None) => String::new(),
        }
    }

    /// The value of one sample of the operator's metrics, 0 when absent.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let wanted = if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{labels}}}")
        };
        self.metrics_text()
            .lines()
            .find_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                (series == wanted).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or(0.0)
    }

    pub fn successful_reconciles(&self) -> f64 {
        self.metric("meshbaseline_reconciles_total", "result=\"success\"")
    }

    /// Whether the operator is still running (it ends only on shutdown or a panic).
    pub fn alive(&mut self) -> bool {
        match &mut self.run {
            Running::InProcess { task, .. } => task.as_ref().is_some_and(|t| !t.is_finished()),
            Running::Process(p) => p.as_mut().is_some_and(OperatorProcess::alive),
        }
    }

    /// Shuts the operator down and fails if it panicked or returned an error.
    pub async fn stop(mut self) -> TestResult {
        match &mut self.run {
            Running::InProcess { stop, task, .. } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(task) = task.take() {
                    tokio::time::timeout(Duration::from_secs(10), task).await???;
                }
            }
            Running::Process(p) => match p.take() {
                Some(p) => p.stop().await?,
                None => return Err("meshbaseline run never started".into()),
            },
        }
        Ok(())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        // A failed test must not leave the operator running against the next one's cluster
        // (a process is killed by its own Drop).
        if let Running::InProcess {
            task: Some(task), ..
        } = &self.run
        {
            task.abort();
        }
    }
}
