//! Posture counts per namespace: how many workloads are protected, partly or not.

use std::collections::BTreeMap;

use serde::Serialize;

use jiff::Timestamp;

use super::index::{Index, Sources};
use super::{by_object, Detail, Objects, Posture, Protection};
use crate::api::model::Baseline;
use crate::audit::context::Ctx;
use crate::audit::Finding;
use crate::compile::{Compiled, Scope};
use crate::inventory::{Inventory, PodInfo};

/// Workloads by protection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostureCounts {
    pub protected: u32,
    pub partial: u32,
    pub unprotected: u32,
    pub unknown: u32,
}

impl PostureCounts {
    pub fn add(&mut self, p: Protection) {
        let slot = match p {
            Protection::Protected => &mut self.protected,
            Protection::Partial => &mut self.partial,
            Protection::Unprotected => &mut self.unprotected,
            Protection::Unknown => &mut self.unknown,
        };
        *slot = slot.saturating_add(1);
    }

    pub fn get(&self, p: Protection) -> u32 {
        match p {
            Protection::Protected => self.protected,
            Protection::Partial => self.partial,
            Protection::Unprotected => self.unprotected,
            Protection::Unknown => self.unknown,
        }
    }

    pub fn total(&self) -> u32 {
        self.protected + self.partial + self.unprotected + self.unknown
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespacePosture {
    pub namespace: String,
    #[serde(flatten)]
    pub counts: PostureCounts,
}

/// The counts of the protected namespaces, and their total.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub total: PostureCounts,
    pub namespaces: BTreeMap<String, PostureCounts>,
}

impl Posture<'_> {
    /// Counts for every protected namespace with listed workloads.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for pod in self.ctx.inventory.pods.iter().filter(|p| Self::listed(p)) {
            if !self.ctx.protected(&pod.namespace) {
                continue;
            }
            let p = self.workload(pod, Detail::Counts).protection;
            s.total.add(p);
            s.namespaces
                .entry(pod.namespace.to_string())
                .or_default()
                .add(p);
        }
        s
    }
}

impl<'a> Posture<'a> {
    /// The same counts as `summary`, without an index of the whole inventory: the policies
    /// of the root namespace are typed once, those of each other namespace just before its
    /// workloads are counted and dropped after, so the pass holds one namespace's policies
    /// at a time (the baseline's objects, typed per namespace, are most of an index).
    pub fn counts(
        baseline: &'a Baseline,
        inventory: &'a Inventory,
        desired: &'a Compiled,
        scope: &'a Scope,
        now: Timestamp,
        findings: &'a [Finding],
        objects: Objects,
    ) -> Summary {
        let mut p = Posture {
            ctx: Ctx::new(baseline, inventory, desired, scope, now),
            index: Index::default(),
            findings: by_object(findings),
        };
        let mut sources = Sources::new(inventory, desired, objects);
        let root = p.ctx.root();
        p.index.insert(root, sources.build(root));
        let mut pods: Vec<&PodInfo> = inventory
            .pods
            .iter()
            .map(|pod| &**pod)
            .filter(|pod| Self::listed(pod) && p.ctx.protected(&pod.namespace))
            .collect();
        pods.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        let mut s = Summary::default();
        for group in pods.chunk_by(|a, b| a.namespace == b.namespace) {
            let ns = &*group[0].namespace;
            if ns != root {
                p.index.insert(ns, sources.build(ns));
            }
            let mut counts = PostureCounts::default();
            for pod in group {
                let protection = p.workload(pod, Detail::Counts).protection;
                s.total.add(protection);
                counts.add(protection);
            }
            s.namespaces.insert(ns.to_string(), counts);
            if ns != root {
                p.index.remove(ns);
            }
        }
        s
    }
}

/// At most this many namespaces in the status.
pub const STATUS_NAMESPACES_CAP: usize = 50;

fn status_counts(c: &PostureCounts) -> crate::api::baseline::PostureCountsStatus {
    crate::api::baseline::PostureCountsStatus {
        protected: c.protected,
        partial: c.partial,
        unprotected: c.unprotected,
        unknown: c.unknown,
    }
}

impl Summary {
    /// The status form: totals, and the worst namespaces first (most unprotected, then most
    /// partly protected workloads, then by name), capped.
    pub fn to_status(&self) -> crate::api::baseline::PostureStatus {
        let mut worst: Vec<(&String, &PostureCounts)> = self.namespaces.iter().collect();
        worst.sort_by(|a, b| {
            (
                std::cmp::Reverse(a.1.unprotected),
                std::cmp::Reverse(a.1.partial),
                a.0,
            )
                .cmp(&(
                    std::cmp::Reverse(b.1.unprotected),
                    std::cmp::Reverse(b.1.partial),
                    b.0,
                ))
        });
        crate::api::baseline::PostureStatus {
            total: status_counts(&self.total),
            namespaces_total: u32::try_from(self.namespaces.len()).unwrap_or(u32::MAX),
            namespaces: worst
                .into_iter()
                .take(STATUS_NAMESPACES_CAP)
                .map(|(ns, c)| crate::api::baseline::NamespacePostureStatus {
                    namespace: ns.clone(),
                    counts: status_counts(c),
                })
                .collect(),
        }
    }
}
