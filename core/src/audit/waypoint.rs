//! MB305: `waypointOnly` asks for a namespace's waypoint identities, and none is known.
//!
//! A waypoint's identity is its pods' ServiceAccount (Istio's own implicit waypoint policy
//! reads them the same way, from the pods labelled with the Gateway's name). Without a pod
//! there is nothing to admit; guessing the ServiceAccount from the Gateway's name is wrong for
//! `gateway.istio.io/service-account`, self-deployed and canary waypoints, so the policy is
//! left out and the namespace reported.

use super::context::Ctx;
use super::{Finding, Rule};
use crate::compile::names;
use crate::dataplane::{self, DataPlane};
use crate::object::Kind;

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    if !ctx.baseline.waypoint_only {
        return;
    }
    for (ns, info) in ctx.inventory.namespaces.iter() {
        if dataplane::namespace_dataplane(&info.labels) != DataPlane::Ambient
            || !ctx.applies(ns, Rule::MB305)
            || ctx.generates(Kind::AuthorizationPolicy, ns, names::WAYPOINT_ONLY)
        {
            continue;
        }
        let Some((wns, wname)) = dataplane::namespace_waypoint(ns, &info.labels) else {
            continue;
        };
        out.push(ctx.finding(
            Rule::MB305,
            "Namespace",
            None,
            ns,
            format!(
                "Namespace {ns} sends its traffic through waypoint {wns}/{wname}, but no pod labelled {}={wname} is known in {wns}: the waypoint's identity (its pods' ServiceAccount) cannot be resolved, so {} is not generated in {ns} and clients that call its pods directly skip the waypoint and its policies.",
                crate::gateway::GATEWAY_NAME,
                names::WAYPOINT_ONLY,
            ),
            format!("Deploy the waypoint (a Gateway {wns}/{wname} of class istio-waypoint), or correct the namespace's istio.io/use-waypoint label; the policy is generated once the waypoint's pods exist."),
        ));
    }
}
