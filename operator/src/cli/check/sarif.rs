//! `--format sarif`: SARIF 2.1.0, for code-scanning dashboards.

use std::path::Path;

use serde_json::{json, Value};

use super::Report;
use crate::audit::{Rule, Severity};
use crate::cli::escape::printable;
use crate::manifests::Location;

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

/// A relative URI reference for `path`: unreserved characters and `/` as they are, every
/// other byte percent-encoded (spaces, `#`, `%`, control characters).
fn uri(path: &Path) -> String {
    let s = path.display().to_string().replace('\\', "/");
    let s = s.strip_prefix("./").unwrap_or(&s);
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn physical(location: &Location) -> Value {
    let mut physical = json!({"artifactLocation": {"uri": uri(&location.file)}});
    if let Some(line) = location.line {
        physical["region"] = json!({"startLine": line});
    }
    physical
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
                "logicalLocations": [{"fullyQualifiedName": printable(&qualified), "kind": "object"}],
            });
            if let Some(origin) = report.origin(f) {
                location["physicalLocation"] = physical(origin);
            }
            json!({
                "ruleId": f.rule.id(),
                "ruleIndex": index,
                "level": level(f.severity),
                "message": {"text": printable(&format!("{} Fix: {}", f.message, f.fix))},
                "locations": [location],
                "properties": {"severity": f.severity.as_str(), "fix": printable(&f.fix)},
            })
        })
        .collect();
    let verb = if report.skip_unreadable {
        "skipped"
    } else {
        "not read"
    };
    let mut notifications: Vec<Value> = report
        .loaded
        .errors
        .iter()
        .map(|e| {
            json!({
                "level": "error",
                "message": {"text": printable(&format!("{verb}: {e}"))},
                "locations": [{"physicalLocation": physical(&e.location)}],
            })
        })
        .collect();
    notifications.extend(report.loaded.notes.iter().map(|n| {
        json!({
            "level": "note",
            "message": {"text": printable(&n.to_string())},
            "locations": [{"physicalLocation": physical(&n.location)}],
        })
    }));
    if let Some(why) = report.unusable() {
        notifications.push(json!({"level": "error", "message": {"text": why}}));
    }
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
                "executionSuccessful": report.unusable().is_none(),
                "exitCode": report.exit_code(),
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
