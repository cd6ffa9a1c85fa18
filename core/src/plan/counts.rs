//! The status's counts: namespaces, managed objects, drift repairs, what the cluster can
//! enforce of the baseline, and the workloads' posture (computed by the caller).

use crate::api::baseline::{EnforcementStatus, MeshBaselineStatus, Mode, NamespaceCounts};
use crate::api::Baseline;
use crate::object::Kind;

use super::status::Counts;
use super::{dry_run, PlanInput, Writes};

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The counts of a valid spec's plan.
pub(super) fn valid(
    input: &PlanInput,
    baseline: &Baseline,
    w: &Writes,
    enforcement: EnforcementStatus,
) -> Counts {
    let enforce = baseline.mode == Mode::Enforce;
    // Objects of kinds the cluster does not serve are not written, so not managed.
    let dry_run_written =
        baseline.dry_run() && !input.missing_kinds.contains(&Kind::AuthorizationPolicy);
    let managed_objects = if dry_run_written {
        count(dry_run::policies(input.compiled))
    } else if enforce {
        count(w.written(input))
    } else {
        0
    };
    let repairs = if enforce { w.repairs as u64 } else { 0 };
    Counts {
        namespaces: NamespaceCounts {
            protected: count(input.compiled.protected.len()),
            exempt: count(input.compiled.exempt.len()),
        },
        managed_objects,
        drift_repairs: input.previous.map_or(0, |p| p.drift_repairs) + repairs,
        enforcement: Some(enforcement),
        posture: input.posture.cloned(),
    }
}

/// The counts while the spec is invalid: the last ones stand.
pub(super) fn kept(previous: Option<&MeshBaselineStatus>) -> Counts {
    previous
        .map(|p| Counts {
            namespaces: p.namespaces.clone(),
            managed_objects: p.managed_objects,
            drift_repairs: p.drift_repairs,
            enforcement: p.enforcement.clone(),
            posture: p.posture.clone(),
        })
        .unwrap_or_default()
}
