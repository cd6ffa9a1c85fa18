//! `posture` against a cluster: read-only (list and get), with the identity of the current
//! kubeconfig context. With `--namespace`, only those namespaces and the root namespaces are
//! read, so the cost does not grow with the cluster.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;

mod templates;

use super::{evaluate, finish, Args, PostureError, Report};
use crate::api::model::Baseline;
use crate::api::MeshBaseline;
use crate::inventory::{
    CniExclusion, Inventory, MeshConfigInfo, NamespaceInfo, PodInfo, ServiceInfo, CNI_CONFIG_MAP,
    CNI_DAEMON_SET,
};
use crate::manifests::read_baseline;
use crate::posture::{Detail, Objects};
use templates::Templates;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no usable kubeconfig: {0}")]
    Config(String),
    #[error("listing {what}: {source}")]
    List {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Baselines(String),
    #[error("{0}")]
    Object(String),
    #[error("starting the client runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// A page of this many objects per list request.
const PAGE: u32 = 500;

async fn client(args: &Args) -> Result<Client, LiveError> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let bad = |e: &dyn std::fmt::Display| LiveError::Config(e.to_string());
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| LiveError::Config(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| bad(&e))?
        }
        None if args.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| bad(&e))?,
        None => Config::infer().await.map_err(|e| bad(&e))?,
    };
    Client::try_from(config).map_err(|e| bad(&e))
}

/// Every object of `api`, page by page. `Ok(None)` when the cluster does not serve the kind.
async fn list<K>(api: Api<K>, what: &str) -> Result<Option<Vec<K>>, LiveError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(PAGE);
    loop {
        match api.list(&lp).await {
            Ok(page) => {
                let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
                out.extend(page.items);
                match next {
                    Some(c) => lp = lp.continue_token(&c),
                    None => return Ok(Some(out)),
                }
            }
            Err(kube::Error::Api(ae)) if ae.code == 404 => return Ok(None),
            Err(source) => {
                return Err(LiveError::List {
                    what: what.to_string(),
                    source,
                })
            }
        }
    }
}

/// Lists `K` in `namespaces` (all namespaces when `None`).
async fn list_in<K>(
    client: &Client,
    namespaces: Option<&[String]>,
    what: &str,
    notes: &mut Vec<String>,
) -> Result<Vec<K>, LiveError>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let mut out = Vec::new();
    let apis: Vec<(Api<K>, String)> = match namespaces {
        None => vec![(Api::all(client.clone()), what.to_string())],
        Some(list) => list
            .iter()
            .map(|ns| {
                (
                    Api::namespaced(client.clone(), ns),
                    format!("{what} in {ns}"),
                )
            })
            .collect(),
    };
    for (api, label) in apis {
        match list(api, &label).await? {
            Some(items) => out.extend(items),
            None => {
                let note = format!("the cluster does not serve {what}");
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
        }
    }
    Ok(out)
}

async fn baselines(
    client: &Client,
    args: &Args,
    notes: &mut Vec<String>,
) -> Result<Vec<Baseline>, PostureError> {
    if let Some(path) = &args.baseline {
        return Ok(vec![read_baseline(path)?.0]);
    }
    let listed = list(Api::<MeshBaseline>::all(client.clone()), "MeshBaselines")
        .await?
        .ok_or_else(|| {
            LiveError::Baselines(
                "the cluster does not serve MeshBaseline; pass --baseline FILE".into(),
            )
        })?;
    let mut out = Vec::new();
    for mb in &listed {
        match Baseline::try_from(mb) {
            Ok(b) => out.push(b),
            Err(e) => notes.push(format!("{e}; left out")),
        }
    }
    if out.is_empty() {
        return Err(LiveError::Baselines(
            "no valid MeshBaseline in the cluster; pass --baseline FILE".into(),
        )
        .into());
    }
    // Oldest first: it covers the namespaces no baseline protects.
    out.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    Ok(out)
}

