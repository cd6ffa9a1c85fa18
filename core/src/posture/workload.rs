//! One workload's posture.

use std::collections::BTreeSet;

use crate::api::baseline::{Control, MtlsMode};
use crate::api::istio::AuthorizationPolicy;
use crate::audit::context::{name_of, ns_of};
use crate::dataplane::{self, DataPlane};
use crate::gateway::{gateway_of, Gateway};
use crate::inventory::PodInfo;
use crate::object::Kind;

use super::authz::{self, Enforcer, Port, Reach, Target};
use super::mtls::{Composed, Decision, Level};
use super::{
    capture, network, Cause, CauseKind, DataPlaneInfo, Detail, ExemptionInfo, FindingRef, MtlsInfo,
    ObjectRef, Plaintext, PolicyMatch, PortPosture, Posture, Protection, WorkloadPosture,
};

/// The data plane and why, in the words of the labels and annotations that decide it.
fn data_plane(p: &Posture, pod: &PodInfo) -> (Option<DataPlane>, String) {
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

/// The policies of the workload's namespace and the root namespace that attach to it.
fn attached<'i>(p: &'i Posture, pod: &PodInfo) -> Vec<&'i AuthorizationPolicy> {
    let root = p.ctx.root();
    let ns = &*pod.namespace;
    let target = Target {
        namespace: ns,
        labels: pod.selector_labels(),
        waypoint: matches!(gateway_of(pod), Some(Gateway::Waypoint(_))),
        root,
    };
    let mut namespaces = vec![root];
    if ns != root {
        namespaces.push(ns);
    }
    namespaces
        .into_iter()
        .flat_map(|n| {
            let target = &target;
            p.index
                .of(n)
                .authorization_policies
                .iter()
                .map(|a| &**a)
                .filter(move |a| authz::attaches(a, n, target))
        })
        .collect()
}

/// The rows of a workload: the TCP ports its containers declare and those its PeerAuthentication
/// and capture annotations name (each may differ), the ports its policies name (kept only where
/// the verdict differs from every other port's), and `*` for every other port.
fn rows(
    pod: &PodInfo,
    composed: &Composed,
    policies: &[&AuthorizationPolicy],
) -> (Vec<(Port, Option<String>)>, BTreeSet<u16>) {
    let mut numbers: BTreeSet<u16> = pod
        .ports
        .iter()
        .filter(|p| p.protocol == "TCP")
        .map(|p| p.number)
        .collect();
    numbers.extend(composed.port_level_ports());
    numbers.extend(capture::named_ports(pod));
    let mut policy_only = BTreeSet::new();
    for ap in policies {
        for n in authz::named_ports(ap) {
            if numbers.insert(n) {
                policy_only.insert(n);
            }
        }
    }
    let name_of_port = |n: u16| {
        pod.ports
            .iter()
            .find(|p| p.number == n && p.protocol == "TCP")
            .and_then(|p| p.name.clone())
    };
    let rows = numbers
        .into_iter()
        .map(|n| (Port::Number(n), name_of_port(n)))
        .chain(std::iter::once((Port::Other, None)))
        .collect();
    (rows, policy_only)
}

/// Whether two rows say the same but for the port.
fn same_verdict(a: &PortPosture, b: &PortPosture) -> bool {
    a.plaintext == b.plaintext
        && a.captured == b.captured
        && a.mtls == b.mtls
        && a.refused_by == b.refused_by
        && a.allows_plaintext == b.allows_plaintext
        && a.accepted_because == b.accepted_because
}

pub(super) fn evaluate(p: &Posture, pod: &PodInfo, detail: Detail) -> WorkloadPosture {
    let ctx = &p.ctx;
    let ns = &*pod.namespace;
    let root = ctx.root();
    let protected = ctx.protected(ns);
    let (plane, plane_reason) = data_plane(p, pod);
    let composed = Composed::new(
        root,
        ns,
        &p.index.of(root).peer_authentications,
        &p.index.of(ns).peer_authentications,
        pod.selector_labels(),
    );
    let policies = attached(p, pod);
    let (candidates, policy_only) = rows(pod, &composed, &policies);
    let mut ports: Vec<PortPosture> = candidates
        .into_iter()
        .map(|(port, name)| {
            let mut row = port_posture(p, pod, plane, &composed, &policies, port, detail);
            row.name = name;
            row
        })
        .collect();
    if let Some(other) = ports.last().cloned() {
        ports.retain(|r| match r.port {
            Port::Number(n) if policy_only.contains(&n) => !same_verdict(r, &other),
            _ => true,
        });
    }
    if detail == Detail::Explain {
        let head = format!(
            "{} {ns}/{}: namespace {ns} is {}; data plane {}: {plane_reason}.",
            pod.kind,
            pod.name,
            if protected {
                format!("protected by baseline {}", ctx.baseline.name)
            } else {
                format!("not protected by baseline {}", ctx.baseline.name)
            },
            plane_name(plane),
        );
        for row in &mut ports {
            row.steps.insert(0, head.clone());
        }
    }
    let network = network::network(ctx, pod, &p.index.of(ns).network_policies);
    let exemptions = exemptions(p, ns);
    let findings = concerning(p, pod, &composed, &policies);
    let protection = protection(plane, &ports, &network, &exemptions, &findings);
    WorkloadPosture {
        kind: pod.kind.clone(),
        namespace: ns.to_string(),
        name: pod.name.to_string(),
        protection,
        namespace_protected: protected,
        data_plane: DataPlaneInfo {
            mode: plane_name(plane).to_string(),
            reason: plane_reason,
        },
        ports,
        network,
        exemptions,
        findings,
    }
}

