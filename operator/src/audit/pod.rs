//! MB501–MB506: pods and workload templates that bypass or leave the sidecar.

use super::context::Ctx;
use super::{Finding, Rule};
use crate::inventory::{ContainerInfo, PodInfo, PROXY_CONTAINER};

/// The proxy's own UID and GID: traffic from it is not redirected to the sidecar.
pub const PROXY_UID: i64 = 1337;
/// Containers Istio injects; they need the proxy UID and NET_ADMIN by design.
const ISTIO_CONTAINERS: [&str; 3] = [PROXY_CONTAINER, "istio-init", "istio-validation"];
const INJECT_ANNOTATION: &str = "sidecar.istio.io/inject";
const EXCLUDE_PREFIX: &str = "traffic.sidecar.istio.io/exclude";

fn is_istio(c: &ContainerInfo) -> bool {
    ISTIO_CONTAINERS.contains(&c.name.as_str())
}

fn describe(pod: &PodInfo) -> String {
    format!("{} {}/{}", pod.kind, pod.namespace, pod.name)
}

fn cap_matches(cap: &str) -> bool {
    let c = cap.trim().to_ascii_uppercase();
    let c = c.strip_prefix("CAP_").unwrap_or(&c);
    matches!(c, "NET_ADMIN" | "NET_RAW" | "ALL")
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    for pod in &ctx.inventory.pods {
        let ns = pod.namespace.as_str();
        // All pod rules share the Workloads control.
        if !ctx.applies(ns, Rule::MB501) {
            continue;
        }
        let mut push = |rule: Rule, message: String, fix: &str| {
            out.push(ctx.finding(
                rule,
                &pod.kind,
                Some(ns),
                &pod.name,
                message,
                fix.to_string(),
            ));
        };
        let who = describe(pod);
        let apps: Vec<&ContainerInfo> = pod.containers.iter().filter(|c| !is_istio(c)).collect();

        let proxy_ids: Vec<String> = apps
            .iter()
            .filter_map(|c| {
                let uid = c.run_as_user.or(pod.run_as_user) == Some(PROXY_UID);
                let gid = c.run_as_group.or(pod.run_as_group) == Some(PROXY_UID);
                match (uid, gid) {
                    (true, true) => Some(format!("{} (UID and GID 1337)", c.name)),
                    (true, false) => Some(format!("{} (UID 1337)", c.name)),
                    (false, true) => Some(format!("{} (GID 1337)", c.name)),
                    (false, false) => None,
                }
            })
            .collect();
        if !proxy_ids.is_empty() {
            push(
                Rule::MB501,
                format!(
                    "{who} runs {} with the sidecar's own identity: iptables does not redirect traffic from UID/GID 1337, so these containers bypass mTLS, AuthorizationPolicy and egress controls entirely.",
                    proxy_ids.join(", ")
                ),
                "Set runAsUser/runAsGroup (pod and container securityContext) to any ID other than 1337; if files are owned by 1337, chown them in the image instead.",
            );
        }

        let powerful: Vec<String> = apps
            .iter()
            .filter_map(|c| {
                let mut what: Vec<String> = c
                    .added_capabilities
                    .iter()
                    .filter(|cap| cap_matches(cap))
                    .map(|cap| format!("adds {cap}"))
                    .collect();
                if c.privileged {
                    what.push("privileged".to_string());
                }
                (!what.is_empty()).then(|| format!("{} ({})", c.name, what.join(", ")))
            })
            .collect();
        if !powerful.is_empty() {
            push(
                Rule::MB502,
                format!(
                    "{who} has containers that can rewrite the pod's iptables rules and so escape the sidecar: {}.",
                    powerful.join("; ")
                ),
                "Drop NET_ADMIN/NET_RAW from securityContext.capabilities.add and set privileged: false; Istio's CNI plugin removes the need for them in init containers.",
            );
        }

        if pod.host_network {
            push(
                Rule::MB503,
                format!("{who} uses hostNetwork: it shares the node's network namespace, gets no sidecar redirection and is not subject to NetworkPolicy."),
                "Remove spec.hostNetwork (or move the workload to a namespace the baseline does not protect, e.g. a node-agent namespace).",
            );
        }

        if pod.share_process_namespace && sidecar(ctx, pod) == Some(true) {
            push(
                Rule::MB504,
                format!("{who} sets shareProcessNamespace next to the istio-proxy sidecar: its containers can see the proxy's processes and read its memory and files, including the workload's mTLS private key."),
                "Remove spec.shareProcessNamespace, or run the debugging tool that needs it outside the mesh.",
            );
        }

        if missing_sidecar(ctx, pod) {
            push(
                Rule::MB505,
                format!("{who} in protected namespace {ns} runs without an istio-proxy sidecar: it is outside the mesh, sends and accepts plaintext, and no AuthorizationPolicy applies to it."),
                "Enable injection (namespace label istio-injection=enabled or istio.io/rev), remove sidecar.istio.io/inject=\"false\", and restart the workload.",
            );
        }

        let bypass: Vec<String> = pod
            .annotations
            .iter()
            .filter(|(k, v)| {
                (k.as_str() == INJECT_ANNOTATION && v.as_str() == "false")
                    || (k.starts_with(EXCLUDE_PREFIX) && !v.trim().is_empty())
            })
            .map(|(k, v)| format!("{k}: {v:?}"))
            .collect();
        if !bypass.is_empty() {
            push(
                Rule::MB506,
                format!(
                    "{who} has annotations that take traffic out of the sidecar: {}. Traffic on those ports, addresses or interfaces, or the whole pod, skips mTLS and policy.",
                    bypass.join(", ")
                ),
                "Remove the annotations; if a port must bypass the proxy, ask for an exemption so the exception is reviewed and time-boxed.",
            );
        }
    }
}

/// Whether the pod has (or, for templates and pod manifests without a status, will get at
/// admission) the istio-proxy sidecar; `None` when that depends on a namespace not in the input.
fn sidecar(ctx: &Ctx, pod: &PodInfo) -> Option<bool> {
    if pod.has_sidecar() {
        return Some(true);
    }
    if pod.phase.is_some() {
        return Some(false);
    }
    if pod
        .annotations
        .get(INJECT_ANNOTATION)
        .is_some_and(|v| v == "false")
    {
        return Some(false);
    }
    if !ctx.inventory.namespaces.contains_key(&pod.namespace) {
        return None;
    }
    Some(super::namespace::injection_enabled(
        ctx.labels(&pod.namespace),
    ))
}

/// Running pods and templates without a sidecar; finished pods no longer matter.
fn missing_sidecar(ctx: &Ctx, pod: &PodInfo) -> bool {
    match pod.phase.as_deref() {
        Some("Running") => !pod.has_sidecar(),
        Some(_) => false,
        None => sidecar(ctx, pod) == Some(false),
    }
}
