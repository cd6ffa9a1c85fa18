//! istiod (`pilot-discovery discovery`) out of cluster, in a host-network pod of the node: it
//! reads the local API server through the harness's bridge (the admin kubeconfig works
//! unchanged in the node's namespace), serves xDS and its CA on the node IP's 15012, and
//! writes its CA's root certificate into every namespace (`istio-ca-root-cert`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::Error;
use crate::dataplane::{Credentials, Pod, Process};

/// istiod's settings. Upstream Envoy lacks istio-proxy's own extensions, so the ones istiod
/// would configure are switched off here (and nothing else): metadata exchange
/// (`istio.metadata_exchange`, peer-metadata TypedStructs), the ALPN override filter
/// (`istio.alpn`) and the telemetry labels the stats filter reads. None of them takes part in
/// an authorization decision: RBAC, TLS, transport sockets and filter-chain matching are
/// istiod's as usual.
pub const SWITCHED_OFF: [(&str, &str); 4] = [
    ("PILOT_ENABLE_METADATA_EXCHANGE", "false"),
    ("PILOT_ENABLE_ALPN_FILTER", "false"),
    ("PILOT_ENABLE_TELEMETRY_LABEL", "false"),
    ("PILOT_ENDPOINT_TELEMETRY_LABEL", "false"),
];

/// The mesh config: no default telemetry providers (so no stats filter), no Prometheus merge.
fn mesh_config(node_ip: Ipv4Addr) -> String {
    format!(
        "rootNamespace: istio-system\ntrustDomain: cluster.local\nenablePrometheusMerge: false\n\
         defaultConfig:\n  discoveryAddress: {node_ip}:15012\n"
    )
}

pub struct Istiod {
    pub log: PathBuf,
    process: Option<Process>,
    _pod: Pod,
}

impl Istiod {
    pub fn start(
        bin: &Path,
        dir: &Path,
        pod: Pod,
        node_ip: Ipv4Addr,
        kubeconfig: &Path,
    ) -> Result<Istiod, Error> {
        let mesh = dir.join("mesh.yaml");
        std::fs::write(&mesh, mesh_config(node_ip))?;
        let networks = dir.join("meshNetworks.yaml");
        std::fs::write(&networks, "{}\n")?;
        let mut cmd = Command::new(bin.join("pilot-discovery"));
        cmd.arg("discovery")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--meshConfig")
            .arg(&mesh)
            .arg("--networksConfig")
            .arg(&networks)
            .args(["--clusterID", "Kubernetes"])
            .args(["--secureGRPCAddr", &format!("{node_ip}:15012")])
            // Plaintext xDS, webhooks, debug and monitoring stay on the node's loopback.
            .args(["--grpcAddr", "127.0.0.1:15010"])
            .args(["--httpsAddr", "127.0.0.1:15017"])
            .args(["--httpAddr", "127.0.0.1:8080"])
            .args(["--monitoringAddr", "127.0.0.1:15014"])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", "istio-system")
            .env("POD_NAME", "istiod")
            .env("REVISION", "default")
            .env("ENABLE_CA_SERVER", "true")
            .env("PILOT_CERT_PROVIDER", "istiod")
            // No webhooks: nothing is injected or validated by istiod here.
            .env("INJECTION_WEBHOOK_CONFIG_NAME", "")
            .env("VALIDATION_WEBHOOK_CONFIG_NAME", "")
            // Its serving certificate names the node IP, which the sidecars dial.
            .env("ISTIOD_CUSTOM_HOST", node_ip.to_string());
        for (k, v) in SWITCHED_OFF {
            cmd.env(k, v);
        }
        let process = pod.spawn("pilot-discovery", cmd, Credentials::root())?;
        let mut istiod = Istiod {
            log: process.log().to_path_buf(),
            process: Some(process),
            _pod: pod,
        };
        istiod.wait_ready(Duration::from_secs(90))?;
        Ok(istiod)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.check_alive()?;
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("marking server ready") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(Error::Setup(format!(
            "istiod not ready within {timeout:?}; its log ends:\n{}",
            super::pod::tail(&self.log, 30)
        )))
    }

    pub fn check_alive(&mut self) -> Result<(), Error> {
        match &mut self.process {
            Some(p) => Ok(p.check_running()?),
            None => Err(Error::Setup("istiod was stopped".into())),
        }
    }

    pub fn stop(&mut self) {
        self.process.take();
    }

    /// Lines where istiod reports a proxy's NACK of its configuration.
    pub fn nacks(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("ACK ERROR"))
            .map(String::from)
            .collect()
    }
}
