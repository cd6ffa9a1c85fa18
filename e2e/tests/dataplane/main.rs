//! What the generated NetworkPolicies mean on real packets: pods made of network namespaces on
//! the local control plane (`meshbaseline_e2e::dataplane`), kube-router's network-policy
//! controller as the enforcer, the operator as its own process writing the policies, and TCP,
//! UDP, ICMP and DNS from real sockets. Built with `--features real-cluster`, run as root by
//! `.ci/test-real` inside `testenv run`; without a server, root, iptables, ipset, socat or the
//! kube-router binary every test fails saying what is missing.

mod harness;
mod mesh;
mod modes;
mod rows;

use std::path::PathBuf;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The admin kubeconfig of the real cluster, or a clear failure.
pub fn kubeconfig() -> Result<PathBuf, AnyError> {
    std::env::var_os(meshbaseline_e2e::KUBECONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!(
                "the data-plane tests need a real API server: set {} (`.ci/test-real` runs them \
                 inside `target/testenv/bin/testenv run`)",
                meshbaseline_e2e::KUBECONFIG_ENV
            )
            .into()
        })
}

/// The real cluster, prepared (CRDs, chart RBAC); holding it serializes the tests, which share
/// the cluster's baselines and root namespace.
pub async fn real_cluster() -> Result<meshbaseline_e2e::Cluster, AnyError> {
    Ok(meshbaseline_e2e::Cluster::real(&kubeconfig()?).await?)
}
