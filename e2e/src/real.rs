//! Preparing a real cluster for the suite, once per test process: Istio's CRDs (the real ones,
//! from `shared/istio/crds.yaml`) and ours, the chart's ServiceAccount and RBAC as Helm renders
//! them, and a ClusterRole that aggregates edit rights on Istio's kinds into `edit` (what a
//! platform team grants its tenants). Then the identities the scenarios act as: the operator
//! (a bound token of the chart's ServiceAccount) and a tenant (a plain user, impersonated by
//! the admin, bound to `edit` in each scenario namespace).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::{ApiResource, Discovery};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use crate::cluster::{parse_documents, HarnessError};

/// The release namespace and ServiceAccount of the chart as the suite installs it.
pub const OPERATOR_NAMESPACE: &str = "meshbaseline-system";
/// The user tenants' actions run as (with `edit` in their namespaces only).
pub const TENANT_USER: &str = "meshbaseline-e2e-tenant";
/// Field manager of the harness's own setup writes.
const SETUP_MANAGER: &str = "meshbaseline-e2e-setup";
/// Names the Helm-rendered manifest of the chart (default `target/helm/meshbaseline-defaults.yaml`,
/// written by `.ci/helm-lint.sh`).
pub const CHART_MANIFEST_ENV: &str = "MESHBASELINE_E2E_CHART_MANIFEST";

static PREPARED: OnceCell<String> = OnceCell::const_new();

fn workspace_root() -> PathBuf {
    // e2e/ is a member of the workspace at its parent.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `shared/istio/crds.yaml`: `MESHBASELINE_ISTIO_CRDS`, else beside an ancestor of the workspace.
pub fn istio_crds_path() -> Result<PathBuf, HarnessError> {
    if let Ok(p) = std::env::var("MESHBASELINE_ISTIO_CRDS") {
        return Ok(PathBuf::from(p));
    }
    let root = workspace_root();
    root.ancestors()
        .flat_map(|a| {
            [
                a.join("shared/istio/crds.yaml"),
                a.join("../shared/istio/crds.yaml"),
            ]
        })
        .find(|p| p.is_file())
        .ok_or_else(|| {
            HarnessError::Setup(format!(
                "Istio CRDs not found beside any ancestor of {}: set MESHBASELINE_ISTIO_CRDS",
                root.display()
            ))
        })
}

/// The ClusterNetworkPolicy CRD of sigs.k8s.io/network-policy-api: `MESHBASELINE_NPAPI_CRDS`
/// (`e2e/npapi/crds.sh` prints it).
fn npapi_crds_path() -> Result<PathBuf, HarnessError> {
    std::env::var_os("MESHBASELINE_NPAPI_CRDS")
        .map(PathBuf::from)
        .ok_or_else(|| {
            HarnessError::Setup(
                "the cluster has no ClusterNetworkPolicy CRD: set MESHBASELINE_NPAPI_CRDS=$(e2e/npapi/crds.sh)"
                    .into(),
            )
        })
}

fn chart_manifest_path() -> PathBuf {
    std::env::var_os(CHART_MANIFEST_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/helm/meshbaseline-defaults.yaml"))
}

fn read(path: &Path) -> Result<String, HarnessError> {
    std::fs::read_to_string(path)
        .map_err(|e| HarnessError::Setup(format!("{}: {e}", path.display())))
}

/// Prepares the cluster once per process; returns the operator's ServiceAccount name.
pub async fn prepare(admin: &kube::Client) -> Result<String, HarnessError> {
    PREPARED
        .get_or_try_init(|| async { prepare_once(admin).await })
        .await
        .cloned()
}

async fn prepare_once(admin: &kube::Client) -> Result<String, HarnessError> {
    // Istio's CRDs from shared/istio/crds.yaml unless the cluster has them (a cluster with
    // Istio installed keeps its own); ours always, so the CRD under test is the current one.
    let crd_api: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let mut istio_missing = false;
    for (group, _, plural) in crate::sim::ISTIO_KINDS {
        istio_missing |= crd_api
            .get_opt(&format!("{plural}.{group}"))
            .await?
            .is_none();
    }
    let mut crds = Vec::new();
    if istio_missing {
        crds.extend(parse_documents(&read(&istio_crds_path()?)?)?);
    }
    crds.extend(parse_documents(&read(
        &workspace_root().join("crds/meshbaselines.meshbaseline.dev.yaml"),
    )?)?);
    // The Admin network-policy tier: generated wherever the API is served, so the suite
    // always has it (a cluster with a network plugin that ships it keeps its own).
    if crd_api
        .get_opt("clusternetworkpolicies.policy.networking.k8s.io")
        .await?
        .is_none()
    {
        crds.extend(parse_documents(&read(&npapi_crds_path()?)?)?);
    }
    for crd in &crds {
        apply_admin(admin, crd).await?;
    }
    wait_established(admin, &crds).await?;

    apply_admin(admin, &json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "meshbaseline-e2e-istio-edit",
                     "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
        "rules": [{"apiGroups": ["security.istio.io", "networking.istio.io"],
                   "resources": ["*"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]}]
    }))
    .await?;
    for ns in [OPERATOR_NAMESPACE, "istio-system"] {
        apply_admin(
            admin,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }

    let manifest = chart_manifest_path();
    let text = read(&manifest).map_err(|e| {
        HarnessError::Setup(format!(
            "{e}: the chart's rendered manifest is needed for its ServiceAccount and RBAC \
             (run .ci/helm-lint.sh, or set {CHART_MANIFEST_ENV})"
        ))
    })?;
    let mut service_account = None;
    for doc in parse_documents(&text)? {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if !matches!(
            kind,
            "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
        ) {
            continue;
        }
        let mut doc = doc.clone();
        if kind != "ClusterRole" && kind != "ClusterRoleBinding" {
            doc["metadata"]["namespace"] = json!(OPERATOR_NAMESPACE);
        }
        if kind == "ServiceAccount" {
            service_account = doc["metadata"]["name"].as_str().map(str::to_string);
        }
        apply_admin(admin, &doc).await?;
    }
    service_account
        .ok_or_else(|| HarnessError::Setup(format!("{}: no ServiceAccount", manifest.display())))
}

/// Server-side apply as the setup manager, with force (setup owns what it writes).
pub async fn apply_admin(admin: &kube::Client, obj: &Value) -> Result<DynamicObject, HarnessError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let (ar, caps) = kube::discovery::pinned_kind(admin, &gvk).await?;
    let api: Api<DynamicObject> = match (caps.scope, obj["metadata"]["namespace"].as_str()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(admin.clone(), ns, &ar)
        }
        _ => Api::all_with(admin.clone(), &ar),
    };
    let params = PatchParams::apply(SETUP_MANAGER).force();
    Ok(api.patch(name, &params, &Patch::Apply(obj)).await?)
}

