//! What the cluster can enforce of what the baseline asks: the admission guards
//! need the ValidatingAdmissionPolicy API, the Admin tier the ClusterNetworkPolicy API.
//! Shown as `status.enforcement` and as findings MB901–MB903.

use std::collections::BTreeSet;

use crate::api::baseline::{AdminTier, EnforcementStatus, TenantObjects};
use crate::api::Baseline;
use crate::audit::{Finding, Rule};
use crate::compile::Compiled;
use crate::object::Kind;

use super::diff::Apply;

const ACTIVE: &str = "Active";
const DISABLED: &str = "Disabled";
const UNAVAILABLE: &str = "Unavailable";

pub(super) struct Enforcement {
    pub status: EnforcementStatus,
    pub findings: Vec<Finding>,
}

fn finding(baseline: &Baseline, rule: Rule, message: String, fix: &str) -> Finding {
    Finding {
        rule,
        severity: rule.severity(),
        kind: "MeshBaseline".into(),
        namespace: None,
        name: baseline.name.clone(),
        message,
        fix: fix.into(),
    }
}

fn is_admission(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::ValidatingAdmissionPolicy | Kind::ValidatingAdmissionPolicyBinding
    )
}

pub(super) fn enforcement(
    baseline: &Baseline,
    enforce: bool,
    compiled: &Compiled,
    // What the diff found absent or different from the desired objects.
    applies: &[Apply],
    missing_kinds: &BTreeSet<Kind>,
) -> Enforcement {
    let admission_missing = missing_kinds.iter().any(|k| is_admission(*k));
    let cnp_asked = compiled
        .objects
        .iter()
        .any(|o| o.key.kind == Kind::ClusterNetworkPolicy);
    let cnp_missing = missing_kinds.contains(&Kind::ClusterNetworkPolicy);
    let mut findings = unavailable(baseline, admission_missing, cnp_asked && cnp_missing);
    // A guard that was in force and is no longer as generated (a repair, not a spec change):
    // someone with rights over cluster-scoped objects removed or changed it.
    if enforce && !admission_missing {
        let repaired = applies
            .iter()
            .filter(|a| a.repair && is_admission(a.key.kind));
        findings.extend(repaired.map(|a| guard_repaired(baseline, a)));
    }
    let guard = if !enforce || !baseline.admission_guard {
        DISABLED
    } else if admission_missing {
        UNAVAILABLE
    } else {
        ACTIVE
    };
    let tenant = match baseline.tenant_objects {
        _ if !enforce => DISABLED,
        TenantObjects::Disabled => DISABLED,
        _ if admission_missing => UNAVAILABLE,
        TenantObjects::Warn => "Warn",
        TenantObjects::Deny => "Deny",
    };
    let admin = if !enforce || !cnp_asked {
        DISABLED
    } else if cnp_missing {
        UNAVAILABLE
    } else {
        ACTIVE
    };
    Enforcement {
        status: EnforcementStatus {
            admission_guard: guard.into(),
            tenant_objects: tenant.into(),
            admin_tier: admin.into(),
        },
        findings,
    }
}

/// MB901 and MB903: what the baseline asks for and the cluster does not serve.
fn unavailable(baseline: &Baseline, admission_missing: bool, cnp_missing: bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    let admission_asked =
        baseline.admission_guard || baseline.tenant_objects != TenantObjects::Disabled;
    if admission_asked && admission_missing {
        findings.push(finding(
            baseline,
            Rule::MB901,
            format!(
                "MeshBaseline {} asks for admission guards (spec.admission), but the cluster does not serve admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy (Kubernetes 1.30+): tenants' edits of generated objects are only repaired after the fact, and weak tenant objects are only reported.",
                baseline.name
            ),
            "Upgrade to Kubernetes 1.30 or later (or enable the admissionregistration.k8s.io/v1 API), or set spec.admission.guard: false and spec.admission.tenantObjects: Disabled.",
        ));
    }
    if baseline.network.admin_tier == AdminTier::Auto && cnp_missing {
        findings.push(finding(
            baseline,
            Rule::MB903,
            format!(
                "MeshBaseline {} has network.adminTier: Auto, but the cluster does not serve ClusterNetworkPolicy (policy.networking.k8s.io v1beta1 or v1alpha2): NetworkPolicies add up, so a tenant's NetworkPolicy can still allow UDP or egress that the baseline closes.",
                baseline.name
            ),
            "Install a network plugin that implements ClusterNetworkPolicy (Calico 3.32+, Antrea 2.7+, kube-network-policies) and its CRDs from sigs.k8s.io/network-policy-api, or set spec.network.adminTier: Disabled.",
        ));
    }
    findings
}

/// MB902: a generated admission object repaired.
fn guard_repaired(baseline: &Baseline, a: &Apply) -> Finding {
    let what = if a.live.is_some() {
        "changed"
    } else {
        "absent"
    };
    finding(
        baseline,
        Rule::MB902,
        format!(
            "{} {} is {what}: until it is restored the API server does not refuse what it guards.",
            a.key.kind, a.key.name
        ),
        "The operator restores it; if this finding stays, check the operator's RBAC for admissionregistration.k8s.io and who else writes the object.",
    )
}
