//! The kstatus-compatible status. Condition transition times are carried over while a
//! condition's status stays the same, so a reconcile that changes nothing builds a status
//! equal to the stored one and no write happens.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::baseline::{EnforcementStatus, FindingStatus, MeshBaselineStatus, NamespaceCounts};
use crate::audit::{Finding, Severity};

use super::Reason;

/// The status lists at most this many findings (most severe first); totals count all.
pub const FINDINGS_CAP: usize = 50;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const DEGRADED: &str = "Degraded";
pub const DRIFT_DETECTED: &str = "DriftDetected";
pub const INVALID: &str = "Invalid";
/// kstatus: `Stalled=True` means "failed, will not progress on its own" (Flux reads it).
pub const STALLED: &str = "Stalled";

/// One condition before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: Reason,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: Reason,
        message: impl Into<String>,
    ) -> Cond {
        Cond {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Conditions in a fixed order, with `lastTransitionTime` kept from `previous` when the
/// status (True/False) of a condition did not change.
pub fn conditions(
    conds: Vec<Cond>,
    generation: Option<i64>,
    previous: Option<&MeshBaselineStatus>,
    now: Timestamp,
) -> Vec<Condition> {
    conds
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let kept = previous
                .and_then(|p| p.conditions.iter().find(|pc| pc.type_ == c.type_))
                .filter(|pc| pc.status == status)
                .map(|pc| pc.last_transition_time.clone());
            Condition {
                type_: c.type_.to_string(),
                status: status.to_string(),
                reason: c.reason.as_str().to_string(),
                message: c.message,
                observed_generation: generation,
                last_transition_time: kept.unwrap_or(Time(now)),
            }
        })
        .collect()
}

/// The capped, sorted list and the totals of the findings.
pub fn findings_summary<'a>(
    findings: impl Iterator<Item = &'a Finding>,
) -> (Vec<FindingStatus>, u32, BTreeMap<String, u32>) {
    let mut sorted: Vec<&Finding> = findings.collect();
    sorted.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.namespace.cmp(&b.namespace))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.message.cmp(&b.message))
    });
    let list = sorted
        .iter()
        .take(FINDINGS_CAP)
        .map(|f| f.to_status())
        .collect();
    let mut by_severity = BTreeMap::new();
    for f in &sorted {
        *by_severity
            .entry(f.severity.as_str().to_string())
            .or_insert(0) += 1;
    }
    // Every severity is listed, zeros included, so dashboards see a stable shape.
    for s in Severity::ALL {
        by_severity.entry(s.as_str().to_string()).or_insert(0);
    }
    let total = u32::try_from(sorted.len()).unwrap_or(u32::MAX);
    (list, total, by_severity)
}

/// Everything but conditions and findings.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub namespaces: NamespaceCounts,
    pub managed_objects: u32,
    pub drift_repairs: u64,
    pub enforcement: Option<EnforcementStatus>,
    pub posture: Option<crate::api::baseline::PostureStatus>,
}

pub fn build(
    generation: Option<i64>,
    conds: Vec<Cond>,
    counts: Counts,
    // The audit's findings and the plan's own (MB901–MB903); `None`: the spec is invalid.
    findings: Option<(&[Finding], &[Finding])>,
    previous: Option<&MeshBaselineStatus>,
    now: Timestamp,
) -> MeshBaselineStatus {
    let conditions = conditions(conds, generation, previous, now);
    let (findings, findings_total, findings_by_severity) = match findings {
        Some((audit, plan)) => findings_summary(plan.iter().chain(audit)),
        // Invalid spec: the last known findings stay.
        None => previous
            .map(|p| {
                (
                    p.findings.clone(),
                    p.findings_total,
                    p.findings_by_severity.clone(),
                )
            })
            .unwrap_or_default(),
    };
    MeshBaselineStatus {
        observed_generation: generation,
        conditions,
        namespaces: counts.namespaces,
        managed_objects: counts.managed_objects,
        drift_repairs: counts.drift_repairs,
        findings_total,
        findings_by_severity,
        findings,
        enforcement: counts.enforcement,
        posture: counts.posture,
    }
}

