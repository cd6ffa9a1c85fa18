//! What tests do with a running simulator: clients, direct reads and writes, faults,
//! accounting, watch control, and waiting for the state to reach a condition.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::accounting::RequestLog;
use super::faults::{FaultConfig, Faults};
use super::resources::{self, ResourceType};
use super::store::State;
use super::writes::{self, DeleteOpts, PatchKind, Target};
use super::{crds, lock, now_rfc3339, ApiError, SimError, SimHandle, HARNESS_HEADER, SIM_MANAGER};

/// A read-only view of the simulator's objects, for `SimHandle::wait_until` conditions.
pub struct SimView<'a> {
    state: &'a State,
}

impl SimView<'_> {
    fn rt(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        resources::served(self.state).into_iter().find(|rt| {
            rt.kind == kind && rt.versions.iter().any(|v| rt.api_version(v) == api_version)
        })
    }

    /// One object by apiVersion, kind, namespace (empty when cluster-scoped) and name.
    pub fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<&Value> {
        let rt = self.rt(api_version, kind)?;
        self.state.get_obj(&rt.key(), ns, name)
    }

    /// Every object of a kind, in (namespace, name) order.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<&Value> {
        let Some(rt) = self.rt(api_version, kind) else {
            return Vec::new();
        };
        let res = rt.key();
        self.state.list_res(&res).map(|(_, o)| o).collect()
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.rv()
    }
}

