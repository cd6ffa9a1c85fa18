//! `--format json`: `{"findings": [{"rule", "severity", "kind", "namespace", "name",
//! "message", "fix"}...], "errors": [{"file", "document", "message"}...]}`.

use serde::Serialize;

use super::Report;

#[derive(Serialize)]
struct FindingOut<'a> {
    rule: &'a str,
    severity: &'a str,
    kind: &'a str,
    namespace: Option<&'a str>,
    name: &'a str,
    message: &'a str,
    fix: &'a str,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    file: String,
    document: Option<usize>,
    message: &'a str,
}

#[derive(Serialize)]
struct Out<'a> {
    findings: Vec<FindingOut<'a>>,
    errors: Vec<ErrorOut<'a>>,
}

pub fn render_json(report: &Report) -> String {
    let out = Out {
        findings: report
            .findings
            .iter()
            .map(|f| FindingOut {
                rule: f.rule.id(),
                severity: f.severity.as_str(),
                kind: &f.kind,
                namespace: f.namespace.as_deref(),
                name: &f.name,
                message: &f.message,
                fix: &f.fix,
            })
            .collect(),
        errors: report
            .errors
            .iter()
            .map(|e| ErrorOut {
                file: e.file.display().to_string(),
                document: e.document,
                message: &e.message,
            })
            .collect(),
    };
    // Plain structs of strings and numbers always serialize.
    let mut text = serde_json::to_string_pretty(&out).unwrap_or_default();
    text.push('\n');
    text
}
