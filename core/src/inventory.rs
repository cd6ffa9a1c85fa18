//! What is in the cluster, as plain data: the input of `compile` and `audit`.
//!
//! The controller fills it from its reflectors, `render` and `check` from manifests. Pods and
//! Services are trimmed to what the audit reads, which keeps 100,000 pods in a few MiB.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::istio::{
    AuthorizationPolicy, DestinationRule, Gateway, PeerAuthentication, Sidecar,
};
use crate::api::Baseline;
use crate::object::Name;

mod interner;
pub use interner::{Interner, Shared};

#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// By name.
    pub namespaces: Namespaces,
    // Objects are shared with the controller's caches: a snapshot copies pointers, not
    // objects (30,000 generated objects and 100,000 pods at 10,000 namespaces).
    pub peer_authentications: Vec<Arc<PeerAuthentication>>,
    pub destination_rules: Vec<Arc<DestinationRule>>,
    pub authorization_policies: Vec<Arc<AuthorizationPolicy>>,
    pub sidecars: Vec<Arc<Sidecar>>,
    pub network_policies: Vec<Arc<NetworkPolicy>>,
    pub pods: Vec<Arc<PodInfo>>,
    pub services: Vec<ServiceInfo>,
    /// Istio `Gateway`s (networking.istio.io).
    pub gateways: Vec<Arc<Gateway>>,
    /// The mesh configuration, from the `istio` ConfigMaps (`istio-<revision>` too).
    pub mesh_configs: Vec<MeshConfigInfo>,
    /// Namespaces istio-cni leaves alone, where its ConfigMap or DaemonSet is in the input.
    pub cni_exclusions: Vec<CniExclusion>,
}

/// What the audit reads of a MeshConfig (Istio's `istio` ConfigMap, key `mesh`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeshConfigInfo {
    pub namespace: String,
    /// `istio`, or `istio-<revision>`.
    pub name: String,
    /// `pathNormalization.normalization`; unset means Istio's default, BASE.
    pub path_normalization: Option<String>,
}

impl MeshConfigInfo {
    /// Reads the ConfigMap `name` in `namespace` if it is a MeshConfig (`istio` or
    /// `istio-<revision>` with a `mesh` key); `Err` when its `mesh` is not YAML.
    pub fn from_config_map(
        namespace: &str,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Option<Result<MeshConfigInfo, String>> {
        if name != "istio" && !name.starts_with("istio-") {
            return None;
        }
        let mesh = data.get("mesh")?;
        let doc = match crate::manifests::yaml::read_document(mesh) {
            Ok(doc) => doc.unwrap_or(serde_json::Value::Null),
            Err(e) => return Some(Err(format!("data.mesh is not YAML: {}", e.message))),
        };
        Some(Ok(MeshConfigInfo {
            namespace: namespace.to_string(),
            name: name.to_string(),
            path_normalization: doc
                .pointer("/pathNormalization/normalization")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
        }))
    }
}

/// istio-cni's `EXCLUDE_NAMESPACES` (its ConfigMap `istio-cni-config`, or the env or
/// `--exclude-namespaces` argument of its DaemonSet `istio-cni-node`): it enrols no pod of these
/// in ambient, whatever their labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniExclusion {
    /// `ConfigMap kube-system/istio-cni-config`, `DaemonSet kube-system/istio-cni-node`.
    pub source: String,
    pub namespaces: Vec<String>,
}

/// The ConfigMap that istio-cni's DaemonSet reads its settings from.
pub const CNI_CONFIG_MAP: &str = "istio-cni-config";
/// istio-cni's DaemonSet.
pub const CNI_DAEMON_SET: &str = "istio-cni-node";

