//! MB301: ALLOW rules that plaintext (identity-less) requests can match. ALLOW rules add up,
//! so one such rule re-opens whatever another policy restricts.

use super::context::{name_of, ns_of, Ctx};
use super::{Finding, Rule};
use crate::object::Kind;
use crate::posture::authz::{dry_run, plaintext_reason};

const KIND: &str = "AuthorizationPolicy";

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    for ap in &ctx.inventory.authorization_policies {
        // A dry-run ALLOW admits nothing: Envoy only counts what it would have done.
        if ctx.is_ours(Kind::AuthorizationPolicy, &ap.metadata) || dry_run(ap) {
            continue;
        }
        let action = ap.spec.action.as_deref().unwrap_or("ALLOW");
        if action != "ALLOW" {
            continue;
        }
        let (ns, name) = (ns_of(&ap.metadata), name_of(&ap.metadata));
        if !ctx.applies(ns, Rule::MB301) {
            continue;
        }
        let reasons: Vec<String> = ap
            .spec
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| plaintext_reason(r).map(|why| format!("rules[{i}]: {why}")))
            .collect();
        if reasons.is_empty() {
            continue;
        }
        let scope = if ap
            .spec
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty())
        {
            "the workloads it selects"
        } else {
            "every workload"
        };
        out.push(ctx.finding(
            Rule::MB301,
            KIND,
            Some(ns),
            name,
            format!(
                "ALLOW AuthorizationPolicy {ns}/{name} admits requests without an authenticated identity to {scope} in {ns} ({}). ALLOW rules add up, so this re-opens the workloads to plaintext and unauthenticated callers whatever other ALLOW policies restrict.",
                reasons.join("; ")
            ),
            "Add a `from.source` with `principals` (e.g. cluster.local/ns/<ns>/sa/<sa>) or `namespaces` to each listed rule; use notPrincipals only together with a positive source.".to_string(),
        ));
    }
}
