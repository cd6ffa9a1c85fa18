//! Pacing of what churn would otherwise repeat: status writes that change only findings or
//! counts, and "Finding" events. Pods replaced in a loop (a crash-looping workload running as
//! UID 1337) change the findings on every debounce; without pacing that is ten status writes
//! and up to two hundred events a second per baseline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::api::baseline::MeshBaselineStatus;
use crate::plan::{Plan, MAX_FINDING_EVENTS};

/// At most one status write per baseline this often, unless a condition changes.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// "Finding" events per namespace per window; the rest are only in the status. Per namespace,
/// so a tenant who floods findings in theirs uses up only their own budget.
const EVENT_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Pacing {
    /// When the last status was written, and whether it changed only findings or counts.
    last_status_write: Option<(Instant, bool)>,
    /// Per namespace of the objects concerned: start of its window and the events sent in it.
    windows: HashMap<Option<String>, (Instant, usize)>,
}

/// Whether `new` differs from `old` only in findings or counts (no condition changed).
fn findings_only(new: &MeshBaselineStatus, old: Option<&MeshBaselineStatus>) -> bool {
    old.is_some_and(|o| o.conditions == new.conditions)
}

impl Pacing {
    /// Holds back a status write that changes no condition within `STATUS_INTERVAL` of the
    /// last such write; returns how long until it may be written (the reconcile is requeued
    /// then). The first one after any other write goes at once, so a status settles as soon
    /// as before when nothing churns. Also drops "Finding" events over their namespace's
    /// budget.
    pub fn pace(
        &mut self,
        plan: &mut Plan,
        written: Option<&MeshBaselineStatus>,
        now: Instant,
    ) -> Option<Duration> {
        self.windows
            .retain(|_, (start, _)| now.duration_since(*start) < EVENT_WINDOW);
        let windows = &mut self.windows;
        plan.events.retain(|e| {
            if e.reason != "Finding" {
                return true;
            }
            let (_, sent) = windows.entry(e.namespace.clone()).or_insert((now, 0));
            *sent += 1;
            *sent <= MAX_FINDING_EVENTS
        });

        let new = plan.status.as_ref()?;
        if !findings_only(new, written) {
            return None;
        }
        let (at, last_findings_only) = self.last_status_write?;
        let elapsed = now.duration_since(at);
        if !last_findings_only || elapsed >= STATUS_INTERVAL {
            return None;
        }
        plan.status = None;
        Some(STATUS_INTERVAL - elapsed)
    }

    /// `status` was written at `now`, replacing `previous`.
    pub fn status_written(
        &mut self,
        now: Instant,
        status: &MeshBaselineStatus,
        previous: Option<&MeshBaselineStatus>,
    ) {
        self.last_status_write = Some((now, findings_only(status, previous)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{status, EventType, PlannedEvent};

    fn finding_event(ns: &str, n: usize) -> PlannedEvent {
        PlannedEvent {
            type_: EventType::Warning,
            reason: "Finding".into(),
            action: "Audit".into(),
            note: format!("MB501 pod-{n}"),
            namespace: Some(ns.into()),
            related: None,
        }
    }

    fn status(findings: u32, ready_message: &str) -> MeshBaselineStatus {
        let mut s = MeshBaselineStatus {
            findings_total: findings,
            ..MeshBaselineStatus::default()
        };
        s.conditions = status::conditions(
            vec![status::Cond::new(
                status::READY,
                true,
                "Enforced",
                ready_message,
            )],
            Some(1),
            None,
            jiff::Timestamp::UNIX_EPOCH,
        );
        s
    }

    #[test]
    fn findings_only_status_changes_wait_for_the_interval() {
        let t0 = Instant::now();
        let mut pacing = Pacing::default();
        let written = status(1, "3 objects");
        // The first findings-only change goes at once.
        let mut p = Plan {
            status: Some(status(2, "3 objects")),
            ..Plan::default()
        };
        assert_eq!(pacing.pace(&mut p, Some(&written), t0), None);
        let previous = written;
        let written = status(2, "3 objects");
        pacing.status_written(t0, &written, Some(&previous));
        let mut p = Plan {
            status: Some(status(3, "3 objects")),
            ..Plan::default()
        };
        let wait = pacing.pace(&mut p, Some(&written), t0 + Duration::from_millis(300));
        assert_eq!(wait, Some(Duration::from_millis(700)));
        assert!(p.status.is_none(), "held back");
        // After the interval it goes.
        let mut p = Plan {
            status: Some(status(3, "3 objects")),
            ..Plan::default()
        };
        assert_eq!(
            pacing.pace(&mut p, Some(&written), t0 + STATUS_INTERVAL),
            None
        );
        assert!(p.status.is_some());
        // A condition change goes at once.
        let mut p = Plan {
            status: Some(status(3, "4 objects")),
            ..Plan::default()
        };
        assert_eq!(
            pacing.pace(&mut p, Some(&written), t0 + Duration::from_millis(1)),
            None
        );
        assert!(p.status.is_some());
    }

    #[test]
    fn finding_events_have_a_budget_per_namespace_and_window() {
        let t0 = Instant::now();
        let mut pacing = Pacing::default();
        let mut sent = 0;
        for round in 0..5 {
            let mut p = Plan {
                events: (0..15)
                    .map(|i| finding_event("flood", round * 15 + i))
                    .collect(),
                ..Plan::default()
            };
            pacing.pace(&mut p, None, t0 + Duration::from_secs(round as u64));
            sent += p.events.len();
        }
        assert_eq!(sent, MAX_FINDING_EVENTS);
        // Another tenant's namespace is not starved by the flood.
        let mut p = Plan {
            events: vec![finding_event("payments", 1)],
            ..Plan::default()
        };
        pacing.pace(&mut p, None, t0 + Duration::from_secs(6));
        assert_eq!(p.events.len(), 1, "own budget");
        let mut p = Plan {
            events: vec![finding_event("flood", 99)],
            ..Plan::default()
        };
        pacing.pace(&mut p, None, t0 + EVENT_WINDOW);
        assert_eq!(p.events.len(), 1, "a new window");
    }
}
