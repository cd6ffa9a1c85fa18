//! Per-namespace objects. Specs that do not depend on the namespace are built once per
//! compile; only the DestinationRule host differs between namespaces.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

use super::meta::ObjectFactory;
use super::names;
use crate::api::baseline::{Control, MtlsMode};
use crate::api::Baseline;
use crate::dataplane::{self, DataPlane};
use crate::inventory::{Inventory, SmallMap};
use crate::object::{DesiredObject, Kind, ObjectSpec};

/// The namespace-independent parts, built once.
pub(crate) struct NamespaceTemplates {
    deny_plaintext: Option<Arc<ObjectSpec>>,
    destination_rules: bool,
    network_policy: Option<super::network::NetworkTemplates>,
    waypoint_only: bool,
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
            waypoint_only: baseline.waypoint_only,
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
                        json!({"host": host, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}),
                    ),
                ));
            }
        }
        if ambient && self.waypoint_only && !exempt.authorization {
            if let Some((wns, wname)) = dataplane::namespace_waypoint(namespace, labels) {
                out.push(factory.object_shared(
                    Kind::AuthorizationPolicy,
                    namespace,
                    names::WAYPOINT_ONLY,
                    share(
                        Kind::AuthorizationPolicy,
                        names::WAYPOINT_ONLY,
                        waypoint_only_spec(wns, wname),
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

/// An L4 ALLOW policy (no selector, no targetRefs: ztunnel enforces it for every pod of the
/// namespace) admitting only the waypoint's identity. A waypoint runs as the service account
/// named after its Gateway; the principal is matched by suffix so any trust domain works.
pub(crate) fn waypoint_only_spec(waypoint_namespace: &str, waypoint: &str) -> Value {
    json!({
        "action": "ALLOW",
        "rules": [{"from": [{"source": {
            "principals": [format!("*/ns/{waypoint_namespace}/sa/{waypoint}")],
        }}]}],
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

/// Namespaces with a tenant DestinationRule for `*.<ns>.svc.<domain>`. Generating ours too
/// would make Istio pick one of the two and drop the other's settings (G9); the tenant's is
/// kept and its TLS mode is the audit's business.
fn tenant_covered(inventory: &Inventory, domain: &str) -> BTreeSet<String> {
    inventory
        .destination_rules
        .iter()
        .map(|o| &**o)
        .filter(|dr| {
            // Whatever sits at our DestinationRule's name is ours to repair, so it must not
            // count (or ours would remove itself). Labels decide nothing: a tenant's own
            // DestinationRule labelled as ours still covers its host.
            dr.metadata.name.as_deref() != Some(names::MTLS_DESTINATION_RULE)
        })
        .filter_map(|dr| {
            let namespace = dr.metadata.namespace.as_deref()?;
            let host = normalise_host(&dr.spec.host, namespace, domain);
            (host == format!("*.{namespace}.svc.{domain}")).then(|| namespace.to_string())
        })
        .collect()
}

/// The fully qualified form of a DestinationRule host: short names are relative to the
/// DestinationRule's namespace, `<x>.svc` is completed with the cluster domain.
pub fn normalise_host(host: &str, namespace: &str, domain: &str) -> String {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if host == "*" {
        host
    } else if !host.contains('.') {
        format!("{host}.{namespace}.svc.{domain}")
    } else if host.ends_with(".svc") {
        format!("{host}.{domain}")
    } else {
        host
    }
}
