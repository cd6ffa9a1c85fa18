//! What the audit reads from all pods together, beyond each pod on its own: which namespaces
//! have pods (DestinationRule host resolution, MB103), which have sidecar pods (MB302 in
//! ambient namespaces), the istiod pods (MB701) and the Gateways' pods (MB305). A pod event that changes none of it
//! changes only that pod's own findings ([`super::audit_pod`]), so the controller re-audits
//! the one pod instead of the cluster.

use std::collections::HashMap;

use super::ambient::GATEWAY_MANAGED;
use crate::dataplane;
use crate::inventory::PodInfo;
use crate::object::Name;

#[derive(Debug, Default)]
pub struct PodCounts {
    /// Keyed by the pods' own (shared) namespace names.
    per_namespace: HashMap<Name, Counts>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    pods: u32,
    sidecars: u32,
}

impl Counts {
    /// What other objects' findings see: whether there are any.
    fn seen(self) -> (bool, bool) {
        (self.pods > 0, self.sidecars > 0)
    }
}

/// A tenant's sidecar pod (waypoints and gateways run the proxy too, but are not workloads).
fn sidecar(pod: &PodInfo) -> bool {
    dataplane::has_sidecar(pod) && !pod.labels.contains_key(GATEWAY_MANAGED)
}

/// Pods other findings read one by one: istiod's (MB701 names it), templates or pods without
/// a phase, whose data plane depends on their namespace's labels, and the pods of Gateways,
/// whose ServiceAccounts are waypoint identities (MB305, and the compiler's waypoint-only
/// policy).
fn read_by_others(pod: &PodInfo) -> bool {
    pod.phase.is_none() || pod.name.starts_with("istiod") || crate::compile::reads_pod(pod)
}

impl PodCounts {
    /// Records a pod's change (`None`: absent before or after). `true` when findings about
    /// other objects may change with it, which calls for a full audit.
    pub fn update(&mut self, old: Option<&PodInfo>, new: Option<&PodInfo>) -> bool {
        let shared = old.into_iter().chain(new).any(read_by_others);
        let namespaces: Vec<Name> = old
            .into_iter()
            .chain(new)
            .map(|p| p.namespace.clone())
            .collect();
        let seen = |c: &Self| -> Vec<(bool, bool)> {
            namespaces
                .iter()
                .map(|ns| c.per_namespace.get(ns).copied().unwrap_or_default().seen())
                .collect()
        };
        let before = seen(self);
        if let Some(p) = old {
            self.add(p, false);
        }
        if let Some(p) = new {
            self.add(p, true);
        }
        shared || before != seen(self)
    }

    fn add(&mut self, pod: &PodInfo, up: bool) {
        let c = self.per_namespace.entry(pod.namespace.clone()).or_default();
        let step = |n: u32| {
            if up {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            }
        };
        c.pods = step(c.pods);
        if sidecar(pod) {
            c.sidecars = step(c.sidecars);
        }
        if c.pods == 0 {
            self.per_namespace.remove(&pod.namespace);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::mk_running_pod;

    fn mk_pod(ns: &str, name: &str, sidecar: bool) -> PodInfo {
        let containers: &[&str] = if sidecar {
            &["app", "istio-proxy"]
        } else {
            &["app"]
        };
        mk_running_pod(ns, name, containers)
    }

    #[test]
    fn replacing_a_pod_is_its_own_business() {
        let mut c = PodCounts::default();
        let (a, b) = (mk_pod("t", "a", true), mk_pod("t", "b", true));
        assert!(c.update(None, Some(&a)), "the namespace's first pod");
        assert!(
            !c.update(None, Some(&b)),
            "a second pod changes no count anyone sees"
        );
        assert!(!c.update(Some(&a), None));
        assert!(!c.update(Some(&b), Some(&b)));
        assert!(c.update(Some(&b), None), "the last pod");
        assert!(c.per_namespace.is_empty(), "no entry left behind");
    }

    #[test]
    fn first_and_last_sidecar_pod_are_shared() {
        let mut c = PodCounts::default();
        let plain = mk_pod("t", "plain", false);
        let side = mk_pod("t", "side", true);
        assert!(c.update(None, Some(&plain)));
        assert!(c.update(None, Some(&side)), "first sidecar pod");
        assert!(c.update(Some(&side), None), "last sidecar pod");
        let mut gw = mk_pod("t", "gw", true);
        gw.labels
            .insert(GATEWAY_MANAGED.into(), "istio.io-mesh-controller".into());
        assert!(!c.update(None, Some(&gw)), "a waypoint is not a workload");
    }

    #[test]
    fn istiod_and_phaseless_pods_are_read_by_other_rules() {
        let mut c = PodCounts::default();
        c.update(None, Some(&mk_pod("istio-system", "x", false)));
        let istiod = mk_pod("istio-system", "istiod-5d9f", true);
        assert!(c.update(None, Some(&istiod)));
        assert!(c.update(Some(&istiod), None));
        let mut pending = mk_pod("istio-system", "y", false);
        pending.phase = None;
        assert!(c.update(None, Some(&pending)));
    }
}
