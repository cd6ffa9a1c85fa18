//! AuthorizationPolicies as a proxy applies them to one workload: which policies attach (Istio's
//! `WorkloadPolicyMatcher.ShouldAttachPolicy`), which are dry-run (`isDryRun` in its authz
//! builder), and whether a rule matches a request without an mTLS identity on a port. Used by
//! posture and by the audit (MB301), so both judge rules the same way.

use serde_json::Value;

use crate::api::istio::{AuthorizationPolicy, Rule, Source};
use crate::dataplane::L4_WHEN_KEYS;
use crate::inventory::PodLabels;

/// The annotation that turns a policy into a dry run: logged, never enforced.
pub const DRY_RUN: &str = crate::object::DRY_RUN_ANNOTATION;
/// Istio's GatewayClass for waypoints.
const WAYPOINT_CLASS: &str = crate::gateway::WAYPOINT_CLASS;

/// A port of a workload, or every port that no policy and no container names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Port {
    Number(u16),
    Other,
}

/// Who enforces the rules for the traffic in question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcer {
    /// A sidecar (or a gateway's own proxy): every attribute, HTTP ones on HTTP ports.
    Proxy,
    /// ztunnel: L4 only. It drops ALLOW rules with HTTP attributes and enforces DENY rules
    /// without them (`convertAuthorizationPolicy`, `handleRule`).
    Ztunnel,
}

/// Go's `strconv.ParseBool`, as Istio reads the dry-run annotation (a value it cannot parse is
/// not a dry run).
pub fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Whether Istio enforces nothing of the policy (sidecars log it as shadow rules; ztunnel
/// leaves it out unless dry-run support is on, and then only logs it).
pub fn dry_run(ap: &AuthorizationPolicy) -> bool {
    ap.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DRY_RUN))
        .and_then(|v| go_bool(v))
        .unwrap_or(false)
}

pub fn action(ap: &AuthorizationPolicy) -> &str {
    ap.spec.action.as_deref().unwrap_or("ALLOW")
}

/// The workload a policy may attach to: its namespace and labels, and whether it is a
/// waypoint or another Gateway API gateway (`gateway.networking.k8s.io/gateway-name`).
pub struct Target<'a> {
    pub namespace: &'a str,
    pub labels: PodLabels<'a>,
    pub waypoint: bool,
    pub root: &'a str,
}

/// Istio's `ShouldAttachPolicy` for a policy in `policy_ns` (the caller looks in the root
/// namespace and the workload's, as `ListAuthorizationPolicies` does). Gateway API gateways
/// take selector-based policies too (`ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY`, on by
/// default); waypoints only what targets them. Service and ServiceEntry targets bind to the
/// waypoint of the Service, never to the workload itself.
pub fn attaches(ap: &AuthorizationPolicy, policy_ns: &str, t: &Target) -> bool {
    let selected = || {
        ap.spec
            .selector
            .as_ref()
            .is_none_or(|s| t.labels.has_all(&s.match_labels))
    };
    let refs: Vec<_> = if ap.spec.target_refs.is_empty() {
        ap.spec.target_ref.iter().collect()
    } else {
        ap.spec.target_refs.iter().collect()
    };
    let gateway = t.labels.get(crate::gateway::GATEWAY_NAME);
    let Some(gateway) = gateway else {
        return refs.is_empty() && selected();
    };
    if refs.is_empty() {
        return !t.waypoint && selected();
    }
    refs.iter().any(|r| {
        let group_is = |g: &str| r.group == g || (r.group.is_empty() && g.is_empty());
        if policy_ns == t.root
            && t.waypoint
            && r.kind == "GatewayClass"
            && group_is("gateway.networking.k8s.io")
            && r.name == WAYPOINT_CLASS
        {
            return true;
        }
        policy_ns == t.namespace
            && r.namespace
                .as_deref()
                .is_none_or(|n| n.is_empty() || n == t.namespace)
            && r.kind == "Gateway"
            && group_is("gateway.networking.k8s.io")
            && &r.name == gateway
    })
}

/// How a rule relates to requests without an mTLS identity on one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    /// No such request matches.
    None,
    /// Some do (a path, a method, an address decides).
    Some,
    /// Every one does.
    All,
}

impl Reach {
    fn and(self, other: Reach) -> Reach {
        self.min(other)
    }
}

/// `when` keys that need an authenticated peer or request.
const IDENTITY_KEYS: [&str; 3] = [
    "source.principal",
    "source.namespace",
    "request.auth.principal",
];

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn port_in(list: &[&str], port: Port) -> bool {
    match port {
        Port::Number(n) => list.iter().any(|p| p.trim().parse::<u16>() == Ok(n)),
        Port::Other => false,
    }
}

const HTTP_OPERATION_FIELDS: [&str; 6] = [
    "hosts",
    "notHosts",
    "methods",
    "notMethods",
    "paths",
    "notPaths",
];

/// Whether `to` holds HTTP fields (which ztunnel cannot see).
fn http_operation(op: &Value) -> bool {
    HTTP_OPERATION_FIELDS
        .iter()
        .any(|f| !strings(op.get(*f)).is_empty())
}

fn http_source(s: &Source) -> bool {
    !(s.request_principals.is_empty()
        && s.not_request_principals.is_empty()
        && s.remote_ip_blocks.is_empty()
        && s.not_remote_ip_blocks.is_empty())
}

