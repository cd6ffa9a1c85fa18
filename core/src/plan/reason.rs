//! The reasons the operator writes, in status conditions and in Events: one enum, shared by
//! the planner that writes them and the controller that acts on them. The strings are part of
//! the interface (docs/reference.md lists them).

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    // Ready
    Enforced,
    AuditOnly,
    AuditDryRun,
    InvalidSpec,
    // Reconciling
    ReconcileComplete,
    // Degraded
    AsExpected,
    IstioCrdsMissing,
    BaselineOverlap,
    AmbientHttpDenyRules,
    MeshMtlsNotInForce,
    WaypointIdentityUnknown,
    TenantOverrideFight,
    WriteFailed,
    // DriftDetected
    DriftRepaired,
    DriftNotRepaired,
    NoDrift,
    // Invalid
    Valid,
    // Events only
    Finding,
    TenantOverrideReverted,
}

impl Reason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Enforced => "Enforced",
            Reason::AuditOnly => "AuditOnly",
            Reason::AuditDryRun => "AuditDryRun",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::ReconcileComplete => "ReconcileComplete",
            Reason::AsExpected => "AsExpected",
            Reason::IstioCrdsMissing => "IstioCRDsMissing",
            Reason::BaselineOverlap => "BaselineOverlap",
            Reason::AmbientHttpDenyRules => "AmbientHttpDenyRules",
            Reason::MeshMtlsNotInForce => "MeshMtlsNotInForce",
            Reason::WaypointIdentityUnknown => "WaypointIdentityUnknown",
            Reason::TenantOverrideFight => "TenantOverrideFight",
            Reason::WriteFailed => "WriteFailed",
            Reason::DriftRepaired => "DriftRepaired",
            Reason::DriftNotRepaired => "DriftNotRepaired",
            Reason::NoDrift => "NoDrift",
            Reason::Valid => "Valid",
            Reason::Finding => "Finding",
            Reason::TenantOverrideReverted => "TenantOverrideReverted",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
