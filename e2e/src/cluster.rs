//! The cluster a scenario runs against: the in-process simulator by default, or a real
//! cluster when `MESHBASELINE_E2E_KUBECONFIG` names a kubeconfig (the local control plane of
//! `e2e/testenv`, or any other). Seeding and checks go through the Kubernetes API in both
//! cases. On a real cluster the operator acts as the chart's ServiceAccount through the fault
//! proxy (`proxy`), which injects faults and counts requests as the simulator does, and
//! tenants act as a user with `edit` in their namespaces (`real`).

use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{pinned_kind, ApiCapabilities, ApiResource, Scope};
use serde_json::Value;

pub use crate::gate::Gate;
use crate::proxy::FaultProxy;
use crate::real;
use crate::sim::{SimError, SimHandle, Simulator};

/// Names the kubeconfig of a real cluster to run the suite against.
pub const KUBECONFIG_ENV: &str = "MESHBASELINE_E2E_KUBECONFIG";

/// Namespaces tenants have no rights in: the harness writes there as the platform (admin).
const SYSTEM_NAMESPACES: &[&str] = &["istio-system", "kube-system", real::OPERATOR_NAMESPACE];

/// Field manager of objects a scenario seeds or edits as a tenant would.
pub const TENANT_MANAGER: &str = "tenant";

/// How often `wait_for` re-checks when nothing signals a change (real clusters, or conditions
/// on state outside the API such as metrics).
const RECHECK: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("object {0}")]
    Invalid(String),
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("unsupported against a real cluster: {0}")]
    Unsupported(String),
    #[error("setting up the cluster: {0}")]
    Setup(String),
    #[error("fault proxy: {0}")]
    Proxy(#[from] std::io::Error),
}

/// A seeded object, remembered for cleanup on real clusters.
struct Seeded {
    resource: ApiResource,
    namespace: Option<String>,
    name: String,
}

/// A cluster for one scenario.
pub struct Cluster {
    config: kube::Config,
    client: kube::Client,
    harness: kube::Client,
    /// Tenant writes: the harness client in the simulator, the `edit` user on a real cluster.
    tenant: kube::Client,
    backend: Backend,
    seeded: Mutex<Vec<Seeded>>,
}

/// What serves the scenario, with what only that kind of server needs.
enum Backend {
    Sim(SimHandle),
    Real(Box<RealServer>),
}

struct RealServer {
    /// Between the operator and the server.
    proxy: FaultProxy,
    /// The user the operator authenticates as.
    operator_user: String,
    /// The admin's config, for the cleanup of a scenario that failed.
    admin_config: kube::Config,
    /// Scenarios share a real cluster (cluster-scoped baselines, one root namespace, one
    /// Lease): they take turns, one `Cluster` at a time, whatever the test threads.
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

static REAL_CLUSTER_TURN: std::sync::LazyLock<std::sync::Arc<tokio::sync::Mutex<()>>> =
    std::sync::LazyLock::new(Default::default);

impl Cluster {
    /// The simulator (with the Istio and MeshBaseline CRDs installed), or the real cluster of
    /// `MESHBASELINE_E2E_KUBECONFIG` when set.
    pub async fn start() -> Result<Self, HarnessError> {
        match std::env::var_os(KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Cluster::real(Path::new(&path)).await,
            None => Cluster::simulated().await,
        }
    }

    pub async fn simulated() -> Result<Self, HarnessError> {
        let sim = Simulator::start().await?;
        sim.install_standard_crds()?;
        let harness = sim.harness_client()?;
        Ok(Cluster {
            config: sim.kube_config()?,
            client: sim.client()?,
            tenant: harness.clone(),
            harness,
            backend: Backend::Sim(sim),
            seeded: Mutex::default(),
        })
    }