/// istio-cni's `SplitExcludeNamespaces`: comma-separated, blanks dropped.
pub fn split_exclude_namespaces(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

impl CniExclusion {
    pub fn from_config_map(
        namespace: &str,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Option<CniExclusion> {
        if name != CNI_CONFIG_MAP {
            return None;
        }
        Some(CniExclusion {
            source: format!("ConfigMap {namespace}/{name}"),
            namespaces: split_exclude_namespaces(data.get("EXCLUDE_NAMESPACES")?),
        })
    }

    /// The literal `EXCLUDE_NAMESPACES` env value or `--exclude-namespaces` argument of
    /// istio-cni's DaemonSet (its containers, in order; the last one set wins, as flags do).
    pub fn from_daemon_set(
        namespace: &str,
        name: &str,
        spec: Option<&PodSpec>,
    ) -> Option<CniExclusion> {
        if name != CNI_DAEMON_SET {
            return None;
        }
        let mut found = None;
        for c in spec?.containers.iter() {
            for e in c.env.iter().flatten() {
                if e.name == "EXCLUDE_NAMESPACES" {
                    if let Some(v) = &e.value {
                        found = Some(v.clone());
                    }
                }
            }
            let args: Vec<&String> = c
                .command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .collect();
            for (i, a) in args.iter().enumerate() {
                if let Some(v) = a.strip_prefix("--exclude-namespaces=") {
                    found = Some(v.to_string());
                } else if a.as_str() == "--exclude-namespaces" {
                    if let Some(v) = args.get(i + 1) {
                        found = Some(v.to_string());
                    }
                }
            }
        }
        Some(CniExclusion {
            source: format!("DaemonSet {namespace}/{name}"),
            namespaces: split_exclude_namespaces(&found?),
        })
    }
}

/// Namespaces by name. Shared between inventory snapshots: the controller keeps one map up to
/// date per Namespace event, and a snapshot copies a pointer, not 10,000 namespaces with
/// their labels. Changes copy the map first when a snapshot still holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespaces(Arc<BTreeMap<String, Arc<NamespaceInfo>>>);

impl std::ops::Deref for Namespaces {
    type Target = BTreeMap<String, Arc<NamespaceInfo>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Namespaces {
    /// Adds or replaces a namespace; the info is shared with whoever else holds it (the
    /// controller's Namespace cache).
    pub fn insert(&mut self, name: String, info: impl Into<Arc<NamespaceInfo>>) {
        Arc::make_mut(&mut self.0).insert(name, info.into());
    }

    /// Changes one namespace (a copy of it, when it is shared); false when there is none.
    pub fn update(&mut self, name: &str, f: impl FnOnce(&mut NamespaceInfo)) -> bool {
        if !self.0.contains_key(name) {
            return false;
        }
        Arc::make_mut(&mut self.0)
            .get_mut(name)
            .map(|info| f(Arc::make_mut(info)))
            .is_some()
    }

    pub fn remove(&mut self, name: &str) {
        if self.0.contains_key(name) {
            Arc::make_mut(&mut self.0).remove(name);
        }
    }
}

impl FromIterator<(String, NamespaceInfo)> for Namespaces {
    fn from_iter<I: IntoIterator<Item = (String, NamespaceInfo)>>(iter: I) -> Self {
        Namespaces(Arc::new(
            iter.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
        ))
    }
}

impl From<BTreeMap<String, NamespaceInfo>> for Namespaces {
    fn from(map: BTreeMap<String, NamespaceInfo>) -> Self {
        map.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a Namespaces {
    type Item = (&'a String, &'a Arc<NamespaceInfo>);
    type IntoIter = std::collections::btree_map::Iter<'a, String, Arc<NamespaceInfo>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub name: String,
    /// Compact: 10,000 namespaces each with a label map of two entries took 6 MiB as B-trees.
    pub labels: SmallMap,
    /// Being deleted (phase Terminating): the API server refuses new objects in it
    /// (NamespaceTerminating), so nothing is generated there; it is gone soon anyway.
    pub terminating: bool,
}

impl From<&Namespace> for NamespaceInfo {
    fn from(ns: &Namespace) -> Self {
        NamespaceInfo {
            name: ns.metadata.name.clone().unwrap_or_default(),
            labels: ns.metadata.labels.clone().unwrap_or_default().into(),
            terminating: ns.metadata.deletion_timestamp.is_some()
                || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"),
        }
    }
}

/// Whether a Namespace change can change what `baselines` compile, audit or plan: the
/// namespace appeared, went or started terminating, one of the mesh's labels changed (any key
/// naming Istio: injection, revision, data plane, waypoint), or a baseline now selects it
/// differently. Other labels (cost centres, GitOps bookkeeping) change nothing, so the
/// controller does not recompute the cluster for them.
pub fn namespace_change_matters(
    name: &str,
    old: Option<&NamespaceInfo>,
    new: Option<&NamespaceInfo>,
    baselines: &[Baseline],
) -> bool {
    let (Some(old), Some(new)) = (old, new) else {
        return old.is_some() != new.is_some();
    };
    fn mesh(n: &NamespaceInfo) -> Vec<(&String, &String)> {
        n.labels
            .iter()
            .filter(|(k, _)| k.contains("istio"))
            .collect()
    }
    old.terminating != new.terminating
        || mesh(old) != mesh(new)
        || baselines
            .iter()
            .any(|b| b.selects(name, &old.labels) != b.selects(name, &new.labels))
}

/// A pod, or a workload's pod template, reduced to what the audit reads: its name, and what
/// it has in common with its replicas (`PodShape`, read through `Deref`). The controller
/// shares equal shapes between pods (`PodShapes`): 100,000 pods have a few thousand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// Both shared with the controller's cache key (the namespace with every key in it).
    pub namespace: Name,
    pub name: Name,
    shape: Arc<PodShape>,
}

impl std::ops::Deref for PodInfo {
    type Target = PodShape;
    fn deref(&self) -> &PodShape {
        &self.shape
    }
}

/// Changes this pod's shape only (copied first when it is shared).
impl std::ops::DerefMut for PodInfo {
    fn deref_mut(&mut self) -> &mut PodShape {
        Arc::make_mut(&mut self.shape)
    }
}

/// Everything the audit reads of a pod except its namespace and name: the same for the
/// replicas of a workload, and for the copies of one workload in many namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodShape {
    /// `Pod`, or the kind of the workload whose template this is (`Deployment`, ...).
    pub kind: String,
    /// `None` for templates; pods that have finished are not audited for a missing sidecar.
    pub phase: Option<String>,
    /// Only annotations that matter to the mesh (see [`mesh_annotation`]).
    pub annotations: SmallMap,
    /// Only labels that choose the data plane (see [`mesh_label`]); the others are in
    /// `app_labels`.
    pub labels: SmallMap,
    pub host_network: bool,
    pub share_process_namespace: bool,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub containers: Vec<ContainerInfo>,
    /// `spec.serviceAccountName`, kept only for gateway pods (labelled with their Gateway's
    /// name): a waypoint's identity is its pods' ServiceAccount.
    pub service_account: Option<String>,
    /// The pod's other labels, which workload selectors read (AuthorizationPolicy and
    /// PeerAuthentication `selector`, NetworkPolicy `podSelector`), without the few that differ
    /// between the replicas of one workload ([`per_pod_label`]): replicas keep sharing a shape.
    pub app_labels: SmallMap,
    /// The ports the containers declare, sorted by number.
    pub ports: Vec<PortInfo>,
}

/// A declared container port.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortInfo {
    pub number: u16,
    /// `TCP` unless the container says otherwise.
    pub protocol: String,
    pub name: Option<String>,
}

/// Labels that Kubernetes sets to a different value on each replica. Workload selectors in
/// Istio and NetworkPolicy are meant for the workload, not one replica; these are dropped so
/// that 100,000 pods keep sharing a few thousand shapes (a selector on them sees them absent).
pub fn per_pod_label(key: &str) -> bool {
    matches!(
        key,
        "statefulset.kubernetes.io/pod-name"
            | "apps.kubernetes.io/pod-index"
            | "batch.kubernetes.io/job-completion-index"
    )
}

/// All the labels a workload selector sees on a pod: the mesh's and the others.
#[derive(Clone, Copy, Debug)]
pub struct PodLabels<'a>(&'a PodShape);

impl<'a> PodLabels<'a> {
    pub fn get(&self, key: &str) -> Option<&'a String> {
        self.0
            .labels
            .get(key)
            .or_else(|| self.0.app_labels.get(key))
    }

    /// Istio's `labels.Instance.SubsetOf`: every pair of `selector` is on the pod (an empty
    /// selector selects every pod).
    pub fn has_all(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.get(k) == Some(v))
    }

    /// Every label, sorted by key.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0
            .labels
            .iter()
            .chain(self.0.app_labels.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl crate::api::selector::Labels for PodLabels<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ContainerInfo {
    pub name: String,
    /// Init containers run before the proxy starts; native sidecars (restartPolicy Always) are
    /// listed here too, with `init: true`.
    pub init: bool,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub privileged: bool,
    pub added_capabilities: Vec<String>,
}

pub const PROXY_CONTAINER: &str = "istio-proxy";

impl PodShape {
    /// Every label a selector reads.
    pub fn selector_labels(&self) -> PodLabels<'_> {
        PodLabels(self)
    }

    /// The pod's `istio-proxy` container, as a regular container or a native sidecar.
    pub fn has_sidecar(&self) -> bool {
        self.containers.iter().any(|c| c.name == PROXY_CONTAINER)
    }
}

