//! `--format json`: `{"findings": [...], "errors": [...]}`.

use serde_json::{json, Value};

use super::Report;

pub fn render_json(report: &Report) -> String {
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "rule": f.rule.id(),
                "severity": f.severity.as_str(),
                "kind": f.kind,
                "namespace": f.namespace,
                "name": f.name,
                "message": f.message,
                "fix": f.fix,
            })
        })
        .collect();
    let errors: Vec<Value> = report
        .errors
        .iter()
        .map(|e| {
            json!({
                "file": e.file.display().to_string(),
                "document": e.document,
                "message": e.message,
            })
        })
        .collect();
    let doc = json!({"findings": findings, "errors": errors});
    // Serializing a `Value` cannot fail: its keys are strings.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