    pub async fn real(kubeconfig: &Path) -> Result<Self, HarnessError> {
        let path = kubeconfig.display().to_string();
        let err = |source| HarnessError::Kubeconfig {
            path: path.clone(),
            source,
        };
        let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(err)?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(err)?;
        let turn = REAL_CLUSTER_TURN.clone().lock_owned().await;
        let admin = kube::Client::try_from(config.clone())?;
        let service_account = real::prepare(&admin).await?;
        let operator = real::operator_config(&config, &admin, &service_account).await?;
        let proxy = FaultProxy::start(kube::Client::try_from(operator)?).await?;
        let proxied = proxy
            .kube_config()
            .map_err(|e| HarnessError::Setup(format!("proxy address: {e}")))?;
        Ok(Cluster {
            client: kube::Client::try_from(proxied.clone())?,
            config: proxied,
            tenant: kube::Client::try_from(real::tenant_config(&config))?,
            harness: admin,
            backend: Backend::Real(Box::new(RealServer {
                proxy,
                admin_config: config.clone(),
                operator_user: format!(
                    "system:serviceaccount:{}:{service_account}",
                    real::OPERATOR_NAMESPACE
                ),
                _turn: turn,
            })),
            seeded: Mutex::default(),
        })
    }

    /// The fault proxy's URL (real clusters), where an operator process connects.
    pub fn proxy_url(&self) -> Option<String> {
        match &self.backend {
            Backend::Real(real) => Some(real.proxy.url()),
            Backend::Sim(_) => None,
        }
    }

    /// The user the operator authenticates as (real clusters).
    pub fn operator_user(&self) -> Option<String> {
        match &self.backend {
            Backend::Real(real) => Some(real.operator_user.clone()),
            Backend::Sim(_) => None,
        }
    }

    /// Fault injection and request accounting, in both modes.
    pub fn gate(&self) -> Gate<'_> {
        match &self.backend {
            Backend::Sim(sim) => Gate::Sim(sim),
            Backend::Real(real) => Gate::Proxy(&real.proxy),
        }
    }

    pub fn is_simulated(&self) -> bool {
        matches!(self.backend, Backend::Sim(_))
    }

    fn simulator(&self) -> Option<&SimHandle> {
        match &self.backend {
            Backend::Sim(sim) => Some(sim),
            Backend::Real(_) => None,
        }
    }

    /// The client for the system under test (counted and faulted in the simulator).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The kube config of the system under test (to start the controller with).
    pub fn kube_config(&self) -> kube::Config {
        self.config.clone()
    }

    /// The tenant's client: on a real cluster a user with `edit` in the scenario namespaces
    /// only; in the simulator (which has no RBAC) the harness client.
    pub fn tenant_client(&self) -> kube::Client {
        self.tenant.clone()
    }

    /// The client the harness seeds and checks with (never counted or faulted).
    pub fn harness_client(&self) -> kube::Client {
        self.harness.clone()
    }

    /// The simulator, for fault injection and request accounting.
    pub fn sim(&self) -> Result<&SimHandle, HarnessError> {
        self.simulator().ok_or_else(|| {
            HarnessError::Unsupported(
                "fault injection and request accounting need the simulator".into(),
            )
        })
    }

