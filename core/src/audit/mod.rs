//! Pure audit: observed objects + baseline -> findings. No client, no async.

use std::cmp::Reverse;
use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use crate::api::baseline::{Control, FindingStatus};
use crate::api::model::Baseline;
use crate::compile::{compile, Compiled, Scope};
use crate::inventory::{Inventory, PodInfo};
use crate::object::Kind;
pub use pod_counts::PodCounts;

mod ambient;
mod ambient_mesh;
mod authorization_patterns;
mod authorization_policy;
pub(crate) mod context;
pub(crate) mod destination_rule;
mod gateway;
mod impersonation;
mod ineffective;
mod ingress;
mod namespace;
pub(crate) mod network_policy;
mod peer_authentication;
mod pod;
mod pod_counts;
mod root;
pub(crate) mod sidecar;
#[cfg(test)]
mod tests;
mod tls_origination;
mod waypoint;

/// Every finding for `inventory` under `baseline` at time `now` (exemptions expire), sorted
/// most severe first, then by rule, namespace and name. For one baseline on its own (the
/// `check` command): every selected namespace is its, and its objects are those the compiler
/// generates for the inventory.
/// Whether the audit never reads the operator's own object of `kind` at `name` — it skips our
/// AuthorizationPolicies and namespace NetworkPolicies — so a caller may leave such objects
/// out of the inventory when they are ours (the controller keeps no typed copy of them). The
/// others are read even when ours: DestinationRule hosts are resolved among all rules, root
/// PeerAuthentications and Sidecars are counted (MB103, MB702), istiod counts as restricted by
/// our istiod NetworkPolicy (MB701). `tests/ours.rs` checks the findings stay the same.
pub fn skips_ours(kind: Kind, name: &str) -> bool {
    kind == Kind::AuthorizationPolicy
        || (kind == Kind::NetworkPolicy && name == crate::compile::names::BASELINE_NETWORK_POLICY)
}

pub fn audit(baseline: &Baseline, inventory: &Inventory, now: Timestamp) -> Vec<Finding> {
    let scope = Scope::default();
    let desired = compile(baseline, inventory, &scope, now);
    audit_in_scope(baseline, inventory, &desired, &scope, now)
}

/// [`audit`] of one baseline among several: only the namespaces `scope` leaves it (the older
/// baseline wins a namespace for audit as for compile), and with the desired set it was
/// compiled to, which decides what is the operator's.
pub fn audit_in_scope(
    baseline: &Baseline,
    inventory: &Inventory,
    desired: &Compiled,
    scope: &Scope,
    now: Timestamp,
) -> Vec<Finding> {
    let ctx = context::Ctx::new(baseline, inventory, desired, scope, now);
    let mut out = Vec::new();
    peer_authentication::check(&ctx, &mut out);
    destination_rule::check(&ctx, &mut out);
    tls_origination::check(&ctx, &mut out);
    authorization_policy::check(&ctx, &mut out);
    authorization_patterns::check(&ctx, &mut out);
    ambient::check_policies(&ctx, &mut out);
    network_policy::check(&ctx, &mut out);
    sidecar::check(&ctx, &mut out);
    ineffective::check(&ctx, &mut out);
    waypoint::check(&ctx, &mut out);
    ambient_mesh::check(&ctx, &mut out);
    ingress::check(&ctx, &mut out);
    pod::check(&ctx, &mut out);
    gateway::check(&ctx, &mut out);
    ambient::check_workloads(&ctx, &mut out);
    namespace::check(&ctx, &mut out);
    root::check(&ctx, &mut out);
    impersonation::check(&ctx, &mut out);
    sort(&mut out);
    out
}