fn target_of(state: &State, obj: &Value) -> Result<Target, ApiError> {
    let text = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (text("/apiVersion"), text("/kind"));
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    let rt = resources::served(state)
        .into_iter()
        .find(|rt| rt.group == group && rt.kind == kind && rt.serves(version))
        .ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                format!("no resource serves {api_version} {kind}"),
            )
        })?;
    let name = Some(text("/metadata/name")).filter(|n| !n.is_empty());
    let ns = if rt.namespaced {
        text("/metadata/namespace")
    } else {
        String::new()
    };
    Ok(Target {
        rt,
        version: version.to_string(),
        ns,
        name,
        status: false,
        metadata_only: false,
    })
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube config for the simulator: plain HTTP on loopback, no auth.
    pub fn kube_config(&self) -> Result<kube::Config, SimError> {
        Ok(kube::Config::new(self.url().parse()?))
    }

    /// The client the system under test uses: its requests are counted and see faults.
    pub fn client(&self) -> Result<kube::Client, SimError> {
        Ok(kube::Client::try_from(self.kube_config()?)?)
    }

    /// A client for the test itself (seeding, checking): never faulted, never counted.
    pub fn harness_client(&self) -> Result<kube::Client, SimError> {
        let mut config = self.kube_config()?;
        config.headers.push((
            http::HeaderName::from_static(HARNESS_HEADER),
            http::HeaderValue::from_static("1"),
        ));
        Ok(kube::Client::try_from(config)?)
    }

    fn notify(&self, rv: u64) {
        self.shared
            .changes
            .send_if_modified(|seen| std::mem::replace(seen, rv) != rv);
    }

    fn write<T>(&self, f: impl FnOnce(&mut State) -> Result<T, ApiError>) -> Result<T, SimError> {
        let mut state = lock(&self.shared.state);
        state.set_dry_run(false);
        let out = f(&mut state);
        let rv = state.rv();
        drop(state);
        self.notify(rv);
        Ok(out?)
    }

    /// Creates an object directly (no HTTP), owned by `sim-harness`.
    pub fn create(&self, obj: &Value) -> Result<Value, SimError> {
        let now = now_rfc3339();
        self.write(|s| {
            let t = target_of(s, obj)?;
            writes::create(s, &t, obj, SIM_MANAGER, &now)
        })
    }

    /// Writes an object's status directly (no HTTP), as the kubelet or a controller does
    /// through the status subresource: a JSON merge patch of `status`.
    pub fn patch_status(&self, obj: &Value, status: &Value) -> Result<Value, SimError> {
        let now = now_rfc3339();
        self.write(|s| {
            let mut t = target_of(s, obj)?;
            t.status = true;
            let body = serde_json::json!({ "status": status });
            writes::patch(s, &t, PatchKind::Merge, &body, SIM_MANAGER, &now).map(|(_, o)| o)
        })
    }

    /// Server-side applies an object directly (no HTTP) as `manager`.
    pub fn apply_as(&self, manager: &str, obj: &Value, force: bool) -> Result<Value, SimError> {
        let now = now_rfc3339();
        self.write(|s| {
            let t = target_of(s, obj)?;
            writes::patch(s, &t, PatchKind::Apply { force }, obj, manager, &now).map(|(_, o)| o)
        })
    }

    /// Deletes an object directly (background propagation); `Ok(None)` when it did not exist.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Result<Option<Value>, SimError> {
        let now = now_rfc3339();
        let probe = serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns}});
        self.write(|s| {
            let t = target_of(s, &probe)?;
            match writes::delete(s, &t, &DeleteOpts::default(), &now) {
                Ok(o) => Ok(Some(o)),
                Err(e) if e.code == 404 => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// Installs (creates or updates) a CustomResourceDefinition: its kind is served from now on.
    pub fn install_crd(&self, crd: &Value) -> Result<(), SimError> {
        self.apply_as(SIM_MANAGER, crd, true).map(|_| ())
    }

    /// Deletes a CRD by name (`plural.group`): its objects go and its kind answers 404.
    pub fn uninstall_crd(&self, name: &str) -> Result<(), SimError> {
        self.delete(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            name,
        )
        .map(|_| ())
    }

    /// The Istio CRDs the operator uses and the MeshBaseline CRD.
    pub fn install_standard_crds(&self) -> Result<(), SimError> {
        for crd in crds::istio_crds() {
            self.install_crd(&crd)?;
        }
        self.install_crd(&crds::meshbaseline_crd())
    }

    /// Reads the state.
    pub fn view<T>(&self, f: impl FnOnce(&SimView<'_>) -> T) -> T {
        let state = lock(&self.shared.state);
        f(&SimView { state: &state })
    }

    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.state).rv()
    }

    /// Waits until `f` returns `Some`, re-checking on every change (no polling).
    pub async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&SimView<'_>) -> Option<T>,
    ) -> Result<T, SimError> {
        let mut changes = self.shared.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if let Some(out) = self.view(&mut f) {
                return Ok(out);
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Err(SimError::Timeout(timeout, what.to_string())),
            }
        }
    }

    /// Waits for any change after resourceVersion `after`; `false` on timeout.
    pub async fn changed_since(&self, after: u64, timeout: Duration) -> bool {
        self.wait_until("a change", timeout, |v| {
            (v.resource_version() > after).then_some(())
        })
        .await
        .is_ok()
    }

    /// Replaces the fault configuration (re-seeding the generator).
    pub fn set_faults(&self, config: FaultConfig) {
        *lock(&self.shared.faults) = Faults::new(config);
    }

    pub fn clear_faults(&self) {
        self.set_faults(FaultConfig::default());
    }

    /// Drops the watch history: resuming from any earlier resourceVersion answers 410 Gone.
    pub fn compact(&self) {
        lock(&self.shared.state).compact();
    }

    /// Sends a bookmark on every open watch that allows them.
    pub fn bookmark_now(&self) {
        self.shared.bookmarks.send_modify(|n| *n += 1);
    }

    /// Ends every open watch stream (clients see a clean end of stream and re-watch).
    pub fn cut_watches(&self) {
        self.shared.cuts.send_modify(|n| *n += 1);
    }

    /// A position in the request log; pass it to `requests_since`.
    pub fn mark(&self) -> u64 {
        lock(&self.shared.accounting).mark()
    }

    pub fn requests_since(&self, mark: u64) -> RequestLog {
        lock(&self.shared.accounting).since(mark)
    }

    /// Every request recorded since start or the last reset.
    pub fn requests(&self) -> RequestLog {
        lock(&self.shared.accounting).since(0)
    }

    pub fn reset_requests(&self) {
        lock(&self.shared.accounting).reset();
    }
}
