//! The validated internal model of a `MeshBaseline`: parsed once at the edge, so the compiler
//! and the audit never see a malformed spec.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;

use super::baseline::{
    AdminTier, Control, ControlPlaneSpec, DenyRuleSpec, DnsSpec, EgressMode, MeshBaseline,
    MeshBaselineSpec, Mode, MtlsSpec, PodRefSpec, TenantObjects, TenantOverrides,
};
use super::selector::{Labels, Selector};

/// Namespaces that are never protected, whatever the selector says: locking them down would
/// lock out the platform.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    pub name: String,
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub created: Option<Timestamp>,
    pub mode: Mode,
    pub root_namespace: String,
    pub cluster_domain: String,
    pub selector: Selector,
    pub exemptions: Vec<Exemption>,
    pub mtls: MtlsSpec,
    pub deny_rules: Vec<DenyRuleSpec>,
    /// Generate the waypoint-only L4 policy in ambient namespaces that use a waypoint.
    pub waypoint_only: bool,
    /// Generate the allow-nothing policy bound to every waypoint (the `istio-waypoint`
    /// GatewayClass).
    pub waypoint_default_deny: bool,
    /// The mesh's trust domain, for the waypoint identities of `waypoint_only`.
    pub trust_domain: String,
    pub network: Network,
    pub workloads_audit: bool,
    pub tenant_overrides: TenantOverrides,
    /// The guard of generated objects (effective in Enforce mode).
    pub admission_guard: bool,
    pub tenant_objects: TenantObjects,
    /// Audit mode writes the generated AuthorizationPolicies as dry-run policies.
    pub dry_run_policies: bool,
}

