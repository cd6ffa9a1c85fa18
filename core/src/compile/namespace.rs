//! Per-namespace objects. Specs that do not depend on the namespace are built once per
//! compile; only the DestinationRule host differs between namespaces.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

use super::meta::ObjectFactory;
use super::{hosts, names};
use crate::api::baseline::{Control, MtlsMode};
use crate::api::Baseline;
use crate::dataplane::{self, DataPlane};
use crate::gateway::GatewayAccounts;
use crate::inventory::{Inventory, SmallMap};
use crate::object::{DesiredObject, Kind, ObjectSpec};

/// The namespace-independent parts, built once.
pub(crate) struct NamespaceTemplates {
    deny_plaintext: Option<Arc<ObjectSpec>>,
    destination_rules: bool,
    network_policy: Option<super::network::NetworkTemplates>,
    /// With `waypointOnly`: the ServiceAccounts of the waypoints' pods, and the trust domain.
    waypoint_only: Option<(GatewayAccounts, String)>,
    /// `.svc.<clusterDomain>`, appended to `*.<ns>` for the DestinationRule host.
    host_suffix: String,
    /// Namespaces where a tenant DestinationRule already has the wildcard host (G9).
    tenant_covered: BTreeSet<String>,
}

/// Which controls are switched off for one namespace by active exemptions.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Exempt {
    pub mtls: bool,
    pub authorization: bool,
    pub network: bool,
    /// Exempt from at least one control, generated or not.
    pub any: bool,
}

impl NamespaceTemplates {
    pub(crate) fn new(baseline: &Baseline, inventory: &Inventory) -> Self {
        let mtls = &baseline.mtls;
        let deny_plaintext = (mtls.mode == MtlsMode::Strict && mtls.deny_plaintext).then(|| {
            // No selector and no `to`: every workload and every port, including ports no
            // Service declares (G2). Plaintext has no principal, so `notPrincipals: ["*"]`
            // matches exactly the requests without mTLS (G1).
            Arc::new(ObjectSpec::new(
                Kind::AuthorizationPolicy,
                &json!({
                    "action": "DENY",
                    "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}],
                }),
            ))
        });
        let network_policy = super::network::NetworkTemplates::new(&baseline.network);
        NamespaceTemplates {
            deny_plaintext,
            destination_rules: mtls.destination_rules,
            network_policy,
            waypoint_only: baseline.waypoint_only.then(|| {
                (
                    GatewayAccounts::new(inventory),
                    baseline.trust_domain.clone(),
                )
            }),
            host_suffix: format!(".svc.{}", baseline.cluster_domain),
            tenant_covered: if mtls.destination_rules {
                tenant_covered(inventory, &baseline.cluster_domain)
            } else {
                BTreeSet::new()
            },
        }
    }

    pub(crate) fn objects(
        &self,
        namespace: &str,
        labels: &SmallMap,
        exempt: Exempt,
        factory: &ObjectFactory,
        previous: Option<&super::Compiled>,
        out: &mut Vec<DesiredObject>,
    ) {
        // The previous compile's spec when it is the same, so both share one copy.
        let share = |kind: Kind, name: &str, spec: Value| -> Arc<ObjectSpec> {
            let spec = ObjectSpec::new(kind, &spec);
            previous
                .and_then(|p| p.spec_of(kind, namespace, name))
                .filter(|s| ***s == spec)
                .cloned()
                .unwrap_or_else(|| Arc::new(spec))
        };
        let ambient = dataplane::namespace_dataplane(labels) == DataPlane::Ambient;
        if !exempt.mtls {
            if let Some(spec) = &self.deny_plaintext {
                out.push(factory.object_shared(
                    Kind::AuthorizationPolicy,
                    namespace,
                    names::DENY_PLAINTEXT,
                    Arc::clone(spec),
                ));
            }
            // Ambient: ISTIO_MUTUAL would make sidecar clients send Istio mTLS to the app
            // port instead of HBONE; ztunnel encrypts everything anyway.
            if self.destination_rules && !ambient && !self.tenant_covered.contains(namespace) {
                let host = format!("*.{namespace}{}", self.host_suffix);
                out.push(factory.object_shared(
                    Kind::DestinationRule,
                    namespace,
                    names::MTLS_DESTINATION_RULE,
                    share(
                        Kind::DestinationRule,
                        names::MTLS_DESTINATION_RULE,
                        // Exported to every namespace whatever the mesh's
                        // defaultDestinationRuleExportTo says: with ".", clients elsewhere
                        // would not see it.
                        json!({
                            "host": host,
                            "exportTo": ["*"],
                            "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
                        }),
                    ),
                ));
            }
        }
        if let Some((accounts, trust_domain)) = &self.waypoint_only {
            let waypoint = dataplane::namespace_waypoint(namespace, labels)
                .filter(|_| ambient && !exempt.authorization);
            // Without a known pod of the waypoint there is no identity to admit: the audit
            // reports it (MB305) rather than guessing one.
            let principals = waypoint
                .map(|(wns, wname)| accounts.principals(trust_domain, wns, wname))
                .unwrap_or_default();
            if !principals.is_empty() {
                out.push(factory.object_shared(
                    Kind::AuthorizationPolicy,
                    namespace,
                    names::WAYPOINT_ONLY,
                    share(
                        Kind::AuthorizationPolicy,
                        names::WAYPOINT_ONLY,
                        waypoint_only_spec(&principals),
                    ),
                ));
            }
        }
        if !exempt.network {
            if let Some(templates) = &self.network_policy {
                out.push(factory.object_shared(
                    Kind::NetworkPolicy,
                    namespace,
                    names::BASELINE_NETWORK_POLICY,
                    Arc::clone(templates.spec(namespace, ambient)),
                ));
            }
        }
    }
}