impl PodInfo {
    pub fn new(namespace: impl Into<Name>, name: impl Into<Name>, shape: PodShape) -> PodInfo {
        PodInfo {
            namespace: namespace.into(),
            name: name.into(),
            shape: Arc::new(shape),
        }
    }

    /// The same pod, its shape shared with an equal one `shapes` already holds.
    pub fn interned(self, shapes: &mut PodShapes) -> PodInfo {
        PodInfo {
            namespace: self.namespace,
            name: self.name,
            shape: shapes.intern(self.shape),
        }
    }

    pub fn from_pod(pod: &Pod) -> PodInfo {
        let mut info = PodInfo::from_spec(&pod.metadata, pod.spec.as_ref(), "Pod");
        info.phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        info
    }

    /// A pod template of a workload (`kind` names the workload).
    pub fn from_spec(meta: &ObjectMeta, spec: Option<&PodSpec>, kind: &str) -> PodInfo {
        let annotations = filtered(meta.annotations.as_ref(), mesh_annotation);
        let labels = filtered(meta.labels.as_ref(), mesh_label);
        let app_labels = filtered(meta.labels.as_ref(), |k| {
            !mesh_label(k) && !per_pod_label(k)
        });
        let name = meta.name.as_deref().unwrap_or_default();
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let Some(spec) = spec else {
            let shape = PodShape {
                kind: kind.to_string(),
                annotations,
                labels,
                app_labels,
                ..PodShape::default()
            };
            return PodInfo::new(namespace, name, shape);
        };
        let psc = spec.security_context.as_ref();
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| ContainerInfo::from_container(c, true))
            .chain(
                spec.containers
                    .iter()
                    .map(|c| ContainerInfo::from_container(c, false)),
            )
            .collect();
        let service_account = labels
            .contains_key(crate::gateway::GATEWAY_NAME)
            .then(|| spec.service_account_name.clone())
            .flatten();
        let mut ports: Vec<PortInfo> = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                Some(PortInfo {
                    number: u16::try_from(p.container_port).ok().filter(|n| *n > 0)?,
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    name: p.name.clone(),
                })
            })
            .collect();
        ports.sort();
        ports.dedup();
        let shape = PodShape {
            kind: kind.to_string(),
            phase: None,
            annotations,
            labels,
            app_labels,
            ports,
            service_account,
            host_network: spec.host_network.unwrap_or(false),
            share_process_namespace: spec.share_process_namespace.unwrap_or(false),
            run_as_user: psc.and_then(|s| s.run_as_user),
            run_as_group: psc.and_then(|s| s.run_as_group),
            containers,
        };
        PodInfo::new(namespace, name, shape)
    }
}

