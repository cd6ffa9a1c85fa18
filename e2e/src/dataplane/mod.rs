//! A node made of Linux network namespaces, on a real API server (the local control plane of
//! `e2e/testenv`), for proving on real packets what the generated policies mean.
//!
//! # What it builds
//!
//! - [`Node`]: a network namespace acting as the node (routing between pods, `ip_forward=1`,
//!   `rp_filter=0`, the node's addresses on its `lo`), a `Node` object with `podCIDRs` and
//!   `InternalIP`s, and a bridge to the API server: the server listens on the host's
//!   127.0.0.1, which the node's namespace cannot reach, so `socat` in the host namespace
//!   serves it on a Unix socket (the file system is shared) and `socat` in the node's
//!   namespace serves that socket on the node's own 127.0.0.1, same port: the admin
//!   kubeconfig works unchanged inside. [`Pod::bridge_api_server`] does the same in a pod.
//! - [`Pod`]: a network namespace per pod (IPv4, and IPv6 unless [`PodSpec::ipv4_only`]), a veth
//!   pair into the node with a /32 (/128) route on the node side and a default route in the
//!   pod, and a `Pod` object with `nodeName`, labels, annotations, `serviceAccountName` and any
//!   extra `spec` fields, whose `status` (`phase`, `podIP`/`podIPs`, `hostIP`/`hostIPs`, `Ready`)
//!   is written through the status subresource as a kubelet would. [`PodSpec::host_network`]
//!   pods share the node's namespace. [`Node::add_external`] adds a namespace "outside the
//!   cluster" with the addresses a test chooses.
//! - Processes in a pod ([`Pod::spawn`]), as any UID/GID ([`Credentials`]), several per pod; and
//!   in-process servers and probes ([`traffic`], [`dns`]): TCP, UDP, ICMP (v4 and v6) and DNS
//!   from real sockets, each in a thread that entered the pod's namespace.
//! - Services and EndpointSlices on demand ([`Node::add_service`]), with DNAT rules in the
//!   node's namespace standing in for kube-proxy (first endpoint of each family).
//! - The enforcer ([`Node::start_kube_router`]): kube-router's network-policy controller in the
//!   node's namespace, and [`Node::sync_policies`], a barrier that returns once every
//!   NetworkPolicy written before it is in the node's iptables rules (and flushes conntrack,
//!   so that every probe opens a new flow).
//!
//! # Hygiene
//!
//! Nothing is created in the host's own network namespace except the host side of the API
//! bridge (a process on a Unix socket). Every namespace is named `mbdp-<pid>-<node>-...`; the
//! harness refuses to start without root, `ip`, `iptables`, `ipset`, `socat` and `conntrack`
//! (naming the Debian packages), removes what a dead process left ([`sweep_stale`]), and
//! removes its own namespaces, links, rules and API objects on [`Node::shutdown`] or, when a
//! test fails first, on drop. Processes are spawned from one thread per node with a
//! parent-death signal, so they end with the test process even when it is killed. Traffic only
//! goes to addresses of namespaces the harness created; every loop is bounded in count and time.
//!
//! # Stability
//!
//! The API of this module ([`Node`], [`NodeConfig`], [`Pod`], [`PodSpec`], [`Credentials`],
//! [`Process`], [`ServiceSpec`], [`traffic`], [`dns`]) is meant for other suites (the Istio data
//! plane runs istiod, pilot-agent and Envoy in these pods). Tests that drive it live in
//! `e2e/tests/dataplane` and run as root inside `testenv run` (`.ci/test-real`).

pub mod dns;
mod enforcer;
mod netns;
mod node;
mod pod;
mod pod_object;
mod process;
mod service;
mod sys;
pub mod traffic;

use std::path::{Path, PathBuf};

pub use enforcer::kube_router_binary;
pub use netns::sweep_stale;
pub use node::{Node, NodeConfig};
pub use pod::{Pod, PodSpec};
pub use process::Process;
pub use service::{ServicePort, ServiceSpec};
pub use sys::{check_prerequisites, Credentials};
pub use traffic::{Outcome, Protocol};

/// Why the data plane could not be built or driven.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("data-plane prerequisite: {0}")]
    Prerequisite(String),
    #[error("{command}: {detail}")]
    Command { command: String, detail: String },
    #[error("data plane: {0}")]
    Setup(String),
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        what: String,
        after: std::time::Duration,
    },
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn workspace_root() -> PathBuf {
    // e2e/ is a member of the workspace at its parent.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
