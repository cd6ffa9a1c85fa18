//! Which Istio data plane a namespace or pod is in, decided the way Istio decides it: the
//! sidecar injector's webhook selectors and `injectRequired` (pkg/kube/inject), and istio-cni's
//! ambient enablement selector. Pure; shared by the compiler and the audit.

use crate::inventory::PodInfo;

/// Namespace label: `enabled` turns injection on; any other value turns it off, whatever else.
pub const INJECTION_LABEL: &str = "istio-injection";
/// Namespace or pod label naming a control-plane revision.
pub const REV_LABEL: &str = "istio.io/rev";
/// Pod label (wins) or annotation: `"true"`/`"false"` per pod.
pub const INJECT: &str = "sidecar.istio.io/inject";
/// Written by the injector on every injected pod.
pub const SIDECAR_STATUS: &str = "sidecar.istio.io/status";
/// Namespace or pod label: `ambient` enrols in ztunnel, `none` (pod) opts out.
pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
/// Namespace, Service or pod label naming the waypoint; `none` opts out of the namespace's.
pub const USE_WAYPOINT: &str = "istio.io/use-waypoint";
/// Namespace label: the waypoint's namespace when it is not the namespace itself.
pub const USE_WAYPOINT_NAMESPACE: &str = "istio.io/use-waypoint-namespace";
/// Pod annotation: inbound traffic is not redirected to ztunnel.
pub const BYPASS_INBOUND_CAPTURE: &str = "ambient.istio.io/bypass-inbound-capture";
/// Pod annotation written by istio-cni: `enabled` once the pod's traffic goes to ztunnel;
/// `disabled` was the pre-1.22 per-pod opt-out.
pub const REDIRECTION: &str = "ambient.istio.io/redirection";

/// `when` keys ztunnel evaluates (Istio's `l4WhenAttributes`); any other key is HTTP.
pub const L4_WHEN_KEYS: [&str; 5] = [
    "source.ip",
    "source.namespace",
    "source.principal",
    "destination.ip",
    "destination.port",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataPlane {
    Sidecar,
    Ambient,
    None,
}

impl DataPlane {
    /// What a finding calls the data plane.
    pub fn describe(self) -> &'static str {
        match self {
            DataPlane::Sidecar => "an istio-proxy sidecar",
            DataPlane::Ambient => "ambient capture by ztunnel",
            DataPlane::None => "any mesh data plane",
        }
    }
}

type Labels = crate::inventory::SmallMap;

fn is(map: &Labels, key: &str, value: &str) -> bool {
    map.get(key).is_some_and(|v| v == value)
}

pub fn namespace_ambient(ns: &Labels) -> bool {
    is(ns, DATAPLANE_MODE, "ambient")
}

/// Whether a namespace's labels select it for the injection webhook. An `istio-injection`
/// label other than `enabled` excludes it from every webhook, revisioned ones included. A
/// revision label next to `istio.io/dataplane-mode=ambient` picks the ambient control plane,
/// not sidecars.
pub fn namespace_injection(ns: &Labels) -> bool {
    match ns.get(INJECTION_LABEL) {
        Some(v) => v == "enabled",
        None => ns.contains_key(REV_LABEL) && !namespace_ambient(ns),
    }
}

/// The data plane new pods of a namespace get when they say nothing themselves. Sidecar
/// injection wins over ambient: ztunnel skips pods that have a sidecar.
pub fn namespace_dataplane(ns: &Labels) -> DataPlane {
    if namespace_injection(ns) {
        DataPlane::Sidecar
    } else if namespace_ambient(ns) {
        DataPlane::Ambient
    } else {
        DataPlane::None
    }
}

/// The pod's own injection choice: the label wins over the annotation (Istio's
/// `injectRequired`); `None` when neither says `true` or `false`.
pub fn inject_choice(pod: &PodInfo) -> Option<(bool, &'static str)> {
    let pick = |v: &str| match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    if let Some(v) = pod.labels.get(INJECT) {
        return pick(v).map(|b| (b, "label"));
    }
    pod.annotations
        .get(INJECT)
        .and_then(|v| pick(v))
        .map(|b| (b, "annotation"))
}

