//! istiod (`pilot-discovery discovery`) out of cluster, inside the node's network namespace:
//! it reads the local API server through a Unix-socket bridge (socat on both sides, so the
//! host's loopback is never exposed to pods), serves xDS and its CA on the node IP's 15012,
//! and writes its CA's root certificate into every namespace (`istio-ca-root-cert`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::net::{in_netns, Process};
use super::Error;

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
    process: Process,
    /// The two halves of the API server bridge.
    _bridge: [Process; 2],
}

/// `https://127.0.0.1:PORT` of the kubeconfig's server.
fn api_port(kubeconfig: &Path) -> Result<u16, Error> {
    let text = std::fs::read_to_string(kubeconfig)?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .and_then(|s| s.trim().rsplit(':').next())
        .and_then(|p| {
            p.trim_matches(|c| c == '/' || c == '\'' || c == '"')
                .parse()
                .ok()
        })
        .ok_or_else(|| {
            Error::Setup(format!(
                "{}: no `server: https://127.0.0.1:PORT`",
                kubeconfig.display()
            ))
        })
}

impl Istiod {
    pub fn start(
        bin: &Path,
        dir: &Path,
        node_netns: &str,
        node_ip: Ipv4Addr,
        kubeconfig: &Path,
    ) -> Result<Istiod, Error> {
        let port = api_port(kubeconfig)?;
        let socket = dir.join("apiserver.sock");
        let host_side = Process::spawn(
            "api bridge (host)",
            {
                let mut c = Command::new("socat");
                c.arg(format!(
                    "UNIX-LISTEN:{},fork,unlink-early",
                    socket.display()
                ))
                .arg(format!("TCP:127.0.0.1:{port}"));
                c
            },
            &dir.join("bridge-host.log"),
        )?;
        let node_side = Process::spawn(
            "api bridge (node)",
            in_netns(
                node_netns,
                None,
                "socat",
                &[
                    &format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"),
                    &format!("UNIX-CONNECT:{}", socket.display()),
                ],
            ),
            &dir.join("bridge-node.log"),
        )?;
        let mesh = dir.join("mesh.yaml");
        std::fs::write(&mesh, mesh_config(node_ip))?;
        let networks = dir.join("meshNetworks.yaml");
        std::fs::write(&networks, "{}\n")?;
        let log = dir.join("istiod.log");
        let (secure, kc) = (format!("{node_ip}:15012"), kubeconfig.to_string_lossy());
        let (mesh, networks) = (mesh.to_string_lossy(), networks.to_string_lossy());
        let mut cmd = in_netns(
            node_netns,
            None,
            &bin.join("pilot-discovery").to_string_lossy(),
            &[
                "discovery",
                "--kubeconfig",
                &kc,
                "--meshConfig",
                &mesh,
                "--networksConfig",
                &networks,
                "--clusterID",
                "Kubernetes",
                "--secureGRPCAddr",
                &secure,
                // Plaintext xDS, webhooks, debug and monitoring stay on the node's loopback.
                "--grpcAddr",
                "127.0.0.1:15010",
                "--httpsAddr",
                "127.0.0.1:15017",
                "--httpAddr",
                "127.0.0.1:8080",
                "--monitoringAddr",
                "127.0.0.1:15014",
            ],
        );
        cmd.env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", "istio-system")
            .env("POD_NAME", "istiod-0")
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
        let process = Process::spawn("istiod", cmd, &log)?;
        let mut istiod = Istiod {
            log,
            process,
            _bridge: [host_side, node_side],
        };
        istiod.wait_ready(Duration::from_secs(90))?;
        Ok(istiod)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.process.check_alive()?;
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("marking server ready") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(Error::Setup(format!(
            "istiod not ready within {timeout:?}; its log ends:\n{}",
            super::net::tail(&self.log, 30)
        )))
    }

    pub fn check_alive(&mut self) -> Result<(), Error> {
        self.process.check_alive()
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
