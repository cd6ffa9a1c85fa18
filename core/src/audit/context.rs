//! What every audit module needs: the baseline, the inventory, the time, and the questions
//! "is this namespace protected", "is it exempt", "is this object ours".

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Finding, Rule};
use crate::api::baseline::Control;
use crate::api::model::{Baseline, FieldErrors};
use crate::api::selector::Selector;
use crate::compile::{Compiled, Scope};
use crate::dataplane::{self, DataPlane};
use crate::inventory::{Inventory, PodInfo, SmallMap};
use crate::object::Kind;

pub(crate) struct Ctx<'a> {
    pub baseline: &'a Baseline,
    pub inventory: &'a Inventory,
    pub now: Timestamp,
    /// What this baseline generates: with the ownerReference uid, the only proof that an
    /// object is the operator's.
    desired: &'a Compiled,
    /// Overlap resolution: namespaces an older baseline wins, and whether the root is ours.
    scope: &'a Scope,
    empty: SmallMap,
    /// Whether some namespace is ambient, computed when first asked.
    ambient_mesh: std::cell::OnceCell<bool>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        baseline: &'a Baseline,
        inventory: &'a Inventory,
        desired: &'a Compiled,
        scope: &'a Scope,
        now: Timestamp,
    ) -> Self {
        Ctx {
            baseline,
            inventory,
            now,
            desired,
            scope,
            empty: SmallMap::default(),
            ambient_mesh: std::cell::OnceCell::new(),
        }
    }

    /// Whether root-namespace rules are this baseline's to report (the oldest baseline per
    /// root namespace owns it).
    pub fn owns_root(&self) -> bool {
        self.scope.owns_root
    }

    /// Whether an object is one the operator generated: its key is in the desired set and its
    /// controller ownerReference names this baseline's uid (without a uid, offline, the key
    /// alone). Labels and names prove nothing: tenants can write them.
    pub fn is_ours(&self, kind: Kind, meta: &ObjectMeta) -> bool {
        let key = (kind, ns_of(meta), name_of(meta));
        if self
            .desired
            .objects
            .binary_search_by(|d| {
                (d.key.kind, d.key.namespace.as_str(), d.key.name.as_str()).cmp(&key)
            })
            .is_err()
        {
            return false;
        }
        match &self.baseline.uid {
            None => true,
            Some(uid) => {
                meta.owner_references.iter().flatten().any(|o| {
                    o.kind == "MeshBaseline" && o.controller == Some(true) && &o.uid == uid
                })
            }
        }
    }

    /// Whether this baseline generates the object `kind` `namespace`/`name`.
    pub fn generates(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        self.desired.spec_of(kind, namespace, name).is_some()
    }

    pub fn root(&self) -> &'a str {
        &self.baseline.root_namespace
    }

    /// Labels of a namespace; empty when the inventory has no manifest for it.
    pub fn labels(&self, ns: &str) -> &SmallMap {
        self.inventory
            .namespaces
            .get(ns)
            .map(|n| &n.labels)
            .unwrap_or(&self.empty)
    }

    /// Whether the input has the Namespace object (and so its labels).
    pub fn known(&self, ns: &str) -> bool {
        self.inventory.namespaces.contains_key(ns)
    }

    /// The data plane a namespace's labels give its pods; `None` when the namespace is not in
    /// the input.
    pub fn namespace_dataplane(&self, ns: &str) -> Option<DataPlane> {
        self.known(ns)
            .then(|| dataplane::namespace_dataplane(self.labels(ns)))
    }

    /// The data plane a pod is in. Observed pods show it (an istio-proxy container, or
    /// istio-cni's `ambient.istio.io/redirection: enabled`); templates get what admission and
    /// istio-cni will give them, which needs the namespace's labels (`None` without them).
    ///
    /// A host-network pod is in none: a sidecar there would capture nothing (its iptables rules
    /// would be the node's; Istio never injects such pods) and ambient cannot take it. A pod
    /// labelled `istio.io/dataplane-mode=none` is not ambient whatever istio-cni wrote before:
    /// istio-cni takes it out of ztunnel.
    pub fn pod_dataplane(&self, pod: &PodInfo) -> Option<DataPlane> {
        if pod.host_network {
            return Some(DataPlane::None);
        }
        if dataplane::has_sidecar(pod) {
            return Some(DataPlane::Sidecar);
        }
        if pod.phase.is_some() {
            let opted_out = pod
                .labels
                .get(dataplane::DATAPLANE_MODE)
                .is_some_and(|v| v == "none");
            let captured = !opted_out
                && pod
                    .annotations
                    .get(dataplane::REDIRECTION)
                    .is_some_and(|v| v == "enabled");
            return Some(if captured {
                DataPlane::Ambient
            } else {
                DataPlane::None
            });
        }
        self.expected_dataplane(pod)
    }

    /// The data plane the namespace's and the pod's labels ask for, as if it were admitted now.
    pub fn expected_dataplane(&self, pod: &PodInfo) -> Option<DataPlane> {
        self.known(&pod.namespace)
            .then(|| dataplane::requested_dataplane(self.labels(&pod.namespace), pod))
    }

    /// Whether some namespace of the input is ambient by its labels.
    pub fn any_ambient_namespace(&self) -> bool {
        *self.ambient_mesh.get_or_init(|| {
            self.inventory
                .namespaces
                .values()
                .any(|n| dataplane::namespace_dataplane(&n.labels) == DataPlane::Ambient)
        })
    }

    /// Selected by this baseline and not won by an older one.
    pub fn protected(&self, ns: &str) -> bool {
        self.baseline.selects(ns, self.labels(ns)) && !self.scope.claimed_elsewhere.contains(ns)
    }

    pub fn exempt(&self, ns: &str, control: Control) -> bool {
        self.baseline.is_exempt(ns, control, self.now)
    }

    /// Whether `rule` is checked for objects in `ns`: the namespace is protected, not exempt
    /// from the rule's control, and workload rules are switched on.
    pub fn applies(&self, ns: &str, rule: Rule) -> bool {
        if !self.protected(ns) {
            return false;
        }
        match rule.control() {
            Some(Control::Workloads) if !self.baseline.workloads_audit => false,
            Some(c) => !self.exempt(ns, c),
            None => true,
        }
    }

    pub fn finding(
        &self,
        rule: Rule,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        message: String,
        fix: String,
    ) -> Finding {
        Finding {
            rule,
            severity: rule.severity(),
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            message,
            fix,
        }
    }
}

pub(crate) fn ns_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

pub(crate) fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("<unnamed>")
}

/// Orders objects by age for "the oldest wins" rules; objects without a creation time (as
/// in manifests) sort after those with one, then by name.
pub(crate) fn age_key(meta: &ObjectMeta) -> (Timestamp, &str) {
    (
        crate::inventory::created(meta).unwrap_or(Timestamp::MAX),
        name_of(meta),
    )
}

/// Whether a Kubernetes label selector selects an object with `labels`. A selector that does
/// not parse selects nothing (the API server would have rejected it).
pub(crate) fn selector_matches(
    sel: &LabelSelector,
    labels: &(impl crate::api::selector::Labels + ?Sized),
) -> bool {
    let mut errs = FieldErrors::default();
    let parsed = Selector::parse(sel, "selector", &mut errs);
    errs.0.is_empty() && parsed.matches(labels)
}

/// Whether a selector selects everything (`{}` or absent).
pub(crate) fn selects_all(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}
