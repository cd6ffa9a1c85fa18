//! Objects Istio ignores, in the spirit of its IST0167 (IneffectivePolicy): the author thinks a
//! protection is in place and none is.
//!
//! - MB106: a PeerAuthentication with `portLevelMtls` and no selector. Istio reads port-level
//!   settings of workload policies only (`ComposePeerAuthentication`; the ambient index's
//!   `convertPeerAuthentication` likewise), and its CRD refuses the object ("portLevelMtls
//!   requires selector"), so such a policy exists only in manifests that will not apply.
//! - MB404: a Sidecar in an ambient namespace, or selecting ambient pods: there is no sidecar
//!   to configure (Istio's `SelectorAnalyzer` reports IST0167 for both).

use super::context::{name_of, ns_of, Ctx};
use super::{Finding, Rule};
use crate::api::istio::Sidecar;
use crate::dataplane::DataPlane;
use crate::object::Kind;

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    port_level_without_selector(ctx, out);
    for sc in &ctx.inventory.sidecars {
        if let Some(f) = ambient_sidecar(ctx, sc) {
            out.push(f);
        }
    }
}

fn port_level_without_selector(ctx: &Ctx, out: &mut Vec<Finding>) {
    for pa in &ctx.inventory.peer_authentications {
        let selector = pa
            .spec
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty());
        if selector
            || pa.spec.port_level_mtls.is_empty()
            || ctx.is_ours(Kind::PeerAuthentication, &pa.metadata)
        {
            continue;
        }
        let (ns, name) = (ns_of(&pa.metadata), name_of(&pa.metadata));
        let reported = if ns == ctx.root() {
            ctx.owns_root()
        } else {
            ctx.applies(ns, Rule::MB106)
        };
        if !reported {
            continue;
        }
        let ports: Vec<String> = pa
            .spec
            .port_level_mtls
            .iter()
            .map(|(p, m)| format!("{p}: {}", m.mode.as_deref().unwrap_or("UNSET")))
            .collect();
        out.push(ctx.finding(
            Rule::MB106,
            "PeerAuthentication",
            Some(ns),
            name,
            format!(
                "PeerAuthentication {ns}/{name} sets portLevelMtls ({}) without a selector: Istio applies port-level settings only from policies that select workloads, in sidecar and ambient mode alike, so these ports get the {} mode, and the API server refuses the object under Istio's schema (\"portLevelMtls requires selector\").",
                ports.join(", "),
                if ns == ctx.root() { "mesh-wide" } else { "namespace's" }
            ),
            "Move the port-level settings into a PeerAuthentication with a selector for the workloads they are meant for.".to_string(),
        ));
    }
}

/// MB404: in the words of Istio's analyzer, "namespace is in ambient mode" or "selected
/// workload is in ambient mode": the policy has no impact.
fn ambient_sidecar(ctx: &Ctx, sc: &Sidecar) -> Option<Finding> {
    let (ns, name) = (ns_of(&sc.metadata), name_of(&sc.metadata));
    if ns == ctx.root() || ctx.is_ours(Kind::Sidecar, &sc.metadata) || !ctx.applies(ns, Rule::MB404)
    {
        return None;
    }
    let why = match sc
        .spec
        .workload_selector
        .as_ref()
        .filter(|w| !w.labels.is_empty())
    {
        None => (ctx.namespace_dataplane(ns) == Some(DataPlane::Ambient))
            .then(|| format!("namespace {ns} is in ambient mode")),
        Some(w) => {
            let ambient: Vec<&str> = ctx
                .inventory
                .pods
                .iter()
                .filter(|p| &*p.namespace == ns && p.selector_labels().has_all(&w.labels))
                .filter(|p| ctx.pod_dataplane(p) == Some(DataPlane::Ambient))
                .map(|p| &*p.name)
                .collect();
            (!ambient.is_empty()).then(|| {
                format!(
                    "the workloads it selects are in ambient mode ({})",
                    ambient.join(", ")
                )
            })
        }
    }?;
    Some(ctx.finding(
        Rule::MB404,
        "Sidecar",
        Some(ns),
        name,
        format!("Sidecar {ns}/{name} has no effect: {why}, and ambient workloads have no sidecar to configure, so its outboundTrafficPolicy and egress hosts restrict nothing."),
        "Delete the Sidecar, and restrict egress in ambient namespaces with NetworkPolicy (the baseline's egress mode) or a waypoint's AuthorizationPolicy.".to_string(),
    ))
}

/// Whether MB404 reports this Sidecar as doing nothing (MB403 then has nothing to say).
pub(super) fn ineffective_sidecar(ctx: &Ctx, sc: &Sidecar) -> bool {
    ambient_sidecar(ctx, sc).is_some()
}
