//! Names of the generated objects. They are an interface: the planner deletes by them, the
//! audit recognises them, and users grep for them.

/// Every generated object's name starts with this. The controller indexes the objects with
/// such names for the planner; the name proves nothing about who wrote the object.
pub const GENERATED_PREFIX: &str = "meshbaseline-";

/// Per protected namespace: DENY for requests without an mTLS principal (G1, G2).
pub const DENY_PLAINTEXT: &str = "meshbaseline-deny-plaintext";
/// Per protected namespace: ISTIO_MUTUAL for `*.<ns>.svc.<clusterDomain>` (G9).
pub const MTLS_DESTINATION_RULE: &str = "meshbaseline-mtls";
/// Per protected namespace: TCP only, DNS, egress per mode (G4, G5, G7, G10).
pub const BASELINE_NETWORK_POLICY: &str = "meshbaseline-baseline";
/// Per ambient namespace using a waypoint (opt-in): L4 ALLOW for the waypoint's identity only.
pub const WAYPOINT_ONLY: &str = "meshbaseline-waypoint-only";
/// Root namespace (opt-in): the AuthorizationPolicy bound to the `istio-waypoint`
/// GatewayClass, so every waypoint refuses what no policy bound to it allows.
pub const WAYPOINT_DEFAULT_DENY: &str = "meshbaseline-waypoint-default-deny";
/// Root namespace: the mesh-wide PeerAuthentication.
pub const MESH_PEER_AUTHENTICATION: &str = "meshbaseline-mesh-mtls";
/// Root namespace: ingress to istiod on 15012, 15017 and 15014 only (G8).
pub const ISTIOD_NETWORK_POLICY: &str = "meshbaseline-istiod";
/// Root namespace: the mesh default Sidecar with REGISTRY_ONLY outbound traffic (G7).
pub const REGISTRY_ONLY_SIDECAR: &str = "meshbaseline-registry-only";

/// Prefix of the root-namespace AuthorizationPolicy generated for a user deny rule.
pub const DENY_RULE_PREFIX: &str = "meshbaseline-deny-";

/// The AuthorizationPolicy name of the user deny rule `rule` (a DNS-1123 label of at most 40
/// characters, so the result is a valid object name).
pub fn deny_rule_name(rule: &str) -> String {
    format!("{DENY_RULE_PREFIX}{rule}")
}

/// Prefix of the root-namespace AuthorizationPolicy that makes waypoints enforce a user deny
/// rule. No rule name can make a `meshbaseline-deny-` name collide with it.
pub const WAYPOINT_DENY_RULE_PREFIX: &str = "meshbaseline-waypoint-deny-";

/// The waypoints' twin of the user deny rule `rule`.
pub fn waypoint_deny_rule_name(rule: &str) -> String {
    format!("{WAYPOINT_DENY_RULE_PREFIX}{rule}")
}

// Cluster-scoped objects carry the baseline's name after a fixed word; no word is a prefix of
// another, so two baselines' names can never collide.

/// ValidatingAdmissionPolicy and its binding for protected namespaces: the guard of generated
/// objects.
pub fn guard_name(baseline: &str) -> String {
    format!("{GENERATED_PREFIX}guard-{baseline}")
}

/// The guard's binding for the root namespace.
pub fn guard_root_binding_name(baseline: &str) -> String {
    format!("{GENERATED_PREFIX}rootguard-{baseline}")
}

/// ValidatingAdmissionPolicy and binding for tenant objects.
pub fn tenant_policy_name(baseline: &str) -> String {
    format!("{GENERATED_PREFIX}tenant-{baseline}")
}

/// Admin-tier ClusterNetworkPolicy for the protected namespaces.
pub fn admin_tier_name(baseline: &str) -> String {
    format!("{GENERATED_PREFIX}namespaces-{baseline}")
}

/// Admin-tier ClusterNetworkPolicy for istiod.
pub fn admin_tier_istiod_name(baseline: &str) -> String {
    format!("{GENERATED_PREFIX}istiod-{baseline}")
}
