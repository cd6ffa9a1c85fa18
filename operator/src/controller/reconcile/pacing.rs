//! Pacing of what churn would otherwise repeat: status writes that change only findings or
//! counts, and "Finding" events. Pods replaced in a loop (a crash-looping workload running as
//! UID 1337) change the findings on every debounce; without pacing that is ten status writes
//! and up to two hundred events a second per baseline.

use std::time::{Duration, Instant};

use crate::api::baseline::MeshBaselineStatus;
use crate::plan::{Plan, MAX_FINDING_EVENTS};

/// At most one status write per baseline this often, unless a condition changes.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// "Finding" events per baseline per window; the rest are only in the status.
const EVENT_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Pacing {
    /// When the last status was written, and whether it changed only findings or counts.
    last_status_write: Option<(Instant, bool)>,
    /// Whether the status the plan carries (if any) changes only findings or counts.
    planned_findings_only: bool,
    /// Start of the current event window and the "Finding" events sent in it.
    window: Option<(Instant, usize)>,
}

impl Pacing {
    /// Holds back a status write that changes no condition within `STATUS_INTERVAL` of the
    /// last such write; returns how long until it may be written (the reconcile is requeued
    /// then). The first one after any other write goes at once, so a status settles as soon
    /// as before when nothing churns. Also drops "Finding" events over the window's budget.
    pub fn pace(
        &mut self,
        plan: &mut Plan,
        written: Option<&MeshBaselineStatus>,
        now: Instant,
    ) -> Option<Duration> {
        let (start, sent) = match self.window {
            Some((start, sent)) if now.duration_since(start) < EVENT_WINDOW => (start, sent),
            _ => (now, 0),
        };
        let mut budget = MAX_FINDING_EVENTS.saturating_sub(sent);
        plan.events.retain(|e| {
            if e.reason != "Finding" {
                return true;
            }
            let keep = budget > 0;
            budget = budget.saturating_sub(1);
            keep
        });
        self.window = Some((start, MAX_FINDING_EVENTS - budget));

        self.planned_findings_only = false;
        let new = plan.status.as_ref()?;
        let prev = written?;
        if new.conditions != prev.conditions {
            return None;
        }
        self.planned_findings_only = true;
        let (at, findings_only) = self.last_status_write?;
        let elapsed = now.duration_since(at);
        if !findings_only || elapsed >= STATUS_INTERVAL {
            return None;
        }
        plan.status = None;
        Some(STATUS_INTERVAL - elapsed)
    }

    /// The planned status was written at `now`.
    pub fn status_written(&mut self, now: Instant) {
        self.last_status_write = Some((now, self.planned_findings_only));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{status, EventType, PlannedEvent};

    fn finding_event(n: usize) -> PlannedEvent {
        PlannedEvent {
            type_: EventType::Warning,
            reason: "Finding".into(),
            action: "Audit".into(),
            note: format!("MB501 pod-{n}"),
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
        pacing.status_written(t0);
        let written = status(2, "3 objects");
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
    fn finding_events_have_a_budget_per_window() {
        let t0 = Instant::now();
        let mut pacing = Pacing::default();
        let mut sent = 0;
        for round in 0..5 {
            let mut p = Plan {
                events: (0..15).map(|i| finding_event(round * 15 + i)).collect(),
                ..Plan::default()
            };
            pacing.pace(&mut p, None, t0 + Duration::from_secs(round as u64));
            sent += p.events.len();
        }
        assert_eq!(sent, MAX_FINDING_EVENTS);
        let mut p = Plan {
            events: vec![finding_event(99)],
            ..Plan::default()
        };
        pacing.pace(&mut p, None, t0 + EVENT_WINDOW);
        assert_eq!(p.events.len(), 1, "a new window");
    }
}