fn plane_name(plane: Option<DataPlane>) -> &'static str {
    match plane {
        Some(DataPlane::Sidecar) => "sidecar",
        Some(DataPlane::Ambient) => "ambient",
        Some(DataPlane::None) => "none",
        None => "unknown",
    }
}

fn protection(
    plane: Option<DataPlane>,
    ports: &[PortPosture],
    network: &network::NetworkPosture,
    exemptions: &[ExemptionInfo],
    findings: &[FindingRef],
) -> Protection {
    if plane.is_none() {
        return Protection::Unknown;
    }
    let accepted = ports
        .iter()
        .filter(|r| r.plaintext == Plaintext::Accepted)
        .count();
    if accepted == ports.len() {
        Protection::Unprotected
    } else if accepted > 0 || !network.closed() || !exemptions.is_empty() || !findings.is_empty() {
        Protection::Partial
    } else {
        Protection::Protected
    }
}

fn exemptions(p: &Posture, ns: &str) -> Vec<ExemptionInfo> {
    let b = p.ctx.baseline;
    b.exemptions
        .iter()
        .filter(|e| e.namespace == ns && e.expires > p.ctx.now)
        .map(|e| ExemptionInfo {
            controls: e
                .controls
                .iter()
                .map(|c| control_name(*c).to_string())
                .collect(),
            reason: e.reason.clone(),
            expires: e.expires.to_string(),
        })
        .collect()
}

pub(super) fn control_name(c: Control) -> &'static str {
    match c {
        Control::Mtls => "mtls",
        Control::Authorization => "authorization",
        Control::Network => "network",
        Control::Workloads => "workloads",
    }
}

/// What allows plaintext in without a finding, if anything.
fn excuse(p: &Posture, ns: &str, kind: CauseKind, mode: &str) -> Option<String> {
    let ctx = &p.ctx;
    if !ctx.protected(ns) {
        return Some(format!(
            "namespace {ns} is not protected by baseline {}",
            ctx.baseline.name
        ));
    }
    let control = match kind {
        CauseKind::NotStrict => Control::Mtls,
        _ => Control::Workloads,
    };
    if let Some(e) = ctx.baseline.exemption(ns, control, ctx.now) {
        return Some(format!(
            "exempt from {} until {} ({})",
            control_name(control),
            e.expires,
            e.reason
        ));
    }
    if control == Control::Workloads && !ctx.baseline.workloads_audit {
        return Some("the baseline does not audit workloads (spec.workloads.audit: false)".into());
    }
    if kind == CauseKind::NotStrict
        && ctx.baseline.mtls.mode == MtlsMode::Permissive
        && mode == "PERMISSIVE"
    {
        return Some("the baseline's own mtls.mode is PERMISSIVE".into());
    }
    None
}

fn port_posture(
    p: &Posture,
    pod: &PodInfo,
    plane: Option<DataPlane>,
    composed: &Composed,
    policies: &[&AuthorizationPolicy],
    port: Port,
    detail: Detail,
) -> PortPosture {
    let mut row = port_verdict(p, pod, plane, composed, policies, port, detail);
    if detail == Detail::Explain {
        verdict_steps(&mut row);
    }
    row
}

