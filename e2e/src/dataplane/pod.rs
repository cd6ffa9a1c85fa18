//! Pods (and hosts outside the cluster) as network namespaces routed through the node.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use super::dns::{self, Records};
use super::node::{Node, NodeInner, GATEWAY_V4, GATEWAY_V6};
pub use super::pod_object::PodSpec;
use super::pod_object::{create_object, ensure_service_account};
use super::process::Process;
use super::sys::{self, Credentials};
use super::traffic::{self, Outcome, Protocol};
use super::{netns, Error};

/// A pod's (or an outside host's) network namespace and addresses. Cheap to clone.
#[derive(Clone)]
pub struct Pod {
    inner: Arc<PodInner>,
}

struct PodInner {
    node: Arc<NodeInner>,
    namespace: String,
    name: String,
    netns: String,
    addresses: Vec<IpAddr>,
}

impl Pod {
    /// Kubernetes namespace (empty for hosts outside the cluster).
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `namespace/name` (just the name outside the cluster).
    pub fn id(&self) -> String {
        if self.inner.namespace.is_empty() {
            self.inner.name.clone()
        } else {
            format!("{}/{}", self.inner.namespace, self.inner.name)
        }
    }

    /// The network namespace its processes and sockets live in.
    pub fn netns(&self) -> &str {
        &self.inner.netns
    }

