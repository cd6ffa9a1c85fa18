//! ValidatingAdmissionPolicies: the API server itself refuses what drift repair
//! would otherwise undo after the fact.
//!
//! - The guard (`meshbaseline-guard-<baseline>`): updates and deletes of generated objects,
//!   and creation of objects posing as them, by anyone but the operator and the API server's
//!   own controllers (the garbage collector and the namespace controller must still delete
//!   them).
//! - The tenant-object policy (`meshbaseline-tenant-<baseline>`): MB101, MB102, MB201, MB301,
//!   MB403, MB501, MB502 and MB506's capture overrides at admission, with the audit's wording. CEL has no clock, so active
//!   exemptions are literal lists the compiler rewrites when one starts or expires.
//!
//! Every expression is guarded with `has()`: a CEL error counts as a refusal under
//! `failurePolicy: Fail`, and Istio accepts objects without a `spec`.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::meta::ObjectFactory;
use super::names;
use super::network::NAMESPACE_NAME_LABEL;
use crate::api::baseline::{Control, MtlsMode, TenantObjects};
use crate::api::model::SYSTEM_NAMESPACES;
use crate::api::selector::{Requirement, Selector};
use crate::api::Baseline;
use crate::compile::Scope;
use crate::object::{DesiredObject, Kind, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// The API server's own controllers that delete or update generated objects: the garbage
/// collector (baseline deleted) and the namespace controller (namespace deleted), as their
/// own ServiceAccounts (`--use-service-account-credentials`) or as the controller manager.
fn system_user_condition(operator_user: &str) -> String {
    format!(
        "request.userInfo.username.startsWith('system:serviceaccount:kube-system:') || request.userInfo.username in ['system:kube-controller-manager', {}]",
        quote(operator_user)
    )
}

/// A CEL string literal. Names and usernames here never hold quotes or backslashes
/// (DNS labels, `system:serviceaccount:<ns>:<name>`), but escape them anyway.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The protected namespaces as a LabelSelector: the baseline's selector, minus the namespaces
/// that are never protected and `excluded` (those an older baseline claims, exempt ones).
pub(crate) fn protected_selector<'a>(
    baseline: &Baseline,
    excluded: impl IntoIterator<Item = &'a String>,
) -> Value {
    let mut out: Vec<String> = SYSTEM_NAMESPACES.iter().map(|s| s.to_string()).collect();
    out.push(baseline.root_namespace.clone());
    out.push(baseline.network.istiod_namespace.clone());
    out.extend(excluded.into_iter().cloned());
    out.sort();
    out.dedup();
    selector_json(&baseline.selector, &out)
}

fn selector_json(selector: &Selector, excluded: &[String]) -> Value {
    let mut exprs: Vec<Value> = selector
        .requirements
        .iter()
        .map(|r| match r {
            Requirement::In(k, vs) => json!({"key": k, "operator": "In", "values": vs}),
            Requirement::NotIn(k, vs) => json!({"key": k, "operator": "NotIn", "values": vs}),
            Requirement::Exists(k) => json!({"key": k, "operator": "Exists"}),
            Requirement::DoesNotExist(k) => json!({"key": k, "operator": "DoesNotExist"}),
        })
        .collect();
    if !excluded.is_empty() {
        exprs.push(json!({"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": excluded}));
    }
    json!({ "matchExpressions": exprs })
}

fn rule(group: &str, resources: &[&str], operations: &[&str]) -> Value {
    json!({
        "apiGroups": [group],
        "apiVersions": ["*"],
        "resources": resources,
        "operations": operations,
    })
}

