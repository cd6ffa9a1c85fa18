//! A pod's Kubernetes side: what to create ([`PodSpec`]), its ServiceAccount, the object,
//! and its status written as a kubelet would.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod as PodObject, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Map, Value};

use super::node::{NodeInner, MANAGER};
use super::Error;

/// A pod to create: its object's metadata and spec, and how it is wired.
#[derive(Clone, Debug)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Created when missing (pods cannot name a ServiceAccount that does not exist).
    pub service_account: Option<String>,
    /// In the node's namespace, with the node's addresses.
    pub host_network: bool,
    /// No IPv6 address even on a dual-stack node.
    pub ipv4_only: bool,
    /// Fields merged into the object's `spec` (containers, securityContext...); the harness
    /// sets `nodeName`, `hostNetwork` and `serviceAccountName` itself.
    pub extra_spec: Map<String, Value>,
}

impl PodSpec {
    pub fn new(namespace: &str, name: &str) -> PodSpec {
        PodSpec {
            namespace: namespace.into(),
            name: name.into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            service_account: None,
            host_network: false,
            ipv4_only: false,
            extra_spec: Map::new(),
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    pub fn service_account(mut self, name: &str) -> Self {
        self.service_account = Some(name.into());
        self
    }

    pub fn host_network(mut self) -> Self {
        self.host_network = true;
        self
    }

    pub fn ipv4_only(mut self) -> Self {
        self.ipv4_only = true;
        self
    }

    pub fn spec_field(mut self, key: &str, value: Value) -> Self {
        self.extra_spec.insert(key.into(), value);
        self
    }
}

pub(crate) async fn ensure_service_account(
    admin: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<(), Error> {
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    if api.get_opt(name).await?.is_some() {
        return Ok(());
    }
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    match api.create(&PostParams::default(), &sa).await {
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}

pub(crate) async fn create_object(
    node: &NodeInner,
    spec: &PodSpec,
    addresses: &[IpAddr],
) -> Result<(), Error> {
    let mut pod_spec = spec.extra_spec.clone();
    pod_spec
        .entry("containers")
        .or_insert_with(|| json!([{"name": "main", "image": "dataplane.invalid/netns:latest"}]));
    pod_spec.insert("nodeName".into(), json!(node.name));
    pod_spec.insert("hostNetwork".into(), json!(spec.host_network));
    pod_spec
        .entry("tolerations")
        .or_insert_with(|| json!([{"operator": "Exists"}]));
    if let Some(sa) = &spec.service_account {
        pod_spec.insert("serviceAccountName".into(), json!(sa));
    }
    let object: PodObject = serde_json::from_value(json!({
        "metadata": {"name": spec.name, "namespace": spec.namespace,
                     "labels": spec.labels, "annotations": spec.annotations},
        "spec": pod_spec,
    }))?;
    let api: Api<PodObject> = Api::namespaced(node.admin.clone(), &spec.namespace);
    api.create(
        &PostParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        },
        &object,
    )
    .await?;
    let ips: Vec<Value> = addresses
        .iter()
        .map(|a| json!({"ip": a.to_string()}))
        .collect();
    let mut host_ips = vec![json!({"ip": node.ipv4().to_string()})];
    host_ips.extend(node.ipv6().map(|v6| json!({"ip": v6.to_string()})));
    let status = json!({"status": {
        "phase": "Running",
        "hostIP": node.ipv4().to_string(),
        "hostIPs": host_ips,
        "podIP": addresses[0].to_string(),
        "podIPs": ips,
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
    }});
    api.patch_status(&spec.name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}
