//! MB601, MB602: namespaces not in the mesh, Services with IPv6 families.

use std::collections::BTreeMap;

use super::context::Ctx;
use super::{Finding, Rule};

pub(crate) fn injection_enabled(labels: &BTreeMap<String, String>) -> bool {
    labels
        .get("istio-injection")
        .is_some_and(|v| v == "enabled")
        || labels.contains_key("istio.io/rev")
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    for (name, ns) in &ctx.inventory.namespaces {
        if !ctx.applies(name, Rule::MB601) || injection_enabled(&ns.labels) {
            continue;
        }
        let why = match ns.labels.get("istio-injection") {
            Some(v) => format!("its label istio-injection is {v:?}"),
            None => "it has neither an istio-injection=enabled nor an istio.io/rev label".into(),
        };
        out.push(ctx.finding(
            Rule::MB601,
            "Namespace",
            None,
            name,
            format!("Protected namespace {name} does not get sidecars injected ({why}): its pods start outside the mesh, with no mTLS and no AuthorizationPolicy."),
            "Label the namespace istio-injection=enabled (or istio.io/rev=<revision>) and restart its workloads.".to_string(),
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
