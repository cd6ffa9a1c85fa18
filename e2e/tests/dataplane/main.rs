//! What the generated NetworkPolicies mean on real packets: pods made of network namespaces on
//! the local control plane (`meshbaseline_e2e::dataplane`), kube-router's network-policy
//! controller as the enforcer, the operator as its own process writing the policies, and TCP,
//! UDP, ICMP and DNS from real sockets. Built with `--features real-cluster`, run as root by
//! `.ci/test-real` inside `testenv run`; without a server, root, iptables, ipset, socat or the
//! kube-router binary every test fails saying what is missing.

mod defects;
mod harness;
mod mesh;
mod modes;
mod rows;
mod sample;
mod tenant;

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

/// Writes what the enforcer made of the policies to `target/dataplane/<what>.state` and
/// returns the failure with that path, so a failing row can be read against the rules.
pub fn failure(node: &meshbaseline_e2e::dataplane::Node, what: &str, detail: String) -> AnyError {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dataplane");
    let file: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let path = dir.join(format!("{file}.state"));
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, node.enforcer_state()));
    match written {
        Ok(()) => format!(
            "{what}: {detail}\n(the enforcer's rules: {})",
            path.display()
        )
        .into(),
        Err(e) => {
            format!("{what}: {detail}\n(the enforcer's rules could not be saved: {e})").into()
        }
    }
}
