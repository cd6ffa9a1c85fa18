//! MB308: an Istio Gateway in a protected namespace that serves any host (`hosts: ["*"]` or
//! `*/*`): every VirtualService of any namespace can bind a route to it, so the namespace's
//! gateway exposes whatever a tenant anywhere routes through it.

use super::context::{name_of, ns_of, Ctx};
use super::{Finding, Rule};

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    for gw in &ctx.inventory.gateways {
        let (ns, name) = (ns_of(&gw.metadata), name_of(&gw.metadata));
        if !ctx.applies(ns, Rule::MB308) {
            continue;
        }
        let wild: Vec<String> = gw
            .spec
            .servers
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.hosts
                    .iter()
                    .filter(|h| matches!(h.trim(), "*" | "*/*"))
                    .map(move |h| format!("servers[{i}] host {h:?}"))
            })
            .collect();
        if wild.is_empty() {
            continue;
        }
        out.push(ctx.finding(
            Rule::MB308,
            "Gateway",
            Some(ns),
            name,
            format!(
                "Gateway {ns}/{name} accepts any host ({}): a VirtualService in any namespace can attach routes for any hostname to it, so this gateway exposes whatever any tenant routes through it, and TLS certificates are not tied to the names served.",
                wild.join(", ")
            ),
            "List the hostnames the gateway serves, each with the namespace allowed to route it (hosts: [\"shop/www.example.com\"]).".to_string(),
        ));
    }
}
