//! The `MeshBaseline` custom resource as the API server stores it.
//!
//! Everything the API server can check is in the schema (enums, patterns, ranges) or in CEL
//! rules; the rest is checked once by [`crate::api::model::Baseline::try_from`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube_derive::{CustomResource, KubeSchema};

pub use super::enforcement::{AdminTier, AdmissionSpec, EnforcementStatus, TenantObjects};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "meshbaseline.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "meshbaseline.dev/v1alpha1";

/// A mesh-wide security baseline for an Istio service mesh.
// Every printer column repeats `type_`; clippy mistakes that for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
// Repeated `printcolumn(type_ = ...)` keys are how kube's derive takes columns.
#[allow(clippy::duplicated_attributes)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "meshbaseline.dev",
    version = "v1alpha1",
    kind = "MeshBaseline",
    plural = "meshbaselines",
    shortname = "mb",
    doc = "A mesh-wide security baseline for an Istio service mesh",
    status = "MeshBaselineStatus",
    derive = "PartialEq",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Protected",
        type_ = "integer",
        json_path = ".status.namespaces.protected"
    ),
    printcolumn(
        name = "Findings",
        type_ = "integer",
        json_path = ".status.findingsTotal"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    // `-o wide` only: what a dashboard shows.
    printcolumn(
        name = "Degraded",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Degraded\")].status",
        priority = 1
    ),
    printcolumn(
        name = "Exempt",
        type_ = "integer",
        json_path = ".status.namespaces.exempt",
        priority = 1
    ),
    printcolumn(
        name = "Objects",
        type_ = "integer",
        json_path = ".status.managedObjects",
        priority = 1
    ),
    printcolumn(
        name = "Drift-Repairs",
        type_ = "integer",
        json_path = ".status.driftRepairs",
        priority = 1
    ),
    printcolumn(
        name = "Guard",
        type_ = "string",
        json_path = ".status.enforcement.admissionGuard",
        priority = 1
    ),
    printcolumn(
        name = "Tenant-Objects",
        type_ = "string",
        json_path = ".status.enforcement.tenantObjects",
        priority = 1
    ),
    printcolumn(
        name = "Admin-Tier",
        type_ = "string",
        json_path = ".status.enforcement.adminTier",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MeshBaselineSpec {
    /// `Enforce` writes the generated objects; `Audit` writes nothing but status.
    #[serde(default)]
    pub mode: Mode,
    /// Istio's root namespace (meshConfig.rootNamespace).
    #[serde(default = "default_root_namespace")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub root_namespace: String,
    /// Cluster DNS domain used for generated DestinationRule hosts.
    #[serde(default = "default_cluster_domain")]
    #[schemars(length(min = 1, max = 253))]
    pub cluster_domain: String,
    /// Protected namespaces. Empty selects every namespace; kube-system, kube-public,
    /// kube-node-lease and the root namespace are never protected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Time-boxed, reasoned exceptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // A list map keyed by namespace: the API server refuses duplicates at no CEL cost (a
    // uniqueness rule in CEL is quadratic and exceeded the per-rule budget).
    #[schemars(
        length(max = 256),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["namespace"])
    )]
    pub exemptions: Vec<ExemptionSpec>,
    /// Mesh-wide mTLS: the root-namespace PeerAuthentication, the per-namespace
    /// deny-plaintext AuthorizationPolicy and ISTIO_MUTUAL DestinationRule.
    #[serde(default)]
    pub mtls: MtlsSpec,
    /// Mesh-wide DENY rules and the ambient waypoint-only policy.
    #[serde(default)]
    pub authorization: AuthorizationSpec,
    /// The per-namespace NetworkPolicy, the istiod NetworkPolicy and the Admin tier.
    #[serde(default)]
    pub network: NetworkSpec,
    /// Findings about pods, Services and namespaces.
    #[serde(default)]
    pub workloads: WorkloadsSpec,
    /// What to do with tenant PeerAuthentications and DestinationRules weaker than the
    /// baseline: `Report` (findings only) or `Revert` (the operator takes over the one weak
    /// field with server-side apply).
    #[serde(default)]
    pub tenant_overrides: TenantOverrides,
    /// Guards evaluated by the API server itself (ValidatingAdmissionPolicy).
    #[serde(default)]
    pub admission: AdmissionSpec,
    /// Options of Audit mode.
    #[serde(default, skip_serializing_if = "AuditSpec::is_default")]
    pub audit: AuditSpec,
}