/// Namespaces with an active exemption from `control`, sorted.
pub(crate) fn exempt_from(baseline: &Baseline, control: Control, now: Timestamp) -> Vec<String> {
    let mut out: Vec<String> = baseline
        .exemptions
        .iter()
        .filter(|e| e.controls.contains(&control) && e.expires > now)
        .map(|e| e.namespace.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn binding(policy: &str, actions: Value, namespaces: Value) -> Arc<Value> {
    Arc::new(json!({
        "policyName": policy,
        "validationActions": actions,
        "matchResources": {"namespaceSelector": namespaces},
    }))
}

/// The admission policies of `baseline`. Bindings exist only where there is something to
/// guard: the protected namespaces (none claimed by an older baseline) and, for the baseline
/// that owns it, the root namespace.
pub(crate) fn objects(
    baseline: &Baseline,
    scope: &Scope,
    any_protected: bool,
    now: Timestamp,
    factory: &ObjectFactory,
    out: &mut Vec<DesiredObject>,
) {
    let operator_user = scope.operator_user.as_str();
    let protected = || protected_selector(baseline, &scope.claimed_elsewhere);
    let vapb = Kind::ValidatingAdmissionPolicyBinding;
    if baseline.admission_guard && (any_protected || scope.owns_root) {
        let name = names::guard_name(&baseline.name);
        let policy = Arc::new(guard_policy(baseline, operator_user));
        out.push(factory.cluster_object(Kind::ValidatingAdmissionPolicy, &name, policy));
        let deny = || json!(["Deny"]);
        if any_protected {
            out.push(factory.cluster_object(vapb, &name, binding(&name, deny(), protected())));
        }
        if scope.owns_root {
            // The root namespace, and istiod's when it is another (its NetworkPolicy is there).
            let (root_ns, istiod_ns) =
                (&baseline.root_namespace, &baseline.network.istiod_namespace);
            let root = if root_ns == istiod_ns {
                json!({"matchLabels": {NAMESPACE_NAME_LABEL: root_ns}})
            } else {
                json!({"matchExpressions": [
                    {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": [root_ns, istiod_ns]},
                ]})
            };
            let root_name = names::guard_root_binding_name(&baseline.name);
            out.push(factory.cluster_object(vapb, &root_name, binding(&name, deny(), root)));
        }
    }
    if !any_protected {
        return;
    }
    let actions = match baseline.tenant_objects {
        TenantObjects::Disabled => return,
        // Audit too: the API server's audit log records what a Deny would have refused.
        TenantObjects::Warn => json!(["Warn", "Audit"]),
        TenantObjects::Deny => json!(["Deny"]),
    };
    let name = names::tenant_policy_name(&baseline.name);
    let policy = Arc::new(tenant_policy(baseline, operator_user, now));
    out.push(factory.cluster_object(Kind::ValidatingAdmissionPolicy, &name, policy));
    out.push(factory.cluster_object(vapb, &name, binding(&name, actions, protected())));
}

/// The generated kinds, as admission sees them.
fn generated_kind_rules(operations: &[&str]) -> Vec<Value> {
    let mut by_group: Vec<(&str, Vec<&str>)> = Vec::new();
    for k in Kind::ALL.into_iter().filter(|k| k.is_tenant_kind()) {
        match by_group.iter_mut().find(|(g, _)| *g == k.group()) {
            Some((_, rs)) => rs.push(k.plural()),
            None => by_group.push((k.group(), vec![k.plural()])),
        }
    }
    by_group
        .into_iter()
        .map(|(g, rs)| rule(g, &rs, operations))
        .collect()
}

fn guard_policy(baseline: &Baseline, operator_user: &str) -> Value {
    let label = format!(
        "has({o}.metadata.labels) && {l} in {o}.metadata.labels && {o}.metadata.labels[{l}] == {v}",
        o = "{o}",
        l = quote(MANAGED_BY_LABEL),
        v = quote(MANAGED_BY_VALUE),
    );
    let posing = format!(
        "object.metadata.name.startsWith({}) || ({})",
        quote(names::GENERATED_PREFIX),
        label.replace("{o}", "object")
    );
    let ours = label.replace("{o}", "oldObject");
    json!({
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": generated_kind_rules(&["CREATE", "UPDATE", "DELETE"]),
        },
        "matchConditions": [
            {"name": "not-the-operator-or-a-controller",
             "expression": format!("!({})", system_user_condition(operator_user))},
            {"name": "generated-or-posing-as-generated",
             "expression": format!(
                "(request.operation != 'CREATE' && ({ours})) || (request.operation != 'DELETE' && ({posing}))")},
        ],
        "validations": [{
            "expression": "false",
            "reason": "Forbidden",
            "messageExpression": format!(
                "'meshbaseline: ' + request.kind.kind + ' ' + request.namespace + '/' + request.name + ' is generated by MeshBaseline {b} and guarded: only the operator writes objects named meshbaseline-* or labelled {label}={value}. Change the MeshBaseline {b} instead (or request an exemption in its spec.exemptions); a platform admin can switch the guard off with spec.admission.guard: false.'",
                b = baseline.name, label = MANAGED_BY_LABEL, value = MANAGED_BY_VALUE),
        }],
    })
}

/// `request.namespace in [...] || ` when some namespaces are exempt from `control`.
fn exempt_clause(baseline: &Baseline, control: Control, now: Timestamp) -> String {
    let ns = exempt_from(baseline, control, now);
    if ns.is_empty() {
        String::new()
    } else {
        format!("request.namespace in {} || ", list(&ns))
    }
}

/// A TLS settings object at `path` (a DestinationRule trafficPolicy or port setting) that
/// switches mTLS off.
fn tls_ok(path: &str) -> String {
    format!("(!has({path}.tls) || !has({path}.tls.mode) || !({path}.tls.mode in ['DISABLE', 'SIMPLE']))")
}

fn traffic_policy_ok(tp: &str) -> String {
    format!(
        "({tls} && (!has({tp}.portLevelSettings) || {tp}.portLevelSettings.all(s, {port})))",
        tls = tls_ok(tp),
        port = tls_ok("s"),
    )
}

struct Validation {
    expression: String,
    message: String,
}

fn tenant_validations(baseline: &Baseline, now: Timestamp) -> Vec<Validation> {
    let weak = match baseline.mtls.mode {
        MtlsMode::Strict => "['PERMISSIVE', 'DISABLE']",
        MtlsMode::Permissive => "['DISABLE']",
    };
    let base_mode = match baseline.mtls.mode {
        MtlsMode::Strict => "STRICT",
        MtlsMode::Permissive => "PERMISSIVE",
    };
    let mtls_exempt = exempt_clause(baseline, Control::Mtls, now);
    let has_selector = "(has(object.spec.selector) && has(object.spec.selector.matchLabels) && size(object.spec.selector.matchLabels) > 0)";
    let mode_weak = format!(
        "(has(object.spec.mtls) && has(object.spec.mtls.mode) && object.spec.mtls.mode in {weak})"
    );
    let port_weak = format!(
        "(has(object.spec.portLevelMtls) && object.spec.portLevelMtls.exists(p, has(object.spec.portLevelMtls[p].mode) && object.spec.portLevelMtls[p].mode in {weak}))"
    );
    let who = "request.kind.kind + ' ' + request.namespace + '/' + request.name";
    let mut out = vec![
        Validation {
            expression: format!(
                "request.kind.kind != 'PeerAuthentication' || {mtls_exempt}!has(object.spec) || {has_selector} || !{mode_weak}"
            ),
            message: format!(
                "'MB101: namespace-wide PeerAuthentication ' + request.namespace + '/' + request.name + ' is weaker than the baseline ({base_mode}): it lets plaintext into every workload of the namespace. Set spec.mtls.mode to {base_mode} (or UNSET) or delete it.'"
            ),
        },
        Validation {
            expression: format!(
                "request.kind.kind != 'PeerAuthentication' || {mtls_exempt}!has(object.spec) || !(({has_selector} && {mode_weak}) || {port_weak})"
            ),
            message: format!(
                "'MB102: workload- or port-level PeerAuthentication ' + request.namespace + '/' + request.name + ' is weaker than the baseline ({base_mode}). Set the weakened mtls/portLevelMtls modes to {base_mode}.'"
            ),
        },
    ];
    if baseline.mtls.mode == MtlsMode::Strict {
        let domain = &baseline.cluster_domain;
        let svc = quote(&format!(".svc.{domain}"));
        // As the audit reads it: trimmed, lower case, without a trailing dot (`reviews.` and
        // `Reviews.shop.svc.cluster.local.` are in-mesh hosts too).
        let host = "variables.host";
        let in_mesh = format!(
            "({host} == '*' || !{host}.contains('.') || {host}.endsWith('.svc') || {host}.endsWith({svc}) || ({host}.startsWith('*') && {svc}.endsWith({host}.substring(1))))"
        );
        let tp = "object.spec.trafficPolicy";
        let subsets = format!(
            "(!has(object.spec.subsets) || object.spec.subsets.all(ss, !has(ss.trafficPolicy) || {}))",
            traffic_policy_ok("ss.trafficPolicy")
        );
        out.push(Validation {
            expression: format!(
                "request.kind.kind != 'DestinationRule' || {mtls_exempt}!has(object.spec) || !has(object.spec.host) || !{in_mesh} || ((!has({tp}) || {}) && {subsets})",
                traffic_policy_ok(tp)
            ),
            message: "'MB201: DestinationRule ' + request.namespace + '/' + request.name + ' sets tls.mode DISABLE or SIMPLE for an in-mesh host (' + object.spec.host + ') under STRICT mTLS: clients send plaintext or TLS without the mesh identity and calls fail with 503s. Set tls.mode: ISTIO_MUTUAL or remove the TLS settings.'".to_string(),
        });
    }
    let positive = |s: &str| {
        format!(
            "((has({s}.principals) && size({s}.principals) > 0) || (has({s}.namespaces) && size({s}.namespaces) > 0) || (has({s}.requestPrincipals) && size({s}.requestPrincipals) > 0))"
        )
    };
    let when_identity = "(has(r.when) && r.when.exists(c, has(c.key) && c.key in ['source.principal', 'source.namespace', 'request.auth.principal'] && has(c.values) && size(c.values) > 0))";
    out.push(Validation {
        expression: format!(
            "request.kind.kind != 'AuthorizationPolicy' || {}!has(object.spec) || (has(object.spec.action) && object.spec.action != 'ALLOW') || !has(object.spec.rules) || object.spec.rules.all(r, {when_identity} || (has(r.from) && size(r.from) > 0 && r.from.all(f, has(f.source) && {})))",
            exempt_clause(baseline, Control::Authorization, now),
            positive("f.source"),
        ),
        message: "'MB301: ALLOW AuthorizationPolicy ' + request.namespace + '/' + request.name + ' admits requests without an authenticated identity: ALLOW rules add up, so this re-opens the workloads to plaintext and unauthenticated callers. Add a from.source with principals or namespaces to each rule.'".to_string(),
    });
    if baseline.network.egress.registry_only {
        out.push(registry_only_sidecar(baseline, now));
    }
    let workloads_exempt = exempt_clause(baseline, Control::Workloads, now);
    let app = "!(c.name in ['istio-proxy', 'istio-init', 'istio-validation'])";
    let id = |field: &str| {
        format!(
            "((has(c.securityContext) && has(c.securityContext.{field})) ? c.securityContext.{field} == 1337 : (has(variables.podSpec.securityContext) && has(variables.podSpec.securityContext.{field}) && variables.podSpec.securityContext.{field} == 1337))"
        )
    };
    out.push(Validation {
        expression: format!(
            "!variables.isWorkload || {workloads_exempt}variables.ambientNamespace || !variables.containers.exists(c, {app} && ({} || {}))",
            id("runAsUser"),
            id("runAsGroup")
        ),
        message: format!(
            "'MB501: ' + {who} + ' runs a container as UID or GID 1337, the proxy\\'s own: its traffic skips the sidecar\\'s redirection. Use any other UID/GID.'"
        ),
    });
    out.push(Validation {
        expression: format!(
            "!variables.isWorkload || {workloads_exempt}!variables.containers.exists(c, {app} && has(c.securityContext) && ((has(c.securityContext.privileged) && c.securityContext.privileged) || (has(c.securityContext.capabilities) && has(c.securityContext.capabilities.add) && c.securityContext.capabilities.add.exists(a, a.trim().upperAscii() in ['NET_ADMIN', 'NET_RAW', 'ALL', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_ALL']))))"
        ),
        message: format!(
            "'MB502: ' + {who} + ' has containers that can rewrite the pod\\'s iptables rules (NET_ADMIN, NET_RAW, ALL or privileged) and so escape the mesh\\'s traffic capture. Drop the capabilities and set privileged: false.'"
        ),
    });
    out.push(capture_overrides(&workloads_exempt));
    out
}

/// MB403: a tenant Sidecar replaces the root REGISTRY_ONLY Sidecar for its workloads, and
/// without REGISTRY_ONLY of its own lifts it (Istio's `getSidecarScope`).
fn registry_only_sidecar(baseline: &Baseline, now: Timestamp) -> Validation {
    Validation {
        expression: format!(
            "request.kind.kind != 'Sidecar' || {}(has(object.spec) && has(object.spec.outboundTrafficPolicy) && has(object.spec.outboundTrafficPolicy.mode) && object.spec.outboundTrafficPolicy.mode == 'REGISTRY_ONLY')",
            exempt_clause(baseline, Control::Network, now),
        ),
        message: "'MB403: Sidecar ' + request.namespace + '/' + request.name + ' would replace the mesh\\'s REGISTRY_ONLY Sidecar for its workloads (Istio applies one Sidecar per proxy) and let them reach hosts outside the service registry. Set spec.outboundTrafficPolicy.mode: REGISTRY_ONLY.'".to_string(),
    }
}

/// MB506 (capture part): pod annotations that narrow the sidecar's capture or switch it off
/// (`includeInboundPorts` or `includeOutboundIPRanges` other than `*`, `interceptionMode:
/// NONE`); the injector writes `*` and the mesh's mode itself. Not in ambient namespaces.
fn capture_overrides(workloads_exempt: &str) -> Validation {
    let ann = "variables.podTemplate.metadata.annotations";
    let narrowed = |key: &str| format!("('{key}' in {ann} && {ann}['{key}'].trim() != '*')");
    Validation {
        expression: format!(
            "!variables.isWorkload || {workloads_exempt}variables.ambientNamespace || !has(variables.podTemplate.metadata) || !has(variables.podTemplate.metadata.annotations) || !({} || {} || ('sidecar.istio.io/interceptionMode' in {ann} && {ann}['sidecar.istio.io/interceptionMode'].trim() == 'NONE'))",
            narrowed("traffic.sidecar.istio.io/includeInboundPorts"),
            narrowed("traffic.sidecar.istio.io/includeOutboundIPRanges"),
        ),
        message: "'MB506: ' + request.kind.kind + ' ' + request.namespace + '/' + request.name + ' narrows or switches off the sidecar\\'s traffic capture (traffic.sidecar.istio.io/includeInboundPorts or includeOutboundIPRanges other than *, or sidecar.istio.io/interceptionMode: NONE): traffic outside it passes in plaintext, past mTLS and AuthorizationPolicy. Remove the annotation.'".to_string(),
    }
}

fn tenant_policy(baseline: &Baseline, operator_user: &str, now: Timestamp) -> Value {
    let validations: Vec<Value> = tenant_validations(baseline, now)
        .into_iter()
        .map(|v| {
            json!({
                "expression": v.expression,
                "messageExpression": v.message,
                "reason": "Forbidden",
            })
        })
        .collect();
    let write = ["CREATE", "UPDATE"];
    json!({
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                rule("security.istio.io", &["peerauthentications", "authorizationpolicies"], &write),
                rule("networking.istio.io", &["destinationrules", "sidecars"], &write),
                // ReplicationControllers too: `edit` may create them, and their controller (a
                // kube-system ServiceAccount, let through) creates the pods.
                rule("", &["pods", "replicationcontrollers"], &write),
                rule("apps", &["deployments", "statefulsets", "daemonsets", "replicasets"], &write),
                rule("batch", &["jobs", "cronjobs"], &write),
            ],
        },
        "matchConditions": [
            {"name": "not-the-operator-or-a-controller",
             "expression": format!("!({})", system_user_condition(operator_user))},
        ],
        "variables": [
            {"name": "isWorkload",
             "expression": "request.kind.kind in ['Pod', 'Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ReplicationController', 'Job', 'CronJob']"},
            // Evaluated only where a DestinationRule's host is read (variables are lazy).
            {"name": "hostText", "expression": "object.spec.host.trim().lowerAscii()"},
            {"name": "host",
             "expression": "variables.hostText.endsWith('.') ? variables.hostText.substring(0, size(variables.hostText) - 1) : variables.hostText"},
            {"name": "podSpec",
             "expression": "request.kind.kind == 'Pod' ? object.spec : (request.kind.kind == 'CronJob' ? object.spec.jobTemplate.spec.template.spec : object.spec.template.spec)"},
            // What carries the pod's metadata: the pod itself, or its template.
            {"name": "podTemplate",
             "expression": "request.kind.kind == 'Pod' ? object : (request.kind.kind == 'CronJob' ? object.spec.jobTemplate.spec.template : object.spec.template)"},
            {"name": "containers",
             "expression": "variables.podSpec.containers + (has(variables.podSpec.initContainers) ? variables.podSpec.initContainers : [])"},
            // UID 1337 is not special to ztunnel (the audit's MB501 skips ambient pods too).
            {"name": "ambientNamespace",
             "expression": "has(namespaceObject.metadata.labels) && 'istio.io/dataplane-mode' in namespaceObject.metadata.labels && namespaceObject.metadata.labels['istio.io/dataplane-mode'] == 'ambient'"},
        ],
        "validations": validations,
    })
}

#[cfg(test)]
mod tests;
