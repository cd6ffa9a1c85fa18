//! Metrics (names and labels are an interface: docs/metrics.md), health endpoints and logging.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::audit::Finding;

type Labels = Vec<(&'static str, String)>;

/// The `reason` label of `meshbaseline_reconcile_errors_total`.
pub const RECONCILE_ERROR_REASONS: [&str; 5] =
    ["api", "invalid_spec", "conflict", "crd_missing", "other"];

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    reconcile_errors: Family<Labels, Counter>,
    pub reconcile_duration: Histogram,
    drift_repairs: Family<Labels, Counter>,
    tenant_reverts: Family<Labels, Counter>,
    findings: Family<Labels, Gauge>,
    api_writes: Family<Labels, Counter>,
    writes_refused: Counter,
    audits: Family<Labels, Counter>,
    watch_lists: Family<Labels, Counter>,
    pub managed_objects: Gauge,
    pub protected_namespaces: Gauge,
    pub leader: Gauge,
    workloads: Family<Labels, Gauge>,
    /// Per baseline: findings by (rule, severity), and (managed objects, protected namespaces).
    per_baseline: Mutex<HashMap<String, BaselineFigures>>,
    /// Per baseline: workloads by protection (the order of `Protection::ALL`).
    per_baseline_posture: Mutex<HashMap<String, [i64; 4]>>,
}

