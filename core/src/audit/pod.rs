//! MB501–MB506: pods and workload templates that bypass or leave the mesh's data plane.

use super::context::Ctx;
use super::{Finding, Rule, Severity};
use crate::dataplane::{self, DataPlane};
use crate::gateway;
use crate::inventory::{ContainerInfo, PodInfo, PROXY_CONTAINER};
use crate::posture::capture;

/// The proxy's own UID and GID: traffic from it is not redirected to the sidecar.
pub const PROXY_UID: i64 = 1337;
/// Containers Istio injects; they need the proxy UID and NET_ADMIN by design.
const ISTIO_CONTAINERS: [&str; 3] = [PROXY_CONTAINER, "istio-init", "istio-validation"];
const EXCLUDE_PREFIX: &str = "traffic.sidecar.istio.io/exclude";
const INCLUDE_OUTBOUND_RANGES: &str = "traffic.sidecar.istio.io/includeOutboundIPRanges";

fn is_istio(c: &ContainerInfo) -> bool {
    ISTIO_CONTAINERS.contains(&c.name.as_str())
}

/// "Kind namespace/name", formatted only when a finding needs it.
struct Who<'a>(&'a PodInfo);

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.0.kind, self.0.namespace, self.0.name)
    }
}

fn cap_matches(cap: &str) -> bool {
    let c = cap.trim().to_ascii_uppercase();
    let c = c.strip_prefix("CAP_").unwrap_or(&c);
    matches!(c, "NET_ADMIN" | "NET_RAW" | "ALL")
}

/// MB501–MB506 of one pod or template on its own.
pub(super) fn check_one(ctx: &Ctx, pod: &PodInfo, out: &mut Vec<Finding>) {
    if ctx.applies(&pod.namespace, Rule::MB501) {
        check_pod(ctx, pod, out);
    }
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    // Pods come grouped by namespace: remember the last namespace's answer.
    let mut last: Option<(&str, bool)> = None;
    for pod in &ctx.inventory.pods {
        let ns = &*pod.namespace;
        let applies = match last {
            Some((prev, applies)) if prev == ns => applies,
            // All pod rules share the Workloads control.
            _ => ctx.applies(ns, Rule::MB501),
        };
        last = Some((ns, applies));
        if applies {
            check_pod(ctx, pod, out);
        }
    }
}

