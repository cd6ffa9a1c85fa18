//! Tests that only a real API server can answer (built with `--features real-cluster`, run by
//! `.ci/test-real` inside `testenv run`): the CRD's schema, CEL rules, defaulting and pruning as
//! the server applies them; every generated object created with `fieldValidation=Strict`
//! against Istio's real CRDs; what `kubectl get` and `kubectl describe` show.
//! Without `MESHBASELINE_E2E_KUBECONFIG` every test fails (it never passes without a server).

mod admission;
mod crd;
mod enums;
mod generated;
mod kubectl;
mod metrics;
mod offline;
mod posture;
mod tenant;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The real cluster (prepared: CRDs, chart RBAC), or a clear failure.
pub async fn real_cluster(
) -> Result<meshbaseline_e2e::Cluster, Box<dyn std::error::Error + Send + Sync>> {
    let Some(path) = std::env::var_os(meshbaseline_e2e::KUBECONFIG_ENV).filter(|v| !v.is_empty())
    else {
        return Err(format!(
            "these tests need a real API server: set {} (`.ci/test-real` runs them inside \
             `target/testenv/bin/testenv run`)",
            meshbaseline_e2e::KUBECONFIG_ENV
        )
        .into());
    };
    Ok(meshbaseline_e2e::Cluster::real(std::path::Path::new(&path)).await?)
}