    pub fn addresses(&self) -> &[IpAddr] {
        &self.inner.addresses
    }

    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.inner.addresses.iter().find_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
    }

    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.inner.addresses.iter().find_map(|a| match a {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
    }

    /// The address of `family` (`true`: IPv6).
    pub fn ip(&self, ipv6: bool) -> Option<IpAddr> {
        self.inner
            .addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv6() == ipv6)
    }

    /// Starts `cmd` in this pod as `creds`; several processes can share a pod. Its output goes
    /// to `<node dir>/<pod>-<label>.log`. The process is killed when the handle is dropped or
    /// the node is torn down.
    pub fn spawn(&self, label: &str, cmd: Command, creds: Credentials) -> Result<Process, Error> {
        self.spawn_with(label, cmd, creds, &[])
    }

    /// `spawn`, with files of its own over files of `/etc` (`("resolv.conf", "nameserver
    /// 10.96.0.10\n")`, `hosts`...), bound in a private mount namespace: processes in a pod
    /// otherwise see the host's `/etc`.
    pub fn spawn_with(
        &self,
        label: &str,
        cmd: Command,
        creds: Credentials,
        etc: &[(&str, &str)],
    ) -> Result<Process, Error> {
        let node = &self.inner.node;
        let log = node.log(&format!("{}-{label}", self.inner.name));
        let binds = self.etc_binds(label, etc)?;
        node.spawner
            .spawn(cmd, Some(&self.inner.netns), creds, binds, &log)
    }

    /// Runs `cmd` to completion in this pod as `creds`, feeding it `stdin`; its stdout, or an
    /// error with its stderr. Killed after `timeout`.
    pub async fn run(
        &self,
        cmd: Command,
        creds: Credentials,
        stdin: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        self.run_with(cmd, creds, &[], stdin, timeout).await
    }

    /// `run`, with files of its own over files of `/etc` (see `spawn_with`).
    pub async fn run_with(
        &self,
        cmd: Command,
        creds: Credentials,
        etc: &[(&str, &str)],
        stdin: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        let netns = self.inner.netns.clone();
        let binds = self.etc_binds("run", etc)?;
        let stdin = stdin.to_string();
        tokio::task::spawn_blocking(move || sys::run_as(&netns, cmd, creds, binds, &stdin, timeout))
            .await
            .map_err(|e| Error::Setup(format!("a command in a pod panicked: {e}")))?
    }

    /// Writes each `(name, content)` to `<node dir>/etc-<pod>-<label>/<name>`, to be bound over
    /// `/etc/<name>` (which must exist).
    fn etc_binds(&self, label: &str, etc: &[(&str, &str)]) -> Result<sys::Binds, Error> {
        if etc.is_empty() {
            return Ok(Vec::new());
        }
        let dir = self
            .inner
            .node
            .dir
            .join(format!("etc-{}-{label}", self.inner.name));
        std::fs::create_dir_all(&dir)?;
        let mut pairs = Vec::new();
        for (name, content) in etc {
            if name.is_empty() || name.contains('/') || *name == ".." {
                return Err(Error::Setup(format!("{name:?} is not a file name in /etc")));
            }
            let target = std::path::Path::new("/etc").join(name);
            if !target.is_file() {
                return Err(Error::Setup(format!(
                    "{}: no such file to bind over",
                    target.display()
                )));
            }
            let source = dir.join(name);
            std::fs::write(&source, content)?;
            pairs.push((source, target));
        }
        sys::binds(&pairs)
    }

    /// A TCP server on `port` (all addresses) answering `<pod id>:<port>`; lives as long as
    /// the node.
    pub fn serve_tcp(&self, port: u16) -> Result<(), Error> {
        self.serve_tcp_on(traffic::any(port))
    }

    pub fn serve_tcp_on(&self, addr: SocketAddr) -> Result<(), Error> {
        let s = traffic::tcp_server(
            &self.inner.netns,
            addr,
            format!("{}:{}", self.id(), addr.port()),
        )?;
        self.inner.node.state().servers.push(s);
        Ok(())
    }

    /// A UDP echo server on `port` answering `<pod id>:<port> <datagram>`.
    pub fn serve_udp(&self, port: u16) -> Result<(), Error> {
        self.serve_udp_on(traffic::any(port))
    }

    pub fn serve_udp_on(&self, addr: SocketAddr) -> Result<(), Error> {
        let s = traffic::udp_server(
            &self.inner.netns,
            addr,
            format!("{}:{}", self.id(), addr.port()),
        )?;
        self.inner.node.state().servers.push(s);
        Ok(())
    }

    /// A DNS resolver (UDP and TCP) on `addr` answering from `records`.
    pub fn serve_dns(&self, addr: SocketAddr, records: Records) -> Result<(), Error> {
        let servers = dns::servers(&self.inner.netns, addr, records)?;
        self.inner.node.state().servers.extend(servers);
        Ok(())
    }

    /// A new TCP connection from this pod to `dst`.
    pub async fn tcp(&self, dst: SocketAddr, timeout: Duration) -> Result<Outcome, Error> {
        sys::in_netns(&self.inner.netns, move || {
            Ok(traffic::tcp_probe(dst, timeout))
        })
        .await
    }

    /// A datagram from a new UDP socket of this pod to `dst`, and its echo.
    pub async fn udp(&self, dst: SocketAddr, timeout: Duration) -> Result<Outcome, Error> {
        sys::in_netns(&self.inner.netns, move || {
            Ok(traffic::udp_probe(dst, timeout))
        })
        .await
    }

    /// An ICMP echo request (ICMPv6 for an IPv6 `dst`) and its reply.
    pub async fn ping(&self, dst: IpAddr, timeout: Duration) -> Result<Outcome, Error> {
        sys::in_netns(&self.inner.netns, move || {
            Ok(traffic::icmp_probe(dst, timeout))
        })
        .await
    }

    /// A DNS query for `name` (AAAA when `ipv6`) to `server` over `transport`.
    pub async fn resolve(
        &self,
        server: SocketAddr,
        name: &str,
        ipv6: bool,
        transport: Protocol,
        timeout: Duration,
    ) -> Result<Outcome, Error> {
        let name = name.to_string();
        sys::in_netns(&self.inner.netns, move || {
            Ok(dns::probe(server, &name, ipv6, transport, timeout))
        })
        .await
    }

    /// The API server on 127.0.0.1 (the same port) inside this pod, for processes that talk to it
    /// (istiod); returns the admin kubeconfig, which works there unchanged.
    pub async fn bridge_api_server(&self) -> Result<std::path::PathBuf, Error> {
        self.inner.node.bridge_api(&self.inner.netns).await?;
        Ok(self.inner.node.kubeconfig.clone())
    }
}

impl Node {
    /// Creates a pod: its namespace and wiring (unless host network), its `Pod` object, and
    /// the object's status as a kubelet would write it.
    pub async fn add_pod(&self, spec: PodSpec) -> Result<Pod, Error> {
        self.create_pod(spec, true).await
    }

    /// A `Pod` object with addresses of this node but no namespace behind them (the
    /// enforcer's sentinel).
    pub(crate) async fn add_unwired_pod(&self, spec: PodSpec) -> Result<Pod, Error> {
        self.create_pod(spec, false).await
    }