/// An L4 DENY policy (no selector, no targetRefs: ztunnel enforces it for every pod of the
/// namespace) for every peer but the waypoint's identities. A DENY, not an ALLOW: tenant ALLOW
/// policies add up with an ALLOW and would re-open direct traffic; nothing re-opens a DENY.
/// Plaintext has no principal and is denied too. Not on port 15008: the waypoint terminates
/// HBONE there and, when istiod runs with `ENABLE_LAYERED_WAYPOINT_AUTHORIZATION_POLICIES`,
/// enforces its namespace's selector-less policies on it for its own clients (Istio's
/// `NewWaypointTerminationBuilder`); ztunnel matches the inner destination port, never 15008.
pub(crate) fn waypoint_only_spec(principals: &[String]) -> Value {
    json!({
        "action": "DENY",
        "rules": [{
            "from": [{"source": {"notPrincipals": principals}}],
            "to": [{"operation": {"notPorts": [super::network::HBONE_PORT.to_string()]}}],
        }],
    })
}

/// The active exemptions of `namespace`, as `Baseline::exemption` defines them.
pub(crate) fn exempt(baseline: &Baseline, namespace: &str, now: jiff::Timestamp) -> Exempt {
    let active = |c| baseline.is_exempt(namespace, c, now);
    Exempt {
        mtls: active(Control::Mtls),
        authorization: active(Control::Authorization),
        network: active(Control::Network),
        any: [
            Control::Mtls,
            Control::Authorization,
            Control::Network,
            Control::Workloads,
        ]
        .into_iter()
        .any(active),
    }
}

/// Namespaces where a tenant DestinationRule covers `*.<ns>.svc.<domain>`: the same host, or
/// a broader wildcard (`*.svc.<domain>`, `*.local`, `*`) in that namespace. Ours would be
/// merged with the first (Istio keeps one trafficPolicy) and, being more specific, would
/// shadow the second for the namespace's services (`MostSpecificHostMatch`): either way the
/// tenant's other settings would be lost. The tenant's rule is kept and its TLS mode is the
/// audit's business. Rules with a workloadSelector apply to the client pods they select only,
/// and rules exported nowhere (`~`) to no client: neither counts.
fn tenant_covered(inventory: &Inventory, domain: &str) -> BTreeSet<String> {
    inventory
        .destination_rules
        .iter()
        .map(|o| &**o)
        .filter(|dr| {
            // Whatever sits at our DestinationRule's name is ours to repair, so it must not
            // count (or ours would remove itself). Labels decide nothing: a tenant's own
            // DestinationRule labelled as ours still covers its host.
            let nowhere =
                !dr.spec.export_to.is_empty() && dr.spec.export_to.iter().all(|e| e == "~");
            dr.metadata.name.as_deref() != Some(names::MTLS_DESTINATION_RULE)
                && dr.spec.workload_selector.is_none()
                && !nowhere
        })
        .filter_map(|dr| {
            let namespace = dr.metadata.namespace.as_deref()?;
            let host = hosts::resolve(&dr.spec.host, namespace, domain);
            let ours = format!("*.{namespace}.svc.{domain}");
            hosts::match_rank(&host, &ours).map(|_| namespace.to_string())
        })
        .collect()
}
