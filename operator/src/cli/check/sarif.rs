//! `--format sarif`: SARIF 2.1.0, for code-scanning dashboards.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::Report;
use crate::audit::{Rule, Severity};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// GitHub code scanning ranks security results by this number.
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

fn uri(path: &Path) -> String {
    let s = path.display().to_string().replace('\\', "/");
    let s = s.strip_prefix("./").unwrap_or(&s).to_string();
    s.chars()
        .map(|c| match c {
            ' ' => "%20".to_string(),
            '#' => "%23".to_string(),
            '%' => "%25".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The first content line (1-based) of each document of a YAML text, numbered as the loader
/// numbers documents: every `---` starts a new one, except a leading one.
pub(crate) fn document_lines(text: &str) -> BTreeMap<usize, usize> {
    let mut starts = BTreeMap::new();
    let mut doc = 1;
    let mut seen_any = false;
    for (i, line) in text.lines().enumerate() {
        let is_sep =
            line.starts_with("---") && line[3..].chars().next().is_none_or(char::is_whitespace);
        if is_sep {
            if seen_any {
                doc += 1;
            }
            seen_any = true;
            continue;
        }
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        seen_any = true;
        starts.entry(doc).or_insert(i + 1);
    }
    starts
}

pub fn render_sarif(report: &Report) -> String {
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id(),
                "shortDescription": {"text": r.title()},
                "defaultConfiguration": {"level": level(r.severity())},
                "properties": {
                    "security-severity": security_severity(r.severity()),
                    "severity": r.severity().as_str(),
                    "tags": ["security", "istio"],
                },
            })
        })
        .collect();
    let mut lines: BTreeMap<&Path, BTreeMap<usize, usize>> = BTreeMap::new();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let index = Rule::ALL.iter().position(|r| *r == f.rule).unwrap_or(0);
            let qualified = match &f.namespace {
                Some(ns) => format!("{}/{ns}/{}", f.kind, f.name),
                None => format!("{}/{}", f.kind, f.name),
            };
            let mut location = json!({
                "logicalLocations": [{"fullyQualifiedName": qualified, "kind": "object"}],
            });
            if let Some(origin) = report.origin(f) {
                let starts = lines.entry(origin.file.as_path()).or_insert_with(|| {
                    std::fs::read_to_string(&origin.file)
                        .map(|t| document_lines(&t))
                        .unwrap_or_default()
                });
                let mut physical = json!({"artifactLocation": {"uri": uri(&origin.file)}});
                if let Some(line) = starts.get(&origin.document) {
                    physical["region"] = json!({"startLine": line});
                }
                location["physicalLocation"] = physical;
            }
            json!({
                "ruleId": f.rule.id(),
                "ruleIndex": index,
                "level": level(f.severity),
                "message": {"text": format!("{} Fix: {}", f.message, f.fix)},
                "locations": [location],
                "properties": {"severity": f.severity.as_str(), "fix": f.fix},
            })
        })
        .collect();
    let notifications: Vec<Value> = report
        .errors
        .iter()
        .map(|e| {
            json!({
                "level": "error",
                "message": {"text": e.to_string()},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri(&e.file)}}}],
            })
        })
        .collect();
    let doc = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "meshbaseline",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    });
    // Serializing a `Value` cannot fail: its keys are strings.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
