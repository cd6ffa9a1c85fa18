//! The workload controllers' pod templates, which stand for their workloads when no pod of
//! theirs runs.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::inventory::PodInfo;

/// The workload controllers of the cluster, whose pod templates stand for their workloads
/// when no pod of theirs runs (scaled to zero, pending, or a CronJob between runs).
pub(super) struct Templates {
    pub(super) deployments: Vec<Deployment>,
    pub(super) stateful_sets: Vec<StatefulSet>,
    pub(super) daemon_sets: Vec<DaemonSet>,
    pub(super) replica_sets: Vec<ReplicaSet>,
    pub(super) cron_jobs: Vec<CronJob>,
    /// Only to tell which CronJob a running pod belongs to.
    pub(super) jobs: Vec<Job>,
}

/// (namespace, kind, name) of an object's controller.
fn owner(meta: &ObjectMeta) -> Option<(String, String, String)> {
    let o = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))?;
    Some((
        meta.namespace.clone().unwrap_or_default(),
        o.kind.clone(),
        o.name.clone(),
    ))
}

fn key(meta: &ObjectMeta, kind: &str) -> (String, String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        kind.to_string(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn template(meta: &ObjectMeta, template: Option<&PodTemplateSpec>, kind: &str) -> PodInfo {
    let mut tmeta = template
        .and_then(|t| t.metadata.clone())
        .unwrap_or_default();
    tmeta.name = meta.name.clone();
    tmeta.namespace = meta.namespace.clone();
    PodInfo::from_spec(&tmeta, template.and_then(|t| t.spec.as_ref()), kind)
}

impl Templates {
    /// The templates of the controllers none of whose pods is running: a running pod shows
    /// what admission made of the template, so the template is not listed again.
    pub(super) fn without_running_pods(&self, pods: &[Pod]) -> Vec<PodInfo> {
        let running =
            |p: &&Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let mut covered: std::collections::BTreeSet<(String, String, String)> = pods
            .iter()
            .filter(running)
            .filter_map(|p| owner(&p.metadata))
            .collect();
        // A ReplicaSet's pods cover its Deployment; a Job's, its CronJob (jobs are listed
        // through their CronJob only).
        let parents = self
            .replica_sets
            .iter()
            .map(|rs| (key(&rs.metadata, "ReplicaSet"), owner(&rs.metadata)))
            .chain(
                self.jobs
                    .iter()
                    .map(|j| (key(&j.metadata, "Job"), owner(&j.metadata))),
            );
        let parents: Vec<_> = parents.collect();
        for (child, parent) in parents {
            if let Some(parent) = parent.filter(|_| covered.contains(&child)) {
                covered.insert(parent);
            }
        }
        let mut out = Vec::new();
        let mut add = |meta: &ObjectMeta, t: Option<&PodTemplateSpec>, kind: &str| {
            if !covered.contains(&key(meta, kind)) {
                out.push(template(meta, t, kind));
            }
        };
        for d in &self.deployments {
            add(
                &d.metadata,
                d.spec.as_ref().map(|s| &s.template),
                "Deployment",
            );
        }
        for s in &self.stateful_sets {
            add(
                &s.metadata,
                s.spec.as_ref().map(|s| &s.template),
                "StatefulSet",
            );
        }
        for d in &self.daemon_sets {
            add(
                &d.metadata,
                d.spec.as_ref().map(|s| &s.template),
                "DaemonSet",
            );
        }
        for rs in self
            .replica_sets
            .iter()
            .filter(|rs| owner(&rs.metadata).is_none())
        {
            add(
                &rs.metadata,
                rs.spec.as_ref().and_then(|s| s.template.as_ref()),
                "ReplicaSet",
            );
        }
        for c in &self.cron_jobs {
            let t = c
                .spec
                .as_ref()
                .and_then(|s| s.job_template.spec.as_ref())
                .map(|s| &s.template);
            add(&c.metadata, t, "CronJob");
        }
        out
    }
}