fn port_verdict(
    p: &Posture,
    pod: &PodInfo,
    plane: Option<DataPlane>,
    composed: &Composed,
    policies: &[&AuthorizationPolicy],
    port: Port,
    detail: Detail,
) -> PortPosture {
    let ctx = &p.ctx;
    let ns = &*pod.namespace;
    let decision = composed.decide(port);
    let mtls = mtls_info(p, &decision);
    let mut row = PortPosture {
        port,
        name: None,
        captured: false,
        capture: String::new(),
        mtls,
        plaintext: Plaintext::Unknown,
        refused_by: Vec::new(),
        accepted_because: Vec::new(),
        allows_plaintext: Vec::new(),
        dry_run: Vec::new(),
        steps: Vec::new(),
    };
    let explain = detail == Detail::Explain;
    let cause = |kind: CauseKind, reason: String| Cause {
        kind,
        excused: excuse(p, ns, kind, decision.mode),
        reason,
    };
    let enforcer = match plane {
        None => {
            row.capture = "unknown: the data plane is unknown".into();
            return row;
        }
        Some(DataPlane::None) => {
            row.capture = "no proxy: the pod is in no data plane".into();
            row.plaintext = Plaintext::Accepted;
            row.accepted_because.push(cause(
                CauseKind::NoDataPlane,
                "the pod is in no data plane: nothing checks its inbound traffic".into(),
            ));
            if explain {
                row.steps.push("No proxy and no ztunnel sees the pod's traffic: every port takes plaintext, and no PeerAuthentication or AuthorizationPolicy applies.".into());
            }
            return row;
        }
        Some(DataPlane::Sidecar) => {
            match capture::captured(pod, port) {
                Ok(()) => {
                    row.captured = true;
                    row.capture = "captured by the sidecar".into();
                }
                Err(why) => {
                    row.capture = format!("not captured: {why}");
                    row.plaintext = Plaintext::Accepted;
                    row.accepted_because.push(cause(
                        CauseKind::NotCaptured,
                        format!("the sidecar does not capture the port: {why}"),
                    ));
                    if explain {
                        row.steps.push(format!("Capture: {why}. Traffic to port {port} goes straight to the application: plaintext gets in past every PeerAuthentication and AuthorizationPolicy."));
                    }
                    return row;
                }
            }
            Enforcer::Proxy
        }
        Some(DataPlane::Ambient) => {
            let bypass = pod
                .annotations
                .get(dataplane::BYPASS_INBOUND_CAPTURE)
                .and_then(|v| authz::go_bool(v))
                .unwrap_or(false);
            if bypass {
                row.capture = "not captured: ambient.istio.io/bypass-inbound-capture".into();
                row.plaintext = Plaintext::Accepted;
                row.accepted_because.push(cause(CauseKind::InboundBypass, "ambient.istio.io/bypass-inbound-capture: inbound traffic does not pass ztunnel".into()));
                if explain {
                    row.steps.push("Capture: the pod sets ambient.istio.io/bypass-inbound-capture, so inbound connections reach it without ztunnel: plaintext gets in.".into());
                }
                return row;
            }
            row.captured = true;
            row.capture = "captured by ztunnel".into();
            Enforcer::Ztunnel
        }
    };
    if explain {
        row.steps
            .push(format!("Capture: port {port} is {}.", row.capture));
        row.steps.push(mtls_step(p, composed, &decision, port));
    }
    judge(p, &mut row, policies, enforcer, &decision);
    if row.plaintext == Plaintext::Accepted {
        let why = match &decision.policy {
            Some(pa) => format!("mTLS mode {} from {} PeerAuthentication {}/{}, and no AuthorizationPolicy refuses requests without an identity", decision.mode, decision.level.as_str(), ns_of(&pa.metadata), name_of(&pa.metadata)),
            None => "mTLS mode PERMISSIVE (no PeerAuthentication applies: Istio's default), and no AuthorizationPolicy refuses requests without an identity".into(),
        };
        row.accepted_because.push(cause(CauseKind::NotStrict, why));
    }
    row
}

fn mtls_info(p: &Posture, d: &Decision) -> MtlsInfo {
    MtlsInfo {
        mode: d.mode.to_string(),
        level: d.level.as_str().to_string(),
        policy: d.policy.map(|pa| {
            ObjectRef::new(
                &p.ctx,
                "PeerAuthentication",
                Kind::PeerAuthentication,
                &pa.metadata,
            )
        }),
    }
}