/// Whether ztunnel drops the rule from an ALLOW policy (it has HTTP attributes).
pub fn l7_rule(rule: &Rule) -> bool {
    rule.from
        .iter()
        .filter_map(|f| f.source.as_ref())
        .any(http_source)
        || rule
            .to
            .iter()
            .filter_map(|t| t.get("operation"))
            .any(http_operation)
        || rule
            .when
            .iter()
            .any(|c| !L4_WHEN_KEYS.contains(&c.key.as_str()))
}

/// One `from.source` and requests without an identity. `requestPrincipals` count as an
/// identity (a JWT), as they do for MB301.
fn source_reach(s: &Source, ztunnel_deny: bool) -> Reach {
    if !s.principals.is_empty() || !s.namespaces.is_empty() {
        return Reach::None;
    }
    if !s.request_principals.is_empty() && !ztunnel_deny {
        return Reach::None;
    }
    let everywhere = |blocks: &[String]| {
        blocks.iter().any(|b| b == "0.0.0.0/0") && blocks.iter().any(|b| b == "::/0")
    };
    let mut reach = Reach::All;
    if !s.ip_blocks.is_empty() && !everywhere(&s.ip_blocks) {
        reach = Reach::Some;
    }
    if !s.not_ip_blocks.is_empty() {
        reach = reach.and(Reach::Some);
    }
    // HTTP-only sources: ztunnel ignores them in a DENY rule.
    if !ztunnel_deny
        && (!s.not_request_principals.is_empty()
            || !s.remote_ip_blocks.is_empty()
            || !s.not_remote_ip_blocks.is_empty())
    {
        reach = reach.and(Reach::Some);
    }
    // notPrincipals and notNamespaces: a request without an identity satisfies every one.
    reach
}

fn operation_reach(op: &Value, port: Port, ztunnel_deny: bool) -> Reach {
    let ports = strings(op.get("ports"));
    let not_ports = strings(op.get("notPorts"));
    if !ports.is_empty() && !port_in(&ports, port) {
        return Reach::None;
    }
    if port_in(&not_ports, port) {
        return Reach::None;
    }
    if http_operation(op) && !ztunnel_deny {
        Reach::Some
    } else {
        Reach::All
    }
}

fn when_reach(c: &crate::api::istio::Condition, port: Port, ztunnel_deny: bool) -> Reach {
    let key = c.key.as_str();
    if ztunnel_deny && !L4_WHEN_KEYS.contains(&key) {
        return Reach::All;
    }
    if IDENTITY_KEYS.contains(&key) && !c.values.is_empty() {
        return Reach::None;
    }
    if key == "destination.port" {
        let values: Vec<&str> = c.values.iter().map(String::as_str).collect();
        let not: Vec<&str> = c.not_values.iter().map(String::as_str).collect();
        if (!values.is_empty() && !port_in(&values, port)) || port_in(&not, port) {
            return Reach::None;
        }
        return Reach::All;
    }
    if IDENTITY_KEYS.contains(&key) {
        // Only notValues: an absent identity is none of them.
        return Reach::All;
    }
    Reach::Some
}

/// Which requests without an mTLS identity, on `port`, a rule of a policy with `action`
/// matches as `enforcer` evaluates it.
pub fn rule_reach(rule: &Rule, port: Port, action: &str, enforcer: Enforcer) -> Reach {
    let ztunnel = enforcer == Enforcer::Ztunnel;
    if ztunnel && action == "ALLOW" && l7_rule(rule) {
        return Reach::None;
    }
    let ztunnel_deny = ztunnel && action == "DENY";
    let from = if rule.from.is_empty() {
        Reach::All
    } else {
        rule.from
            .iter()
            .map(|f| {
                f.source
                    .as_ref()
                    .map_or(Reach::All, |s| source_reach(s, ztunnel_deny))
            })
            .max()
            .unwrap_or(Reach::None)
    };
    let to = if rule.to.is_empty() {
        Reach::All
    } else {
        rule.to
            .iter()
            .map(|t| {
                t.get("operation")
                    .map_or(Reach::All, |op| operation_reach(op, port, ztunnel_deny))
            })
            .max()
            .unwrap_or(Reach::None)
    };
    rule.when
        .iter()
        .map(|c| when_reach(c, port, ztunnel_deny))
        .fold(from.and(to), Reach::and)
}

/// Why a rule matches requests without an identity, or `None` when it cannot, whatever the
/// port (MB301).
pub fn plaintext_reason(rule: &Rule) -> Option<&'static str> {
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

fn source_authenticated(s: &Source) -> bool {
    !(s.principals.is_empty() && s.namespaces.is_empty() && s.request_principals.is_empty())
}

/// Every port a policy's rules name (`ports`, `notPorts`, `destination.port`): posture shows
/// each as its own row, so that "every other port" means ports no rule singles out.
pub fn named_ports(ap: &AuthorizationPolicy) -> Vec<u16> {
    let mut out = Vec::new();
    for rule in &ap.spec.rules {
        for op in rule.to.iter().filter_map(|t| t.get("operation")) {
            for field in ["ports", "notPorts"] {
                out.extend(
                    strings(op.get(field))
                        .iter()
                        .filter_map(|p| p.trim().parse::<u16>().ok()),
                );
            }
        }
        for c in rule.when.iter().filter(|c| c.key == "destination.port") {
            out.extend(
                c.values
                    .iter()
                    .chain(&c.not_values)
                    .filter_map(|p| p.trim().parse::<u16>().ok()),
            );
        }
    }
    out
}