    /// The API resource of an apiVersion and kind (through discovery, in both modes).
    pub async fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities), HarnessError> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Ok(pinned_kind(&self.harness, &GroupVersionKind::gvk(group, version, kind)).await?)
    }

    async fn api(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
    ) -> Result<(Api<DynamicObject>, ApiResource), HarnessError> {
        self.api_as(&self.harness, api_version, kind, ns).await
    }

    /// The dynamic API of `api_version`/`kind` for `client`, namespaced or not as discovery
    /// says (`ns` is ignored for cluster-scoped kinds).
    pub async fn api_as(
        &self,
        client: &kube::Client,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
    ) -> Result<(Api<DynamicObject>, ApiResource), HarnessError> {
        let (ar, caps) = self.resource(api_version, kind).await?;
        let api = match (caps.scope, ns) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            (Scope::Namespaced, None) => Api::all_with(client.clone(), &ar),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
        };
        Ok((api, ar))
    }

    /// Who makes a tenant-side write: the tenant in its own namespaces; the platform (admin)
    /// for cluster-scoped objects and the system namespaces, where tenants have no rights.
    fn writer(&self, ns: Option<&str>) -> &kube::Client {
        match ns {
            Some(ns) if !SYSTEM_NAMESPACES.contains(&ns) => &self.tenant,
            _ => &self.harness,
        }
    }

    /// Server-side applies every document of `yaml` (multi-document, `kind: List` expanded)
    /// as the tenant, with force.
    pub async fn apply_yaml(&self, yaml: &str) -> Result<Vec<DynamicObject>, HarnessError> {
        let mut out = Vec::new();
        for obj in parse_documents(yaml)? {
            out.push(self.apply_as(TENANT_MANAGER, &obj, true).await?);
        }
        Ok(out)
    }

    /// Server-side applies one object as `manager`.
    pub async fn apply_as(
        &self,
        manager: &str,
        obj: &Value,
        force: bool,
    ) -> Result<DynamicObject, HarnessError> {
        let text = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_string);
        let (Some(api_version), Some(kind), Some(name)) =
            (text("/apiVersion"), text("/kind"), text("/metadata/name"))
        else {
            return Err(HarnessError::Invalid(format!(
                "needs apiVersion, kind and metadata.name: {obj}"
            )));
        };
        let ns = text("/metadata/namespace");
        let client = self.writer(ns.as_deref()).clone();
        let (api, resource) = self
            .api_as(&client, &api_version, &kind, ns.as_deref())
            .await?;
        let existed = api.get_opt(&name).await?.is_some();
        let mut params = PatchParams::apply(manager);
        params.force = force;
        let applied = api.patch(&name, &params, &Patch::Apply(obj)).await?;
        if kind == "Namespace" && api_version == "v1" && !self.is_simulated() {
            real::grant_tenant(&self.harness, &name).await?;
        }
        if !existed {
            let namespace = applied.metadata.namespace.clone();
            crate::sim_lock(&self.seeded).push(Seeded {
                resource,
                namespace,
                name,
            });
        }
        Ok(applied)
    }

    /// Edits an object with a JSON merge patch as the tenant (an `Update` operation).
    pub async fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<DynamicObject, HarnessError> {
        let (api, _) = self.api_as(self.writer(ns), api_version, kind, ns).await?;
        let params = PatchParams {
            field_manager: Some(TENANT_MANAGER.into()),
            ..PatchParams::default()
        };
        Ok(api.patch(name, &params, &Patch::Merge(patch)).await?)
    }

    /// Edits an object with a JSON patch (RFC 6902) as the tenant.
    pub async fn json_patch(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        ops: &Value,
    ) -> Result<DynamicObject, HarnessError> {
        let (api, _) = self.api(api_version, kind, ns).await?;
        let url = format!(
            "{}/{name}?fieldManager={TENANT_MANAGER}",
            api.resource_url()
        );
        let req = http::Request::patch(url)
            .header(http::header::CONTENT_TYPE, "application/json-patch+json")
            .body(serde_json::to_vec(ops)?)
            .map_err(|e| HarnessError::Invalid(format!("JSON patch request: {e}")))?;
        Ok(self.harness.request(req).await?)
    }

    /// Replaces an object as the tenant (`kubectl edit` / PUT): reads it, lets `edit` change
    /// it, and writes it back with the resourceVersion it read.
    pub async fn replace_as_tenant(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<DynamicObject, HarnessError> {
        let (api, _) = self.api(api_version, kind, ns).await?;
        let mut obj = serde_json::to_value(api.get(name).await?)?;
        edit(&mut obj);
        let obj: DynamicObject = serde_json::from_value(obj)?;
        let pp = PostParams {
            field_manager: Some(TENANT_MANAGER.into()),
            ..PostParams::default()
        };
        Ok(api.replace(name, &pp, &obj).await?)
    }

    /// Deletes an object (background propagation); `false` when it did not exist.
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Result<bool, HarnessError> {
        let (api, _) = self.api_as(self.writer(ns), api_version, kind, ns).await?;
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<DynamicObject>, HarnessError> {
        let (api, _) = self.api(api_version, kind, ns).await?;
        Ok(api.get_opt(name).await?)
    }

    /// Objects of a kind, in one namespace or all of them.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Vec<DynamicObject>, HarnessError> {
        let (api, _) = self.api(api_version, kind, ns).await?;
        let params = ListParams {
            label_selector: labels.map(str::to_string),
            ..ListParams::default()
        };
        Ok(api.list(&params).await?.items)
    }

    /// Evaluates `check` until it returns `Some`, failing after `timeout`. In the simulator a
    /// re-check happens on every change of the cluster state (and at least every 100 ms, for
    /// conditions on state outside the API); against a real cluster every 100 ms.
    pub async fn wait_for<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<T, HarnessError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, HarnessError>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let seen = self.simulator().map(SimHandle::resource_version);
            if let Some(out) = check().await? {
                return Ok(out);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(HarnessError::Timeout {
                    what: what.to_string(),
                    after: timeout,
                });
            }
            match (self.simulator(), seen) {
                (Some(sim), Some(seen)) => {
                    sim.changed_since(seen, left.min(RECHECK)).await;
                }
                _ => tokio::time::sleep(left.min(RECHECK)).await,
            }
        }
    }

    /// Deletes what the harness created, newest first (real clusters; a simulator just goes
    /// away with the handle).
    pub async fn cleanup(&self) -> Result<(), HarnessError> {
        let seeded = std::mem::take(&mut *crate::sim_lock(&self.seeded));
        delete_seeded(&self.harness, seeded).await
    }
}

