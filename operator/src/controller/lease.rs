//! Leader election with a local deadline. Only the Lease holder writes, and it writes only
//! while its own clock says the lease cannot have expired for anyone else: a renewal that
//! succeeded at local instant `t` (taken *before* the request was sent) makes the replica the
//! writer until `t + duration - margin`. A follower takes over only after it has seen the
//! same Lease record unchanged for a whole `duration` on its own clock (as client-go does),
//! so clock offsets between machines do not matter, only clock rates and the margin.
//!
//! Renewals use their own client, outside the write rate limit: a burst of repairs must not
//! delay a renewal past the deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch as signal;

/// Field manager of Lease writes: kept apart from the executor's `meshbaseline`, so request
/// accounting can tell renewals from policy writes.
pub const LEASE_MANAGER: &str = "meshbaseline-leader-election";

/// Whether this replica may write now. Shared by the lease loop and the executor.
#[derive(Debug)]
pub struct Leadership {
    base: Instant,
    /// Nanoseconds after `base` until which writes are allowed; 0: not the leader.
    deadline: AtomicU64,
}

impl Leadership {
    pub fn new() -> Leadership {
        Leadership {
            base: Instant::now(),
            deadline: AtomicU64::new(0),
        }
    }

    /// Without leader election the only replica always writes.
    pub fn always() -> Leadership {
        let l = Leadership::new();
        l.deadline.store(u64::MAX, Ordering::Release);
        l
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Writes are allowed until `until` (local clock).
    pub fn extend(&self, until: Instant) {
        self.deadline
            .store(self.nanos(until).max(1), Ordering::Release);
    }

    pub fn revoke(&self) {
        self.deadline.store(0, Ordering::Release);
    }

    pub fn may_write(&self) -> bool {
        self.nanos(Instant::now()) < self.deadline.load(Ordering::Acquire)
    }

    /// Time left before the deadline (zero when not leading).
    pub fn remaining(&self) -> Duration {
        let d = self.deadline.load(Ordering::Acquire);
        Duration::from_nanos(d.saturating_sub(self.nanos(Instant::now())))
    }
}

impl Default for Leadership {
    fn default() -> Self {
        Leadership::new()
    }
}

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub renew: Duration,
    pub margin: Duration,
    /// While set, this replica sends no renewals (fault injection for tests and drills: the
    /// deadline then runs out exactly as when the API server is unreachable).
    pub paused: Option<Arc<AtomicBool>>,
}

/// The Lease record as last seen, and when (local clock) it last changed.
struct Seen {
    record: Option<(Option<String>, Option<String>)>,
    at: Instant,
}

/// The lease duration as the Lease records it: whole seconds, at least one.
pub fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().max(1))
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// One attempt to acquire or renew. `Ok(true)`: we hold the lease.
async fn attempt(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    seen: &mut Seen,
) -> Result<bool, kube::Error> {
    let secs = i32::try_from(whole_seconds(cfg.duration).as_secs()).unwrap_or(i32::MAX);
    let Some(lease) = api.get_opt(&cfg.name).await? else {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": cfg.name, "namespace": cfg.namespace},
            "spec": {"holderIdentity": cfg.identity, "leaseDurationSeconds": secs,
                "acquireTime": micro_now(), "renewTime": micro_now(), "leaseTransitions": 0},
        }))
        .map_err(kube::Error::SerdeError)?;
        let pp = PostParams {
            field_manager: Some(LEASE_MANAGER.into()),
            ..PostParams::default()
        };
        return match api.create(&pp, &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let record = Some((
        holder.clone(),
        spec.renew_time.as_ref().map(|t| t.0.to_string()),
    ));
    if record != seen.record {
        seen.record = record;
        seen.at = Instant::now();
    }
    let mine = holder.as_deref() == Some(cfg.identity.as_str());
    // The holder's own duration decides when it expires, not ours.
    let their = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(cfg.duration, Duration::from_secs);
    let expired = holder.is_none() || seen.at.elapsed() >= their;
    if !mine && !expired {
        return Ok(false);
    }
    let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
    let acquire = if mine {
        spec.acquire_time.clone().unwrap_or_else(micro_now)
    } else {
        micro_now()
    };
    // A merge patch carrying the resourceVersion we read: if anyone renewed or took over in
    // between, the API server answers 409 and we are not the leader.
    let patch = json!({
        "metadata": {"resourceVersion": lease.metadata.resource_version},
        "spec": {"holderIdentity": cfg.identity, "leaseDurationSeconds": secs,
            "acquireTime": acquire, "renewTime": micro_now(), "leaseTransitions": transitions},
    });
    let pp = PatchParams {
        field_manager: Some(LEASE_MANAGER.into()),
        ..PatchParams::default()
    };
    match api.patch(&cfg.name, &pp, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs the election until `stop` turns true; reports leadership on `leading` and keeps
/// `leadership`'s deadline. On stop the lease is released if held.
pub async fn run(
    client: Client,
    cfg: LeaseConfig,
    leadership: Arc<Leadership>,
    leading: signal::Sender<bool>,
    mut stop: signal::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut seen = Seen {
        record: None,
        at: Instant::now(),
    };
    // The Lease records whole seconds, and followers go by what it records.
    let valid_for = whole_seconds(cfg.duration).saturating_sub(cfg.margin);
    loop {
        let paused = cfg
            .paused
            .as_ref()
            .is_some_and(|p| p.load(Ordering::Acquire));
        if !paused {
            // Taken before the request: the server may have stored the renewal any time
            // after this instant, so the deadline counts from here.
            let sent = Instant::now();
            match attempt(&api, &cfg, &mut seen).await {
                Ok(true) => leadership.extend(sent + valid_for),
                Ok(false) => leadership.revoke(),
                // Unknown outcome: the deadline from the last success still bounds us.
                Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
            }
        }
        leading.send_if_modified(|l| {
            let now = leadership.may_write();
            std::mem::replace(l, now) != now
        });
        // Wake for the next renewal, or when the deadline passes (to report it).
        let left = leadership.remaining();
        let wait = if left.is_zero() {
            cfg.renew
        } else {
            cfg.renew.min(left)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if leadership.may_write() {
        leadership.revoke();
        let _ = leading.send(false);
        let release = json!({"spec": {"holderIdentity": null, "renewTime": null}});
        let pp = PatchParams {
            field_manager: Some(LEASE_MANAGER.into()),
            ..PatchParams::default()
        };
        if let Err(e) = api.patch(&cfg.name, &pp, &Patch::Merge(&release)).await {
            tracing::warn!(error = %e, "releasing the lease failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_local_and_runs_out() {
        let l = Leadership::new();
        assert!(!l.may_write());
        l.extend(Instant::now() + Duration::from_secs(60));
        assert!(l.may_write());
        assert!(l.remaining() > Duration::from_secs(59));
        l.extend(Instant::now() - Duration::from_millis(1));
        assert!(!l.may_write());
        assert_eq!(l.remaining(), Duration::ZERO);
        l.extend(Instant::now() + Duration::from_secs(1));
        l.revoke();
        assert!(!l.may_write());
        assert!(Leadership::always().may_write());
    }
}