/// Whether the injector adds a sidecar when this pod (or template) is admitted.
pub fn injected_at_admission(ns: &Labels, pod: &PodInfo) -> bool {
    // Istio never injects host-network pods.
    if pod.host_network {
        return false;
    }
    let label = pod.labels.get(INJECT).map(String::as_str);
    let selected = if ns.contains_key(INJECTION_LABEL) || ns.contains_key(REV_LABEL) {
        namespace_injection(ns)
    } else {
        // Object-selector webhooks: the pod opts in by label, not by annotation.
        label == Some("true") || pod.labels.contains_key(REV_LABEL)
    };
    // Every webhook's objectSelector excludes the label "false"; then the label or, without
    // it, the annotation decides, and the policy default is to inject.
    selected && inject_choice(pod).is_none_or(|(inject, _)| inject)
}

/// Whether the pod has, or is the template of pods that will have, a sidecar.
pub fn has_sidecar(pod: &PodInfo) -> bool {
    pod.has_sidecar() || pod.annotations.contains_key(SIDECAR_STATUS)
}

/// The data plane of a pod (or template) in a namespace with labels `ns`. Observed pods have
/// been through admission: their containers say whether they have a sidecar.
pub fn pod_dataplane(ns: &Labels, pod: &PodInfo) -> DataPlane {
    dataplane_of(ns, pod, pod.phase.is_none())
}

/// The data plane the labels ask for, as if the pod were admitted now.
pub fn requested_dataplane(ns: &Labels, pod: &PodInfo) -> DataPlane {
    dataplane_of(ns, pod, true)
}

fn dataplane_of(ns: &Labels, pod: &PodInfo, admitting: bool) -> DataPlane {
    if has_sidecar(pod) || (admitting && injected_at_admission(ns, pod)) {
        return DataPlane::Sidecar;
    }
    // Ambient cannot capture host-network pods: its rules would go into the node's namespace.
    if pod.host_network
        || pod
            .annotations
            .get(REDIRECTION)
            .is_some_and(|v| v == "disabled")
    {
        return DataPlane::None;
    }
    match pod.labels.get(DATAPLANE_MODE).map(String::as_str) {
        Some("ambient") => DataPlane::Ambient,
        Some("none") => DataPlane::None,
        _ if namespace_ambient(ns) => DataPlane::Ambient,
        _ => DataPlane::None,
    }
}

