//! The node: its namespace, addresses, API bridge, `Node` object, and the teardown of all it
//! made.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::enforcer::Enforcer;
use super::netns;
use super::process::{Process, Spawner};
use super::sys::{self, Credentials};
use super::traffic::Server;
use super::Error;

/// Annotation on the `Node` object naming the process that owns it.
pub const OWNER_ANNOTATION: &str = "dataplane.meshbaseline.dev/owner-pid";
/// The field manager of the harness's writes.
pub(crate) const MANAGER: &str = "meshbaseline-dataplane";
/// Next hop of every pod: on the node side of each veth (IPv4 link-local, IPv6 `fe80::1`).
pub(crate) const GATEWAY_V4: &str = "169.254.1.1";
pub(crate) const GATEWAY_V6: &str = "fe80::1";

/// How the node is built.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// IPv6 next to IPv4: a dual-stack node, and pods with both families unless they opt out.
    pub dual_stack: bool,
    /// The API server's Service CIDRs (kube-router needs them): testenv's by default.
    pub service_cidrs: Vec<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            dual_stack: true,
            service_cidrs: vec!["10.96.0.0/16".into(), "fd00:10:96::/112".into()],
        }
    }
}

/// A node of network namespaces on a real API server. See the module documentation.
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

pub(crate) struct NodeInner {
    pub name: String,
    pub index: u8,
    /// How many nodes this process started before this one.
    pub instance: u32,
    pub dir: PathBuf,
    pub admin: kube::Client,
    pub kubeconfig: PathBuf,
    pub api_port: u16,
    pub config: NodeConfig,
    pub spawner: Spawner,
    pub state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    pub next_host: u16,
    /// Namespaces to delete, in creation order (the node's first).
    pub namespaces: Vec<String>,
    /// `Pod` objects to delete: (namespace, name).
    pub pods: Vec<(String, String)>,
    /// Pods with a namespace of their own: (namespace, name, has IPv6).
    pub wired: Vec<(String, String, bool)>,
    /// Services (and their EndpointSlices): (namespace, name).
    pub services: Vec<(String, String)>,
    pub processes: Vec<Process>,
    pub servers: Vec<Server>,
    pub enforcer: Option<Enforcer>,
    pub shut_down: bool,
}

/// Node indexes in use by this process.
static INDEXES: Mutex<BTreeSet<u8>> = Mutex::new(BTreeSet::new());
static INSTANCES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl NodeInner {
    pub fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not keep the teardown from running.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 255, 0, self.index)
    }

    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.config
            .dual_stack
            .then(|| Ipv6Addr::new(0xfd00, 0x10, 0x255, 0, 0, 0, 0, u16::from(self.index)))
    }

    /// Pod `host` (2..=254) of this node.
    pub fn pod_ipv4(&self, host: u16) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, self.index, host as u8)
    }

    pub fn pod_ipv6(&self, host: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x10, 0x244, u16::from(self.index), 0, 0, 0, host)
    }

    pub fn log(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{what}.log"))
    }

    /// Starts a long-running process in `netns` (`None`: the host's).
    pub fn spawn(
        &self,
        cmd: Command,
        netns: Option<&str>,
        creds: Credentials,
        log: &Path,
    ) -> Result<Process, Error> {
        self.spawner.spawn(cmd, netns, creds, Vec::new(), log)
    }

    /// The API server on 127.0.0.1 (the same port) inside `netns`: socat from a Unix socket in the
    /// run directory to the API server (host side, started once), and socat from the port to
    /// the socket inside `netns`.
    pub async fn bridge_api(&self, netns: &str) -> Result<(), Error> {
        let inner = self;
        let socket = inner.dir.join("api.sock");
        if !socket.exists() {
            let mut host = Command::new("socat");
            host.arg(format!(
                "UNIX-LISTEN:{},fork,unlink-early,mode=600",
                socket.display()
            ))
            .arg(format!("TCP:127.0.0.1:{}", inner.api_port));
            let p = inner.spawn(host, None, Credentials::root(), &inner.log("socat-host"))?;
            inner.state().processes.push(p);
            wait_for("the API bridge's Unix socket", || socket.exists()).await?;
        }
        let mut inside = Command::new("socat");
        inside
            .arg(format!(
                "TCP-LISTEN:{},bind=127.0.0.1,fork,reuseaddr",
                inner.api_port
            ))
            .arg(format!("UNIX-CONNECT:{}", socket.display()));
        let p = inner.spawn(
            inside,
            Some(netns),
            Credentials::root(),
            &inner.log(&format!("socat-{netns}")),
        )?;
        inner.state().processes.push(p);
        let port = inner.api_port;
        let ns = netns.to_string();
        for _ in 0..100 {
            let up = sys::in_netns(&ns, move || {
                Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
            })
            .await?;
            if up {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::Timeout {
            what: format!("the API server bridged into {netns}"),
            after: Duration::from_secs(5),
        })
    }
}

