//! The kstatus-compatible status. Condition transition times are carried over while a
//! condition's status stays the same, so a reconcile that changes nothing builds a status
//! equal to the stored one and no write happens.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::baseline::{FindingStatus, MeshBaselineStatus, NamespaceCounts};
use crate::audit::{Finding, Severity};

/// The status lists at most this many findings (most severe first); totals count all.
pub const FINDINGS_CAP: usize = 50;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const DEGRADED: &str = "Degraded";
pub const DRIFT_DETECTED: &str = "DriftDetected";
pub const INVALID: &str = "Invalid";

/// One condition before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Cond {
        Cond {
            type_,
            status,
            reason: reason.to_string(),
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
                reason: c.reason,
                message: c.message,
                observed_generation: generation,
                last_transition_time: kept.unwrap_or(Time(now)),
            }
        })
        .collect()
}

/// The capped, sorted list and the totals of the findings.
pub fn findings_summary(findings: &[Finding]) -> (Vec<FindingStatus>, u32, BTreeMap<String, u32>) {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
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
    for f in findings {
        *by_severity
            .entry(f.severity.as_str().to_string())
            .or_insert(0) += 1;
    }
    // Every severity is listed, zeros included, so dashboards see a stable shape.
    for s in Severity::ALL {
        by_severity.entry(s.as_str().to_string()).or_insert(0);
    }
    let total = u32::try_from(findings.len()).unwrap_or(u32::MAX);
    (list, total, by_severity)
}

/// Everything but conditions and findings.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub namespaces: NamespaceCounts,
    pub managed_objects: u32,
    pub drift_repairs: u64,
}

pub fn build(
    generation: Option<i64>,
    conds: Vec<Cond>,
    counts: Counts,
    findings: Option<&[Finding]>,
    previous: Option<&MeshBaselineStatus>,
    now: Timestamp,
) -> MeshBaselineStatus {
    let conditions = conditions(conds, generation, previous, now);
    let (findings, findings_total, findings_by_severity) = match findings {
        Some(f) => findings_summary(f),
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
    }
}
