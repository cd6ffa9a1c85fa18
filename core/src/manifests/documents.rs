//! A file's text split into documents and objects as kubectl splits it: a line that starts
//! with `---` ends a document (only a comment may follow on that line), a document that
//! starts with `{` and is JSON is a stream of JSON objects, and any object with an `items` field is a List whose
//! items are the objects (nested Lists included; items without apiVersion and kind take the
//! List's, as in a `PodList`).
//!
//! Each document is parsed on its own, so a broken one is reported and the next is still read.

use serde_json::Value;

use super::yaml::{read_document, MAX_DEPTH};

/// One object, or why it could not be read, with where it is.
#[derive(Debug)]
pub struct Piece {
    /// 1-based, counted as an editor shows documents between `---` lines.
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    /// Indexes into `items` of the enclosing Lists, outermost first.
    pub items: Vec<usize>,
    pub object: Result<Value, String>,
}

/// Every object of `text`, in order, and every problem in its place.
pub fn pieces(text: &str) -> Vec<Piece> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (document, line, result) in yaml_documents(text) {
        match result {
            Ok(Some(value)) => flatten(value, document, line, Vec::new(), &mut out),
            Ok(None) => {}
            Err(message) => out.push(Piece {
                document,
                line,
                items: Vec::new(),
                object: Err(message),
            }),
        }
    }
    out
}

type Document = (usize, usize, Result<Option<Value>, String>);

/// A section of a YAML text between separator lines.
struct Section<'t> {
    text: &'t str,
    /// 0-based line of the section's first line.
    first_line: usize,
    /// 0-based line of its first line that is neither blank nor a comment.
    content_line: Option<usize>,
    /// Text after `---` on the line that opened it (kubectl refuses such a line).
    trailing: Option<&'t str>,
}

fn sections(text: &str) -> Vec<Section<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut first_line = 0;
    let mut content_line = None;
    let mut trailing = None;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if let Some(rest) = line.strip_prefix("---") {
            let rest = rest.trim();
            out.push(Section {
                text: &text[start..offset],
                first_line,
                content_line,
                trailing,
            });
            trailing = (!rest.is_empty() && !rest.starts_with('#')).then_some(rest);
            start = offset + line.len();
            first_line = i + 1;
            content_line = None;
        } else if content_line.is_none() && !is_blank(line) {
            content_line = Some(i);
        }
        offset += line.len();
    }
    out.push(Section {
        text: &text[start..],
        first_line,
        content_line,
        trailing,
    });
    // Text before the first separator is a document only if it has content.
    if out.len() > 1 && out[0].content_line.is_none() {
        out.remove(0);
    }
    out
}

/// The parser's "at line N column M" counts from the section; count from the file.
fn shift_lines(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        out.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Sections in order; a section that is a stream of JSON objects (kubectl's JSON reader)
/// gives one document per object, numbered on from the section's number.
fn yaml_documents(text: &str) -> Vec<Document> {
    let mut out = Vec::new();
    let mut number = 0;
    for s in sections(text) {
        number += 1;
        let line = s.content_line.unwrap_or(s.first_line) + 1;
        if let Some(rest) = s.trailing {
            let rest: String = rest.chars().take(40).collect();
            out.push((
                number,
                s.first_line,
                Err(format!(
                    "content on the `---` line ({rest:?}): kubectl refuses it as a document separator"
                )),
            ));
            continue;
        }
        if s.content_line.is_none() {
            continue;
        }
        if s.text.trim_start().starts_with('{') {
            if let Some(json) = json_documents(s.text) {
                for (i, (_, json_line, result)) in json.into_iter().enumerate() {
                    number += usize::from(i > 0);
                    out.push((number, s.first_line + json_line + 1, result));
                }
                continue;
            }
        }
        let result = read_document(s.text).map_err(|e| {
            let message = shift_lines(&e.message, s.first_line);
            match e.line {
                Some(l) => format!("line {}: {message}", s.first_line + l + 1),
                None => message,
            }
        });
        out.push((number, line, result));
    }
    out
}

/// A stream of JSON values, or `None` when the text is not JSON (flow-style YAML such as
/// `{apiVersion: v1}` starts with `{` too): the YAML reader reads it then.
fn json_documents(text: &str) -> Option<Vec<Document>> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut start = 0;
    loop {
        let skipped = text[start..].len() - text[start..].trim_start().len();
        let line = text[..start + skipped].matches('\n').count();
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                let result = if depth(&value) > MAX_DEPTH {
                    Err(format!(
                        "nested more than {MAX_DEPTH} levels deep; refused unread"
                    ))
                } else {
                    Ok(Some(value))
                };
                out.push((out.len() + 1, line, result));
            }
            // Nested too deep for serde_json: refused as JSON, not retried as YAML.
            Some(Err(e)) if e.to_string().contains("recursion limit") => {
                out.push((out.len() + 1, line, Err(format!("not valid JSON: {e}"))));
                break;
            }
            Some(Err(_)) => return None,
        }
        start = stream.byte_offset();
    }
    Some(out)
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn flatten(value: Value, document: usize, line: usize, items: Vec<usize>, out: &mut Vec<Piece>) {
    let piece = |items: Vec<usize>, object| Piece {
        document,
        line,
        items,
        object,
    };
    let Value::Object(mut map) = value else {
        let what = kind_of(&value);
        out.push(piece(
            items,
            Err(format!(
                "{what}, not a Kubernetes object (a mapping with apiVersion and kind)"
            )),
        ));
        return;
    };
    let Some(list) = map.remove("items") else {
        out.push(piece(items, Ok(Value::Object(map))));
        return;
    };
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    if !kind.ends_with("List") {
        let kind = if kind.is_empty() { "object" } else { kind };
        out.push(piece(
            items,
            Err(format!(
                "a {kind} with an `items` field: kubectl reads it as a List and applies its items instead"
            )),
        ));
        return;
    }
    let api_version = map.get("apiVersion").cloned();
    let item_kind = kind.trim_end_matches("List").to_string();
    let entries = match list {
        Value::Null => Vec::new(),
        Value::Array(entries) => entries,
        other => {
            let what = kind_of(&other);
            out.push(piece(
                items,
                Err(format!("items: {what}; a List's items must be a list")),
            ));
            return;
        }
    };
    for (i, mut entry) in entries.into_iter().enumerate() {
        let mut path = items.clone();
        path.push(i);
        if let Value::Object(m) = &mut entry {
            if !m.contains_key("kind") && !m.contains_key("apiVersion") {
                m.insert("kind".into(), Value::String(item_kind.clone()));
                if let Some(v) = &api_version {
                    m.insert("apiVersion".into(), v.clone());
                }
            }
        }
        flatten(entry, document, line, path, out);
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
