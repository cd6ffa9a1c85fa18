//! MB403: tenant Sidecars that replace the mesh's REGISTRY_ONLY default.
//!
//! Istio gives a proxy one Sidecar: a matching one with a workloadSelector in its namespace,
//! else its namespace's selector-less one, and only without either the root namespace's
//! selector-less Sidecar (`PushContext.getSidecarScope`). A Sidecar without
//! `outboundTrafficPolicy` takes meshConfig's (`ConvertToSidecarScope`), ALLOW_ANY unless the
//! mesh says otherwise. So any tenant Sidecar that does not repeat REGISTRY_ONLY silently
//! lifts it for the workloads it applies to.

use super::context::{name_of, ns_of, Ctx};
use super::{Finding, Rule};
use crate::api::istio::Sidecar;
use crate::object::Kind;

const REGISTRY_ONLY: &str = "REGISTRY_ONLY";

fn mode(sc: &Sidecar) -> Option<&str> {
    sc.spec
        .outbound_traffic_policy
        .as_ref()
        .and_then(|p| p.mode.as_deref())
}

/// Whether the root namespace makes REGISTRY_ONLY the mesh default: the baseline generates it,
/// or a selector-less root Sidecar of the platform's sets it.
fn mesh_registry_only(ctx: &Ctx) -> bool {
    ctx.baseline.network.egress.registry_only
        || ctx.inventory.sidecars.iter().any(|sc| {
            ns_of(&sc.metadata) == ctx.root()
                && sc.spec.workload_selector.is_none()
                && mode(sc) == Some(REGISTRY_ONLY)
        })
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    if ctx.inventory.sidecars.is_empty() || !mesh_registry_only(ctx) {
        return;
    }
    for sc in &ctx.inventory.sidecars {
        let (ns, name) = (ns_of(&sc.metadata), name_of(&sc.metadata));
        if ns == ctx.root()
            || ctx.is_ours(Kind::Sidecar, &sc.metadata)
            || mode(sc) == Some(REGISTRY_ONLY)
            || !ctx.applies(ns, Rule::MB403)
            // In ambient there is no sidecar whose default it could replace (MB404).
            || super::ineffective::ineffective_sidecar(ctx, sc)
        {
            continue;
        }
        let scope = match &sc.spec.workload_selector {
            Some(w) if !w.labels.is_empty() => "the workloads it selects",
            _ => "every workload",
        };
        let now = match mode(sc) {
            Some(m) => format!("sets outboundTrafficPolicy {m}"),
            None => "sets no outboundTrafficPolicy, so meshConfig's applies (ALLOW_ANY unless the mesh sets another)".to_string(),
        };
        out.push(ctx.finding(
            Rule::MB403,
            "Sidecar",
            Some(ns),
            name,
            format!(
                "Sidecar {ns}/{name} replaces the root namespace's REGISTRY_ONLY Sidecar for {scope} in {ns} (Istio applies one Sidecar per proxy, the root one only where a namespace has none) and {now}: their proxies pass traffic to hosts outside the service registry."
            ),
            "Set spec.outboundTrafficPolicy.mode: REGISTRY_ONLY in the Sidecar (and declare external hosts with ServiceEntries), or delete it.".to_string(),
        ));
    }
}