/// Pod shapes shared between the pods that have them.
pub type PodShapes = Interner<Arc<PodShape>>;

impl PodShapes {
    pub fn intern(&mut self, shape: Arc<PodShape>) -> Arc<PodShape> {
        let new = shape.clone();
        self.get_or_insert_with(&shape, || new)
    }
}

/// Pod annotations the audit reads: injection and capture settings (a `proxy.istio.io/config`
/// reduced to its interception mode), what the injector and istio-cni write
/// (`sidecar.istio.io/status`, `ambient.istio.io/redirection`), and the injection template of
/// classic gateways.
pub fn mesh_annotation(key: &str) -> bool {
    key.starts_with("sidecar.istio.io/")
        || key.starts_with("traffic.sidecar.istio.io/")
        || key.starts_with("ambient.istio.io/")
        || key == "status.sidecar.istio.io/port"
        || key == crate::gateway::INJECT_TEMPLATES
        || key == PROXY_CONFIG
}

/// Pod labels that choose the data plane or mark a gateway (`PodShape::labels`); the others
/// are `PodShape::app_labels`.
pub fn mesh_label(key: &str) -> bool {
    matches!(
        key,
        "sidecar.istio.io/inject"
            | "istio.io/rev"
            | "istio.io/dataplane-mode"
            | "istio.io/use-waypoint"
            | "gateway.istio.io/managed"
            | crate::gateway::GATEWAY_NAME
            | crate::gateway::GATEWAY_CLASS_NAME
            | crate::gateway::LEGACY_GATEWAY_NAME
            | crate::gateway::CLASSIC_GATEWAY
    )
}

