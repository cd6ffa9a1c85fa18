//! Ambient at mesh level.
//!
//! - MB603: istio-cni's `excludeNamespaces` names a protected ambient namespace. istio-cni then
//!   enrols none of its pods (`InformerHandlers.isNamespaceExcluded`), whatever the namespace's
//!   `istio.io/dataplane-mode` label says: the namespace looks ambient and carries plaintext.
//! - MB309: a waypoint no AuthorizationPolicy is bound to. A waypoint takes only policies that
//!   target it (its Gateway, a Service it serves, or the `istio-waypoint` GatewayClass from the
//!   root namespace: Istio's `ShouldAttachPolicy` for waypoints); without one it lets everything
//!   that reaches it through at L7.

use std::collections::BTreeSet;

use super::context::{ns_of, Ctx};
use super::{Finding, Rule};
use crate::compile::names;
use crate::dataplane::{self, DataPlane};
use crate::gateway::{gateway_of, Gateway, WAYPOINT_CLASS};
use crate::object::Kind;
use crate::posture::authz::dry_run;

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    cni_exclusions(ctx, out);
    unbound_waypoints(ctx, out);
}

fn cni_exclusions(ctx: &Ctx, out: &mut Vec<Finding>) {
    for ex in &ctx.inventory.cni_exclusions {
        for ns in &ex.namespaces {
            if ctx.namespace_dataplane(ns) != Some(DataPlane::Ambient)
                || !ctx.applies(ns, Rule::MB603)
            {
                continue;
            }
            out.push(ctx.finding(
                Rule::MB603,
                "Namespace",
                None,
                ns,
                format!("Namespace {ns} is labelled istio.io/dataplane-mode=ambient, but istio-cni excludes it ({}: excludeNamespaces): istio-cni enrols none of its pods, so they are in no data plane, send and accept plaintext, and no AuthorizationPolicy applies to them.", ex.source),
                format!("Remove {ns} from istio-cni's excludeNamespaces (Helm value excludeNamespaces of the istio-cni chart), or stop labelling it ambient and enable sidecar injection."),
            ));
        }
    }
}

/// The waypoints of the input: from their pods, and from the labels of namespaces and Services
/// that use one.
fn waypoints(ctx: &Ctx) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for pod in &ctx.inventory.pods {
        if let Some(Gateway::Waypoint(name)) = gateway_of(pod) {
            out.insert((pod.namespace.to_string(), name.to_string()));
        }
    }
    for (ns, info) in ctx.inventory.namespaces.iter() {
        if let Some((wns, wname)) = dataplane::namespace_waypoint(ns, &info.labels) {
            out.insert((wns.to_string(), wname.to_string()));
        }
    }
    for svc in &ctx.inventory.services {
        if let Some(w) = svc
            .use_waypoint
            .as_deref()
            .filter(|w| !w.is_empty() && *w != "none")
        {
            out.insert((svc.namespace.clone(), w.to_string()));
        }
    }
    out
}

/// Whether some policy binds to waypoint `name` of `ns`.
fn bound(ctx: &Ctx, ns: &str, name: &str) -> bool {
    if ctx.generates(
        Kind::AuthorizationPolicy,
        ctx.root(),
        names::WAYPOINT_DEFAULT_DENY,
    ) {
        return true;
    }
    // Namespaces and Services that send their traffic through this waypoint.
    let users: BTreeSet<&str> = ctx
        .inventory
        .namespaces
        .iter()
        .filter(|(n, i)| dataplane::namespace_waypoint(n, &i.labels) == Some((ns, name)))
        .map(|(n, _)| n.as_str())
        .collect();
    ctx.inventory.authorization_policies.iter().any(|ap| {
        let pns = ns_of(&ap.metadata);
        !dry_run(ap)
            && ap
                .spec
                .target_ref
                .iter()
                .chain(&ap.spec.target_refs)
                .any(|r| match r.kind.as_str() {
                    "Gateway" => pns == ns && r.name == name,
                    "GatewayClass" => pns == ctx.root() && r.name == WAYPOINT_CLASS,
                    "Service" | "ServiceEntry" => {
                        users.contains(pns)
                            || ctx.inventory.services.iter().any(|s| {
                                s.namespace == pns
                                    && s.name == r.name
                                    && s.use_waypoint.as_deref() == Some(name)
                            })
                    }
                    _ => false,
                })
    })
}

fn unbound_waypoints(ctx: &Ctx, out: &mut Vec<Finding>) {
    for (ns, name) in waypoints(ctx) {
        if !ctx.applies(&ns, Rule::MB309) || bound(ctx, &ns, &name) {
            continue;
        }
        out.push(ctx.finding(
            Rule::MB309,
            "Gateway",
            Some(&ns),
            &name,
            format!("Waypoint {ns}/{name} has no AuthorizationPolicy bound to it (targetRefs naming the Gateway, a Service it serves, or the istio-waypoint GatewayClass): a waypoint ignores selector-less and root policies, so every request that reaches it is allowed at L7."),
            format!("Bind an ALLOW AuthorizationPolicy to it (targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: {name}}}]) that admits the callers it serves, or set spec.authorization.waypointDefaultDeny in the baseline so that every waypoint refuses what no policy allows."),
        ));
    }
}
