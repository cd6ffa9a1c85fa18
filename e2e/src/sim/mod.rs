//! An in-process Kubernetes API server for tests: real HTTP on a loopback port, served from
//! memory. It implements what the operator uses (docs/operations.md, "RBAC") plus what tests
//! need to seed data, with the simplifications written next to the code that makes them:
//!
//! - no authentication, authorization, admission, defaulting, schema validation or pruning;
//!   only names (RFC 1123 subdomains), URL/body consistency and namespace existence are checked
//!   (`server_fields`); CRD versions are not converted, only `apiVersion` is rewritten
//!   (`resources`);
//! - lists are atomic for server-side apply, a `null` in an applied configuration removes the
//!   field, client-supplied `managedFields` are ignored (`fieldset`, `apply`);
//! - strategic merge patch is a JSON merge patch (`writes`, `request`);
//! - lists are served from the latest state whatever resourceVersion they ask for; later pages
//!   of a continued list read the then-current state (`reads`);
//! - watch history is compacted by count or on demand, not by time; bookmarks come every
//!   `bookmark_interval`, on `bookmark_now` and before a timeout (`store`, `watch`);
//! - garbage collection is synchronous, `Foreground` acts as `Background`, namespaces and CRDs
//!   take their objects along at once (`gc`);
//! - create ignores `.status` on kinds with a status subresource; Pods and Services are plain
//!   data (nothing schedules or allocates anything);
//! - field selectors support `metadata.name` and `metadata.namespace` only (`selectors`);
//! - `dryRun=All` evaluates the write and stores nothing (`store`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use meshbaseline_e2e::sim::{Simulator, FaultConfig};
//! let sim = Simulator::start().await?;
//! sim.install_standard_crds()?;
//! let client = sim.client()?; // what the operator under test uses
//! let mark = sim.mark();
//! sim.set_faults(FaultConfig { error_rate: 0.2, ..FaultConfig::default() });
//! // ... run the scenario ...
//! assert_eq!(sim.requests_since(mark).writes_by("meshbaseline"), 0);
//! # Ok(()) }
//! ```

mod accounting;
mod apply;
mod crds;
mod discovery;
mod errors;
mod faults;
mod fieldset;
mod gc;
mod http;
#[cfg(test)]
mod props;
mod reads;
mod request;
mod resources;
mod selectors;
mod server_fields;
mod store;
mod watch;
mod writes;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch as notify;

pub use accounting::{RequestLog, RequestRecord, Verb};
pub use crds::{istio_crd, istio_crds, meshbaseline_crd, ISTIO_KINDS};
pub use errors::ApiError;
pub use faults::{FaultConfig, WATCH_LIST_REFUSED};

pub(crate) use accounting::Accounting;
pub(crate) use faults::Faults;
use store::State;

/// Requests carrying this header (the harness's own client) are exempt from faults and not
/// counted.
pub const HARNESS_HEADER: &str = "x-meshbaseline-sim-harness";

/// Manager name of objects the handle writes directly.
pub const SIM_MANAGER: &str = "sim-harness";

/// Namespaces a fresh cluster has.
pub const DEFAULT_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Knobs fixed at start.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Changes kept for watch resumption; older resourceVersions answer 410 Gone.
    pub history_capacity: usize,
    /// How often open watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            history_capacity: 100_000,
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

/// State shared by the server tasks and the handle.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// The latest resourceVersion; watches and waiters wake on it.
    changes: notify::Sender<u64>,
    bookmarks: notify::Sender<u64>,
    cuts: notify::Sender<u64>,
    faults: Mutex<Faults>,
    accounting: Mutex<Accounting>,
    config: SimConfig,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the server: the state stays usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// Errors of the handle.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on loopback: {0}")]
    Listen(#[from] std::io::Error),
    #[error("cannot build a kube client: {0}")]
    Client(#[from] kube::Error),
    #[error("invalid simulator url: {0}")]
    Url(#[from] ::http::uri::InvalidUri),
    #[error("{0}")]
    Api(String),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}

impl From<ApiError> for SimError {
    fn from(e: ApiError) -> Self {
        SimError::Api(format!("{} ({}): {}", e.code, e.reason, e.message))
    }
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Starts a simulator with the default config on `127.0.0.1:0`.
    pub async fn start() -> Result<SimHandle, SimError> {
        Simulator::start_with(SimConfig::default()).await
    }

    pub async fn start_with(config: SimConfig) -> Result<SimHandle, SimError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config.history_capacity)),
            changes: notify::channel(0).0,
            bookmarks: notify::channel(0).0,
            cuts: notify::channel(0).0,
            faults: Mutex::new(Faults::default()),
            accounting: Mutex::new(Accounting::default()),
            config,
        });
        let (stop, stopped) = notify::channel(false);
        let server = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        let handle = SimHandle {
            addr,
            shared,
            stop,
            server,
        };
        for ns in DEFAULT_NAMESPACES {
            handle.create(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))?;
        }
        Ok(handle)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stopped: notify::Receiver<bool>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // As Go's net/http (and so kube-apiserver) does: without it a response written in two
        // segments can wait for the client's delayed ACK, 40 ms on Linux.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| http::handle(shared.clone(), req));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        });
    }
}

/// A running simulator. Dropping it stops the server and closes every connection.
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: notify::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.server.abort();
        self.stop.send_replace(true);
    }
}

mod handle;
pub use handle::SimView;