fn filtered(map: Option<&BTreeMap<String, String>>, keep: fn(&str) -> bool) -> SmallMap {
    map.into_iter()
        .flatten()
        .filter(|(k, _)| keep(k))
        .filter_map(|(k, v)| {
            let v = if k == crate::dataplane::SIDECAR_STATUS {
                // Only its presence is read; the injector writes hundreds of bytes into it.
                String::new()
            } else if k == PROXY_CONFIG {
                // Only its interception mode is read; the rest can be long.
                proxy_config_interception(v)?
            } else {
                v.clone()
            };
            Some((k.clone(), v))
        })
        .collect()
}

/// Pod annotation holding a ProxyConfig (YAML or JSON) that overrides the mesh's defaults for
/// this pod's proxy; the pod keeps only its `interceptionMode`.
pub const PROXY_CONFIG: &str = "proxy.istio.io/config";

/// The `interceptionMode` of a `proxy.istio.io/config` value, read as the injector reads it
/// (YAML); `None` when it sets none or does not parse (the injector then refuses the pod).
pub fn proxy_config_interception(value: &str) -> Option<String> {
    let doc = crate::manifests::yaml::read_document(value).ok()??;
    doc.get("interceptionMode")?.as_str().map(str::to_string)
}

/// A few labels or annotations, sorted by key. A `BTreeMap` allocates a node of eleven entries
/// for one; with 100,000 pods that was most of their memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SmallMap(Vec<(String, String)>);

impl SmallMap {
    pub fn get(&self, key: &str) -> Option<&String> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl FromIterator<(String, String)> for SmallMap {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let sorted: BTreeMap<String, String> = iter.into_iter().collect();
        let mut v: Vec<(String, String)> = sorted.into_iter().collect();
        v.shrink_to_fit();
        SmallMap(v)
    }
}

impl<const N: usize> From<[(String, String); N]> for SmallMap {
    fn from(entries: [(String, String); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for SmallMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        map.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a SmallMap {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl ContainerInfo {
    fn from_container(c: &Container, init: bool) -> ContainerInfo {
        let sc = c.security_context.as_ref();
        ContainerInfo {
            name: c.name.clone(),
            init,
            run_as_user: sc.and_then(|s| s.run_as_user),
            run_as_group: sc.and_then(|s| s.run_as_group),
            privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
            added_capabilities: sc
                .and_then(|s| s.capabilities.as_ref())
                .and_then(|c| c.add.clone())
                .unwrap_or_default(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    /// `IPv4`, `IPv6`, as in `spec.ipFamilies`.
    pub ip_families: Vec<String>,
    pub ip_family_policy: Option<String>,
    /// The `istio.io/use-waypoint` label (`none` opts the Service out of its namespace's waypoint).
    pub use_waypoint: Option<String>,
}

impl From<&Service> for ServiceInfo {
    fn from(svc: &Service) -> Self {
        let spec = svc.spec.as_ref();
        ServiceInfo {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            name: svc.metadata.name.clone().unwrap_or_default(),
            ip_families: spec.and_then(|s| s.ip_families.clone()).unwrap_or_default(),
            ip_family_policy: spec.and_then(|s| s.ip_family_policy.clone()),
            use_waypoint: svc
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(crate::dataplane::USE_WAYPOINT))
                .cloned(),
        }
    }
}

/// The creation time of an object, for "the oldest wins" rules.
pub fn created(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.creation_timestamp.as_ref().map(|t| t.0)
}

/// The tests' running pod of `ns` with containers named `containers`.
#[cfg(test)]
pub(crate) fn mk_running_pod(ns: &str, name: &str, containers: &[&str]) -> PodInfo {
    PodInfo::new(
        ns,
        name,
        PodShape {
            kind: "Pod".into(),
            phase: Some("Running".into()),
            containers: containers
                .iter()
                .map(|c| ContainerInfo {
                    name: (*c).into(),
                    ..ContainerInfo::default()
                })
                .collect(),
            ..PodShape::default()
        },
    )
}

#[cfg(test)]
mod tests;
