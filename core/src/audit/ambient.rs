//! Ambient mode: MB302, MB303 (AuthorizationPolicies ztunnel and waypoints enforce) and
//! MB507–MB509 (pods and Services that leave ztunnel or their waypoint).

use super::context::{name_of, ns_of, Ctx};
use super::{Finding, Rule};
use crate::api::istio::{AuthorizationPolicy, Rule as AuthzRule};
use crate::dataplane::{self, DataPlane};
use crate::inventory::PodInfo;
use crate::object::Kind;

const AP: &str = "AuthorizationPolicy";
/// Label of the pods Istio deploys for waypoints and gateways.
pub(super) const GATEWAY_MANAGED: &str = "gateway.istio.io/managed";

const L7_OPERATION_FIELDS: [&str; 6] = [
    "hosts",
    "notHosts",
    "methods",
    "notMethods",
    "paths",
    "notPaths",
];

/// The HTTP attributes of one rule, as Istio names them in its ztunnel status warning.
fn l7_attributes(rule: &AuthzRule) -> Vec<String> {
    let mut out = Vec::new();
    for f in &rule.from {
        let Some(s) = &f.source else { continue };
        for (name, v) in [
            ("requestPrincipals", &s.request_principals),
            ("notRequestPrincipals", &s.not_request_principals),
            ("remoteIpBlocks", &s.remote_ip_blocks),
            ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
        ] {
            if !v.is_empty() {
                out.push(name.to_string());
            }
        }
    }
    for t in &rule.to {
        let Some(op) = t.get("operation") else {
            continue;
        };
        for field in L7_OPERATION_FIELDS {
            if op
                .get(field)
                .and_then(|v| v.as_array())
                .is_some_and(|a| !a.is_empty())
            {
                out.push(field.to_string());
            }
        }
    }
    for c in &rule.when {
        if !dataplane::L4_WHEN_KEYS.contains(&c.key.as_str()) {
            out.push(format!("when {}", c.key));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn action(ap: &AuthorizationPolicy) -> &str {
    ap.spec.action.as_deref().unwrap_or("ALLOW")
}

/// Whether a protected namespace's pods are ambient by the namespace's labels.
fn ambient_namespace(ctx: &Ctx, ns: &str) -> bool {
    ctx.namespace_dataplane(ns) == Some(DataPlane::Ambient)
}

pub(super) fn check_policies(ctx: &Ctx, out: &mut Vec<Finding>) {
    if ctx.inventory.authorization_policies.is_empty() {
        return;
    }
    // Ambient namespaces can hold sidecar pods (injected by pod label). Pods are kept without
    // their other labels, so where a selector might pick only those, MB302 stays silent.
    // Built when first needed (a tenant policy in an ambient namespace), one entry per
    // namespace: collecting 100,000 pods' namespaces first was a transient 3 MiB per audit.
    let mut mixed: Option<std::collections::BTreeSet<&str>> = None;
    let mixed_namespaces = || {
        let mut set = std::collections::BTreeSet::new();
        for p in &ctx.inventory.pods {
            // Waypoints and gateways run istio-proxy too, but are not the tenant's workloads.
            if !p.labels.contains_key(GATEWAY_MANAGED)
                && ctx.pod_dataplane(p) == Some(DataPlane::Sidecar)
            {
                set.insert(&*p.namespace);
            }
        }
        set
    };
    for ap in &ctx.inventory.authorization_policies {
        if ctx.is_ours(Kind::AuthorizationPolicy, &ap.metadata) {
            continue;
        }
        let (ns, name) = (ns_of(&ap.metadata), name_of(&ap.metadata));
        if !ambient_namespace(ctx, ns) {
            continue;
        }
        // Where a selector may pick only sidecar pods, L7 is theirs to enforce.
        let maybe_sidecars = mixed.get_or_insert_with(mixed_namespaces).contains(ns)
            && ap
                .spec
                .selector
                .as_ref()
                .is_some_and(|s| !s.match_labels.is_empty());
        let on_ztunnel = !ap.spec.targets() && !maybe_sidecars;
        if on_ztunnel && ctx.applies(ns, Rule::MB302) {
            l7_on_ztunnel(ctx, ap, ns, name, out);
        }
        if ap.spec.targets() && action(ap) == "ALLOW" && ctx.applies(ns, Rule::MB303) {
            waypoint_without_l4(ctx, ap, ns, name, out);
        }
    }
}

/// MB302: ztunnel cannot see HTTP. Istio drops ALLOW rules with HTTP attributes and enforces
/// DENY rules without them: both deny more than written, usually everything.
fn l7_on_ztunnel(
    ctx: &Ctx,
    ap: &AuthorizationPolicy,
    ns: &str,
    name: &str,
    out: &mut Vec<Finding>,
) {
    let found: Vec<String> = ap
        .spec
        .rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let attrs = l7_attributes(r);
            (!attrs.is_empty()).then(|| format!("rules[{i}]: {}", attrs.join(", ")))
        })
        .collect();
    if found.is_empty() {
        return;
    }
    let effect = if action(ap) == "DENY" {
        "enforces the DENY rules without their HTTP conditions, so they deny every connection their L4 part matches"
    } else {
        "omits ALLOW rules with HTTP conditions, so the connections they were meant to admit are denied (with no other rule, everything is)"
    };
    out.push(ctx.finding(
        Rule::MB302,
        AP,
        Some(ns),
        name,
        format!(
            "AuthorizationPolicy {ns}/{name} uses HTTP attributes ({}) but has no targetRefs, so ztunnel enforces it for the ambient workloads of {ns}; ztunnel cannot see HTTP and {effect}.",
            found.join("; ")
        ),
        "Bind the policy to the waypoint with targetRefs (kind Gateway, or the Service that uses the waypoint), or keep only L4 fields (principals, namespaces, ipBlocks, ports).".to_string(),
    ));
}

/// MB303: a waypoint's ALLOW policy guards only traffic that goes through the waypoint. A
/// client that sends to the pod IP reaches ztunnel directly, and ztunnel allows it unless an
/// L4 policy of its own admits only the waypoint.
fn waypoint_without_l4(
    ctx: &Ctx,
    ap: &AuthorizationPolicy,
    ns: &str,
    name: &str,
    out: &mut Vec<Finding>,
) {
    let waypoint = dataplane::namespace_waypoint(ns, ctx.labels(ns)).map(|(_, n)| n);
    let refs = ap.spec.target_ref.iter().chain(&ap.spec.target_refs);
    let on_waypoint = refs.clone().any(|r| match r.kind.as_str() {
        "Service" | "ServiceEntry" => true,
        "Gateway" => Some(r.name.as_str()) == waypoint,
        _ => false,
    });
    if !on_waypoint {
        return;
    }
    // Any ztunnel-bound ALLOW policy in the namespace makes ztunnel deny what it does not
    // admit; the operator's own waypoint-only DENY counts when the baseline generates it (it
    // is not, when the waypoint's identity is unknown: MB305).
    let l4_allow = ctx
        .inventory
        .authorization_policies
        .iter()
        .map(|o| &**o)
        .any(|other| {
            ns_of(&other.metadata) == ns && !other.spec.targets() && action(other) == "ALLOW"
        });
    let generated = ctx.generates(
        Kind::AuthorizationPolicy,
        ns,
        crate::compile::names::WAYPOINT_ONLY,
    );
    if l4_allow || generated {
        return;
    }
    let targets: Vec<String> = refs.map(|r| format!("{} {}", r.kind, r.name)).collect();
    out.push(ctx.finding(
        Rule::MB303,
        AP,
        Some(ns),
        name,
        format!(
            "ALLOW AuthorizationPolicy {ns}/{name} is enforced by the waypoint ({}), but no L4 policy in {ns} keeps traffic from going straight to the pods: a client that connects to a pod IP skips the waypoint, and ztunnel lets it through without these rules.",
            targets.join(", ")
        ),
        format!("Set spec.authorization.waypointOnly in the baseline (a DENY for every peer but the waypoint's identities), or add a DENY AuthorizationPolicy without targetRefs in {ns} with notPrincipals listing the waypoint's principals (<trust-domain>/ns/<waypoint-ns>/sa/<its pods' ServiceAccount>); an ALLOW would do only until another ALLOW re-opens the pods."),
    ));
}

fn bool_annotation(pod: &PodInfo, key: &str) -> bool {
    // Istio parses it with Go's strconv.ParseBool.
    pod.annotations
        .get(key)
        .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
}

pub(super) fn check_workloads(ctx: &Ctx, out: &mut Vec<Finding>) {
    for pod in &ctx.inventory.pods {
        check_workload(ctx, pod, out);
    }
    check_services(ctx, out);
}

/// MB507–MB509 of one pod or template on its own.
pub(super) fn check_workload(ctx: &Ctx, pod: &PodInfo, out: &mut Vec<Finding>) {
    let ns = &*pod.namespace;
    // Waypoints and gateways opt themselves out of ztunnel by design.
    if !ctx.known(ns) || !ctx.applies(ns, Rule::MB507) || pod.labels.contains_key(GATEWAY_MANAGED) {
        return;
    }
    let labels = ctx.labels(ns);
    let who = format!("{} {ns}/{}", pod.kind, pod.name);
    let plane = ctx.pod_dataplane(pod);
    // A template the injector will give a sidecar is not ztunnel's either way.
    let sidecar = dataplane::has_sidecar(pod) || plane == Some(DataPlane::Sidecar);
    if dataplane::namespace_ambient(labels) && !sidecar {
        let mode = pod
            .labels
            .get(dataplane::DATAPLANE_MODE)
            .map(String::as_str);
        let legacy = pod
            .annotations
            .get(dataplane::REDIRECTION)
            .is_some_and(|v| v == "disabled");
        if mode == Some("none") || legacy {
            let how = if mode == Some("none") {
                "label istio.io/dataplane-mode=none"
            } else {
                "annotation ambient.istio.io/redirection=disabled"
            };
            out.push(ctx.finding(
                Rule::MB507,
                &pod.kind,
                Some(ns),
                &pod.name,
                format!("{who} opts out of ambient with the {how} although namespace {ns} is ambient: ztunnel does not capture it, so its traffic is plaintext and no AuthorizationPolicy applies to it."),
                "Remove the opt-out and restart the workload, or request an exemption for the namespace.".to_string(),
            ));
        }
    }
    if plane == Some(DataPlane::Ambient) && bool_annotation(pod, dataplane::BYPASS_INBOUND_CAPTURE)
    {
        out.push(ctx.finding(
            Rule::MB508,
            &pod.kind,
            Some(ns),
            &pod.name,
            format!("{who} sets ambient.istio.io/bypass-inbound-capture: inbound connections reach it without ztunnel, in plaintext, and ztunnel enforces neither mTLS nor AuthorizationPolicy on them."),
            "Remove the annotation (it is meant for workloads that only make outbound calls) and restart the workload.".to_string(),
        ));
    }
    if plane == Some(DataPlane::Ambient)
        && pod
            .labels
            .get(dataplane::USE_WAYPOINT)
            .is_some_and(|v| v == "none")
    {
        if let Some((_, waypoint)) = dataplane::namespace_waypoint(ns, labels) {
            out.push(use_waypoint_none(
                ctx, &pod.kind, ns, &pod.name, &who, waypoint,
            ));
        }
    }
}

fn check_services(ctx: &Ctx, out: &mut Vec<Finding>) {
    for svc in &ctx.inventory.services {
        let ns = svc.namespace.as_str();
        if svc.use_waypoint.as_deref() != Some("none")
            || !ambient_namespace(ctx, ns)
            || !ctx.applies(ns, Rule::MB509)
        {
            continue;
        }
        if let Some((_, waypoint)) = dataplane::namespace_waypoint(ns, ctx.labels(ns)) {
            let who = format!("Service {ns}/{}", svc.name);
            out.push(use_waypoint_none(
                ctx, "Service", ns, &svc.name, &who, waypoint,
            ));
        }
    }
}

/// MB509: `istio.io/use-waypoint: none` under a namespace that uses a waypoint.
fn use_waypoint_none(
    ctx: &Ctx,
    kind: &str,
    ns: &str,
    name: &str,
    who: &str,
    waypoint: &str,
) -> Finding {
    ctx.finding(
        Rule::MB509,
        kind,
        Some(ns),
        name,
        format!("{who} is labelled istio.io/use-waypoint=none: its traffic skips namespace {ns}'s waypoint {waypoint:?}, so the waypoint's L7 AuthorizationPolicies and routing do not apply to it."),
        "Remove the label, or give the workload L4 AuthorizationPolicies that do not rely on the waypoint.".to_string(),
    )
}