/// The inventory of the namespaces asked for (all when `namespaces` is `None`).
async fn inventory(
    client: &Client,
    namespaces: Option<&[String]>,
    roots: &[String],
    notes: &mut Vec<String>,
) -> Result<Inventory, LiveError> {
    let mut inv = Inventory::default();
    let ns_api = Api::<Namespace>::all(client.clone());
    match namespaces {
        None => {
            for ns in list(ns_api, "namespaces").await?.unwrap_or_default() {
                let info = NamespaceInfo::from(&ns);
                inv.namespaces.insert(info.name.clone(), info);
            }
        }
        Some(list) => {
            for name in list {
                match ns_api.get_opt(name).await {
                    Ok(Some(ns)) => {
                        let info = NamespaceInfo::from(&ns);
                        inv.namespaces.insert(info.name.clone(), info);
                    }
                    Ok(None) => notes.push(format!("namespace {name} does not exist")),
                    Err(source) => {
                        return Err(LiveError::List {
                            what: format!("namespace {name}"),
                            source,
                        })
                    }
                }
            }
        }
    }
    let pods = list_in::<Pod>(client, namespaces, "pods", notes).await?;
    let templates = Templates {
        deployments: list_in(client, namespaces, "deployments.apps", notes).await?,
        stateful_sets: list_in(client, namespaces, "statefulsets.apps", notes).await?,
        daemon_sets: list_in(client, namespaces, "daemonsets.apps", notes).await?,
        replica_sets: list_in(client, namespaces, "replicasets.apps", notes).await?,
        cron_jobs: list_in(client, namespaces, "cronjobs.batch", notes).await?,
        jobs: list_in(client, namespaces, "jobs.batch", notes).await?,
    };
    inv.pods = pods
        .iter()
        .map(|p| Arc::new(PodInfo::from_pod(p)))
        .collect();
    inv.pods.extend(
        templates
            .without_running_pods(&pods)
            .into_iter()
            .map(Arc::new),
    );
    inv.services = list_in::<Service>(client, namespaces, "services", notes)
        .await?
        .iter()
        .map(ServiceInfo::from)
        .collect();
    inv.network_policies =
        arcs(list_in::<NetworkPolicy>(client, namespaces, "networkpolicies", notes).await?);
    let ns = namespaces;
    inv.gateways = list_istio(client, ns, "gateways.networking.istio.io", notes).await?;
    platform(client, roots, &mut inv, notes).await?;
    inv.peer_authentications =
        list_istio(client, ns, "peerauthentications.security.istio.io", notes).await?;
    inv.authorization_policies =
        list_istio(client, ns, "authorizationpolicies.security.istio.io", notes).await?;
    inv.destination_rules =
        list_istio(client, ns, "destinationrules.networking.istio.io", notes).await?;
    inv.sidecars = list_istio(client, ns, "sidecars.networking.istio.io", notes).await?;
    Ok(inv)
}

/// The platform's settings some rules read: the mesh configuration (the `istio` ConfigMaps of
/// the root namespaces) and istio-cni's (its ConfigMap and DaemonSet, by name, wherever they
/// are). istio-cni's are read when visible: an identity that may not list them cluster-wide gets
/// a note, not an error.
async fn platform(
    client: &Client,
    roots: &[String],
    inv: &mut Inventory,
    notes: &mut Vec<String>,
) -> Result<(), LiveError> {
    for cm in list_in::<ConfigMap>(client, Some(roots), "configmaps", notes).await? {
        let (ns, name) = names(&cm.metadata);
        let data = cm.data.unwrap_or_default();
        if let Some(mesh) = MeshConfigInfo::from_config_map(ns, name, &data) {
            let mesh =
                mesh.map_err(|e| LiveError::Object(format!("ConfigMap {ns}/{name}: {e}")))?;
            inv.mesh_configs.push(mesh);
        }
    }
    if let Some(found) = by_name::<ConfigMap>(client, CNI_CONFIG_MAP, "configmaps", notes).await? {
        for cm in found {
            let (ns, name) = names(&cm.metadata);
            let data = cm.data.clone().unwrap_or_default();
            inv.cni_exclusions
                .extend(CniExclusion::from_config_map(ns, name, &data));
        }
    }
    if let Some(found) = by_name::<DaemonSet>(client, CNI_DAEMON_SET, "daemonsets", notes).await? {
        for ds in found {
            let (ns, name) = names(&ds.metadata);
            let spec = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            inv.cni_exclusions
                .extend(CniExclusion::from_daemon_set(ns, name, spec));
        }
    }
    Ok(())
}

