//! `--format json`: `{"findings": [{"rule", "severity", "kind", "namespace", "name",
//! "message", "fix", "file", "document", "line"}...], "errors": [{"file", "document", "items",
//! "line", "message"}...], "notes": [...], "objects", "complete", "skipUnreadable",
//! "exitCode"}`. `errors` lists every input not read (skipped, with `--skip-unreadable`).
//! Strings are the data as read: JSON escapes control characters itself.

use serde::Serialize;

use super::Report;
use crate::manifests::Location;

#[derive(Serialize)]
struct FindingOut<'a> {
    rule: &'a str,
    severity: &'a str,
    kind: &'a str,
    namespace: Option<&'a str>,
    name: &'a str,
    message: &'a str,
    fix: &'a str,
    file: Option<String>,
    document: Option<usize>,
    line: Option<usize>,
}

#[derive(Serialize)]
struct InputOut<'a> {
    file: String,
    document: Option<usize>,
    /// `items[2].items[0]` inside Lists.
    #[serde(skip_serializing_if = "String::is_empty")]
    items: String,
    line: Option<usize>,
    message: &'a str,
}

impl<'a> InputOut<'a> {
    fn new(location: &Location, message: &'a str) -> Self {
        InputOut {
            file: location.file.display().to_string(),
            document: location.document,
            items: location.item_path(),
            line: location.line,
            message,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Out<'a> {
    findings: Vec<FindingOut<'a>>,
    errors: Vec<InputOut<'a>>,
    notes: Vec<InputOut<'a>>,
    objects: usize,
    complete: bool,
    skip_unreadable: bool,
    exit_code: u8,
}

pub fn render_json(report: &Report) -> String {
    let loaded = &report.loaded;
    let out = Out {
        findings: report
            .findings
            .iter()
            .map(|f| {
                let origin = report.origin(f);
                FindingOut {
                    rule: f.rule.id(),
                    severity: f.severity.as_str(),
                    kind: &f.kind,
                    namespace: f.namespace.as_deref(),
                    name: &f.name,
                    message: &f.message,
                    fix: &f.fix,
                    file: origin.map(|o| o.file.display().to_string()),
                    document: origin.and_then(|o| o.document),
                    line: origin.and_then(|o| o.line),
                }
            })
            .collect(),
        errors: loaded
            .errors
            .iter()
            .map(|e| InputOut::new(&e.location, &e.message))
            .collect(),
        notes: loaded
            .notes
            .iter()
            .map(|n| InputOut::new(&n.location, &n.message))
            .collect(),
        objects: loaded.objects,
        complete: loaded.errors.is_empty(),
        skip_unreadable: report.skip_unreadable,
        exit_code: report.exit_code(),
    };
    // Plain structs of strings and numbers always serialize.
    let mut text = serde_json::to_string_pretty(&out).unwrap_or_default();
    text.push('\n');
    text
}
