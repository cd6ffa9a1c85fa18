//! One port of one workload: capture, the mTLS mode, and the verdict on plaintext.

use crate::api::baseline::{Control, MtlsMode};
use crate::api::istio::AuthorizationPolicy;
use crate::audit::context::{name_of, ns_of};
use crate::dataplane::{self, DataPlane};
use crate::inventory::PodInfo;
use crate::object::Kind;

use super::authz::{self, Enforcer, Port, Reach};
use super::mtls::{Composed, Decision, Level};
use super::workload::control_name;
use super::{
    capture, Cause, CauseKind, Detail, MtlsInfo, ObjectRef, Plaintext, PolicyMatch, PortPosture,
    Posture,
};

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

pub(super) fn port_posture(
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

/// An AuthorizationPolicy as posture names it.
fn policy_ref(p: &Posture, ap: &AuthorizationPolicy) -> ObjectRef {
    ObjectRef::new(
        &p.ctx,
        "AuthorizationPolicy",
        Kind::AuthorizationPolicy,
        &ap.metadata,
    )
}

/// Decides the port's plaintext verdict from the mode and the attached policies.
fn judge(
    p: &Posture,
    row: &mut PortPosture,
    policies: &[&AuthorizationPolicy],
    enforcer: Enforcer,
    d: &Decision,
) {
    if let Some(pa) = d.policy.filter(|_| d.mode == "STRICT") {
        row.refused_by.push(PolicyMatch {
            policy: ObjectRef::new(
                &p.ctx,
                "PeerAuthentication",
                Kind::PeerAuthentication,
                &pa.metadata,
            ),
            how: "mTLS STRICT: the proxy accepts only mutual TLS".into(),
        });
    }
    let enforced: Vec<&AuthorizationPolicy> = policies
        .iter()
        .copied()
        .filter(|ap| !authz::dry_run(ap))
        .collect();
    row.dry_run = policies
        .iter()
        .filter(|ap| authz::dry_run(ap))
        .map(|ap| policy_ref(p, ap))
        .collect();
    for ap in enforced.iter().filter(|ap| authz::action(ap) == "DENY") {
        deny(p, row, ap, enforcer);
    }
    allow(p, row, &enforced, enforcer);
    row.plaintext = if row.refused_by.is_empty() {
        Plaintext::Accepted
    } else {
        Plaintext::Refused
    };
    if !row.steps.is_empty() {
        policies_step(p, row, policies, enforcer);
    }
}

/// A DENY policy refuses plaintext on the port when one of its rules matches every request
/// without an identity there.
fn deny(p: &Posture, row: &mut PortPosture, ap: &AuthorizationPolicy, enforcer: Enforcer) {
    let all = |r: &crate::api::istio::Rule| {
        authz::rule_reach(r, row.port, "DENY", enforcer) == Reach::All
    };
    if let Some(i) = ap.spec.rules.iter().position(all) {
        row.refused_by.push(PolicyMatch {
            policy: policy_ref(p, ap),
            how: format!(
                "DENY rules[{i}] matches every request without an mTLS identity on this port"
            ),
        });
    }
}

/// ALLOW policies: the rules plaintext can match on the port; when some apply and none can,
/// they refuse it.
fn allow(
    p: &Posture,
    row: &mut PortPosture,
    enforced: &[&AuthorizationPolicy],
    enforcer: Enforcer,
) {
    let allows: Vec<&AuthorizationPolicy> = enforced
        .iter()
        .copied()
        .filter(|ap| authz::action(ap) == "ALLOW")
        .collect();
    for ap in &allows {
        for (i, r) in ap.spec.rules.iter().enumerate() {
            if authz::rule_reach(r, row.port, "ALLOW", enforcer) != Reach::None {
                let why = authz::plaintext_reason(r)
                    .unwrap_or("it matches requests without an mTLS identity");
                row.allows_plaintext.push(PolicyMatch {
                    policy: policy_ref(p, ap),
                    how: format!("rules[{i}]: {why}"),
                });
            }
        }
    }
    if allows.is_empty() || !row.allows_plaintext.is_empty() {
        return;
    }
    let names: Vec<String> = allows
        .iter()
        .map(|ap| format!("{}/{}", ns_of(&ap.metadata), name_of(&ap.metadata)))
        .collect();
    for ap in &allows {
        row.refused_by.push(PolicyMatch {
            policy: policy_ref(p, ap),
            how: format!("ALLOW policies apply ({}) and none of their rules matches a request without an mTLS identity on this port, so such requests are denied; another ALLOW policy can change that", names.join(", ")),
        });
    }
}

fn policies_step(
    p: &Posture,
    row: &mut PortPosture,
    policies: &[&AuthorizationPolicy],
    enforcer: Enforcer,
) {
    let mut names: Vec<String> = policies
        .iter()
        .map(|ap| {
            let r = policy_ref(p, ap);
            let dry = if authz::dry_run(ap) { ", dry-run" } else { "" };
            format!(
                "{} {}/{} ({}{dry})",
                authz::action(ap),
                r.namespace,
                r.name,
                r.owner.as_str()
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
