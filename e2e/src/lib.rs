//! End-to-end suite for MeshBaseline: an in-process Kubernetes API simulator (`sim`), a
//! harness (`cluster`) that runs the same scenarios against it or against a real cluster, and
//! a data plane of network namespaces with a real NetworkPolicy enforcer (`dataplane`).

pub mod cluster;
pub mod dataplane;
mod gate;
pub mod istio;
pub mod process;
pub mod proxy;
pub mod real;
pub mod sim;

pub use cluster::{Cluster, Gate, HarnessError, KUBECONFIG_ENV, TENANT_MANAGER};
pub use sim::{
    FaultConfig, RequestLog, RequestRecord, SimConfig, SimError, SimHandle, SimView, Simulator,
    Verb,
};

fn sim_lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The seeded list stays usable after a panicking test thread.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
