//! The operator's `/metrics`, scraped from the real process: every metric the chart's alerts
//! and the Grafana dashboard query exists there, with every label they match or group on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[allow(dead_code)]
#[path = "../../../operator/tests/promql/mod.rs"]
mod promql;

/// Labels Prometheus adds to every series it scrapes through the chart's ServiceMonitor.
const TARGET_LABELS: &[&str] = &[
    "namespace",
    "pod",
    "job",
    "instance",
    "service",
    "container",
    "endpoint",
];

/// Series names of a Prometheus text exposition and the label names each carries.
pub fn exposed(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_string()).or_default();
        if let Some(body) = line[name_end..].strip_prefix('{') {
            let body = &body[..body.rfind('}').unwrap_or(body.len())];
            // Label values here are plain (kinds, rule ids, verbs): no `,` or `=` inside.
            labels.extend(
                body.split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, _)| k.trim().to_string()),
            );
        }
    }
    out
}

/// Every problem with the queries of the chart's alerts and dashboard against `text`.
pub fn missing_in(text: &str) -> Vec<String> {
    let series = exposed(text);
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/meshbaseline");
    let template =
        std::fs::read_to_string(chart.join("templates/prometheusrule.yaml")).unwrap_or_default();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(chart.join("dashboards/meshbaseline.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    let mut queries: Vec<(String, String)> = promql::alert_exprs(&template).into_iter().collect();
    let alerts = queries.len();
    queries.extend(promql::dashboard_queries(&dashboard));
    let mut problems = Vec::new();
    if alerts < 5 || queries.len() < alerts + 15 {
        problems.push(format!(
            "only {alerts} alerts and {} dashboard queries found",
            queries.len() - alerts
        ));
    }
    for (place, expr) in &queries {
        let mut labels_here = BTreeSet::new();
        for sel in promql::selectors(expr) {
            let Some(have) = series.get(&sel.metric) else {
                problems.push(format!(
                    "{place}: {} is not exposed (in `{expr}`)",
                    sel.metric
                ));
                continue;
            };
            labels_here.extend(have.iter().cloned());
            for label in sel.labels {
                if !have.contains(&label) && !TARGET_LABELS.contains(&label.as_str()) {
                    problems.push(format!(
                        "{place}: {} has no label {label} (in `{expr}`)",
                        sel.metric
                    ));
                }
            }
        }
        for label in promql::grouping_labels(expr) {
            if !labels_here.contains(&label) && !TARGET_LABELS.contains(&label.as_str()) {
                problems.push(format!(
                    "{place}: no metric has the label {label} (in `{expr}`)"
                ));
            }
        }
    }
    problems
}

#[test]
fn a_metric_or_label_the_operator_does_not_expose_is_reported() {
    let text = "# HELP x\nmeshbaseline_leader 1\nmeshbaseline_findings{rule=\"MB101\"} 1\n";
    let problems = missing_in(text);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("meshbaseline_reconcile_errors_total is not exposed")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("meshbaseline_findings has no label severity")),
        "{problems:?}"
    );
    assert_eq!(
        promql::grouping_labels("sum by (namespace, reason) (x) > 0 and max without(pod) (y)"),
        ["namespace", "reason", "pod"]
    );
}
