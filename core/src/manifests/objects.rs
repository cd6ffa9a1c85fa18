//! One object into the inventory: the kinds the audit reads, typed, with their names checked;
//! other kinds only need an apiVersion and a kind.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, PodSpec, PodTemplateSpec, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::{describe, names, typed, Loaded, Location, ManifestError};
use crate::api::istio::{
    AuthorizationPolicy, DestinationRule, Gateway, PeerAuthentication, Sidecar,
};
use crate::api::model::FieldErrors;
use crate::inventory::{CniExclusion, MeshConfigInfo, NamespaceInfo, PodInfo, ServiceInfo};

/// Kinds without a namespace (of those the loader knows).
pub fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "MeshBaseline"
            | "Node"
            | "PersistentVolume"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "StorageClass"
            | "PriorityClass"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
            | "ClusterNetworkPolicy"
    )
}

/// The kinds the audit reads, by (group, kind).
fn audited(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            "",
            "Namespace" | "Pod" | "Service" | "ReplicationController" | "PodTemplate"
        ) | (
            "apps",
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
        ) | ("batch", "Job" | "CronJob")
            | ("networking.k8s.io", "NetworkPolicy")
            | (
                "security.istio.io",
                "PeerAuthentication" | "AuthorizationPolicy"
            )
            | (
                "networking.istio.io",
                "DestinationRule" | "Sidecar" | "Gateway"
            )
            | ("meshbaseline.dev", _)
    )
}

pub(super) fn add(
    loaded: &mut Loaded,
    value: &Value,
    location: &Location,
) -> Result<(), Vec<ManifestError>> {
    let one = |message: String| {
        vec![ManifestError {
            location: location.clone(),
            message,
        }]
    };
    let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if kind.is_empty() || api_version.is_empty() {
        return Err(one(format!(
            "{}: apiVersion and kind must be set (strings)",
            describe(value)
        )));
    }
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if (group, kind) == ("", "ConfigMap") {
        return config_map(loaded, value, location).map_err(|e| vec![e]);
    }
    if !audited(group, kind) {
        // ConfigMaps, Gateways, ...: not the audit's business, but read.
        return Ok(());
    }
    let mut errs = FieldErrors::default();
    names::check_metadata(value, kind, &mut errs);
    if !errs.0.is_empty() {
        let what = describe(value);
        return Err(errs
            .0
            .into_iter()
            .map(|e| ManifestError {
                location: location.clone(),
                message: format!("{what}: {e}"),
            })
            .collect());
    }
    if group == "meshbaseline.dev" {
        let baseline = super::baseline::read(value, location)?;
        loaded.baselines.push((baseline, location.clone()));
        return Ok(());
    }
    // Istio accepts its kinds without a spec, and with null fields; so do we.
    let filled;
    let value = if group.ends_with(".istio.io") {
        let mut v = value.clone();
        crate::api::istio::default_spec(&mut v);
        filled = v;
        &filled
    } else {
        value
    };
    add_typed(loaded, group, kind, value, location).map_err(|e| vec![e])
}

