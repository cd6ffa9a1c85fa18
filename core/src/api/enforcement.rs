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

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TenantObjects {
    Off,
    #[default]
    Warn,
    Deny,
}

/// Whether to generate Admin-tier ClusterNetworkPolicies.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdminTier {
    /// Where the cluster serves the ClusterNetworkPolicy API (detected at runtime).
    #[default]
    Auto,
    Off,
}

/// `Active`, `Off` (not asked for, or Audit mode) or `Unavailable` (the cluster does not
/// serve the API; see the findings MB901–MB903).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(crates(kube_core = "::kube_core"))]
#[serde(rename_all = "camelCase")]
pub struct EnforcementStatus {
    pub admission_guard: String,
    /// `Warn`, `Deny`, `Off` or `Unavailable`.
    pub tenant_objects: String,
    pub admin_tier: String,
}
