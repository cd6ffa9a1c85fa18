//! Pacing of status writes that change only findings or counts. Pods replaced in a loop (a
//! crash-looping workload running as UID 1337) change the findings on every debounce; without
//! pacing that is ten status writes a second per baseline. ("Finding" events have their budget
//! in the planner: `plan::FindingBudget`.)

use std::time::{Duration, Instant};

use crate::api::baseline::MeshBaselineStatus;
use crate::plan::Plan;

/// At most one status write per baseline this often, unless a condition changes.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Pacing {
    /// When the last status was written, and whether it changed only findings or counts.
    last_status_write: Option<(Instant, bool)>,
}

/// Whether `new` differs from `old` only in findings or counts (no condition changed).
fn findings_only(new: &MeshBaselineStatus, old: Option<&MeshBaselineStatus>) -> bool {
    old.is_some_and(|o| o.conditions == new.conditions)
}

impl Pacing {
    /// Holds back a status write that changes no condition within `STATUS_INTERVAL` of the
    /// last such write; returns how long until it may be written (the reconcile is requeued
    /// then). The first one after any other write goes at once, so a status settles as soon
    /// as it can when nothing churns.
    pub fn pace(
        &mut self,
        plan: &mut Plan,
        written: Option<&MeshBaselineStatus>,
        now: Instant,
    ) -> Option<Duration> {
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
    use crate::plan::{status, Reason};

    fn status(findings: u32, ready_message: &str) -> MeshBaselineStatus {
        let mut s = MeshBaselineStatus {
            findings_total: findings,
            ..MeshBaselineStatus::default()
        };
        s.conditions = status::conditions(
            vec![status::Cond::new(
                status::READY,
                true,
                Reason::Enforced,
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
}