fn check_pod(ctx: &Ctx, pod: &PodInfo, out: &mut Vec<Finding>) {
    let ns = &*pod.namespace;
    let plane = ctx.pod_dataplane(pod);
    let who = Who(pod);
    let apps = || pod.containers.iter().filter(|c| !is_istio(c));

    // Ambient redirection does not exempt UID 1337; only the sidecar's iptables rules do.
    if plane != Some(DataPlane::Ambient) {
        if let Some((message, severity)) = proxy_identity(pod, &who) {
            let mut f = ctx.finding(
                Rule::MB501,
                &pod.kind,
                Some(ns),
                &pod.name,
                message,
                "Set runAsUser/runAsGroup (pod and container securityContext) to any ID other than 1337; if files are owned by 1337, chown them in the image instead. An init container that needs the network before the proxy is up can run after it with native sidecars (ENABLE_NATIVE_SIDECARS, Kubernetes 1.29+).".to_string(),
            );
            f.severity = severity;
            out.push(f);
        }
    }

    if pod.host_network {
        let mut message = format!("{who} uses hostNetwork: it shares the node's network namespace, gets neither a sidecar nor ambient capture, and is not subject to NetworkPolicy.");
        let ambient = ctx.any_ambient_namespace();
        if ambient {
            // istio-cni SNATs every TCP connection from a node socket to a local ambient pod
            // to its probe address and accepts it before ztunnel (cni/pkg/iptables).
            message.push_str(" The mesh has ambient namespaces: istio-cni gives every TCP connection from the node's own network namespace to an ambient pod on the same node the probe address 169.254.7.127 and lets it in past ztunnel, so this pod reaches those pods in plaintext, on any port, with no AuthorizationPolicy applied.");
        }
        let mut f = ctx.finding(
            Rule::MB503,
            &pod.kind,
            Some(ns),
            &pod.name,
            message,
            "Remove spec.hostNetwork (or move the workload to a namespace the baseline does not protect, e.g. a node-agent namespace, and review it as part of the node).".to_string(),
        );
        if ambient {
            f.severity = Severity::Critical;
        }
        out.push(f);
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
    let powerful: Vec<String> = apps()
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
                "{who} has containers that can rewrite the pod's iptables rules and so escape the mesh's traffic capture: {}.",
                powerful.join("; ")
            ),
            "Drop NET_ADMIN/NET_RAW from securityContext.capabilities.add and set privileged: false; Istio's CNI plugin removes the need for them in init containers.",
        );
    }

    if pod.share_process_namespace && plane == Some(DataPlane::Sidecar) {
        push(
            Rule::MB504,
            format!("{who} sets shareProcessNamespace next to the istio-proxy sidecar: its containers can see the proxy's processes and read its memory and files, including the workload's mTLS private key."),
            "Remove spec.shareProcessNamespace, or run the debugging tool that needs it outside the mesh.",
        );
    }

    if let Some(missing) = missing_dataplane(ctx, pod, plane) {
        let (what, fix) = match missing {
            DataPlane::Ambient => {
                let why = if pod.labels.get(dataplane::DATAPLANE_MODE).is_some_and(|v| v == "none") {
                    "it is labelled istio.io/dataplane-mode=none"
                } else if pod.phase.is_some() {
                    "istio-cni has not marked it ambient.istio.io/redirection=enabled"
                } else {
                    "it opts out of ambient"
                };
                (
                    format!("without ambient capture ({why}), so ztunnel does not carry its traffic"),
                    "Remove any istio.io/dataplane-mode=none label, check that istio-cni and ztunnel run on its node, and restart the workload.",
                )
            }
            DataPlane::Sidecar => (
                match dataplane::inject_choice(pod) {
                    Some((false, source)) => format!(
                        "without an istio-proxy sidecar (injection disabled by the pod {source} sidecar.istio.io/inject=\"false\")"
                    ),
                    _ => "without an istio-proxy sidecar".to_string(),
                },
                "Enable injection (namespace label istio-injection=enabled or istio.io/rev), remove sidecar.istio.io/inject=\"false\" (label or annotation), and restart the workload.",
            ),
            DataPlane::None => (
                "in neither data plane: no istio-proxy sidecar and no ambient capture".to_string(),
                "Enrol it: label the namespace istio-injection=enabled (sidecars) or istio.io/dataplane-mode=ambient (ztunnel), remove opt-outs (sidecar.istio.io/inject=\"false\", istio.io/dataplane-mode=none), and restart the workload.",
            ),
        };
        push(
            Rule::MB505,
            format!("{who} in protected namespace {ns} runs {what}: it is outside the mesh, sends and accepts plaintext, and no AuthorizationPolicy applies to it."),
            fix,
        );
    }

    let bypass = bypass_annotations(pod, plane);
    if !bypass.is_empty() {
        push(
            Rule::MB506,
            format!(
                "{who} opts out of the sidecar or takes traffic out of it: {}. Traffic on those ports, addresses or interfaces, or the whole pod, skips mTLS and policy.",
                bypass.join(", ")
            ),
            "Remove the label or annotations; if a port must bypass the proxy, ask for an exemption so the exception is reviewed and time-boxed.",
        );
    }
}

/// MB501: containers other than Istio's running with the proxy's UID or GID. Init containers
/// alone are less severe: with a classic sidecar they run before the proxy exists, and 1337 is
/// Istio's documented way for them to reach the network; they still bypass policy.
fn proxy_identity(pod: &PodInfo, who: &Who) -> Option<(String, Severity)> {
    let mut any_app = false;
    let ids: Vec<String> = pod
        .containers
        .iter()
        .filter(|c| !is_istio(c))
        .filter_map(|c| {
            let uid = c.run_as_user.or(pod.run_as_user) == Some(PROXY_UID);
            let gid = c.run_as_group.or(pod.run_as_group) == Some(PROXY_UID);
            let what = match (uid, gid) {
                (true, true) => "UID and GID 1337",
                (true, false) => "UID 1337",
                (false, true) => "GID 1337",
                (false, false) => return None,
            };
            any_app |= !c.init;
            let init = if c.init { "init container " } else { "" };
            Some(format!("{init}{} ({what})", c.name))
        })
        .collect();
    if ids.is_empty() {
        return None;
    }
    let mut message = format!(
        "{who} runs {} with the sidecar's own identity: iptables does not redirect traffic from UID/GID 1337, so these containers bypass mTLS, AuthorizationPolicy and egress controls entirely.",
        ids.join(", ")
    );
    if !any_app {
        message.push_str(" Only init containers do: Istio documents UID 1337 as a workaround for init containers that need the network before the proxy is up, so this may be deliberate, but their traffic is still outside the mesh.");
    }
    Some((
        message,
        if any_app {
            Severity::Critical
        } else {
            Severity::High
        },
    ))
}

