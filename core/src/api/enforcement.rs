//! The parts of the `MeshBaseline` API about enforcement beyond generated objects: the
//! admission guards, the Admin network-policy tier, and what of them is in force.

use kube_derive::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}

/// ValidatingAdmissionPolicies generated from the baseline: refused before they happen,
/// instead of repaired after.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct AdmissionSpec {
    /// Refuse updates and deletes of the generated objects, and creation of objects posing as
    /// them, by anyone but the operator and the API server's own controllers (Enforce mode).
    #[serde(default = "yes")]
    pub guard: bool,
    /// Refuse (`Deny`) or warn about (`Warn`) tenant objects that weaken the mesh in protected
    /// namespaces: MB101, MB102, MB201, MB301, MB501, MB502 at admission.
    #[serde(default)]
    pub tenant_objects: TenantObjects,
}

impl Default for AdmissionSpec {
    fn default() -> Self {
        Self {
            guard: true,
            tenant_objects: TenantObjects::default(),
        }
    }
}

/// What the admission policy for tenant objects does: `Disabled` (none; the audit still
/// reports them), `Warn` (admitted with a warning, also in the audit log) or `Deny`.
/// Every value is a word YAML 1.1 reads as a string (`Off` would be the boolean false).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TenantObjects {
    // Variants carry no doc comments: schemars would turn the enum into a `oneOf`.
    Disabled,
    #[default]
    Warn,
    Deny,
}

/// Whether to generate Admin-tier ClusterNetworkPolicies: `Auto` (wherever the cluster
/// serves the ClusterNetworkPolicy API, detected at runtime) or `Disabled`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdminTier {
    #[default]
    Auto,
    Disabled,
}

/// What is in force: each field is `Active`, `Disabled` (not asked for, or Audit mode) or
/// `Unavailable` (the cluster does not serve the API; see the findings MB901–MB903).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct EnforcementStatus {
    /// The guard of the generated objects: `Active`, `Disabled` or `Unavailable`.
    pub admission_guard: String,
    /// The tenant-object policy: `Warn`, `Deny`, `Disabled` or `Unavailable`.
    pub tenant_objects: String,
    /// Admin-tier ClusterNetworkPolicies: `Active`, `Disabled` or `Unavailable`.
    pub admin_tier: String,
}