fn mtls_step(p: &Posture, composed: &Composed, d: &Decision, port: Port) -> String {
    let considered: Vec<String> = composed
        .all()
        .map(|pa| {
            let r = ObjectRef::new(
                &p.ctx,
                "PeerAuthentication",
                Kind::PeerAuthentication,
                &pa.metadata,
            );
            let mode = pa
                .spec
                .mtls
                .as_ref()
                .and_then(|m| m.mode.as_deref())
                .unwrap_or("UNSET");
            format!("{}/{} ({mode}, {})", r.namespace, r.name, r.owner.as_str())
        })
        .collect();
    let shadowed: Vec<String> = d
        .shadowed
        .iter()
        .map(|pa| format!("{}/{}", ns_of(&pa.metadata), name_of(&pa.metadata)))
        .collect();
    let mut s = format!(
        "mTLS: PeerAuthentications that apply (port > workload > namespace > mesh; the oldest of each scope wins, as Istio's ComposePeerAuthentication): {}.",
        if considered.is_empty() { "none".to_string() } else { considered.join(", ") }
    );
    if !shadowed.is_empty() {
        s.push_str(&format!(
            " Ignored as younger than the winner of their scope: {}.",
            shadowed.join(", ")
        ));
    }
    match d.policy {
        Some(pa) => s.push_str(&format!(
            " Port {port} gets {} from the {} policy {}/{}.",
            d.mode,
            d.level.as_str(),
            ns_of(&pa.metadata),
            name_of(&pa.metadata)
        )),
        None => s.push_str(&format!(" Port {port} gets Istio's default, PERMISSIVE.")),
    }
    if d.level == Level::Mesh && d.mode == "PERMISSIVE" {
        s.push_str(" (A mesh-level UNSET is PERMISSIVE.)");
    }
    s
}