impl Node {
    /// Builds a node on the cluster of `kubeconfig` (an admin's: the harness writes Nodes and
    /// pod status). Refuses to start without root and the commands it needs, and first removes
    /// what dead runs left behind.
    pub async fn start(kubeconfig: &Path, config: NodeConfig) -> Result<Node, Error> {
        sys::check_prerequisites()?;
        netns::sweep_stale()?;
        let kc = kube::config::Kubeconfig::read_from(kubeconfig)
            .map_err(|e| Error::Setup(format!("kubeconfig {}: {e}", kubeconfig.display())))?;
        let kconfig = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| Error::Setup(format!("kubeconfig {}: {e}", kubeconfig.display())))?;
        let url = kconfig.cluster_url.clone();
        let api_port = match (url.host(), url.port_u16()) {
            (Some("127.0.0.1"), Some(port)) => port,
            _ => {
                return Err(Error::Setup(format!(
                    "the API server must listen on 127.0.0.1:<port> (the local control plane), not {url}"
                )))
            }
        };
        let admin = kube::Client::try_from(kconfig)?;
        let index = allocate_index(&admin).await?;
        let name = netns::node_base(index);
        let dir = netns::run_dir(&name);
        std::fs::create_dir_all(&dir)?;
        let node = Node {
            inner: Arc::new(NodeInner {
                spawner: Spawner::start(&name)?,
                name,
                index,
                instance: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                dir,
                admin,
                kubeconfig: kubeconfig.to_path_buf(),
                api_port,
                config,
                state: Mutex::new(State {
                    next_host: 2,
                    ..State::default()
                }),
            }),
        };
        // From here on, an error drops `node`, which tears down what was made.
        node.build_namespace()?;
        node.inner.bridge_api(&node.inner.name).await?;
        node.create_object().await?;
        Ok(node)
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The node's network namespace (kube-router runs there; host-network pods too).
    pub fn netns(&self) -> &str {
        &self.inner.name
    }