/// Options of Audit mode.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct AuditSpec {
    /// In Audit mode, write the generated AuthorizationPolicies with the annotation
    /// `istio.io/dry-run: "true"`: sidecars then count what they would refuse (the
    /// `istio_dry_run_deny_shadow_denied` statistics) without refusing it. Nothing else is
    /// written. Ignored in Enforce mode, where the same policies enforce.
    #[serde(default)]
    pub dry_run_policies: bool,
}

impl AuditSpec {
    fn is_default(&self) -> bool {
        *self == AuditSpec::default()
    }
}

pub fn default_root_namespace() -> String {
    "istio-system".into()
}
pub fn default_cluster_domain() -> String {
    "cluster.local".into()
}
fn yes() -> bool {
    true
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TenantOverrides {
    #[default]
    Report,
    Revert,
}

/// A control that an exemption switches off for one namespace.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "camelCase")]
pub enum Control {
    /// Deny-plaintext AuthorizationPolicy, DestinationRule, PeerAuthentication findings.
    Mtls,
    /// Tenant AuthorizationPolicy findings.
    Authorization,
    /// NetworkPolicy and its findings.
    Network,
    /// Pod, Service and Namespace findings.
    Workloads,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct ExemptionSpec {
    /// The exempt namespace (one entry per namespace).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,
    /// What is switched off there: `mtls` (no deny-plaintext policy or DestinationRule, no mTLS
    /// findings), `authorization` (no AuthorizationPolicy findings), `network` (no NetworkPolicy,
    /// no network findings), `workloads` (no pod, Service or namespace findings).
    // A set: the API server refuses a control named twice.
    #[schemars(length(min = 1, max = 4), extend("x-kubernetes-list-type" = "set"))]
    pub controls: Vec<Control>,
    /// Why the exemption exists (a ticket, a migration plan).
    #[schemars(length(min = 3, max = 1024))]
    pub reason: String,
    /// RFC 3339 time after which the exemption no longer applies.
    // `format: date-time` is checked by the API server at no CEL cost (a regex rule here
    // exceeded the cost budget); the operator parses it again and reports `Invalid` by field.
    #[schemars(length(min = 20, max = 64), extend("format" = "date-time"))]
    pub expires: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct MtlsSpec {
    /// Mode of the mesh-wide PeerAuthentication: `STRICT`, or `PERMISSIVE` for a migration
    /// window (no deny-plaintext policies then).
    #[serde(default)]
    pub mode: MtlsMode,
    /// Per-namespace DENY AuthorizationPolicy for requests without an mTLS principal (G1, G2).
    /// It has no selector, and Istio cannot exclude workloads from one, so ingress gateways in
    /// a protected namespace refuse their external clients too: such gateways are reported
    /// (MB304). Run gateways in a namespace of their own.
    #[serde(default = "yes")]
    pub deny_plaintext: bool,
    /// Per-namespace ISTIO_MUTUAL DestinationRule (G9). Fails closed: clients always use mTLS
    /// to the namespace's services, where Istio's auto-mTLS would fall back to plaintext for
    /// endpoints without a sidecar.
    #[serde(default = "yes")]
    pub destination_rules: bool,
}

impl Default for MtlsSpec {
    fn default() -> Self {
        Self {
            mode: MtlsMode::default(),
            deny_plaintext: true,
            destination_rules: true,
        }
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MtlsMode {
    #[default]
    #[serde(rename = "STRICT")]
    Strict,
    #[serde(rename = "PERMISSIVE")]
    Permissive,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationSpec {
    /// Extra DENY rules for the root namespace (mesh-wide, gateways included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub deny_rules: Vec<DenyRuleSpec>,
    /// In ambient namespaces that use a waypoint (`istio.io/use-waypoint`), an L4 DENY policy
    /// for every peer but the waypoint's identities (its pods' ServiceAccounts in
    /// `trustDomain`), so traffic sent straight to a pod cannot skip the waypoint's policies.
    /// Off by default: clients that bypass the waypoint by design (ingress gateways without
    /// `istio.io/ingress-use-waypoint`, pod-IP traffic past a `waypoint-for: service`
    /// waypoint) are refused.
    #[serde(default)]
    pub waypoint_only: bool,
    /// An AuthorizationPolicy in the root namespace bound to the `istio-waypoint`
    /// GatewayClass that allows nothing, so every waypoint refuses what no policy bound to it
    /// allows: a new waypoint denies all traffic until its tenant binds an ALLOW policy to it
    /// (targetRefs naming the waypoint's Gateway). Off by default; needs Istio 1.25 or later,
    /// where waypoints take policies that target their GatewayClass.
    #[serde(default)]
    pub waypoint_default_deny: bool,
    /// The mesh's trust domain (Istio's `meshConfig.trustDomain`): the waypoint identities of
    /// `waypointOnly` are `<trustDomain>/ns/<namespace>/sa/<serviceAccount>`.
    #[serde(default = "default_trust_domain")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$")
    )]
    pub trust_domain: String,
}

pub fn default_trust_domain() -> String {
    "cluster.local".into()
}

impl Default for AuthorizationSpec {
    fn default() -> Self {
        Self {
            deny_rules: Vec::new(),
            waypoint_only: false,
            waypoint_default_deny: false,
            trust_domain: default_trust_domain(),
        }
    }
}

/// A subset of Istio's AuthorizationPolicy rule syntax.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.from) ? size(self.from) : 0) + (has(self.to) ? size(self.to) : 0) + (has(self.when) ? size(self.when) : 0) > 0").message("a deny rule needs at least one of from, to or when; an empty rule would deny all traffic in the mesh"))]
#[x_kube(validation = Rule::new(super::rules::HTTP_DENY_RULE_NEEDS_PORTS).field_path(".to").message("a deny rule with HTTP fields (to hosts, methods or paths, when keys request.*) must name ports in every to entry: on TCP connections Istio drops the HTTP fields of a DENY rule and denies everything the rest matches"))]
pub struct DenyRuleSpec {
    /// Unique; the AuthorizationPolicy is named `meshbaseline-deny-<name>`.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Istio `source` fields, written flat (without `source:`).
    // Bounded so that the API server can bound the cost of the CEL rules above.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub from: Vec<RuleSource>,
    /// Istio `operation` fields, written flat (without `operation:`).
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub to: Vec<RuleOperation>,
    /// Istio conditions.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub when: Vec<RuleCondition>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct RuleSource {
    /// Peer identities (`<trust domain>/ns/<namespace>/sa/<account>`; `*` for any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Peer identities that do not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    /// Namespaces of the peer (from its mTLS identity).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces that do not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// Source IPv4 or IPv6 addresses or CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    /// Source addresses that do not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct RuleOperation {
    /// Hosts (HTTP only; ztunnel cannot see them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Hosts that do not match (HTTP only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    /// Destination ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Destination ports that do not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    /// HTTP methods (HTTP only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// HTTP methods that do not match (HTTP only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// HTTP paths (HTTP only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// HTTP paths that do not match (HTTP only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct RuleCondition {
    /// An Istio condition key, e.g. `source.ip` or `destination.port`.
    #[schemars(length(min = 1))]
    pub key: String,
    /// Values that match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Values that do not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Generate the per-namespace NetworkPolicy that allows TCP only, plus DNS (G4, G5, G7).
    #[serde(default = "yes")]
    pub tcp_only: bool,
    /// Where cluster DNS runs: the only UDP the NetworkPolicy allows.
    #[serde(default)]
    pub dns: DnsSpec,
    /// Where pods may connect to.
    #[serde(default)]
    pub egress: EgressSpec,
    /// The NetworkPolicy on istiod in the root namespace.
    #[serde(default)]
    pub control_plane: ControlPlaneSpec,
    /// What the NetworkPolicy of ambient namespaces must let through.
    #[serde(default)]
    pub ambient: AmbientNetworkSpec,
    /// Admin-tier ClusterNetworkPolicies, which tenants' NetworkPolicies cannot override:
    /// `Auto` (wherever the cluster serves ClusterNetworkPolicy) or `Disabled`.
    #[serde(default)]
    pub admin_tier: AdminTier,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            tcp_only: true,
            dns: DnsSpec::default(),
            egress: EgressSpec::default(),
            control_plane: ControlPlaneSpec::default(),
            ambient: AmbientNetworkSpec::default(),
            admin_tier: AdminTier::default(),
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct AmbientNetworkSpec {
    /// Source addresses istio-cni gives kubelet probes in ambient pods (its HOST_PROBE_SNAT_IP
    /// and HOST_PROBE_SNAT_IPV6); allowed in so probes keep working.
    #[serde(default = "default_probe_cidrs")]
    #[schemars(length(min = 1, max = 4))]
    pub probe_cidrs: Vec<String>,
}

pub fn default_probe_cidrs() -> Vec<String> {
    vec![
        "169.254.7.127/32".into(),
        "fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128".into(),
    ]
}

impl Default for AmbientNetworkSpec {
    fn default() -> Self {
        Self {
            probe_cidrs: default_probe_cidrs(),
        }
    }
}

/// Where cluster DNS runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct DnsSpec {
    /// Namespace of the DNS pods.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Labels of the DNS pods.
    pub pod_selector: BTreeMap<String, String>,
    /// DNS port, allowed over UDP and TCP.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Addresses of a DNS cache on the nodes' host network (NodeLocal DNSCache:
    /// 169.254.20.10), allowed on the DNS port too: host-network pods are not pods to a
    /// NetworkPolicy, so the DNS pod selector does not reach them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub node_local_addresses: Vec<String>,
}

impl Default for DnsSpec {
    fn default() -> Self {
        Self {
            namespace: "kube-system".into(),
            pod_selector: BTreeMap::from([("k8s-app".into(), "kube-dns".into())]),
            port: 53,
            node_local_addresses: Vec::new(),
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct EgressSpec {
    /// `ClusterOnly`: TCP to any pod, the egress gateway and `allowCidrs`. `AllowList`: TCP to
    /// the namespace's own pods, istiod, the egress gateway and `allowCidrs` only.
    /// `Unrestricted`: TCP anywhere. UDP (but DNS), ICMP and SCTP are dropped in every mode.
    #[serde(default)]
    pub mode: EgressMode,
    /// Destinations outside the cluster that pods may reach over TCP (IPv4 and IPv6 CIDRs).
    /// Include the API server's address for workloads that talk to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allow_cidrs: Vec<String>,
    /// The egress gateway's pods, which pods may reach in every mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_gateway: Option<PodRefSpec>,
    /// Also generate a root-namespace Sidecar with outboundTrafficPolicy REGISTRY_ONLY.
    #[serde(default)]
    pub registry_only: bool,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EgressMode {
    /// TCP to any pod in the cluster, the egress gateway and `allowCidrs`.
    #[default]
    ClusterOnly,
    /// TCP to the namespace's own pods, istiod, the egress gateway and `allowCidrs` only.
    AllowList,
    /// TCP anywhere; UDP, ICMP and SCTP are still dropped.
    Unrestricted,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct PodRefSpec {
    /// The pods' namespace.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// The pods' labels.
    pub pod_selector: BTreeMap<String, String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneSpec {
    /// NetworkPolicy on istiod that drops plaintext xDS (15010) and debug ports (G8).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Labels of the istiod pods.
    #[serde(default = "default_istiod_selector")]
    pub istiod_selector: BTreeMap<String, String>,
    /// Namespace of the istiod pods when it is not rootNamespace (meshConfig.rootNamespace
    /// may name another namespace than istiod's). Never protected, like the root namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub istiod_namespace: Option<String>,
    /// Namespaces allowed to scrape istiod's monitoring port 15014 (and, when protected, the
    /// sidecars' 15020 and 15090 in AllowList mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitoring_namespaces: Vec<String>,
}

fn default_istiod_selector() -> BTreeMap<String, String> {
    BTreeMap::from([("app".into(), "istiod".into())])
}

impl Default for ControlPlaneSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            istiod_selector: default_istiod_selector(),
            istiod_namespace: None,
            monitoring_namespaces: Vec::new(),
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct WorkloadsSpec {
    /// Audit pods for sidecar bypasses (G5, G6, G12).
    #[serde(default = "yes")]
    pub audit: bool,
}

impl Default for WorkloadsSpec {
    fn default() -> Self {
        Self { audit: true }
    }
}

/// Observed state, kstatus-compatible.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct MeshBaselineStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Degraded, DriftDetected, Invalid, and Stalled with an invalid spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Protected and exempt namespaces.
    #[serde(default)]
    pub namespaces: NamespaceCounts,
    /// Generated objects written to the cluster (none in Audit mode, none of a kind the
    /// cluster does not serve).
    #[serde(default)]
    pub managed_objects: u32,
    /// Generated objects restored after someone else changed or deleted them, since the
    /// operator started.
    #[serde(default)]
    pub drift_repairs: u64,
    /// Every current finding (the list below is capped).
    #[serde(default)]
    pub findings_total: u32,
    /// Findings by severity, all of them (the list below is capped).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub findings_by_severity: BTreeMap<String, u32>,
    /// Most severe first, capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<FindingStatus>,
    /// Whether the admission guards and the Admin network-policy tier are in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<EnforcementStatus>,
    /// Workloads of the protected namespaces by protection (see `meshbaseline posture`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<PostureStatus>,
}

/// Running pods and workload templates by protection: `protected` (plaintext refused on every
/// port, UDP and ICMP blocked, no exemption, no finding), `partial`, `unprotected` (plaintext
/// accepted on every port), `unknown`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct PostureCountsStatus {
    pub protected: u32,
    pub partial: u32,
    pub unprotected: u32,
    #[serde(default)]
    pub unknown: u32,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct NamespacePostureStatus {
    pub namespace: String,
    #[serde(flatten)]
    pub counts: PostureCountsStatus,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct PostureStatus {
    /// Every protected namespace together.
    pub total: PostureCountsStatus,
    /// Protected namespaces with workloads: how many.
    pub namespaces_total: u32,
    /// Per namespace, those with the most unprotected, then partly protected workloads first;
    /// capped (at 10,000 namespaces the whole list would not fit in the object).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NamespacePostureStatus>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct NamespaceCounts {
    /// Namespaces the baseline selects and owns (minus those an older baseline claims).
    pub protected: u32,
    /// Protected namespaces with an active exemption.
    pub exempt: u32,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct FindingStatus {
    /// The rule id, e.g. `MB101`.
    pub rule: String,
    /// `critical`, `high`, `medium` or `low`.
    pub severity: String,
    /// Kind of the object the finding is about.
    pub kind: String,
    /// Its namespace (none for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// What is wrong (the fix is in the findings reference and in `meshbaseline check`).
    pub message: String,
}