/// The data plane a running pod or a template should be in but is not; `None` when it is in
/// one, has finished, or depends on a namespace that is not in the input.
fn missing_dataplane(ctx: &Ctx, pod: &PodInfo, plane: Option<DataPlane>) -> Option<DataPlane> {
    match pod.phase.as_deref() {
        // MB503 already says that a host-network pod is in no data plane.
        _ if pod.host_network => return None,
        Some("Running") | None => {}
        Some(_) => return None,
    }
    if plane? != DataPlane::None {
        return None;
    }
    // Name what is missing: what the pod's labels ask for, else what its namespace gives.
    let requested = ctx.expected_dataplane(pod).unwrap_or(DataPlane::None);
    if requested != DataPlane::None {
        return Some(requested);
    }
    Some(
        ctx.namespace_dataplane(&pod.namespace)
            .unwrap_or(DataPlane::None),
    )
}

/// MB506: an effective injection opt-out, exclusion annotations other than those the
/// injector writes itself, and capture narrowed or switched off. Ambient pods ignore all of
/// them.
fn bypass_annotations(pod: &PodInfo, plane: Option<DataPlane>) -> Vec<String> {
    if plane == Some(DataPlane::Ambient) {
        return Vec::new();
    }
    let mut out = Vec::new();
    // A gateway's or waypoint's proxy is its main container: Istio labels its pods
    // `sidecar.istio.io/inject: "false"` so that no second proxy is injected.
    let own_proxy = gateway::gateway_of(pod).is_some() && dataplane::has_sidecar(pod);
    if let Some((false, source)) = dataplane::inject_choice(pod).filter(|_| !own_proxy) {
        out.push(format!("{source} {}: \"false\"", dataplane::INJECT));
    }
    out.extend(capture_overrides(pod));
    for (k, v) in &pod.annotations {
        if !k.starts_with(EXCLUDE_PREFIX) || v.trim().is_empty() {
            continue;
        }
        if k == capture::EXCLUDE_INBOUND_PORTS {
            let own = capture::own_exclusions(pod);
            if !own.is_empty() {
                out.push(format!("{k}: {:?}", own.join(",")));
            }
            continue;
        }
        out.push(format!("{k}: {v:?}"));
    }
    out
}

/// Capture that the pod narrows or switches off (`capture::inbound`, which posture reads too,
/// and outbound ranges): `includeInboundPorts` other than `*` captures only the ports listed
/// (none when empty), `includeOutboundIPRanges` other than `*` only the ranges listed, and an
/// interception mode `NONE` (the pod's annotation, else its `proxy.istio.io/config`) sets up
/// no iptables rules and no inbound listener. The injector itself writes `*` and the mesh's
/// mode (REDIRECT or TPROXY) when istio-cni is used.
fn capture_overrides(pod: &PodInfo) -> Vec<String> {
    let mut out = Vec::new();
    for (key, what) in [
        (capture::INCLUDE_INBOUND_PORTS, "inbound ports"),
        (INCLUDE_OUTBOUND_RANGES, "outbound addresses"),
    ] {
        if let Some(v) = pod.annotations.get(key).filter(|v| v.trim() != "*") {
            let captured = if v.trim().is_empty() {
                format!("no {what} are captured")
            } else {
                format!("only these {what} are captured")
            };
            out.push(format!("{key}: {v:?} ({captured})"));
        }
    }
    if let Some((mode, source)) = capture::interception_mode(pod).filter(|(m, _)| *m == "NONE") {
        out.push(format!(
            "{source}: {mode:?} (no traffic is captured, and the proxy has no inbound listener)"
        ));
    }
    out
}