fn add_typed(
    loaded: &mut Loaded,
    group: &str,
    kind: &str,
    value: &Value,
    location: &Location,
) -> Result<(), ManifestError> {
    let inv = &mut loaded.inventory;
    match (group, kind) {
        ("", "Namespace") => {
            let ns: Namespace = typed(value, location)?;
            let info = NamespaceInfo::from(&ns);
            inv.namespaces.insert(info.name.clone(), info);
        }
        ("", "Pod") => inv
            .pods
            .push(Arc::new(PodInfo::from_pod(&defaulted(typed::<Pod>(
                value, location,
            )?)))),
        ("", "Service") => inv
            .services
            .push(ServiceInfo::from(&defaulted(typed::<Service>(
                value, location,
            )?))),
        ("", "PodTemplate") => {
            inv.pods
                .push(Arc::new(template(value, location, kind, "/template")?))
        }
        ("batch", "CronJob") => inv.pods.push(Arc::new(template(
            value,
            location,
            kind,
            "/spec/jobTemplate/spec/template",
        )?)),
        ("networking.k8s.io", "NetworkPolicy") => {
            inv.network_policies
                .push(Arc::new(defaulted(typed::<NetworkPolicy>(
                    value, location,
                )?)))
        }
        ("security.istio.io", "PeerAuthentication") => {
            inv.peer_authentications
                .push(Arc::new(defaulted(typed::<PeerAuthentication>(
                    value, location,
                )?)))
        }
        ("security.istio.io", "AuthorizationPolicy") => {
            inv.authorization_policies
                .push(Arc::new(defaulted(typed::<AuthorizationPolicy>(
                    value, location,
                )?)))
        }
        ("networking.istio.io", "DestinationRule") => {
            inv.destination_rules
                .push(Arc::new(defaulted(typed::<DestinationRule>(
                    value, location,
                )?)))
        }
        ("networking.istio.io", "Sidecar") => {
            inv.sidecars
                .push(Arc::new(defaulted(typed::<Sidecar>(value, location)?)))
        }
        ("networking.istio.io", "Gateway") => {
            inv.gateways
                .push(Arc::new(defaulted(typed::<Gateway>(value, location)?)))
        }
        ("apps", "DaemonSet") => {
            let pod = template(value, location, kind, "/spec/template")?;
            let spec = value
                .pointer("/spec/template/spec")
                .and_then(|s| serde_json::from_value::<PodSpec>(s.clone()).ok());
            if let Some(c) = CniExclusion::from_daemon_set(&pod.namespace, &pod.name, spec.as_ref())
            {
                inv.cni_exclusions.push(c);
            }
            inv.pods.push(Arc::new(pod));
        }
        // Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, ReplicationControllers.
        _ => inv
            .pods
            .push(Arc::new(template(value, location, kind, "/spec/template")?)),
    }
    Ok(())
}

/// The ConfigMaps the audit reads: the mesh configuration (`istio`, `istio-<revision>`) and
/// istio-cni's (`istio-cni-config`). Others are not read beyond their kind.
fn config_map(
    loaded: &mut Loaded,
    value: &Value,
    location: &Location,
) -> Result<(), ManifestError> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let relevant = name == "istio" || name.starts_with("istio-");
    if !relevant {
        return Ok(());
    }
    let cm: ConfigMap = defaulted(typed(value, location)?);
    let ns = cm.metadata.namespace.clone().unwrap_or_default();
    let data = cm.data.unwrap_or_default();
    if let Some(c) = CniExclusion::from_config_map(&ns, name, &data) {
        loaded.inventory.cni_exclusions.push(c);
    } else if let Some(mesh) = MeshConfigInfo::from_config_map(&ns, name, &data) {
        let mesh = mesh.map_err(|message| ManifestError {
            location: location.clone(),
            message: format!("{}: {message}", describe(value)),
        })?;
        loaded.inventory.mesh_configs.push(mesh);
    }
    Ok(())
}

/// Objects in manifests often leave the namespace out; `kubectl apply` puts them in `default`.
fn defaulted<K: kube_core::Resource>(mut obj: K) -> K {
    let meta = obj.meta_mut();
    if meta.namespace.is_none() {
        meta.namespace = Some("default".into());
    }
    obj
}

fn template(
    value: &Value,
    location: &Location,
    kind: &str,
    pointer: &str,
) -> Result<PodInfo, ManifestError> {
    let meta: ObjectMeta = match value.get("metadata") {
        Some(m) => super::typed_raw(m).map_err(|e| ManifestError {
            location: location.clone(),
            message: format!("{} metadata{e}", describe(value)),
        })?,
        None => ObjectMeta::default(),
    };
    let template: PodTemplateSpec = match value.pointer(pointer) {
        None | Some(Value::Null) => PodTemplateSpec::default(),
        Some(t) => super::typed_raw(t).map_err(|e| ManifestError {
            location: location.clone(),
            message: format!("{} {pointer}{e}", describe(value)),
        })?,
    };
    // The template's annotations decide injection; the workload's name and namespace identify it.
    let mut tmeta = template.metadata.clone().unwrap_or_default();
    tmeta.name = meta.name.clone();
    tmeta.namespace = Some(meta.namespace.clone().unwrap_or_else(|| "default".into()));
    Ok(PodInfo::from_spec(&tmeta, template.spec.as_ref(), kind))
}
