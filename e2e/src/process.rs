//! The operator as its own process: the `meshbaseline run` binary, configured by its flags,
//! talking to the cluster through the fault proxy (so as the chart's ServiceAccount), its
//! metrics read over HTTP. Used for real clusters; the simulator runs it in-process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::cluster::HarnessError;

static STARTED: AtomicU32 = AtomicU32::new(0);

/// `MESHBASELINE_BIN`, else `meshbaseline` in the target directory of the running test
/// (`target/debug/deps/<test>` -> `target/debug/meshbaseline`).
pub fn operator_binary() -> Result<PathBuf, HarnessError> {
    if let Some(bin) = std::env::var_os("MESHBASELINE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().map_err(HarnessError::Proxy)?;
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("meshbaseline"))
        .filter(|bin| bin.is_file())
        .ok_or_else(|| {
            HarnessError::Setup(format!(
                "the meshbaseline binary is not next to {} (cargo build -p meshbaseline, or set MESHBASELINE_BIN)",
                exe.display()
            ))
        })?;
    Ok(bin)
}

pub struct OperatorProcess {
    child: Child,
    metrics: SocketAddr,
    log: PathBuf,
    kubeconfig: PathBuf,
}

impl OperatorProcess {
    /// Starts `meshbaseline run` against `server` (the fault proxy: plain HTTP, no
    /// credentials of its own) with `args` after the metrics address.
    pub fn spawn(server: &str, args: &[String]) -> Result<OperatorProcess, HarnessError> {
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let base =
            std::env::temp_dir().join(format!("meshbaseline-e2e-{}-{n}", std::process::id()));
        let kubeconfig = base.with_extension("kubeconfig");
        let log = base.with_extension("log");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: e2e, cluster: {{server: '{server}'}}}}]\n\
                 contexts: [{{name: e2e, context: {{cluster: e2e, user: e2e}}}}]\n\
                 users: [{{name: e2e, user: {{}}}}]\ncurrent-context: e2e\n"
            ),
        )?;
        let metrics = {
            let probe = TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?
        };
        let out = std::fs::File::create(&log)?;
        let child = Command::new(operator_binary()?)
            .arg("run")
            .arg(format!("--metrics-addr={metrics}"))
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info,meshbaseline=debug")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(OperatorProcess {
            child,
            metrics,
            log,
            kubeconfig,
        })
    }

    /// The Prometheus text of `/metrics` (empty while the server is not up yet).
    pub fn metrics_text(&self) -> String {
        let fetch = || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&self.metrics, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or_default())
        };
        fetch().unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits up to 10 s for a clean exit; fails (with the log's tail) otherwise.
    pub async fn stop(mut self) -> Result<(), HarnessError> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                return Err(HarnessError::Setup(format!(
                    "meshbaseline run exited with {status}; its log ends:\n{}",
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(HarnessError::Setup(format!(
            "meshbaseline run did not stop within 10s of SIGTERM; its log ends:\n{}",
            self.log_tail()
        )))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}