#[derive(Default, Clone)]
struct BaselineFigures {
    findings: BTreeMap<(String, String), i64>,
    managed: i64,
    protected: i64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let reconciles = Family::<Labels, Counter>::default();
        let reconcile_errors = Family::<Labels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let drift_repairs = Family::<Labels, Counter>::default();
        let tenant_reverts = Family::<Labels, Counter>::default();
        let findings = Family::<Labels, Gauge>::default();
        let api_writes = Family::<Labels, Counter>::default();
        let writes_refused = Counter::default();
        let audits = Family::<Labels, Counter>::default();
        let watch_lists = Family::<Labels, Counter>::default();
        let managed_objects = Gauge::default();
        let protected_namespaces = Gauge::default();
        let leader = Gauge::default();
        let workloads = Family::<Labels, Gauge>::default();
        // Every protection has a series from the start, so dashboards see a stable shape.
        for p in crate::posture::Protection::ALL {
            workloads
                .get_or_create(&vec![("protection", p.as_str().to_string())])
                .set(0);
        }
        registry.register(
            "meshbaseline_workloads",
            "Workloads (running pods and templates) of protected namespaces by protection: protected, partial, unprotected, unknown; all baselines",
            workloads.clone(),
        );
        // prometheus-client appends `_total` to counters itself.
        registry.register(
            "meshbaseline_reconciles",
            "Reconciles by result",
            reconciles.clone(),
        );
        registry.register(
            "meshbaseline_reconcile_errors",
            "Failed reconciles by reason",
            reconcile_errors.clone(),
        );
        registry.register(
            "meshbaseline_reconcile_duration_seconds",
            "Duration of a reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "meshbaseline_drift_repairs",
            "Generated objects restored after a change by someone else",
            drift_repairs.clone(),
        );
        registry.register(
            "meshbaseline_tenant_reverts",
            "Tenant objects whose weak field was reverted",
            tenant_reverts.clone(),
        );
        registry.register(
            "meshbaseline_findings",
            "Current findings, all baselines",
            findings.clone(),
        );
        registry.register(
            "meshbaseline_api_writes",
            "API writes by verb and kind",
            api_writes.clone(),
        );
        registry.register(
            "meshbaseline_writes_refused",
            "Writes not sent because this replica's lease deadline had passed",
            writes_refused.clone(),
        );
        registry.register(
            "meshbaseline_audits",
            "Audits by scope: full (the whole inventory, per baseline) or pod (one pod re-audited on its own)",
            audits.clone(),
        );
        registry.register(
            "meshbaseline_managed_objects",
            "Objects generated by all baselines",
            managed_objects.clone(),
        );
        registry.register(
            "meshbaseline_protected_namespaces",
            "Namespaces protected by a baseline",
            protected_namespaces.clone(),
        );
        registry.register(
            "meshbaseline_watch_lists",
            "Complete lists of a watched resource (at start, and again after its watch history was compacted), by how it was listed: streaming or pages",
            watch_lists.clone(),
        );
        registry.register(
            "meshbaseline_leader",
            "1 on the replica holding the leader lease",
            leader.clone(),
        );
        // Every series with a known label set starts at 0, so that it exists before the first
        // event: alerts and dashboards see a rate of 0 rather than no data, and the first
        // increment counts.
        for result in ["success", "error"] {
            let _ = reconciles.get_or_create(&vec![("result", result.to_string())]);
        }
        for reason in RECONCILE_ERROR_REASONS {
            let _ = reconcile_errors.get_or_create(&vec![("reason", reason.to_string())]);
        }
        for kind in crate::object::Kind::ALL {
            let _ = drift_repairs.get_or_create(&vec![("kind", kind.name().to_string())]);
        }
        for kind in ["PeerAuthentication", "DestinationRule"] {
            let _ = tenant_reverts.get_or_create(&vec![("kind", kind.to_string())]);
        }
        for scope in ["full", "pod"] {
            let _ = audits.get_or_create(&vec![("scope", scope.to_string())]);
        }
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            drift_repairs,
            tenant_reverts,
            findings,
            api_writes,
            writes_refused,
            audits,
            watch_lists,
            managed_objects,
            protected_namespaces,
            leader,
            workloads,
            per_baseline: Mutex::new(HashMap::new()),
            per_baseline_posture: Mutex::new(HashMap::new()),
        }
    }

    pub fn reconciled(&self, success: bool) {
        let result = if success { "success" } else { "error" };
        self.reconciles
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
    }

    /// `reason`: one of [`RECONCILE_ERROR_REASONS`].
    pub fn reconcile_error(&self, reason: &'static str) {
        self.reconcile_errors
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn drift_repaired(&self, kind: &str) {
        self.drift_repairs
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }

    pub fn tenant_reverted(&self, kind: &str) {
        self.tenant_reverts
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }

    /// `scope` in {full, pod}.
    pub fn audited(&self, scope: &'static str, n: u64) {
        self.audits
            .get_or_create(&vec![("scope", scope.to_string())])
            .inc_by(n);
    }

    /// `resource`: the watched resource (bounded: the kinds the operator watches); `method` in
    /// {streaming, pages}.
    pub fn watch_listed(&self, resource: &'static str, method: &'static str) {
        self.watch_lists
            .get_or_create(&vec![
                ("resource", resource.to_string()),
                ("method", method.to_string()),
            ])
            .inc();
    }

    pub fn write_refused(&self) {
        self.writes_refused.inc();
    }

    /// `verb` in {apply, replace, delete, status, event}.
    pub fn api_write(&self, verb: &'static str, kind: &str) {
        self.api_writes
            .get_or_create(&vec![
                ("verb", verb.to_string()),
                ("kind", kind.to_string()),
            ])
            .inc();
    }

    /// Replace one baseline's figures (`None`: the baseline is gone) and recompute the gauges.
    pub fn set_baseline(&self, name: &str, figures: Option<(&[Finding], usize, usize)>) {
        let mut per = self.per_baseline.lock();
        match figures {
            None => {
                per.remove(name);
            }
            Some((findings, managed, protected)) => {
                let mut map = BTreeMap::new();
                for f in findings {
                    *map.entry((f.rule.id().to_string(), f.severity.as_str().to_string()))
                        .or_insert(0) += 1;
                }
                per.insert(
                    name.to_string(),
                    BaselineFigures {
                        findings: map,
                        managed: i64::try_from(managed).unwrap_or(i64::MAX),
                        protected: i64::try_from(protected).unwrap_or(i64::MAX),
                    },
                );
            }
        }
        let mut total: BTreeMap<(String, String), i64> = BTreeMap::new();
        let (mut managed, mut protected) = (0, 0);
        for f in per.values() {
            for (k, v) in &f.findings {
                *total.entry(k.clone()).or_insert(0) += v;
            }
            managed += f.managed;
            protected += f.protected;
        }
        // Series that dropped to zero are removed rather than left stale.
        self.findings.clear();
        for ((rule, severity), n) in total {
            self.findings
                .get_or_create(&vec![("rule", rule), ("severity", severity)])
                .set(n);
        }
        self.managed_objects.set(managed);
        self.protected_namespaces.set(protected);
    }

    /// Replace one baseline's posture counts (`None`: the baseline is gone, or has none yet)
    /// and recompute the gauges.
    pub fn set_posture(
        &self,
        name: &str,
        counts: Option<&crate::api::baseline::PostureCountsStatus>,
    ) {
        let mut per = self.per_baseline_posture.lock();
        match counts {
            None => {
                per.remove(name);
            }
            Some(c) => {
                let n = |v: u32| i64::from(v);
                per.insert(
                    name.to_string(),
                    [n(c.protected), n(c.partial), n(c.unprotected), n(c.unknown)],
                );
            }
        }
        let mut total = [0i64; 4];
        for counts in per.values() {
            for (t, c) in total.iter_mut().zip(counts) {
                *t += c;
            }
        }
        for (p, n) in crate::posture::Protection::ALL.iter().zip(total) {
            self.workloads
                .get_or_create(&vec![("protection", p.as_str().to_string())])
                .set(n);
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Shared by the HTTP endpoints and the controller.
pub struct Health {
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
}

async fn metrics(State(h): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(h): State<Arc<Health>>) -> (StatusCode, &'static str) {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown)
        .await
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global tracing subscriber (level from RUST_LOG, default info). A second call
/// (tests) is a no-op.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Rule, Severity};

    fn finding(rule: Rule) -> Finding {
        Finding {
            rule,
            severity: rule.severity(),
            kind: "Pod".into(),
            namespace: Some("a".into()),
            name: "p".into(),
            message: String::new(),
            fix: String::new(),
        }
    }

    #[test]
    fn exports_the_contract_names() {
        let m = Metrics::new();
        m.reconciled(true);
        m.reconcile_error("api");
        m.drift_repaired("NetworkPolicy");
        m.tenant_reverted("PeerAuthentication");
        m.api_write("apply", "NetworkPolicy");
        m.leader.set(1);
        m.set_baseline(
            "b",
            Some((&[finding(Rule::MB501), finding(Rule::MB501)], 3, 1)),
        );
        let text = m.encode();
        for line in [
            "meshbaseline_reconciles_total{result=\"success\"} 1",
            "meshbaseline_reconcile_errors_total{reason=\"api\"} 1",
            "meshbaseline_reconcile_duration_seconds_count 0",
            "meshbaseline_drift_repairs_total{kind=\"NetworkPolicy\"} 1",
            "meshbaseline_tenant_reverts_total{kind=\"PeerAuthentication\"} 1",
            "meshbaseline_findings{rule=\"MB501\",severity=\"critical\"} 2",
            "meshbaseline_api_writes_total{verb=\"apply\",kind=\"NetworkPolicy\"} 1",
            "meshbaseline_managed_objects 3",
            "meshbaseline_protected_namespaces 1",
            "meshbaseline_leader 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        m.set_baseline("b", None);
        assert!(!m.encode().contains("severity=\"critical\""));
        // Known label sets exist from the start, at 0.
        let fresh = Metrics::new().encode();
        for line in [
            "meshbaseline_reconciles_total{result=\"error\"} 0",
            "meshbaseline_reconcile_errors_total{reason=\"crd_missing\"} 0",
            "meshbaseline_drift_repairs_total{kind=\"ClusterNetworkPolicy\"} 0",
            "meshbaseline_tenant_reverts_total{kind=\"DestinationRule\"} 0",
            "meshbaseline_audits_total{scope=\"pod\"} 0",
        ] {
            assert!(fresh.contains(line), "missing {line:?} in\n{fresh}");
        }
        assert_eq!(Severity::Critical.as_str(), "critical");
    }
}
