//! `--format table`: aligned columns, then the message and the fix wrapped below each row;
//! then every input not read (or skipped) and every note. Names, paths and messages are
//! escaped: a control character in a name cannot rewrite the terminal.

use std::fmt::Write;

use super::Report;
use crate::audit::Severity;
use crate::cli::escape::printable;

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

pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    if report.findings.is_empty() {
        out.push_str("No findings.\n");
    } else {
        findings(report, &mut out);
    }
    inputs(report, &mut out);
    if let Some(why) = report.unusable() {
        let _ = writeln!(out, "\nINCOMPLETE: {why}.");
    }
    out
}

fn findings(report: &Report, out: &mut String) {
    let rows: Vec<[String; 5]> = report
        .findings
        .iter()
        .map(|f| {
            let location = report
                .origin(f)
                .map(|o| match o.line {
                    Some(line) => format!("{}:{line}", o.file.display()),
                    None => o.file.display().to_string(),
                })
                .unwrap_or_else(|| "-".to_string());
            let object = match &f.namespace {
                Some(ns) => format!("{ns}/{}", f.name),
                None => f.name.clone(),
            };
            [
                f.severity.to_string().to_uppercase(),
                f.rule.id().to_string(),
                printable(&f.kind).into_owned(),
                printable(&object).into_owned(),
                printable(&location).into_owned(),
            ]
        })
        .collect();
    let header = ["SEVERITY", "RULE", "KIND", "OBJECT", "FILE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
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
    line(header, out);
    for (row, f) in rows.iter().zip(&report.findings) {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]], out);
        wrap(&printable(&f.message), "    ", out);
        wrap(&printable(&format!("Fix: {}", f.fix)), "    ", out);
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
        .filter(|f| f.severity >= report.fail_on)
        .count();
    let _ = writeln!(
        out,
        "{} findings ({}); {failing} at or above --fail-on {}.",
        report.findings.len(),
        counts.join(", "),
        report.fail_on
    );
}

fn inputs(report: &Report, out: &mut String) {
    let loaded = &report.loaded;
    if !loaded.errors.is_empty() {
        let title = if report.skip_unreadable {
            "Skipped (--skip-unreadable)"
        } else {
            "Not read"
        };
        let _ = writeln!(out, "\n{title}: {}", loaded.errors.len());
        for e in &loaded.errors {
            let _ = writeln!(out, "  {}", printable(&e.to_string()));
        }
    }
    if !loaded.notes.is_empty() {
        let _ = writeln!(out, "\nRead once: {}", loaded.notes.len());
        for n in &loaded.notes {
            let _ = writeln!(out, "  {}", printable(&n.to_string()));
        }
    }
}