async fn wait_established(admin: &kube::Client, crds: &[Value]) -> Result<(), HarnessError> {
    let ar = ApiResource::erase::<CustomResourceDefinition>(&());
    let api: Api<DynamicObject> = Api::all_with(admin.clone(), &ar);
    for crd in crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let mut established = false;
        for _ in 0..300 {
            let live = api.get(name).await?;
            established = live.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True");
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !established {
            return Err(HarnessError::Setup(format!(
                "CRD {name} not Established after 30s"
            )));
        }
    }
    // Discovery caches of the server catch up a little after Established.
    for _ in 0..100 {
        let d = Discovery::new(admin.clone())
            .filter(&["meshbaseline.dev"])
            .run()
            .await?;
        if d.groups().next().is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(HarnessError::Setup(
        "meshbaseline.dev not in discovery after 10s".into(),
    ))
}

/// A kube config acting as the operator: the admin config's server and CA, with a bound token
/// of the chart's ServiceAccount (one hour) instead of the admin's credentials.
pub async fn operator_config(
    admin_config: &kube::Config,
    admin: &kube::Client,
    service_account: &str,
) -> Result<kube::Config, HarnessError> {
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), OPERATOR_NAMESPACE);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = api
        .create_token_request(service_account, &PostParams::default(), &request)
        .await?
        .status
        .map(|s| s.token)
        .ok_or_else(|| HarnessError::Setup("TokenRequest answered without a token".into()))?;
    Ok(with_identity(admin_config, Identity::Token(token)))
}

pub enum Identity {
    Token(String),
    /// The admin's credentials, impersonating this user in these groups.
    Impersonate(String, Vec<String>),
}

pub fn with_identity(admin_config: &kube::Config, identity: Identity) -> kube::Config {
    let mut config = admin_config.clone();
    match identity {
        Identity::Token(token) => {
            config.auth_info = kube::config::AuthInfo {
                token: Some(token.into()),
                ..kube::config::AuthInfo::default()
            };
        }
        Identity::Impersonate(user, groups) => {
            config.auth_info.impersonate = Some(user);
            config.auth_info.impersonate_groups = Some(groups);
        }
    }
    config
}

/// The tenant: `TENANT_USER` in `system:authenticated`, through the admin's impersonation.
pub fn tenant_config(admin_config: &kube::Config) -> kube::Config {
    with_identity(
        admin_config,
        Identity::Impersonate(TENANT_USER.into(), vec!["system:authenticated".into()]),
    )
}

/// Binds the tenant to `edit` in `ns` and waits for the namespace's `default` ServiceAccount
/// (pods cannot be created before the controller manager has made it).
pub async fn grant_tenant(admin: &kube::Client, ns: &str) -> Result<(), HarnessError> {
    apply_admin(admin, &json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "meshbaseline-e2e-tenant-edit", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TENANT_USER}]
    }))
    .await?;
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    for _ in 0..300 {
        if api.get_opt("default").await?.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(HarnessError::Setup(format!(
        "namespace {ns}: no default ServiceAccount after 30s"
    )))
}
