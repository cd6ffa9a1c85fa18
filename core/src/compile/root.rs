//! Root-namespace objects: they apply mesh-wide and live where tenants have no rights.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::meta::ObjectFactory;
use super::names;
use crate::api::baseline::{DenyRuleSpec, MtlsMode, RuleCondition, RuleOperation, RuleSource};
use crate::api::Baseline;
use crate::object::{DesiredObject, Kind};

pub(crate) fn objects(baseline: &Baseline, factory: &ObjectFactory, out: &mut Vec<DesiredObject>) {
    let root = baseline.root_namespace.as_str();
    let mode = match baseline.mtls.mode {
        MtlsMode::Strict => "STRICT",
        MtlsMode::Permissive => "PERMISSIVE",
    };
    out.push(factory.object(
        Kind::PeerAuthentication,
        root,
        names::MESH_PEER_AUTHENTICATION,
        Arc::new(json!({"mtls": {"mode": mode}})),
    ));
    for rule in &baseline.deny_rules {
        let spec = deny_rule_spec(rule);
        out.push(factory.object(
            Kind::AuthorizationPolicy,
            root,
            &names::waypoint_deny_rule_name(&rule.name),
            Arc::new(waypoint_twin(&spec)),
        ));
        out.push(factory.object(
            Kind::AuthorizationPolicy,
            root,
            &names::deny_rule_name(&rule.name),
            Arc::new(spec),
        ));
    }
    if baseline.waypoint_default_deny {
        out.push(factory.object(
            Kind::AuthorizationPolicy,
            root,
            names::WAYPOINT_DEFAULT_DENY,
            Arc::new(waypoint_default_deny_spec()),
        ));
    }
    if baseline.network.control_plane.enabled {
        // Where istiod runs, which meshConfig.rootNamespace need not be.
        out.push(factory.object(
            Kind::NetworkPolicy,
            &baseline.network.istiod_namespace,
            names::ISTIOD_NETWORK_POLICY,
            Arc::new(super::network::istiod_spec(&baseline.network)),
        ));
    }
    if baseline.network.egress.registry_only {
        // No workloadSelector: the root namespace's selector-less Sidecar is the mesh default.
        out.push(factory.object(
            Kind::Sidecar,
            root,
            names::REGISTRY_ONLY_SIDECAR,
            Arc::new(json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}})),
        ));
    }
}

/// One Istio rule from the user's rule; empty lists are left out, as Istio reads a missing
/// list as "any".
fn deny_rule_spec(rule: &DenyRuleSpec) -> Value {
    let mut r = Map::new();
    if !rule.from.is_empty() {
        let from = rule
            .from
            .iter()
            .map(|s| json!({"source": source(s)}))
            .collect();
        r.insert("from".into(), Value::Array(from));
    }
    if !rule.to.is_empty() {
        let to = rule
            .to
            .iter()
            .map(|o| json!({"operation": operation(o)}))
            .collect();
        r.insert("to".into(), Value::Array(to));
    }
    if !rule.when.is_empty() {
        r.insert(
            "when".into(),
            Value::Array(rule.when.iter().map(condition).collect()),
        );
    }
    json!({"action": "DENY", "rules": [r]})
}

/// The same rule for every waypoint of the mesh. Waypoints ignore selector-less and
/// root-namespace policies, except those in the root namespace that target the
/// `istio-waypoint` GatewayClass (Istio's `ShouldAttachPolicy`); and behind a waypoint, ztunnel
/// sees the waypoint as the peer, not the client, so a `from` rule at the destination never
/// matches. Policies with targetRefs are ignored by sidecars and ztunnel, hence two objects.
fn waypoint_twin(spec: &Value) -> Value {
    let mut twin = spec.clone();
    twin["targetRefs"] = json!([{
        "group": "gateway.networking.k8s.io",
        "kind": "GatewayClass",
        "name": crate::gateway::WAYPOINT_CLASS,
    }]);
    twin
}

/// An ALLOW policy without rules allows nothing; bound to the `istio-waypoint` GatewayClass
/// from the root namespace, every waypoint takes it (Istio's `ShouldAttachPolicy`), and once
/// an ALLOW policy applies, a request that matches none is denied. ALLOW policies add up, so a
/// tenant's ALLOW bound to its waypoint opens what it names, and nothing else. Sidecars and
/// ztunnel ignore policies with targetRefs.
pub(crate) fn waypoint_default_deny_spec() -> Value {
    json!({
        "targetRefs": [{
            "group": "gateway.networking.k8s.io",
            "kind": "GatewayClass",
            "name": crate::gateway::WAYPOINT_CLASS,
        }],
    })
}

fn fields(pairs: &[(&str, &Vec<String>)]) -> Map<String, Value> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect()
}

fn source(s: &RuleSource) -> Map<String, Value> {
    fields(&[
        ("principals", &s.principals),
        ("notPrincipals", &s.not_principals),
        ("namespaces", &s.namespaces),
        ("notNamespaces", &s.not_namespaces),
        ("ipBlocks", &s.ip_blocks),
        ("notIpBlocks", &s.not_ip_blocks),
    ])
}

fn operation(o: &RuleOperation) -> Map<String, Value> {
    fields(&[
        ("hosts", &o.hosts),
        ("notHosts", &o.not_hosts),
        ("ports", &o.ports),
        ("notPorts", &o.not_ports),
        ("methods", &o.methods),
        ("notMethods", &o.not_methods),
        ("paths", &o.paths),
        ("notPaths", &o.not_paths),
    ])
}

fn condition(c: &RuleCondition) -> Value {
    let mut m = fields(&[("values", &c.values), ("notValues", &c.not_values)]);
    m.insert("key".into(), Value::String(c.key.clone()));
    Value::Object(m)
}