    async fn create_pod(&self, spec: PodSpec, wired: bool) -> Result<Pod, Error> {
        let inner = &self.inner;
        let (netns, addresses) = if spec.host_network {
            let mut a = vec![IpAddr::V4(inner.ipv4())];
            a.extend(inner.ipv6().map(IpAddr::V6));
            (inner.name.clone(), a)
        } else {
            let ipv6 = inner.config.dual_stack && !spec.ipv4_only;
            let host = self.next_host()?;
            let mut a = vec![IpAddr::V4(inner.pod_ipv4(host))];
            if ipv6 {
                a.push(IpAddr::V6(inner.pod_ipv6(host)));
            }
            let netns = format!("{}-p{host}", inner.name);
            if wired {
                self.wire(&netns, &format!("p{host}"), host, &a)?;
                let mut state = inner.state();
                state
                    .wired
                    .push((spec.namespace.clone(), spec.name.clone(), ipv6));
            }
            (netns, a)
        };
        if let Some(sa) = &spec.service_account {
            ensure_service_account(&inner.admin, &spec.namespace, sa).await?;
        }
        inner
            .state()
            .pods
            .push((spec.namespace.clone(), spec.name.clone()));
        create_object(inner, &spec, &addresses).await?;
        Ok(Pod {
            inner: Arc::new(PodInner {
                node: inner.clone(),
                namespace: spec.namespace,
                name: spec.name,
                netns,
                addresses,
            }),
        })
    }

    /// A host outside the cluster (no `Pod` object) with `addresses`, routed through the node:
    /// the Internet, an allow-listed database, an external resolver, as a test needs.
    pub fn add_external(&self, label: &str, addresses: &[IpAddr]) -> Result<Pod, Error> {
        let host = self.next_host()?;
        let netns = format!("{}-x{host}", self.inner.name);
        self.wire(&netns, &format!("x{host}"), host, addresses)?;
        Ok(Pod {
            inner: Arc::new(PodInner {
                node: self.inner.clone(),
                namespace: String::new(),
                name: label.to_string(),
                netns,
                addresses: addresses.to_vec(),
            }),
        })
    }

    fn next_host(&self) -> Result<u16, Error> {
        let mut state = self.inner.state();
        if state.shut_down {
            return Err(Error::Setup("the node is shut down".into()));
        }
        let host = state.next_host;
        if host > 254 {
            return Err(Error::Setup(
                "254 pods on one node: the pod CIDR is full".into(),
            ));
        }
        state.next_host += 1;
        Ok(host)
    }

    /// A namespace with `eth0` paired to `link` in the node, `addresses` on it, a /32 (/128)
    /// route per address in the node and default routes in the namespace. IPv6 neighbours are
    /// static on both sides: kube-router v2.1.0 drops a pod's ICMPv6 neighbour discovery once
    /// an egress policy selects it (upstream issue #1895), which would cut IPv6 whatever the
    /// policy allows; the rows are about the policies, not that bug.
    fn wire(&self, ns: &str, link: &str, host: u16, addresses: &[IpAddr]) -> Result<(), Error> {
        netns::create(ns)?;
        self.inner.state().namespaces.push(ns.to_string());
        sys::sysctls(
            ns,
            &[
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ],
        )?;
        let node = self.netns();
        // Locally administered MACs: node index, host index, side.
        let mac = |side: u8| {
            format!(
                "02:00:{:02x}:{:02x}:{:02x}:{side:02x}",
                self.inner.index,
                host >> 8,
                host & 0xff
            )
        };
        let (node_mac, pod_mac) = (mac(1), mac(2));
        let mut in_node = vec![
            format!("link add {link} address {node_mac} type veth peer name eth0 address {pod_mac} netns {ns}"),
            format!("addr add {GATEWAY_V4}/32 dev {link}"),
            format!("addr add {GATEWAY_V6}/64 dev {link} nodad"),
            format!("link set {link} up"),
        ];
        let mut in_pod = vec!["link set eth0 up".to_string()];
        for a in addresses {
            let prefix = if a.is_ipv6() { 128 } else { 32 };
            let nodad = if a.is_ipv6() { " nodad" } else { "" };
            in_node.push(format!("route add {a}/{prefix} dev {link}"));
            in_pod.push(format!("addr add {a}/{prefix} dev eth0{nodad}"));
            if a.is_ipv6() {
                in_node.push(format!(
                    "neigh replace {a} lladdr {pod_mac} dev {link} nud permanent"
                ));
            }
        }
        if addresses.iter().any(IpAddr::is_ipv4) {
            in_pod.push(format!("route add {GATEWAY_V4}/32 dev eth0 scope link"));
            in_pod.push(format!("route add default via {GATEWAY_V4} dev eth0"));
        }
        if addresses.iter().any(IpAddr::is_ipv6) {
            in_pod.push(format!(
                "neigh replace {GATEWAY_V6} lladdr {node_mac} dev eth0 nud permanent"
            ));
            in_pod.push(format!("route add default via {GATEWAY_V6} dev eth0"));
        }
        sys::ip_batch(Some(node), &in_node)?;
        sys::ip_batch(Some(ns), &in_pod)
    }
}
