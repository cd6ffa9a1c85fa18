//! `--format table`: aligned columns, then the message and the fix wrapped below each row.

use std::fmt::Write;

use super::Report;
use crate::audit::Severity;

const WIDTH: usize = 100;

fn wrap(text: &str, indent: &str, out: &mut String) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > WIDTH {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{indent}{line}");
    }
}

pub fn render_table(report: &Report, fail_on: Severity) -> String {
    let mut out = String::new();
    if report.findings.is_empty() {
        out.push_str("No findings.\n");
        return out;
    }
    let rows: Vec<[String; 5]> = report
        .findings
        .iter()
        .map(|f| {
            let location = report
                .origin(f)
                .map(|o| format!("{}#{}", o.file.display(), o.document))
                .unwrap_or_else(|| "-".to_string());
            [
                f.severity.to_string().to_uppercase(),
                f.rule.id().to_string(),
                f.kind.clone(),
                match &f.namespace {
                    Some(ns) => format!("{ns}/{}", f.name),
                    None => f.name.clone(),
                },
                location,
            ]
        })
        .collect();
    let header = ["SEVERITY", "RULE", "KIND", "OBJECT", "FILE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5], out: &mut String| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let _ = write!(s, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    line(header, &mut out);
    for (row, f) in rows.iter().zip(&report.findings) {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]], &mut out);
        wrap(&f.message, "    ", &mut out);
        wrap(&format!("Fix: {}", f.fix), "    ", &mut out);
        out.push('\n');
    }
    let counts: Vec<String> = Severity::ALL
        .iter()
        .rev()
        .map(|s| {
            let n = report.findings.iter().filter(|f| f.severity == *s).count();
            format!("{n} {s}")
        })
        .collect();
    let failing = report
        .findings
        .iter()
        .filter(|f| f.severity >= fail_on)
        .count();
    let _ = writeln!(
        out,
        "{} findings ({}); {failing} at or above --fail-on {fail_on}.",
        report.findings.len(),
        counts.join(", ")
    );
    out
}
