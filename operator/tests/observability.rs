//! The Grafana dashboard and the PrometheusRule alerts use only the operator's metrics
//! (docs/metrics.md), with their labels, and the dashboard shows every one of them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[allow(dead_code)]
mod promql;
use promql::{alert_exprs, dashboard_queries, selectors, Selector};

/// Exposed metric names and their own labels (docs/metrics.md). Histograms also expose
/// `_bucket` (with `le`), `_sum` and `_count`.
const METRICS: &[(&str, &[&str])] = &[
    ("meshbaseline_reconciles_total", &["result"]),
    ("meshbaseline_reconcile_errors_total", &["reason"]),
    ("meshbaseline_reconcile_duration_seconds", &[]),
    ("meshbaseline_drift_repairs_total", &["kind"]),
    ("meshbaseline_tenant_reverts_total", &["kind"]),
    ("meshbaseline_findings", &["rule", "severity"]),
    ("meshbaseline_api_writes_total", &["verb", "kind"]),
    ("meshbaseline_managed_objects", &[]),
    ("meshbaseline_protected_namespaces", &[]),
    ("meshbaseline_leader", &[]),
    ("meshbaseline_workloads", &["protection"]),
];
const HISTOGRAMS: &[&str] = &["meshbaseline_reconcile_duration_seconds"];
/// Labels Prometheus adds when it scrapes the metrics Service.
const TARGET_LABELS: &[&str] = &[
    "namespace",
    "pod",
    "job",
    "instance",
    "service",
    "container",
    "endpoint",
];

/// The contract name of an exposed series name, with `le` allowed for histogram buckets.
fn contract_metric(series: &str) -> Option<(&'static str, bool)> {
    if let Some((name, _)) = METRICS.iter().find(|(name, _)| *name == series) {
        return Some((name, false));
    }
    HISTOGRAMS.iter().find_map(|h| {
        let suffix = series.strip_prefix(h)?;
        ["_bucket", "_sum", "_count"]
            .contains(&suffix)
            .then_some((*h, suffix == "_bucket"))
    })
}

/// Checks every selector of `expr`; returns the contract metrics it uses.
fn check_expr(place: &str, expr: &str) -> BTreeSet<&'static str> {
    let found = selectors(expr);
    assert!(!found.is_empty(), "{place}: no metric in `{expr}`");
    let mut used = BTreeSet::new();
    for sel in found {
        let Some((name, bucket)) = contract_metric(&sel.metric) else {
            panic!(
                "{place}: `{}` is not an operator metric (in `{expr}`)",
                sel.metric
            );
        };
        let own = METRICS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| *l)
            .unwrap_or_default();
        for label in &sel.labels {
            let known = own.contains(&label.as_str())
                || TARGET_LABELS.contains(&label.as_str())
                || (bucket && label == "le");
            assert!(
                known,
                "{place}: {name} has no label `{label}` (in `{expr}`)"
            );
        }
        used.insert(name);
    }
    used
}

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/meshbaseline")
}

#[test]
fn dashboard_uses_only_and_all_operator_metrics() {
    let path = chart().join("dashboards/meshbaseline.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("dashboard JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 15, "only {} queries", queries.len());
    let mut used = BTreeSet::new();
    for (place, expr) in &queries {
        used.extend(check_expr(place, expr));
    }
    let all: BTreeSet<&str> = METRICS.iter().map(|(n, _)| *n).collect();
    let unused: Vec<_> = all.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "metrics the dashboard does not show: {unused:?}"
    );
    // Panel ids are unique (Grafana silently drops duplicates).
    let ids: Vec<i64> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().expect("panel id"))
        .collect();
    assert_eq!(
        ids.len(),
        ids.iter().collect::<BTreeSet<_>>().len(),
        "duplicate panel ids"
    );
}

#[test]
fn alert_rules_use_only_operator_metrics() {
    let path = chart().join("templates/prometheusrule.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let alerts = alert_exprs(&text);
    let names: Vec<&str> = alerts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "MeshBaselineCriticalFindings",
            "MeshBaselineDriftStorm",
            "MeshBaselineNoLeader",
            "MeshBaselineOperatorAbsent",
            "MeshBaselineReconcileFailing",
        ]
    );
    for (name, expr) in &alerts {
        check_expr(name, expr);
    }
    assert!(alerts["MeshBaselineNoLeader"].contains("(meshbaseline_leader) == 0"));
    assert!(alerts["MeshBaselineCriticalFindings"].contains("severity=\"critical\""));
}

#[test]
fn selector_extraction() {
    let got = selectors(
        r#"histogram_quantile(0.99, sum by (le, reason) (rate(meshbaseline_reconcile_duration_seconds_bucket{namespace=~"$namespace", le!="x}"}[$__rate_interval]))) > {{ .Values.x }} and on (pod) up offset 5m"#,
    );
    assert_eq!(
        got,
        vec![
            Selector {
                metric: "meshbaseline_reconcile_duration_seconds_bucket".into(),
                labels: vec!["namespace".into(), "le".into()],
            },
            Selector {
                metric: "up".into(),
                labels: vec![]
            },
        ]
    );
    assert!(selectors("sum without (pod) (max(1))").is_empty());
    assert_eq!(
        contract_metric("meshbaseline_reconcile_duration_seconds_count"),
        Some(("meshbaseline_reconcile_duration_seconds", false))
    );
    assert_eq!(contract_metric("meshbaseline_leader_bucket"), None);
}

#[test]
#[should_panic(expected = "is not an operator metric")]
fn unknown_metric_is_rejected() {
    check_expr("test", "sum(rate(meshbaseline_reconciles[5m]))");
}

#[test]
#[should_panic(expected = "has no label `severity`")]
fn unknown_label_is_rejected() {
    check_expr("test", r#"meshbaseline_leader{severity="x"}"#);
}