/// The waypoint a namespace's labels send its traffic through, as (namespace, name).
pub fn namespace_waypoint<'a>(namespace: &'a str, ns: &'a Labels) -> Option<(&'a str, &'a str)> {
    let name = ns.get(USE_WAYPOINT).map(String::as_str)?;
    if name == "none" || name.is_empty() {
        return None;
    }
    let wns = ns
        .get(USE_WAYPOINT_NAMESPACE)
        .map(String::as_str)
        .unwrap_or(namespace);
    Some((wns, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{ContainerInfo, PodShape};

    fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn template(pod_labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> PodInfo {
        PodInfo::new(
            "ns",
            "p",
            PodShape {
                kind: "Deployment".into(),
                labels: labels(pod_labels),
                annotations: labels(annotations),
                containers: vec![ContainerInfo {
                    name: "app".into(),
                    ..ContainerInfo::default()
                }],
                ..PodShape::default()
            },
        )
    }

    const ENABLED: &[(&str, &str)] = &[(INJECTION_LABEL, "enabled")];
    const AMBIENT: &[(&str, &str)] = &[(DATAPLANE_MODE, "ambient")];

    #[test]
    fn namespace_labels_choose_the_data_plane() {
        assert_eq!(namespace_dataplane(&labels(ENABLED)), DataPlane::Sidecar);
        assert_eq!(
            namespace_dataplane(&labels(&[(REV_LABEL, "1-24")])),
            DataPlane::Sidecar
        );
        // istio-injection=disabled wins over a revision label.
        assert_eq!(
            namespace_dataplane(&labels(&[(INJECTION_LABEL, "disabled"), (REV_LABEL, "x")])),
            DataPlane::None
        );
        assert_eq!(namespace_dataplane(&labels(AMBIENT)), DataPlane::Ambient);
        assert_eq!(
            namespace_dataplane(&labels(&[(DATAPLANE_MODE, "ambient"), (REV_LABEL, "1-24")])),
            DataPlane::Ambient
        );
        assert_eq!(
            namespace_dataplane(&labels(&[
                (DATAPLANE_MODE, "ambient"),
                (INJECTION_LABEL, "enabled")
            ])),
            DataPlane::Sidecar,
            "sidecar wins where both are asked for"
        );
        assert_eq!(namespace_dataplane(&labels(&[])), DataPlane::None);
    }

    #[test]
    fn the_pod_label_wins_over_the_annotation() {
        let ns = labels(ENABLED);
        let by_label = template(&[(INJECT, "false")], &[]);
        assert!(!injected_at_admission(&ns, &by_label));
        let overridden = template(&[(INJECT, "true")], &[(INJECT, "false")]);
        assert!(injected_at_admission(&ns, &overridden));
        let by_annotation = template(&[], &[(INJECT, "false")]);
        assert!(!injected_at_admission(&ns, &by_annotation));
        assert_eq!(inject_choice(&by_label), Some((false, "label")));
        assert_eq!(inject_choice(&overridden), Some((true, "label")));
    }

    #[test]
    fn unlabelled_namespaces_inject_only_pods_that_opt_in_by_label() {
        let ns = labels(&[]);
        assert!(injected_at_admission(
            &ns,
            &template(&[(INJECT, "true")], &[])
        ));
        assert!(injected_at_admission(
            &ns,
            &template(&[(REV_LABEL, "canary")], &[])
        ));
        assert!(!injected_at_admission(
            &ns,
            &template(&[], &[(INJECT, "true")])
        ));
        let disabled = labels(&[(INJECTION_LABEL, "disabled")]);
        assert!(!injected_at_admission(
            &disabled,
            &template(&[(INJECT, "true")], &[])
        ));
        let mut host = template(&[], &[]);
        host.host_network = true;
        assert!(!injected_at_admission(&labels(ENABLED), &host));
    }

    #[test]
    fn pods_follow_the_namespace_unless_they_opt_out() {
        let ns = labels(AMBIENT);
        assert_eq!(pod_dataplane(&ns, &template(&[], &[])), DataPlane::Ambient);
        assert_eq!(
            pod_dataplane(&ns, &template(&[(DATAPLANE_MODE, "none")], &[])),
            DataPlane::None
        );
        assert_eq!(
            pod_dataplane(&labels(&[]), &template(&[(DATAPLANE_MODE, "ambient")], &[])),
            DataPlane::Ambient
        );
        // The object-selector webhooks inject pods that opt in by label, ambient namespace or
        // not, and ztunnel then skips them: the sidecar wins.
        assert_eq!(
            pod_dataplane(&ns, &template(&[(INJECT, "true")], &[])),
            DataPlane::Sidecar
        );
        assert_eq!(
            pod_dataplane(&ns, &template(&[(REV_LABEL, "x")], &[])),
            DataPlane::Sidecar
        );
        let mut observed = template(&[], &[(SIDECAR_STATUS, "{}")]);
        observed.phase = Some("Running".into());
        assert_eq!(pod_dataplane(&ns, &observed), DataPlane::Sidecar);
        let mut host = template(&[], &[]);
        host.host_network = true;
        assert_eq!(pod_dataplane(&ns, &host), DataPlane::None);
    }

    #[test]
    fn waypoint_of_a_namespace() {
        let ns = labels(&[(USE_WAYPOINT, "waypoint")]);
        assert_eq!(namespace_waypoint("shop", &ns), Some(("shop", "waypoint")));
        let other = labels(&[(USE_WAYPOINT, "wp"), (USE_WAYPOINT_NAMESPACE, "infra")]);
        assert_eq!(namespace_waypoint("shop", &other), Some(("infra", "wp")));
        assert_eq!(
            namespace_waypoint("shop", &labels(&[(USE_WAYPOINT, "none")])),
            None
        );
    }
}
