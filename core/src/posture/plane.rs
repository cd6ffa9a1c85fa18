//! The data plane of a workload, in the words of the labels, annotations and containers
//! that decide it.

use crate::dataplane::{self, DataPlane};
use crate::inventory::PodInfo;

use super::Posture;

/// The data plane and why, in the words of the labels and annotations that decide it.
pub(super) fn data_plane(p: &Posture, pod: &PodInfo) -> (Option<DataPlane>, String) {
    let ctx = &p.ctx;
    let ns = &*pod.namespace;
    let plane = ctx.pod_dataplane(pod);
    let reason = match plane {
        None => format!(
            "namespace {ns} is not in the input, so its injection and ambient labels are unknown"
        ),
        Some(DataPlane::Sidecar) if pod.has_sidecar() => {
            "the pod has an istio-proxy container".to_string()
        }
        Some(DataPlane::Sidecar) if dataplane::has_sidecar(pod) => {
            "the injector marked the pod (sidecar.istio.io/status)".to_string()
        }
        Some(DataPlane::Sidecar) => match dataplane::inject_choice(pod) {
            Some((true, source)) => format!(
                "the injector adds a sidecar: pod {source} sidecar.istio.io/inject=\"true\""
            ),
            _ => format!(
                "the injector adds a sidecar: namespace {ns} enables injection ({})",
                injection_label(ctx.labels(ns))
            ),
        },
        Some(DataPlane::Ambient) if pod.phase.is_some() => {
            "istio-cni marked the pod ambient.istio.io/redirection=enabled".to_string()
        }
        Some(DataPlane::Ambient)
            if pod
                .labels
                .get(dataplane::DATAPLANE_MODE)
                .is_some_and(|v| v == "ambient") =>
        {
            "the pod is labelled istio.io/dataplane-mode=ambient".to_string()
        }
        Some(DataPlane::Ambient) => {
            format!("namespace {ns} is labelled istio.io/dataplane-mode=ambient")
        }
        Some(DataPlane::None) => none_reason(p, pod),
    };
    (plane, reason)
}

fn injection_label(labels: &crate::inventory::SmallMap) -> String {
    match (
        labels.get(dataplane::INJECTION_LABEL),
        labels.get(dataplane::REV_LABEL),
    ) {
        (Some(v), _) => format!("istio-injection={v}"),
        (None, Some(r)) => format!("istio.io/rev={r}"),
        _ => "no label".to_string(),
    }
}

fn none_reason(p: &Posture, pod: &PodInfo) -> String {
    let ns = &*pod.namespace;
    let labels = p.ctx.labels(ns);
    if pod.host_network {
        return "it uses hostNetwork: neither a sidecar nor ambient capture can take its traffic"
            .into();
    }
    if let Some((false, source)) = dataplane::inject_choice(pod) {
        return format!("injection disabled by the pod {source} sidecar.istio.io/inject=\"false\"");
    }
    if pod
        .labels
        .get(dataplane::DATAPLANE_MODE)
        .is_some_and(|v| v == "none")
    {
        return "it opts out of ambient with the label istio.io/dataplane-mode=none".into();
    }
    if pod
        .annotations
        .get(dataplane::REDIRECTION)
        .is_some_and(|v| v == "disabled")
    {
        return "it opts out of ambient with the annotation ambient.istio.io/redirection=disabled"
            .into();
    }
    if pod.phase.is_some() && dataplane::namespace_ambient(labels) {
        return "istio-cni has not marked it ambient.istio.io/redirection=enabled".into();
    }
    if pod.phase.is_some() && dataplane::namespace_injection(labels) {
        return "it has no istio-proxy container (created before injection was enabled, or not injected)".into();
    }
    format!(
        "namespace {ns} enables neither sidecar injection ({}) nor ambient",
        injection_label(labels)
    )
}

pub(super) fn plane_name(plane: Option<DataPlane>) -> &'static str {
    match plane {
        Some(DataPlane::Sidecar) => "sidecar",
        Some(DataPlane::Ambient) => "ambient",
        Some(DataPlane::None) => "none",
        None => "unknown",
    }
}
