//! MB601, MB602: namespaces in neither data plane, Services with IPv6 families.

use super::context::Ctx;
use super::{Finding, Rule};
use crate::dataplane::{self, DataPlane};

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    for (name, ns) in &ctx.inventory.namespaces {
        let labels = &ns.labels;
        if !ctx.applies(name, Rule::MB601)
            || dataplane::namespace_dataplane(labels) != DataPlane::None
        {
            continue;
        }
        let mut why = Vec::new();
        match labels.get(dataplane::INJECTION_LABEL) {
            Some(v) => why.push(format!(
                "its label istio-injection is {v:?}, which turns sidecar injection off"
            )),
            None => why.push(
                "it has neither istio-injection=enabled nor istio.io/rev for sidecars".to_string(),
            ),
        }
        match labels.get(dataplane::DATAPLANE_MODE) {
            Some(v) => why.push(format!(
                "its label istio.io/dataplane-mode is {v:?}, not ambient"
            )),
            None => why.push("no istio.io/dataplane-mode=ambient for ztunnel".to_string()),
        }
        out.push(ctx.finding(
            Rule::MB601,
            "Namespace",
            None,
            name,
            format!("Protected namespace {name} is in neither data plane ({}): its pods start outside the mesh, with no mTLS and no AuthorizationPolicy.", why.join("; ")),
            "Label the namespace istio-injection=enabled (or istio.io/rev=<revision>) for sidecars, or istio.io/dataplane-mode=ambient for ztunnel, and restart its workloads.".to_string(),
        ));
    }
    for svc in &ctx.inventory.services {
        let ns = svc.namespace.as_str();
        if !ctx.applies(ns, Rule::MB602) {
            continue;
        }
        let v6 = svc.ip_families.iter().any(|f| f == "IPv6");
        let dual = matches!(
            svc.ip_family_policy.as_deref(),
            Some("PreferDualStack" | "RequireDualStack")
        );
        if !(v6 || dual) {
            continue;
        }
        let what = if v6 {
            format!("ipFamilies {}", svc.ip_families.join(","))
        } else {
            format!(
                "ipFamilyPolicy {}",
                svc.ip_family_policy.as_deref().unwrap_or_default()
            )
        };
        out.push(ctx.finding(
            Rule::MB602,
            "Service",
            Some(ns),
            &svc.name,
            format!("Service {ns}/{} has an IPv6 family ({what}): older proxies do not redirect inbound IPv6 in their default configuration, so IPv6 traffic may reach the pods without mTLS. Review that the mesh's IPv6 interception is enabled.", svc.name),
            "Use ipFamilyPolicy SingleStack with ipFamilies [IPv4] unless IPv6 is needed, and confirm the proxies run with dual-stack interception (ISTIO_DUAL_STACK).".to_string(),
        ));
    }
}
