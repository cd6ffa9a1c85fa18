//! MB301: ALLOW rules that plaintext (identity-less) requests can match. ALLOW rules add up,
//! so one such rule re-opens whatever another policy restricts.

use super::context::{name_of, ns_of, Ctx};
use super::{Finding, Rule};
use crate::api::istio::{Rule as AuthzRule, Source};
use crate::object::{Kind, DRY_RUN_ANNOTATION};

const KIND: &str = "AuthorizationPolicy";

/// `when` keys that require an authenticated peer or request.
const IDENTITY_KEYS: [&str; 3] = [
    "source.principal",
    "source.namespace",
    "request.auth.principal",
];

fn source_authenticated(s: &Source) -> bool {
    !(s.principals.is_empty() && s.namespaces.is_empty() && s.request_principals.is_empty())
}

/// Why a rule matches requests without an identity, or `None` when it cannot.
fn plaintext_reason(rule: &AuthzRule) -> Option<&'static str> {
    let when_identity = rule
        .when
        .iter()
        .any(|c| IDENTITY_KEYS.contains(&c.key.as_str()) && !c.values.is_empty());
    if when_identity {
        return None;
    }
    if rule.from.is_empty() {
        return Some("it has no `from`, so any source matches");
    }
    // `from` entries are ORed: one without a positive identity is enough.
    rule.from.iter().find_map(|f| match &f.source {
        None => Some("a `from` entry has no source"),
        Some(s) if source_authenticated(s) => None,
        Some(s) if !s.not_principals.is_empty() || !s.not_namespaces.is_empty() => Some(
            "its source only excludes identities (notPrincipals/notNamespaces), which requests without any identity also satisfy",
        ),
        Some(_) => Some("its source names no principals, namespaces or requestPrincipals"),
    })
}

/// Whether Istio evaluates the policy without enforcing it: `istio.io/dry-run` read as Go's
/// `strconv.ParseBool` reads it (Istio's `isDryRun`; anything else enforces).
pub(crate) fn is_dry_run(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(DRY_RUN_ANNOTATION))
        .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    for ap in &ctx.inventory.authorization_policies {
        // A dry-run ALLOW admits nothing: Envoy only counts what it would have done.
        if ctx.is_ours(Kind::AuthorizationPolicy, &ap.metadata) || is_dry_run(&ap.metadata) {
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
