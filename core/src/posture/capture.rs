//! Which inbound ports a sidecar's iptables rules send to the proxy: istio-iptables'
//! `handleInboundPortsInclude` (tools/istio-iptables/pkg/capture/run.go) with the values the
//! injector gives it (its template reads `sidecar.istio.io/interceptionMode`, else the
//! ProxyConfig's, and `traffic.sidecar.istio.io/includeInboundPorts`, default `*`). Ports the
//! proxy never sees take plaintext past both STRICT mTLS and every AuthorizationPolicy. Shared
//! by posture and the audit (MB506).

use crate::inventory::{PodInfo, PROXY_CONFIG};

use super::authz::Port;

pub const INCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeInboundPorts";
pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
pub const INTERCEPTION_MODE: &str = "sidecar.istio.io/interceptionMode";
/// The agent's status (15020), health (15021) and Envoy's Prometheus (15090) ports: the
/// injector itself excludes them, and writes 15020 into `excludeInboundPorts` on every pod
/// when istio-cni is used.
pub const ISTIO_STATUS_PORTS: [&str; 3] = ["15020", "15021", "15090"];
const STATUS_PORT_ANNOTATION: &str = "status.sidecar.istio.io/port";

/// The inbound capture a pod's annotations ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Every TCP port but `excluded` (the pod's own exclusions, not Istio's status ports).
    All { excluded: Vec<u16> },
    /// Only these ports (`includeInboundPorts` lists them).
    Only(Vec<u16>),
    /// Nothing: `why` names the annotation.
    Nothing(String),
}

fn ports(v: &str) -> Vec<u16> {
    v.split(',')
        .filter_map(|p| p.trim().parse::<u16>().ok())
        .collect()
}

/// The interception mode and the annotation it comes from: the pod's own annotation wins
/// over its ProxyConfig (the injection template's `annotation ... .ProxyConfig.InterceptionMode`).
pub fn interception_mode(pod: &PodInfo) -> Option<(&str, &'static str)> {
    if let Some(v) = pod.annotations.get(INTERCEPTION_MODE) {
        return Some((v.trim(), INTERCEPTION_MODE));
    }
    pod.annotations
        .get(PROXY_CONFIG)
        .map(|v| (v.trim(), "proxy.istio.io/config interceptionMode"))
}

/// What the sidecar captures inbound.
pub fn inbound(pod: &PodInfo) -> Inbound {
    if let Some((mode, source)) = interception_mode(pod).filter(|(m, _)| *m == "NONE") {
        return Inbound::Nothing(format!(
            "{source}: {mode:?} (no iptables rules, and the proxy has no inbound listener)"
        ));
    }
    match pod.annotations.get(INCLUDE_INBOUND_PORTS).map(|v| v.trim()) {
        Some("") => {
            return Inbound::Nothing(format!(
                "{INCLUDE_INBOUND_PORTS}: \"\" (no inbound port is captured)"
            ))
        }
        Some(v) if v != "*" => return Inbound::Only(ports(v)),
        _ => {}
    }
    Inbound::All {
        excluded: own_exclusions(pod)
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect(),
    }
}

/// The ports of `excludeInboundPorts` other than those the injector writes itself.
pub fn own_exclusions(pod: &PodInfo) -> Vec<&str> {
    let Some(v) = pod.annotations.get(EXCLUDE_INBOUND_PORTS) else {
        return Vec::new();
    };
    let status_port = pod.annotations.get(STATUS_PORT_ANNOTATION);
    v.split(',')
        .map(str::trim)
        .filter(|p| {
            !p.is_empty()
                && !ISTIO_STATUS_PORTS.contains(p)
                && status_port.is_none_or(|s| s.trim() != *p)
        })
        .collect()
}

/// Whether the pod's annotations keep some inbound TCP port from the proxy.
pub fn narrowed(pod: &PodInfo) -> bool {
    match inbound(pod) {
        Inbound::All { excluded } => !excluded.is_empty(),
        Inbound::Only(_) | Inbound::Nothing(_) => true,
    }
}

/// `Ok` when the sidecar captures `port`, else why not.
pub fn captured(pod: &PodInfo, port: Port) -> Result<(), String> {
    match (inbound(pod), port) {
        (Inbound::Nothing(why), _) => Err(why),
        (Inbound::Only(list), Port::Number(n)) if list.contains(&n) => Ok(()),
        (Inbound::Only(list), _) => Err(format!(
            "{INCLUDE_INBOUND_PORTS} captures only {}",
            list.iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )),
        (Inbound::All { excluded }, Port::Number(n)) if excluded.contains(&n) => {
            Err(format!("{EXCLUDE_INBOUND_PORTS} leaves out {n}"))
        }
        (Inbound::All { .. }, _) => Ok(()),
    }
}

/// The ports the pod's annotations name (each gets its own posture row).
pub fn named_ports(pod: &PodInfo) -> Vec<u16> {
    match inbound(pod) {
        Inbound::All { excluded } => excluded,
        Inbound::Only(list) => list,
        Inbound::Nothing(_) => Vec::new(),
    }
}