/// Longest condition message or event note the operator writes: kubectl and dashboards show
/// them in one line, and Events are capped by the API server.
pub const MAX_NOTE: usize = 1000;

/// `text` cut to at most `max` bytes on a character boundary, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The status to write when some writes of a plan failed: the planned one (or the stored
/// one, when the plan changed nothing) with `Degraded=True`, reason `WriteFailed`, naming the
/// objects and the API's reasons. Without it a failing write would freeze the status at
/// whatever it said before.
pub fn with_write_failures(
    planned: Option<&MeshBaselineStatus>,
    previous: Option<&MeshBaselineStatus>,
    failures: &[(String, String)],
    now: Timestamp,
) -> MeshBaselineStatus {
    let mut status = planned.or(previous).cloned().unwrap_or_default();
    let listed: Vec<String> = failures
        .iter()
        .map(|(object, reason)| format!("{object}: {reason}"))
        .collect();
    let message = truncate(
        &format!(
            "{} failed: {}",
            if failures.len() == 1 {
                "1 write".to_string()
            } else {
                format!("{} writes", failures.len())
            },
            listed.join("; ")
        ),
        MAX_NOTE,
    );
    let was_true = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == DEGRADED))
        .is_some_and(|c| c.status == "True");
    let cond = Condition {
        type_: DEGRADED.to_string(),
        status: "True".to_string(),
        reason: Reason::WriteFailed.as_str().to_string(),
        message,
        observed_generation: status.observed_generation,
        last_transition_time: previous
            .and_then(|p| p.conditions.iter().find(|c| c.type_ == DEGRADED))
            .filter(|_| was_true)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now)),
    };
    match status.conditions.iter_mut().find(|c| c.type_ == DEGRADED) {
        Some(c) => *c = cond,
        None => status.conditions.push(cond),
    }
    status
}

/// `Degraded` problems from findings that mean a generated object is not in force (MB105) or
/// not generated (MB305): the first of each rule, and how many more (there may be one per
/// namespace).
pub(super) fn degrading(findings: &[crate::audit::Finding]) -> Vec<(Reason, String)> {
    let mut first: Vec<(Reason, &crate::audit::Finding, usize)> = Vec::new();
    for f in findings {
        // Below the rule's own severity, the object is out of force without changing the
        // mesh's behaviour (an older policy with the same mode).
        if let Some(reason) = f
            .rule
            .degrades()
            .filter(|_| f.severity >= f.rule.severity())
        {
            match first.iter_mut().find(|(r, _, _)| *r == reason) {
                Some((_, _, more)) => *more += 1,
                None => first.push((reason, f, 0)),
            }
        }
    }
    first
        .into_iter()
        .map(|(reason, f, more)| {
            let and_more = if more > 0 {
                format!(" (and {more} more {} findings)", f.rule)
            } else {
                String::new()
            };
            (reason, format!("{}: {}{and_more}", f.rule, f.message))
        })
        .collect()
}

#[cfg(test)]
mod write_failure_tests {
    use super::*;

    #[test]
    fn failures_make_the_status_degraded_and_name_the_objects() {
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let failures = vec![(
            "NetworkPolicy a/meshbaseline-baseline".to_string(),
            "403 Forbidden: denied".to_string(),
        )];
        let s = with_write_failures(None, None, &failures, now);
        let d = s.conditions.iter().find(|c| c.type_ == DEGRADED).unwrap();
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "WriteFailed")
        );
        assert!(d
            .message
            .contains("NetworkPolicy a/meshbaseline-baseline: 403 Forbidden"));
        let many: Vec<(String, String)> = (0..200)
            .map(|i| {
                (
                    format!("NetworkPolicy n{i}/meshbaseline-baseline"),
                    "500".into(),
                )
            })
            .collect();
        let s = with_write_failures(Some(&s), Some(&s), &many, now);
        let d = s.conditions.iter().find(|c| c.type_ == DEGRADED).unwrap();
        assert!(d.message.len() <= MAX_NOTE && d.message.starts_with("200 writes failed"));
        assert_eq!(truncate("ääää", 7), "ää...");
    }
}
