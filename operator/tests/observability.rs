//! The Grafana dashboard and the PrometheusRule alerts use only the operator's metrics
//! (CONTRACT.md, "Metrics"), with their labels, and the dashboard shows every one of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Exposed metric names and their own labels (CONTRACT.md). Histograms also expose
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

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "Inf", "NaN", "inf", "nan",
];
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// A metric selector in a PromQL expression: its name and the label names it matches on.
#[derive(Debug, PartialEq, Eq)]
struct Selector {
    metric: String,
    labels: Vec<String>,
}

fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

fn skip_balanced(chars: &[char], mut i: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Label names of a `{...}` matcher list.
fn matcher_labels(body: &str) -> Vec<String> {
    let chars: Vec<char> = body.chars().collect();
    let mut labels = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                labels.push(chars[start..i].iter().collect());
            }
            _ => i += 1,
        }
    }
    labels
}

/// The metric selectors of a PromQL expression. Helm `{{ ... }}` is replaced by a number first.
fn selectors(expr: &str) -> Vec<Selector> {
    let mut text = expr.to_owned();
    while let Some(start) = text.find("{{") {
        let end = text[start..]
            .find("}}")
            .map_or(text.len(), |e| start + e + 2);
        text.replace_range(start..end, "0");
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<Selector> = Vec::new();
    let mut name_end = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '[' {
            i = skip_balanced(&chars, i, '[', ']');
        } else if c == '{' {
            let end = skip_balanced(&chars, i, '{', '}');
            let body: String = chars[i + 1..end.saturating_sub(1)].iter().collect();
            let labels = matcher_labels(&body);
            match out.last_mut() {
                Some(last) if name_end == Some(i) => last.labels.extend(labels),
                // `{__name__="..."}` would hide a metric name from this check.
                _ => panic!("matcher list without a metric name in `{expr}`"),
            }
            i = end;
        } else if c == '$' {
            i += 1;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let followed_by_paren = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&ident.as_str()) {
                if followed_by_paren {
                    i = skip_balanced(&chars, next, '(', ')');
                }
            } else if followed_by_paren
                || AGGREGATIONS.contains(&ident.as_str())
                || KEYWORDS.contains(&ident.as_str())
            {
                // A function call, an aggregation or an operator keyword.
            } else {
                out.push(Selector {
                    metric: ident,
                    labels: Vec::new(),
                });
                // Only a matcher list directly after the name belongs to it.
                name_end = Some(i);
            }
        } else {
            i += 1;
        }
    }
    out
}

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

/// (place, expr) of every PromQL query in a Grafana dashboard: panel targets and variables.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(value: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
        match value {
            serde_json::Value::Object(map) => {
                let title = map.get("title").and_then(|t| t.as_str()).unwrap_or("");
                for (k, v) in map {
                    let here = format!("{path}/{title}{k}");
                    if k == "expr" {
                        out.push((here, v.as_str().expect("expr is a string").to_owned()));
                    } else {
                        walk(v, &here, out);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], "panels", &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
    {
        if var["type"] == "query" {
            let query = var["query"]["query"].as_str().expect("variable query");
            // label_values(<selector>, <label>): only the selector is PromQL.
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(sel, _)| sel)
                .unwrap_or_else(|| panic!("variable {}: unexpected query {query}", var["name"]));
            out.push((format!("variable {}", var["name"]), inner.to_owned()));
        }
    }
    out
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
    let mut alerts: BTreeMap<String, String> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert:") {
            current = Some(name.trim().to_owned());
        } else if let Some(expr) = line.strip_prefix("expr:") {
            let name = current.take().expect("expr after its alert name");
            alerts.insert(name, expr.trim().to_owned());
        }
    }
    let names: Vec<&str> = alerts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "MeshBaselineCriticalFindings",
            "MeshBaselineDriftStorm",
            "MeshBaselineNoLeader",
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