/// The findings of one pod on its own (MB304, MB501–MB509): all that a pod event changes while
/// [`PodCounts`] reports nothing shared with other objects' findings. Not sorted.
pub fn audit_pod(
    baseline: &Baseline,
    inventory: &Inventory,
    desired: &Compiled,
    scope: &Scope,
    now: Timestamp,
    pod: &PodInfo,
) -> Vec<Finding> {
    let ctx = context::Ctx::new(baseline, inventory, desired, scope, now);
    let mut out = Vec::new();
    pod::check_one(&ctx, pod, &mut out);
    gateway::check_pod(&ctx, pod, &mut out);
    ambient::check_workload(&ctx, pod, &mut out);
    out
}

/// The order of [`audit`]'s output: most severe first, then by rule, namespace and name.
pub fn sort(out: &mut [Finding]) {
    out.sort_by(|a, b| {
        (
            Reverse(a.severity),
            a.rule,
            &a.namespace,
            &a.name,
            &a.kind,
            &a.message,
        )
            .cmp(&(
                Reverse(b.severity),
                b.rule,
                &b.namespace,
                &b.name,
                &b.kind,
                &b.message,
            ))
    });
}

/// How bad a finding is. Ordered from least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rule ids are a public interface (docs, CI gates, dashboards): never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    MB101,
    MB102,
    MB103,
    MB104,
    MB105,
    MB106,
    MB201,
    MB202,
    MB301,
    MB302,
    MB303,
    MB304,
    MB305,
    MB306,
    MB307,
    MB308,
    MB309,
    MB401,
    MB402,
    MB403,
    MB404,
    MB501,
    MB502,
    MB503,
    MB504,
    MB505,
    MB506,
    MB507,
    MB508,
    MB509,
    MB601,
    MB602,
    MB603,
    MB701,
    MB702,
    MB801,
    MB901,
    MB902,
    MB903,
}

