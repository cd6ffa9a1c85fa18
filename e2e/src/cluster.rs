//! The cluster a scenario runs against: the in-process simulator by default, or a real
//! cluster when `MESHBASELINE_E2E_KUBECONFIG` names a kubeconfig. Seeding and checks go
//! through the Kubernetes API in both cases; fault injection and request accounting exist
//! only in the simulator.

use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{pinned_kind, ApiCapabilities, ApiResource, Scope};
use serde_json::Value;

use crate::sim::{SimError, SimHandle, Simulator};

/// Names the kubeconfig of a real cluster to run the suite against.
pub const KUBECONFIG_ENV: &str = "MESHBASELINE_E2E_KUBECONFIG";

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
    sim: Option<SimHandle>,
    seeded: Mutex<Vec<Seeded>>,
}

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
        Ok(Cluster {
            config: sim.kube_config()?,
            client: sim.client()?,
            harness: sim.harness_client()?,
            sim: Some(sim),
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
        let client = kube::Client::try_from(config.clone())?;
        Ok(Cluster {
            config,
            harness: client.clone(),
            client,
            sim: None,
            seeded: Mutex::default(),
        })
    }

    pub fn is_simulated(&self) -> bool {
        self.sim.is_some()
    }

    /// The client for the system under test (counted and faulted in the simulator).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The kube config of the system under test (to start the controller with).
    pub fn kube_config(&self) -> kube::Config {
        self.config.clone()
    }

    /// The client the harness seeds and checks with (never counted or faulted).
    pub fn harness_client(&self) -> kube::Client {
        self.harness.clone()
    }

    /// The simulator, for fault injection and request accounting.
    pub fn sim(&self) -> Result<&SimHandle, HarnessError> {
        self.sim.as_ref().ok_or_else(|| {
            HarnessError::Unsupported(
                "fault injection and request accounting need the simulator".into(),
            )
        })
    }

    /// The simulator, or `None` after printing why `test` is skipped (real clusters only: in
    /// the simulator nothing is ever skipped).
    pub fn sim_or_skip(&self, test: &str) -> Option<&SimHandle> {
        if self.sim.is_none() {
            eprintln!(
                "SKIPPED {test}: needs fault injection or request accounting, which only the simulator has \
                 ({KUBECONFIG_ENV} is set)"
            );
        }
        self.sim.as_ref()
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
        let (ar, caps) = self.resource(api_version, kind).await?;
        let api = match (caps.scope, ns) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.harness.clone(), ns, &ar),
            (Scope::Namespaced, None) => Api::all_with(self.harness.clone(), &ar),
            (Scope::Cluster, _) => Api::all_with(self.harness.clone(), &ar),
        };
        Ok((api, ar))
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
        let (api, resource) = self.api(&api_version, &kind, ns.as_deref()).await?;
        let existed = api.get_opt(&name).await?.is_some();
        let mut params = PatchParams::apply(manager);
        params.force = force;
        let applied = api.patch(&name, &params, &Patch::Apply(obj)).await?;
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
        let (api, _) = self.api(api_version, kind, ns).await?;
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
        let (api, _) = self.api(api_version, kind, ns).await?;
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
            let seen = self.sim.as_ref().map(SimHandle::resource_version);
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
            match (&self.sim, seen) {
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
        for s in seeded.into_iter().rev() {
            let api: Api<DynamicObject> = match &s.namespace {
                Some(ns) => Api::namespaced_with(self.harness.clone(), ns, &s.resource),
                None => Api::all_with(self.harness.clone(), &s.resource),
            };
            match api.delete(&s.name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
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