    pub fn ipv4(&self) -> Ipv4Addr {
        self.inner.ipv4()
    }

    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.inner.ipv6()
    }

    /// The admin client the harness writes with.
    pub fn client(&self) -> kube::Client {
        self.inner.admin.clone()
    }

    /// The directory of this node's logs and sockets.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn build_namespace(&self) -> Result<(), Error> {
        let ns = &self.inner.name;
        netns::create(ns)?;
        self.inner.state().namespaces.push(ns.clone());
        sys::sysctls(
            ns,
            &[
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
                "net.ipv6.conf.all.forwarding=1",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ],
        )?;
        let mut lines = vec![format!("addr add {}/32 dev lo", self.ipv4())];
        if let Some(v6) = self.ipv6() {
            lines.push(format!("addr add {v6}/128 dev lo nodad"));
        }
        sys::ip_batch(Some(ns), &lines)
    }

    /// An address on the node's `lo` (a host-network service such as NodeLocal DNS listens
    /// there); pods reach it through their default route.
    pub fn add_local_address(&self, ip: IpAddr) -> Result<(), Error> {
        let line = match ip {
            IpAddr::V4(_) => format!("addr add {ip}/32 dev lo"),
            IpAddr::V6(_) => format!("addr add {ip}/128 dev lo nodad"),
        };
        sys::ip_batch(Some(self.netns()), &[line])
    }

    async fn create_object(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let api: Api<NodeObject> = Api::all(inner.admin.clone());
        let mut cidrs = vec![format!("10.244.{}.0/24", inner.index)];
        let mut addresses =
            vec![json!({"type": "InternalIP", "address": inner.ipv4().to_string()})];
        if let Some(v6) = inner.ipv6() {
            cidrs.push(format!("fd00:10:244:{}::/64", inner.index));
            addresses.push(json!({"type": "InternalIP", "address": v6.to_string()}));
        }
        addresses.push(json!({"type": "Hostname", "address": inner.name}));
        let node: NodeObject = serde_json::from_value(json!({
            "metadata": {
                "name": inner.name,
                "labels": {"kubernetes.io/hostname": inner.name, "kubernetes.io/os": "linux"},
                "annotations": {OWNER_ANNOTATION: std::process::id().to_string()},
            },
            "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs},
        }))?;
        api.create(&PostParams::default(), &node).await?;
        let status = json!({"status": {
            "addresses": addresses,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "network namespaces of the data-plane harness"}],
        }});
        api.patch_status(&inner.name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(())
    }

    /// Tears everything down and reports what could not be removed. Dropping the node does the
    /// same, reporting on stderr.
    pub async fn shutdown(self) -> Result<(), Error> {
        let mut errors = self.stop_local();
        // Drop has nothing left to do: stop_local marked the node shut down.
        if let Err(e) = delete_objects(&self.inner).await {
            errors.push(e.to_string());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Setup(format!(
                "teardown of node {}: {}",
                self.inner.name,
                errors.join("; ")
            )))
        }
    }

    /// Processes, servers, namespaces, run directory: what lives on this machine.
    fn stop_local(&self) -> Vec<String> {
        let (processes, servers, namespaces) = {
            let mut state = self.inner.state();
            if state.shut_down {
                return Vec::new();
            }
            state.shut_down = true;
            if let Some(e) = state.enforcer.take() {
                state.processes.push(e.into_process());
            }
            (
                std::mem::take(&mut state.processes),
                std::mem::take(&mut state.servers),
                std::mem::take(&mut state.namespaces),
            )
        };
        // kube-router first (last started), so that it stops rewriting rules.
        for mut p in processes.into_iter().rev() {
            p.kill();
        }
        drop(servers);
        let mut errors = Vec::new();
        for ns in namespaces.iter().rev() {
            if let Err(e) = netns::delete(ns) {
                errors.push(e.to_string());
            }
        }
        let _ = std::fs::remove_dir_all(&self.inner.dir);
        if let Ok(mut used) = INDEXES.lock() {
            used.remove(&self.inner.index);
        }
        errors
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.inner.state().shut_down {
            return;
        }
        // Not shut down yet: a test failed (or forgot); stop_local marks it shut down.
        for e in self.stop_local() {
            eprintln!("data-plane teardown: {e}");
        }
        let inner = self.inner.clone();
        // The test's runtime may be unwinding: the API cleanup gets a runtime of its own.
        let cleanup = std::thread::spawn(move || -> Result<(), Error> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(delete_objects(&inner))
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("data-plane teardown of {}: {e}", self.inner.name);
        }
    }
}

/// Pods (force: no kubelet will confirm a graceful deletion), Services and their
/// EndpointSlices, the enforcer's namespace, the Node.
async fn delete_objects(inner: &NodeInner) -> Result<(), Error> {
    let (pods, services) = {
        let mut state = inner.state();
        (
            std::mem::take(&mut state.pods),
            std::mem::take(&mut state.services),
        )
    };
    let force = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    for (ns, name) in pods {
        let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(inner.admin.clone(), &ns);
        ignore_missing(api.delete(&name, &force).await.map(|_| ()))?;
    }
    for (ns, name) in services {
        super::service::delete(&inner.admin, &ns, &name).await?;
    }
    super::enforcer::delete_sentinel(inner).await?;
    let nodes: Api<NodeObject> = Api::all(inner.admin.clone());
    ignore_missing(
        nodes
            .delete(&inner.name, &DeleteParams::default())
            .await
            .map(|_| ()),
    )
}

pub(crate) fn ignore_missing(r: Result<(), kube::Error>) -> Result<(), Error> {
    match r {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => Ok(other?),
    }
}

/// A node index (1..=250) that no live Node object and no node of this process uses.
async fn allocate_index(admin: &kube::Client) -> Result<u8, Error> {
    let api: Api<NodeObject> = Api::all(admin.clone());
    let taken: BTreeSet<String> = api
        .list(&Default::default())
        .await?
        .items
        .iter()
        .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
        .map(|a| a.address.clone())
        .collect();
    let mut used = INDEXES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let index = (1..=250u8)
        .find(|i| !used.contains(i) && !taken.contains(&Ipv4Addr::new(10, 255, 0, *i).to_string()))
        .ok_or_else(|| Error::Setup("no free node index (250 nodes in use)".into()))?;
    used.insert(index);
    Ok(index)
}

/// Polls `ready` every 20 ms for up to 5 s.
pub(crate) async fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), Error> {
    for _ in 0..250 {
        if ready() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(Error::Timeout {
        what: what.to_string(),
        after: Duration::from_secs(5),
    })
}
