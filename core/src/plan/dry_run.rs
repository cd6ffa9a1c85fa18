//! Audit mode's dry run (`audit.dryRunPolicies`): only the AuthorizationPolicies are written,
//! compiled with `istio.io/dry-run: "true"`. Istio evaluates them without enforcing them, and
//! Enforce later replaces them with the enforcing ones (same names, `"false"`).

use super::status::{Cond, READY};
use super::{plural, Apply, Reason};
use crate::api::Baseline;
use crate::compile::Compiled;
use crate::object::Kind;

/// The applies a dry run writes: the AuthorizationPolicies among `applies`, none otherwise.
pub(super) fn applies(baseline: &Baseline, applies: &[Apply]) -> Vec<Apply> {
    if !baseline.dry_run() {
        return Vec::new();
    }
    applies
        .iter()
        .filter(|a| a.key.kind == Kind::AuthorizationPolicy)
        .cloned()
        .collect()
}

/// How many AuthorizationPolicies a dry run keeps in the cluster.
pub(super) fn policies(compiled: &Compiled) -> usize {
    compiled
        .objects
        .iter()
        .filter(|o| o.key.kind == Kind::AuthorizationPolicy)
        .count()
}

/// `Ready` during a dry run: what is written, and what Enforce would write besides.
pub(super) fn ready(policies: usize, others: usize, deletes: usize) -> Cond {
    Cond::new(
        READY,
        true,
        Reason::AuditDryRun,
        format!(
            "Audit mode: {} written as dry-run (istio.io/dry-run: \"true\"), enforcing nothing; {} and {} would be written",
            if policies == 1 {
                "1 AuthorizationPolicy".to_string()
            } else {
                format!("{policies} AuthorizationPolicies")
            },
            plural(others, "other object"),
            plural(deletes, "deletion")
        ),
    )
}