fn names(meta: &ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// The objects of kind `K` named `name` in every namespace; `None`, with a note, when the
/// cluster does not serve the kind or the identity may not list it cluster-wide.
async fn by_name<K>(
    client: &Client,
    name: &str,
    what: &str,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<K>>, LiveError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let lp = ListParams::default().fields(&format!("metadata.name={name}"));
    match Api::<K>::all(client.clone()).list(&lp).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(ae)) if ae.code == 404 => {
            let note = format!("the cluster does not serve {what}");
            if !notes.contains(&note) {
                notes.push(note);
            }
            Ok(None)
        }
        Err(kube::Error::Api(ae)) if ae.code == 403 => {
            notes.push(format!(
                "{what} named {name} not readable in all namespaces ({}): istio-cni's exclusions not judged",
                ae.message
            ));
            Ok(None)
        }
        Err(source) => Err(LiveError::List {
            what: format!("{what} named {name}"),
            source,
        }),
    }
}

/// Lists an Istio kind as Istio reads it: an object without `spec` (or with null fields) has an
/// empty one. An object that still does not fit its type is an error naming it.
async fn list_istio<K>(
    client: &Client,
    namespaces: Option<&[String]>,
    what: &str,
    notes: &mut Vec<String>,
) -> Result<Vec<Arc<K>>, LiveError>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope> + DeserializeOwned,
    K::DynamicType: Default,
{
    let resource = kube::discovery::ApiResource::erase::<K>(&K::DynamicType::default());
    let mut out = Vec::new();
    let apis: Vec<(Api<kube::api::DynamicObject>, String)> = match namespaces {
        None => vec![(Api::all_with(client.clone(), &resource), what.to_string())],
        Some(list) => list
            .iter()
            .map(|ns| {
                (
                    Api::namespaced_with(client.clone(), ns, &resource),
                    format!("{what} in {ns}"),
                )
            })
            .collect(),
    };
    for (api, label) in apis {
        let Some(items) = list(api, &label).await? else {
            let note = format!("the cluster does not serve {what}");
            if !notes.contains(&note) {
                notes.push(note);
            }
            continue;
        };
        for item in items {
            let id = format!(
                "{what} {}/{}",
                item.metadata.namespace.as_deref().unwrap_or_default(),
                item.metadata.name.as_deref().unwrap_or_default()
            );
            let mut value =
                serde_json::to_value(&item).map_err(|e| LiveError::Object(format!("{id}: {e}")))?;
            crate::api::istio::default_spec(&mut value);
            let typed: K = serde_path_to_error::deserialize(&value)
                .map_err(|e| LiveError::Object(format!("{id} at {}: {}", e.path(), e.inner())))?;
            out.push(Arc::new(typed));
        }
    }
    Ok(out)
}

fn arcs<T>(v: Vec<T>) -> Vec<Arc<T>> {
    v.into_iter().map(Arc::new).collect()
}

async fn read(args: &Args, now: Timestamp) -> Result<Report, PostureError> {
    let client = client(args).await?;
    let mut notes = Vec::new();
    let baselines = baselines(&client, args, &mut notes).await?;
    let narrowed: Option<Vec<String>> = (!args.namespaces.is_empty()).then(|| {
        let mut list = args.namespaces.clone();
        for b in &baselines {
            if !list.contains(&b.root_namespace) {
                list.push(b.root_namespace.clone());
            }
        }
        list
    });
    let mut roots: Vec<String> = baselines.iter().map(|b| b.root_namespace.clone()).collect();
    roots.sort();
    roots.dedup();
    let inventory = inventory(&client, narrowed.as_deref(), &roots, &mut notes).await?;
    let detail = if args.explain.is_some() {
        Detail::Explain
    } else {
        Detail::Report
    };
    let all = evaluate(&baselines, &inventory, |_| Objects::Observed, now, detail);
    let names = baselines.iter().map(|b| b.name.clone()).collect();
    finish(args, names, Objects::Observed, all, None, None, notes)
}

pub(super) fn run(args: &Args, now: Timestamp) -> Result<Report, PostureError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LiveError::from)?;
    rt.block_on(read(args, now))
}