impl Baseline {
    /// Whether the generated AuthorizationPolicies are written as dry-run policies (Audit
    /// mode with `audit.dryRunPolicies`).
    pub fn dry_run(&self) -> bool {
        self.mode == Mode::Audit && self.dry_run_policies
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exemption {
    pub namespace: String,
    pub controls: BTreeSet<Control>,
    pub reason: String,
    pub expires: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub tcp_only: bool,
    pub dns: DnsSpec,
    pub egress: Egress,
    pub control_plane: ControlPlaneSpec,
    /// Sources of kubelet probes in ambient pods.
    pub probe_cidrs: Vec<IpNet>,
    /// A DNS cache on the nodes' host network (`dns.nodeLocalAddresses`).
    pub node_local_dns: Vec<IpAddr>,
    /// Where the istiod pods run: `controlPlane.istiodNamespace`, else the root namespace.
    pub istiod_namespace: String,
    pub admin_tier: AdminTier,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Egress {
    pub mode: EgressMode,
    pub allow_cidrs: Vec<IpNet>,
    pub gateway: Option<PodRefSpec>,
    pub registry_only: bool,
}

impl Baseline {
    /// Whether the baseline's selector takes in this namespace (system, root and istiod
    /// namespaces never are). Exemptions are separate: an exempt namespace is still protected for the
    /// controls it is not exempt from.
    pub fn selects(&self, namespace: &str, labels: &(impl Labels + ?Sized)) -> bool {
        namespace != self.root_namespace
            && namespace != self.network.istiod_namespace
            && !SYSTEM_NAMESPACES.contains(&namespace)
            && self.selector.matches(labels)
    }

    /// The active (unexpired) exemption of `namespace` for `control`, if any.
    pub fn exemption(
        &self,
        namespace: &str,
        control: Control,
        now: Timestamp,
    ) -> Option<&Exemption> {
        self.exemptions
            .iter()
            .find(|e| e.namespace == namespace && e.controls.contains(&control) && e.expires > now)
    }

    pub fn is_exempt(&self, namespace: &str, control: Control, now: Timestamp) -> bool {
        self.exemption(namespace, control, now).is_some()
    }

    /// The earliest expiry still ahead of `now`: when the controller must look again.
    pub fn next_expiry(&self, now: Timestamp) -> Option<Timestamp> {
        self.exemptions
            .iter()
            .map(|e| e.expires)
            .filter(|t| *t > now)
            .min()
    }

    /// The default baseline `check` uses without `--baseline`.
    pub fn default_for_check() -> Baseline {
        let spec: MeshBaselineSpec = serde_json::from_value(serde_json::json!({}))
            .unwrap_or_else(|_| unreachable!("every field of the spec has a default"));
        let mb = MeshBaseline::new("default", spec);
        // The default spec is valid by construction; a test keeps it that way.
        Baseline::try_from(&mb).unwrap_or_else(|e| unreachable!("default baseline invalid: {e}"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// A spec that cannot be enforced; every problem is listed with its field path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidBaseline {
    pub name: String,
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidBaseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeshBaseline {:?} is invalid: ", self.name)?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl TryFrom<&MeshBaseline> for Baseline {
    type Error = InvalidBaseline;

    fn try_from(mb: &MeshBaseline) -> Result<Self, Self::Error> {
        let name = mb.metadata.name.clone().unwrap_or_default();
        let mut errs = FieldErrors::default();
        if name.is_empty() {
            errs.push("metadata.name", "must be set");
        } else if name.len() > 63 {
            // Generated objects carry the name as a label value, which is limited to 63.
            errs.push(
                "metadata.name",
                format!("{name:?} is longer than 63 characters, the limit of a label value"),
            );
        }
        let spec = &mb.spec;
        check_label("spec.rootNamespace", &spec.root_namespace, &mut errs);
        if !is_dns1123_subdomain(&spec.cluster_domain) {
            errs.push(
                "spec.clusterDomain",
                format!("{:?} is not a DNS name", spec.cluster_domain),
            );
        }
        let selector = spec
            .namespace_selector
            .as_ref()
            .map(|s| Selector::parse(s, "spec.namespaceSelector", &mut errs))
            .unwrap_or_default();
        let exemptions = parse_exemptions(spec, &mut errs);
        super::rules::check_deny_rules(&spec.authorization.deny_rules, &mut errs);
        super::rules::check_trust_domain(&spec.authorization.trust_domain, &mut errs);
        let network = parse_network(spec, &mut errs);
        if !errs.0.is_empty() {
            return Err(InvalidBaseline {
                name,
                errors: errs.0,
            });
        }
        Ok(Baseline {
            name,
            uid: mb.metadata.uid.clone(),
            generation: mb.metadata.generation,
            created: mb.metadata.creation_timestamp.as_ref().map(|t| t.0),
            mode: spec.mode,
            root_namespace: spec.root_namespace.clone(),
            cluster_domain: spec.cluster_domain.clone(),
            selector,
            exemptions,
            mtls: spec.mtls.clone(),
            deny_rules: spec.authorization.deny_rules.clone(),
            waypoint_only: spec.authorization.waypoint_only,
            waypoint_default_deny: spec.authorization.waypoint_default_deny,
            trust_domain: spec.authorization.trust_domain.clone(),
            network,
            workloads_audit: spec.workloads.audit,
            tenant_overrides: spec.tenant_overrides,
            admission_guard: spec.admission.guard,
            tenant_objects: spec.admission.tenant_objects,
            dry_run_policies: spec.audit.dry_run_policies,
        })
    }
}

fn parse_exemptions(spec: &MeshBaselineSpec, errs: &mut FieldErrors) -> Vec<Exemption> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, e) in spec.exemptions.iter().enumerate() {
        let p = format!("spec.exemptions[{i}]");
        check_label(&format!("{p}.namespace"), &e.namespace, errs);
        if !seen.insert(e.namespace.as_str()) {
            errs.push(
                format!("{p}.namespace"),
                format!("{:?} is exempted twice; merge the entries", e.namespace),
            );
        }
        if e.controls.is_empty() {
            errs.push(format!("{p}.controls"), "name at least one control");
        }
        for (j, c) in e.controls.iter().enumerate() {
            if e.controls[..j].contains(c) {
                errs.push(
                    format!("{p}.controls[{j}]"),
                    format!("{c:?} is named twice"),
                );
            }
        }
        let reason = e.reason.chars().count();
        if e.reason.trim().is_empty() {
            errs.push(format!("{p}.reason"), "an exemption needs a reason");
        } else if !(3..=1024).contains(&reason) {
            errs.push(
                format!("{p}.reason"),
                format!("must be 3 to 1024 characters long, not {reason}"),
            );
        }
        match e.expires.parse::<Timestamp>() {
            Ok(expires) => out.push(Exemption {
                namespace: e.namespace.clone(),
                controls: e.controls.iter().copied().collect(),
                reason: e.reason.clone(),
                expires,
            }),
            Err(_) => errs.push(
                format!("{p}.expires"),
                format!(
                    "{:?} is not an RFC 3339 time such as 2026-12-31T00:00:00Z",
                    e.expires
                ),
            ),
        }
    }
    out
}

fn parse_network(spec: &MeshBaselineSpec, errs: &mut FieldErrors) -> Network {
    let n = &spec.network;
    check_label("spec.network.dns.namespace", &n.dns.namespace, errs);
    check_pod_selector("spec.network.dns.podSelector", &n.dns.pod_selector, errs);
    if !(1..=65535).contains(&n.dns.port) {
        errs.push(
            "spec.network.dns.port",
            format!("{} is not a port number", n.dns.port),
        );
    }
    let eg = &n.egress;
    let mut allow_cidrs = Vec::new();
    for (i, c) in eg.allow_cidrs.iter().enumerate() {
        let p = format!("spec.network.egress.allowCidrs[{i}]");
        match c.parse::<IpNet>() {
            Ok(net) if net.trunc() != net => errs.push(
                p,
                format!("{c:?} has host bits set; did you mean \"{}\"?", net.trunc()),
            ),
            Ok(net) if net.prefix_len() == 0 && eg.mode != EgressMode::Unrestricted => errs.push(
                p,
                format!("{c:?} allows every address; use mode Unrestricted if that is meant"),
            ),
            Ok(net) => allow_cidrs.push(net),
            Err(_) => errs.push(p, format!("{c:?} is not a CIDR")),
        }
    }
    let probe_cidrs = parse_probe_cidrs(&n.ambient.probe_cidrs, errs);
    if eg.mode == EgressMode::Unrestricted && !eg.allow_cidrs.is_empty() {
        errs.push(
            "spec.network.egress.allowCidrs",
            "has no effect with mode Unrestricted; remove it or pick ClusterOnly or AllowList",
        );
    }
    if let Some(gw) = &eg.egress_gateway {
        check_label(
            "spec.network.egress.egressGateway.namespace",
            &gw.namespace,
            errs,
        );
        check_pod_selector(
            "spec.network.egress.egressGateway.podSelector",
            &gw.pod_selector,
            errs,
        );
    }
    let node_local_dns = parse_addresses(&n.dns.node_local_addresses, errs);
    let cp = &n.control_plane;
    let istiod_namespace = match &cp.istiod_namespace {
        Some(ns) => {
            check_label("spec.network.controlPlane.istiodNamespace", ns, errs);
            ns.clone()
        }
        None => spec.root_namespace.clone(),
    };
    check_pod_selector(
        "spec.network.controlPlane.istiodSelector",
        &cp.istiod_selector,
        errs,
    );
    for (i, ns) in cp.monitoring_namespaces.iter().enumerate() {
        check_label(
            &format!("spec.network.controlPlane.monitoringNamespaces[{i}]"),
            ns,
            errs,
        );
    }
    Network {
        tcp_only: n.tcp_only,
        dns: n.dns.clone(),
        egress: Egress {
            mode: eg.mode,
            allow_cidrs,
            gateway: eg.egress_gateway.clone(),
            registry_only: eg.registry_only,
        },
        control_plane: cp.clone(),
        probe_cidrs,
        node_local_dns,
        istiod_namespace,
        admin_tier: n.admin_tier,
    }
}

/// `spec.network.dns.nodeLocalAddresses`: single addresses (a DNS cache listens on one).
fn parse_addresses(addresses: &[String], errs: &mut FieldErrors) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for (i, a) in addresses.iter().enumerate() {
        match a.parse::<IpAddr>() {
            Ok(ip) => out.push(ip),
            Err(_) => errs.push(
                format!("spec.network.dns.nodeLocalAddresses[{i}]"),
                format!("{a:?} is not an IP address (such as 169.254.20.10)"),
            ),
        }
    }
    out
}

/// `spec.network.ambient.probeCidrs`: exact sources, so no host bits and no `/0`; an empty
/// list would leave the probe rule without a peer, which NetworkPolicy reads as "anyone".
fn parse_probe_cidrs(cidrs: &[String], errs: &mut FieldErrors) -> Vec<IpNet> {
    if cidrs.is_empty() {
        errs.push(
            "spec.network.ambient.probeCidrs",
            "name at least one CIDR (default: 169.254.7.127/32 and fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128)",
        );
    }
    let mut out = Vec::new();
    for (i, c) in cidrs.iter().enumerate() {
        let p = format!("spec.network.ambient.probeCidrs[{i}]");
        match c.parse::<IpNet>() {
            Ok(net) if net.trunc() != net => errs.push(
                p,
                format!("{c:?} has host bits set; did you mean \"{}\"?", net.trunc()),
            ),
            Ok(net) if net.prefix_len() == 0 => errs.push(
                p,
                format!("{c:?} allows every address; name the probe source address only"),
            ),
            Ok(net) => out.push(net),
            Err(_) => errs.push(p, format!("{c:?} is not a CIDR")),
        }
    }
    out
}

fn check_pod_selector(path: &str, labels: &BTreeMap<String, String>, errs: &mut FieldErrors) {
    if labels.is_empty() {
        errs.push(
            path,
            "must name at least one label; an empty selector selects every pod",
        );
        return;
    }
    let selector = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some(labels.clone()),
        match_expressions: None,
    };
    Selector::parse(&selector, path, errs);
}

pub(crate) fn check_label(path: &str, value: &str, errs: &mut FieldErrors) {
    if !is_dns1123_label(value) {
        errs.push(
            path,
            format!("{value:?} is not a valid namespace name (DNS-1123 label)"),
        );
    }
}

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}
