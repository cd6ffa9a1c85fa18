//! `--format json`, documented in docs/posture.md and docs/posture.schema.json.

use serde::Serialize;

use super::Report;
use crate::posture::{Objects, PostureCounts, WorkloadPosture};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InputOut {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<usize>,
    #[serde(skip_serializing_if = "String::is_empty")]
    items: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Out<'a> {
    baselines: &'a [String],
    /// `desired` or `observed`.
    objects: &'static str,
    workloads: &'a [WorkloadPosture],
    totals: PostureCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<&'a [String]>,
    errors: Vec<InputOut>,
    notes: Vec<String>,
    complete: bool,
    exit_code: u8,
}

pub fn render(r: &Report) -> String {
    let mut totals = PostureCounts::default();
    for w in &r.workloads {
        totals.add(w.protection);
    }
    let (errors, mut notes) = match &r.loaded {
        Some(l) => (
            l.errors
                .iter()
                .map(|e| InputOut {
                    file: e.location.file.display().to_string(),
                    document: e.location.document,
                    items: e.location.item_path(),
                    line: e.location.line,
                    message: e.message.clone(),
                })
                .collect(),
            l.notes.iter().map(ToString::to_string).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    notes.extend(r.notes.iter().cloned());
    if let Some(why) = &r.unusable {
        notes.push(format!("incomplete: {why}"));
    }
    let out = Out {
        baselines: &r.baselines,
        objects: match r.objects {
            Objects::Desired => "desired",
            Objects::Observed => "observed",
        },
        workloads: &r.workloads,
        totals,
        explain: r.explain.as_deref(),
        errors,
        notes,
        complete: r.unusable.is_none(),
        exit_code: r.exit_code(),
    };
    let mut s =
        serde_json::to_string_pretty(&out).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