/// A scenario that failed before `cleanup` must not leave its baselines to the next one on a
/// shared real cluster: delete what it seeded on a runtime of its own (the test's runtime may
/// be unwinding).
impl Drop for Cluster {
    fn drop(&mut self) {
        let seeded = std::mem::take(&mut *crate::sim_lock(&self.seeded));
        let config = match &self.backend {
            Backend::Real(real) if !seeded.is_empty() => real.admin_config.clone(),
            _ => return,
        };
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let admin = kube::Client::try_from(config)?;
                delete_seeded(&admin, seeded).await
            })?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("cleanup after a failed scenario: {e}");
        }
    }
}

async fn delete_seeded(admin: &kube::Client, seeded: Vec<Seeded>) -> Result<(), HarnessError> {
    let mut namespaces = Vec::new();
    {
        for s in seeded.into_iter().rev() {
            let api: Api<DynamicObject> = match &s.namespace {
                Some(ns) => Api::namespaced_with(admin.clone(), ns, &s.resource),
                None => Api::all_with(admin.clone(), &s.resource),
            };
            match api.delete(&s.name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            if s.resource.kind == "Namespace" {
                namespaces.push(s.name);
            }
        }
        // On a shared real server a terminating namespace still counts (its labels, its
        // objects) for the next scenario's baseline: wait until the namespace controller is done.
        let api: Api<DynamicObject> = Api::all_with(
            admin.clone(),
            &ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
        );
        for ns in namespaces {
            for _ in 0..600 {
                if api.get_opt(&ns).await?.is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

/// Documents of a YAML stream, with `kind: List` expanded and empty documents skipped.
pub fn parse_documents(yaml: &str) -> Result<Vec<Value>, HarnessError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(yaml) {
        let value = Value::deserialize(doc)?;
        match value {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                out.extend(
                    map.get("items")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
            }
            other => out.push(other),
        }
    }
    Ok(out)
}
