//! PromQL as far as the checks of the alerts and the dashboard need it: the metric selectors of
//! an expression (name and matcher labels), the queries of a Grafana dashboard and the
//! expressions of the chart's PrometheusRule template. Shared by `observability.rs` (the
//! metric contract) and the real-server test that scrapes the operator's `/metrics`.

use std::collections::BTreeMap;

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
pub struct Selector {
    pub metric: String,
    pub labels: Vec<String>,
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
pub fn selectors(expr: &str) -> Vec<Selector> {
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

/// (place, expr) of every PromQL query in a Grafana dashboard: panel targets and variables.
pub fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
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

/// (alert, expr) of every rule of a PrometheusRule template (each `expr` on one line).
pub fn alert_exprs(template: &str) -> BTreeMap<String, String> {
    let mut alerts = BTreeMap::new();
    let mut current = None;
    for line in template.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert:") {
            current = Some(name.trim().to_owned());
        } else if let Some(expr) = line.strip_prefix("expr:") {
            let name = current.take().expect("expr after its alert name");
            alerts.insert(name, expr.trim().to_owned());
        }
    }
    alerts
}

/// The labels of every `by (...)` and `without (...)` grouping in `expr`.
pub fn grouping_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for keyword in ["by", "without"] {
        let mut rest = expr;
        while let Some(at) = rest.find(keyword) {
            let before = rest[..at].chars().next_back();
            let after = rest[at + keyword.len()..].trim_start();
            rest = &rest[at + keyword.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let Some(list) = after.strip_prefix('(') else {
                continue;
            };
            let end = list.find(')').unwrap_or(list.len());
            out.extend(
                list[..end]
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    out
}
