//! MB306, MB307: AuthorizationPolicy patterns Istio's security best practices warn about.
//!
//! - MB306: ALLOW rules with negative matches (`notPaths`, `notMethods`, `notHosts`,
//!   `notPorts`). An ALLOW that admits "everything but X" admits every variant of X that the
//!   match does not catch (`/admin/` vs `/admin`, `/ADMIN`, a port added later). Istio's advice:
//!   ALLOW with positive matches, DENY with negative ones.
//! - MB307: DENY rules with positive `paths` while the mesh normalises paths less than
//!   `MERGE_SLASHES`: `//admin` or `/admin/` escape a DENY on `/admin`. Istio's listener
//!   builder sets Envoy's `merge_slashes` only for `MERGE_SLASHES` and
//!   `DECODE_AND_MERGE_SLASHES` (`buildHTTPConnectionManager`); its default is BASE.

use serde_json::Value;

use super::context::{name_of, ns_of, Ctx};
use super::{Finding, Rule};
use crate::api::istio::AuthorizationPolicy;
use crate::object::Kind;
use crate::posture::authz::{action, dry_run};

const KIND: &str = "AuthorizationPolicy";
const NEGATIVE_FIELDS: [&str; 4] = ["notPaths", "notMethods", "notHosts", "notPorts"];

fn operations(ap: &AuthorizationPolicy) -> impl Iterator<Item = (usize, &Value)> {
    ap.spec.rules.iter().enumerate().flat_map(|(i, r)| {
        r.to.iter()
            .filter_map(|t| t.get("operation"))
            .map(move |op| (i, op))
    })
}

fn non_empty(op: &Value, field: &str) -> bool {
    op.get(field)
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// Whether the rules of a policy in `ns` are this baseline's to report: a protected namespace
/// not exempt from authorization, or the root namespace when the baseline owns it.
fn reported(ctx: &Ctx, ns: &str, rule: Rule) -> bool {
    if ns == ctx.root() {
        ctx.owns_root()
    } else {
        ctx.applies(ns, rule)
    }
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let normalization = weakest_normalization(ctx);
    // Dry-run policies are enforced in no way, neither their gaps.
    for ap in ctx
        .inventory
        .authorization_policies
        .iter()
        .filter(|ap| !dry_run(ap))
    {
        let (ns, name) = (ns_of(&ap.metadata), name_of(&ap.metadata));
        let ours = ctx.is_ours(Kind::AuthorizationPolicy, &ap.metadata);
        match (action(ap), &normalization) {
            ("ALLOW", _) if !ours && reported(ctx, ns, Rule::MB306) => {
                negative_allow(ctx, ap, ns, name, out);
            }
            ("DENY", Some((how, source))) if reported(ctx, ns, Rule::MB307) => {
                path_deny(ctx, ap, ns, name, how, source, out);
            }
            _ => {}
        }
    }
}

/// MB306.
fn negative_allow(
    ctx: &Ctx,
    ap: &AuthorizationPolicy,
    ns: &str,
    name: &str,
    out: &mut Vec<Finding>,
) {
    let found: Vec<String> = operations(ap)
        .flat_map(|(i, op)| {
            NEGATIVE_FIELDS
                .iter()
                .filter(move |f| non_empty(op, f))
                .map(move |f| format!("rules[{i}] {f}"))
        })
        .collect();
    if found.is_empty() {
        return;
    }
    out.push(ctx.finding(
        Rule::MB306,
        KIND,
        Some(ns),
        name,
        format!(
            "ALLOW AuthorizationPolicy {ns}/{name} matches by exclusion ({}): it admits every request the exclusion does not catch, including variants of the excluded path, method, host or port (a trailing slash, another case, a port added later), so it allows more than intended.",
            found.join(", ")
        ),
        "Rewrite the rule with positive matches (paths, methods, hosts, ports that are allowed), or express the exclusion as a DENY policy with positive matches, which nothing else can override.".to_string(),
    ));
}

/// MB307.
fn path_deny(
    ctx: &Ctx,
    ap: &AuthorizationPolicy,
    ns: &str,
    name: &str,
    normalization: &str,
    source: &str,
    out: &mut Vec<Finding>,
) {
    let rules: Vec<String> = operations(ap)
        .filter(|(_, op)| non_empty(op, "paths"))
        .map(|(i, _)| format!("rules[{i}]"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if rules.is_empty() {
        return;
    }
    let whose = if ctx.is_ours(Kind::AuthorizationPolicy, &ap.metadata) {
        "; it is generated from the baseline's spec.authorization.denyRules"
    } else {
        ""
    };
    out.push(ctx.finding(
        Rule::MB307,
        KIND,
        Some(ns),
        name,
        format!(
            "DENY AuthorizationPolicy {ns}/{name} matches paths ({}) while the mesh's pathNormalization is {normalization} ({source}): Envoy does not merge slashes, so a request for //admin or /admin/ does not match a DENY on /admin and gets through{whose}.",
            rules.join(", ")
        ),
        "Set meshConfig.pathNormalization.normalization to MERGE_SLASHES (or DECODE_AND_MERGE_SLASHES) in the istio ConfigMap, and match path prefixes (/admin/*) as well as the exact path.".to_string(),
    ));
}

/// Istio's normalisation values, weakest first; DEFAULT is BASE.
const ORDER: [&str; 5] = [
    "NONE",
    "BASE",
    "DEFAULT",
    "MERGE_SLASHES",
    "DECODE_AND_MERGE_SLASHES",
];

fn strength(v: &str) -> usize {
    match ORDER.iter().position(|o| *o == v) {
        Some(2) => 1,
        Some(i) => i,
        // A value Istio does not know is refused by its validation; read it as its default.
        None => 1,
    }
}

/// The weakest path normalisation of the mesh's MeshConfigs (revisions may differ) when it is
/// below MERGE_SLASHES, and where it comes from; `None` when every one merges slashes.
fn weakest_normalization(ctx: &Ctx) -> Option<(String, String)> {
    let configs: Vec<_> = ctx
        .inventory
        .mesh_configs
        .iter()
        .filter(|m| m.namespace == ctx.root())
        .collect();
    if configs.is_empty() {
        return Some((
            "BASE".into(),
            format!(
                "Istio's default; no istio ConfigMap of {} is in the input",
                ctx.root()
            ),
        ));
    }
    let weakest = configs
        .iter()
        .min_by_key(|m| strength(m.path_normalization.as_deref().unwrap_or("BASE")))?;
    let value = weakest
        .path_normalization
        .clone()
        .unwrap_or_else(|| "BASE".into());
    (strength(&value) < strength("MERGE_SLASHES")).then(|| {
        let how = if weakest.path_normalization.is_some() {
            "set"
        } else {
            "Istio's default, not set"
        };
        (
            value,
            format!("{how} in ConfigMap {}/{}", weakest.namespace, weakest.name),
        )
    })
}