/// Decides the port's plaintext verdict from the mode and the attached policies.
fn judge(
    p: &Posture,
    row: &mut PortPosture,
    policies: &[&AuthorizationPolicy],
    enforcer: Enforcer,
    d: &Decision,
) {
    let ctx = &p.ctx;
    let port = row.port;
    let explain = !row.steps.is_empty();
    let aref = |ap: &AuthorizationPolicy| {
        ObjectRef::new(
            ctx,
            "AuthorizationPolicy",
            Kind::AuthorizationPolicy,
            &ap.metadata,
        )
    };
    if d.mode == "STRICT" {
        if let Some(pa) = d.policy {
            row.refused_by.push(PolicyMatch {
                policy: ObjectRef::new(
                    ctx,
                    "PeerAuthentication",
                    Kind::PeerAuthentication,
                    &pa.metadata,
                ),
                how: "mTLS STRICT: the proxy accepts only mutual TLS".into(),
            });
        }
    }
    let mut allow_policies = 0;
    let mut admitting = false;
    for ap in policies {
        if authz::dry_run(ap) {
            row.dry_run.push(aref(ap));
            continue;
        }
        let action = authz::action(ap);
        match action {
            "DENY" => {
                if let Some((i, _)) = ap
                    .spec
                    .rules
                    .iter()
                    .enumerate()
                    .find(|(_, r)| authz::rule_reach(r, port, "DENY", enforcer) == Reach::All)
                {
                    row.refused_by.push(PolicyMatch {
                        policy: aref(ap),
                        how: format!("DENY rules[{i}] matches every request without an mTLS identity on this port"),
                    });
                }
            }
            "ALLOW" => {
                allow_policies += 1;
                for (i, r) in ap.spec.rules.iter().enumerate() {
                    if authz::rule_reach(r, port, "ALLOW", enforcer) != Reach::None {
                        admitting = true;
                        let why = authz::plaintext_reason(r)
                            .unwrap_or("it matches requests without an mTLS identity");
                        row.allows_plaintext.push(PolicyMatch {
                            policy: aref(ap),
                            how: format!("rules[{i}]: {why}"),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    if allow_policies > 0 && !admitting {
        let names: Vec<String> = policies
            .iter()
            .filter(|ap| !authz::dry_run(ap) && authz::action(ap) == "ALLOW")
            .map(|ap| format!("{}/{}", ns_of(&ap.metadata), name_of(&ap.metadata)))
            .collect();
        for ap in policies
            .iter()
            .filter(|ap| !authz::dry_run(ap) && authz::action(ap) == "ALLOW")
        {
            row.refused_by.push(PolicyMatch {
                policy: aref(ap),
                how: format!("ALLOW policies apply ({}) and none of their rules matches a request without an mTLS identity on this port, so such requests are denied; another ALLOW policy can change that", names.join(", ")),
            });
        }
    }
    row.plaintext = if row.refused_by.is_empty() {
        Plaintext::Accepted
    } else {
        Plaintext::Refused
    };
    if explain {
        let mut names: Vec<String> = policies
            .iter()
            .map(|ap| {
                let r = aref(ap);
                format!(
                    "{} {}/{} ({:?}{})",
                    authz::action(ap),
                    r.namespace,
                    r.name,
                    r.owner,
                    if authz::dry_run(ap) { ", dry-run" } else { "" }
                )
            })
            .collect();
        if names.is_empty() {
            names.push("none".into());
        }
        let by = match enforcer {
            Enforcer::Proxy => "the sidecar (Istio's ShouldAttachPolicy: selector-less policies of the namespace and the root namespace, and those whose selector matches the pod's labels; targetRefs bind to gateways and waypoints instead)",
            Enforcer::Ztunnel => "ztunnel (L4 only: ALLOW rules with HTTP attributes are dropped, DENY rules are enforced without them)",
        };
        row.steps.push(format!(
            "AuthorizationPolicies enforced by {by}: {}.",
            names.join(", ")
        ));
    }
}

fn verdict_steps(row: &mut PortPosture) {
    let port = row.port;
    if !row.dry_run.is_empty() {
        let names: Vec<String> = row
            .dry_run
            .iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect();
        row.steps.push(format!(
            "Dry-run policies (istio.io/dry-run: \"true\") are logged, never enforced: {}.",
            names.join(", ")
        ));
    }
    if !row.allows_plaintext.is_empty() {
        let names: Vec<String> = row
            .allows_plaintext
            .iter()
            .map(|m| format!("{}/{} {}", m.policy.namespace, m.policy.name, m.how))
            .collect();
        row.steps.push(format!(
            "ALLOW rules that requests without an identity can match on port {port}: {}.",
            names.join("; ")
        ));
    }
    match row.plaintext {
        super::Plaintext::Refused => {
            let by: Vec<String> = row
                .refused_by
                .iter()
                .map(|m| format!("{} — {}", m.policy, m.how))
                .collect();
            row.steps.push(format!(
                "Verdict: plaintext on port {port} is REFUSED by {}.",
                by.join("; ")
            ));
        }
        _ => {
            let why: Vec<String> = row
                .accepted_because
                .iter()
                .map(|c| match &c.excused {
                    Some(e) => format!("{} (allowed: {e})", c.reason),
                    None => c.reason.clone(),
                })
                .collect();
            row.steps.push(format!(
                "Verdict: plaintext on port {port} is ACCEPTED: {}.",
                why.join("; ")
            ));
        }
    }
}

/// The findings about the workload, its namespace, and the policies that shape its posture.
fn concerning(
    p: &Posture,
    pod: &PodInfo,
    composed: &Composed,
    policies: &[&AuthorizationPolicy],
) -> Vec<FindingRef> {
    let ns = &*pod.namespace;
    let mut keys: Vec<(String, String, String)> = vec![
        (pod.kind.clone(), ns.to_string(), pod.name.to_string()),
        ("Namespace".into(), String::new(), ns.to_string()),
    ];
    // A gateway's or waypoint's pods: the findings about their Gateway.
    if let Some(Gateway::Waypoint(g) | Gateway::GatewayApi(g)) = gateway_of(pod) {
        keys.push(("Gateway".into(), ns.to_string(), g.to_string()));
    }
    for pa in composed.all() {
        keys.push((
            "PeerAuthentication".into(),
            ns_of(&pa.metadata).into(),
            name_of(&pa.metadata).into(),
        ));
    }
    for ap in policies {
        keys.push((
            "AuthorizationPolicy".into(),
            ns_of(&ap.metadata).into(),
            name_of(&ap.metadata).into(),
        ));
    }
    let labels = pod.selector_labels();
    for np in &p.index.of(ns).network_policies {
        if np.spec.as_ref().is_some_and(|s| {
            s.pod_selector
                .as_ref()
                .is_none_or(|sel| crate::audit::context::selector_matches(sel, &labels))
        }) {
            keys.push((
                "NetworkPolicy".into(),
                ns.into(),
                name_of(&np.metadata).into(),
            ));
        }
    }
    for sc in &p.index.of(ns).sidecars {
        let applies = sc
            .spec
            .workload_selector
            .as_ref()
            .is_none_or(|w| labels.has_all(&w.labels));
        if applies {
            keys.push(("Sidecar".into(), ns.into(), name_of(&sc.metadata).into()));
        }
    }
    keys.sort();
    keys.dedup();
    let mut out: Vec<FindingRef> = keys
        .iter()
        .flat_map(|key| p.findings_of(key).iter())
        .map(|f| FindingRef {
            rule: f.rule.id().to_string(),
            severity: f.severity.as_str().to_string(),
            kind: f.kind.clone(),
            namespace: f.namespace.clone(),
            name: f.name.clone(),
            message: f.message.clone(),
        })
        .collect();
    out.sort_by(|a, b| (&a.rule, &a.kind, &a.name).cmp(&(&b.rule, &b.kind, &b.name)));
    out
}