impl Rule {
    pub const ALL: [Rule; 39] = [
        Rule::MB101,
        Rule::MB102,
        Rule::MB103,
        Rule::MB104,
        Rule::MB105,
        Rule::MB106,
        Rule::MB201,
        Rule::MB202,
        Rule::MB301,
        Rule::MB302,
        Rule::MB303,
        Rule::MB304,
        Rule::MB305,
        Rule::MB306,
        Rule::MB307,
        Rule::MB308,
        Rule::MB309,
        Rule::MB401,
        Rule::MB402,
        Rule::MB403,
        Rule::MB404,
        Rule::MB501,
        Rule::MB502,
        Rule::MB503,
        Rule::MB504,
        Rule::MB505,
        Rule::MB506,
        Rule::MB507,
        Rule::MB508,
        Rule::MB509,
        Rule::MB601,
        Rule::MB602,
        Rule::MB603,
        Rule::MB701,
        Rule::MB702,
        Rule::MB801,
        Rule::MB901,
        Rule::MB902,
        Rule::MB903,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Rule::MB101 => "MB101",
            Rule::MB102 => "MB102",
            Rule::MB103 => "MB103",
            Rule::MB104 => "MB104",
            Rule::MB105 => "MB105",
            Rule::MB106 => "MB106",
            Rule::MB201 => "MB201",
            Rule::MB202 => "MB202",
            Rule::MB301 => "MB301",
            Rule::MB302 => "MB302",
            Rule::MB303 => "MB303",
            Rule::MB304 => "MB304",
            Rule::MB305 => "MB305",
            Rule::MB306 => "MB306",
            Rule::MB307 => "MB307",
            Rule::MB308 => "MB308",
            Rule::MB309 => "MB309",
            Rule::MB401 => "MB401",
            Rule::MB402 => "MB402",
            Rule::MB403 => "MB403",
            Rule::MB404 => "MB404",
            Rule::MB501 => "MB501",
            Rule::MB502 => "MB502",
            Rule::MB503 => "MB503",
            Rule::MB504 => "MB504",
            Rule::MB505 => "MB505",
            Rule::MB506 => "MB506",
            Rule::MB507 => "MB507",
            Rule::MB508 => "MB508",
            Rule::MB509 => "MB509",
            Rule::MB601 => "MB601",
            Rule::MB602 => "MB602",
            Rule::MB603 => "MB603",
            Rule::MB701 => "MB701",
            Rule::MB702 => "MB702",
            Rule::MB801 => "MB801",
            Rule::MB901 => "MB901",
            Rule::MB902 => "MB902",
            Rule::MB903 => "MB903",
        }
    }

    /// One line on what the rule detects (README, SARIF rule metadata).
    pub fn title(self) -> &'static str {
        match self {
            Rule::MB101 => "Namespace-wide PeerAuthentication weaker than the baseline",
            Rule::MB102 => "Workload- or port-level PeerAuthentication weaker than the baseline",
            Rule::MB103 => "More than one mesh-wide PeerAuthentication in the root namespace",
            Rule::MB104 => "PeerAuthentication with a selector in the root namespace",
            Rule::MB105 => {
                "The baseline's mesh-wide PeerAuthentication is not in force: an older one wins"
            }
            Rule::MB106 => {
                "PeerAuthentication with port-level settings but no selector (Istio ignores them)"
            }
            Rule::MB201 => "DestinationRule disables or downgrades TLS for an in-mesh host",
            Rule::MB202 => {
                "DestinationRule originates TLS to an external host without verifying the server"
            }
            Rule::MB301 => "ALLOW AuthorizationPolicy rule that plaintext requests can match",
            Rule::MB302 => {
                "AuthorizationPolicy with HTTP attributes enforced by ztunnel (deny-all)"
            }
            Rule::MB303 => "Waypoint ALLOW policy with no L4 policy keeping direct traffic out",
            Rule::MB304 => {
                "Ingress gateway in a protected namespace: the plaintext DENY refuses its clients"
            }
            Rule::MB305 => "Waypoint without known pods: its identity cannot be resolved",
            Rule::MB306 => "ALLOW AuthorizationPolicy rule with negative matches (notPaths, notMethods, notHosts, notPorts)",
            Rule::MB307 => {
                "DENY AuthorizationPolicy on paths while the mesh normalises paths below MERGE_SLASHES"
            }
            Rule::MB308 => "Gateway in a protected namespace accepts any host (* or */*)",
            Rule::MB309 => "Waypoint with no AuthorizationPolicy bound to it",
            Rule::MB401 => "NetworkPolicy allows egress beyond the cluster and the allow-list",
            Rule::MB402 => "NetworkPolicy allows UDP or SCTP other than DNS",
            Rule::MB403 => "Sidecar replaces the mesh's REGISTRY_ONLY default for its workloads",
            Rule::MB404 => "Sidecar in an ambient namespace, or selecting ambient pods, has no effect",
            Rule::MB501 => "Container runs as UID or GID 1337 and bypasses the sidecar",
            Rule::MB502 => "Container adds NET_ADMIN or NET_RAW, or is privileged",
            Rule::MB503 => "Pod uses the host network",
            Rule::MB504 => "Pod shares its process namespace with the sidecar",
            Rule::MB505 => {
                "Running pod in a protected namespace outside its data plane (sidecar or ambient)"
            }
            Rule::MB506 => {
                "Pod label or annotation disables injection or takes traffic out of the sidecar's capture"
            }
            Rule::MB507 => "Pod opted out of ambient in an ambient namespace",
            Rule::MB508 => "Ambient pod bypasses inbound capture",
            Rule::MB509 => "Pod or Service skips its namespace's waypoint",
            Rule::MB601 => {
                "Protected namespace in neither data plane (sidecar injection or ambient)"
            }
            Rule::MB602 => "Service with an IPv6 family in a protected namespace",
            Rule::MB603 => "istio-cni excludes a protected ambient namespace from the mesh",
            Rule::MB701 => "istiod reachable on plaintext or debug ports",
            Rule::MB702 => "More than one selector-less Sidecar in the root namespace",
            Rule::MB801 => "Object claims to be generated by MeshBaseline but is not",
            Rule::MB901 => {
                "The cluster does not serve ValidatingAdmissionPolicy: no admission guard"
            }
            Rule::MB902 => "A generated admission policy or binding is absent or changed",
            Rule::MB903 => {
                "The cluster does not serve ClusterNetworkPolicy: no Admin network-policy tier"
            }
        }
    }

    pub fn severity(self) -> Severity {
        use Severity::*;
        match self {
            Rule::MB501 | Rule::MB701 => Critical,
            Rule::MB101 | Rule::MB103 | Rule::MB201 | Rule::MB301 | Rule::MB401 => High,
            Rule::MB105 | Rule::MB304 | Rule::MB305 | Rule::MB403 => High,
            Rule::MB307 | Rule::MB603 => High,
            Rule::MB106 | Rule::MB202 | Rule::MB306 | Rule::MB308 | Rule::MB309 | Rule::MB404 => {
                Medium
            }
            Rule::MB801 | Rule::MB901 | Rule::MB902 => High,
            Rule::MB903 => Medium,
            Rule::MB402 | Rule::MB502 | Rule::MB503 | Rule::MB505 => High,
            Rule::MB303 | Rule::MB507 | Rule::MB508 => High,
            Rule::MB102 | Rule::MB104 | Rule::MB504 | Rule::MB506 | Rule::MB601 => Medium,
            Rule::MB302 | Rule::MB509 | Rule::MB702 => Medium,
            Rule::MB602 => Low,
        }
    }

    /// The control an exemption must name to silence this rule in a namespace; `None` for
    /// root-namespace rules, which no tenant exemption covers.
    pub fn control(self) -> Option<Control> {
        match self {
            // An exemption from mtls removes the plaintext DENY that MB304 is about.
            Rule::MB101 | Rule::MB102 | Rule::MB201 | Rule::MB304 => Some(Control::Mtls),
            Rule::MB106 | Rule::MB202 => Some(Control::Mtls),
            Rule::MB306 | Rule::MB307 | Rule::MB308 | Rule::MB309 => Some(Control::Authorization),
            Rule::MB301 | Rule::MB302 | Rule::MB303 | Rule::MB305 => Some(Control::Authorization),
            Rule::MB401 | Rule::MB402 | Rule::MB403 | Rule::MB404 => Some(Control::Network),
            Rule::MB501 | Rule::MB502 | Rule::MB503 | Rule::MB504 | Rule::MB505 | Rule::MB506 => {
                Some(Control::Workloads)
            }
            Rule::MB507 | Rule::MB508 | Rule::MB509 => Some(Control::Workloads),
            Rule::MB601 | Rule::MB602 => Some(Control::Workloads),
            // The platform's istio-cni settings are no tenant's exempt business.
            Rule::MB603 => None,
            // An impersonation is never a tenant's exempt business.
            Rule::MB103 | Rule::MB104 | Rule::MB105 | Rule::MB701 | Rule::MB702 => None,
            Rule::MB801 => None,
            // What the cluster can enforce is no namespace's business either.
            Rule::MB901 | Rule::MB902 | Rule::MB903 => None,
        }
    }
}

impl Rule {
    /// The `Degraded` condition reason of a finding that means a generated object is not in
    /// force (or not generated), so that the baseline's status says so and where.
    pub fn degrades(self) -> Option<crate::plan::Reason> {
        use crate::plan::Reason;
        match self {
            Rule::MB105 => Some(Reason::MeshMtlsNotInForce),
            Rule::MB305 => Some(Reason::WaypointIdentityUnknown),
            _ => None,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// One finding about one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub message: String,
    pub fix: String,
}

impl Finding {
    pub fn to_status(&self) -> FindingStatus {
        FindingStatus {
            rule: self.rule.id().to_string(),
            severity: self.severity.as_str().to_string(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            message: self.message.clone(),
        }
    }
}
