//! YAML that every reader reads back unchanged, YAML 1.1 ones included (kubectl, Argo CD,
//! Flux, PyYAML): a string is written plain only when it starts with a letter, is printable
//! ASCII without `: ` or ` #`, and is not one of the words YAML 1.1 reads as a boolean or null (`on`, `off`, `yes`, `no`, `y`, `n`, `true`, `false`, `null`, in any
//! case). Everything else is quoted: numbers, dates, `~`, `*`, IP addresses. Multi-line text
//! is a literal block when that is exact, otherwise a double-quoted string with escapes; no
//! control character, line separator or byte-order mark is written raw.

use std::fmt::Write;

use serde_json::{Map, Value};

/// `value` as a block-style YAML document (no `---`), ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => sequence(&mut out, items, 0, false),
        scalar => {
            inline(&mut out, scalar, 0);
        }
    }
    out
}

fn mapping(out: &mut String, map: &Map<String, Value>, indent: usize, continues_line: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !continues_line {
            pad(out, indent);
        }
        out.push_str(&scalar_string(key, true));
        out.push(':');
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                mapping(out, m, indent + 2, false);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, indent, false);
            }
            scalar => {
                out.push(' ');
                inline(out, scalar, indent + 2);
            }
        }
    }
}

fn sequence(out: &mut String, items: &[Value], indent: usize, continues_line: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !continues_line {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => mapping(out, m, indent + 2, true),
            Value::Array(inner) if !inner.is_empty() => sequence(out, inner, indent + 2, true),
            scalar => inline(out, scalar, indent + 2),
        }
    }
}

/// A scalar or an empty collection, and the end of its line; a literal block's lines are
/// indented by `block_indent`.
fn inline(out: &mut String, value: &Value, block_indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) if literal_ok(s) => {
            out.push_str(if s.ends_with('\n') { "|" } else { "|-" });
            for line in s.trim_end_matches('\n').split('\n') {
                out.push('\n');
                if !line.is_empty() {
                    pad(out, block_indent);
                    out.push_str(line);
                }
            }
        }
        Value::String(s) => out.push_str(&scalar_string(s, false)),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
    out.push('\n');
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// YAML 1.1 reads a float only with a `.` and a signed exponent (`1.0e+20`, not `1e20`).
fn number(n: &serde_json::Number) -> String {
    let s = n.to_string();
    if !n.is_f64() {
        return s;
    }
    let (mantissa, exp) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m.to_string(), Some(e.to_string())),
        None => (s.clone(), None),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa
    } else {
        format!("{mantissa}.0")
    };
    match exp {
        Some(e) if e.starts_with(['-', '+']) => format!("{mantissa}e{e}"),
        Some(e) => format!("{mantissa}e+{e}"),
        None => mantissa,
    }
}

/// Words some YAML 1.1 reader takes for a boolean or null.
fn is_reserved_word(s: &str) -> bool {
    const WORDS: [&str; 9] = ["y", "n", "yes", "no", "on", "off", "true", "false", "null"];
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

/// Safe to write plain in every YAML reader: starts with a letter (so no reader takes it for a
/// number, a date, an alias or an indicator), printable ASCII, none of the sequences that end
/// a plain scalar (`: `, ` #`, a trailing `:` or space), and not a YAML 1.1 boolean or null.
pub fn plain_ok(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| matches!(c, ' '..='~'))
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !is_reserved_word(s)
}

/// Characters a quoted scalar may hold raw: printable, and no line break of YAML 1.1 (which
/// counts NEL, LS and PS) and no byte-order mark.
fn raw_ok(c: char) -> bool {
    matches!(c, ' '..='~')
        || (c >= '\u{a0}'
            && !matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            ))
}

fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\n'])
        && !s.ends_with("\n\n")
        && s.chars().all(|c| c == '\n' || raw_ok(c))
        && s.split('\n').all(|l| l.is_empty() || !l.trim().is_empty())
}

fn scalar_string(s: &str, _key: bool) -> String {
    if plain_ok(s) {
        return s.to_string();
    }
    if s.chars().all(raw_ok) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if raw_ok(c) => q.push(c),
            c => {
                let _ = write!(q, "\\u{:04X}", u32::from(c));
            }
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ambiguous_scalars_are_quoted() {
        let v = json!({"on": "off", "n": ["y", "No", "~", "null", "", "0777", "1e3", "2026-01-01",
            "0x1F", ".inf", "1_000", "*", "a: b", "a #b", "x", "meshbaseline-deny", "\u{1b}[2K\r", "it's", "a'b"],
            "m": "two\nlines\n", "f": 1.5, "g": 1e20, "h": 3, "e": {}, "l": []});
        assert_eq!(
            to_yaml(&v),
            "e: {}\nf: 1.5\ng: 1.0e+20\nh: 3\nl: []\nm: |\n  two\n  lines\n'n':\n- 'y'\n- 'No'\n\
             - '~'\n- 'null'\n- ''\n- '0777'\n- '1e3'\n- '2026-01-01'\n- '0x1F'\n- '.inf'\n\
             - '1_000'\n- '*'\n- 'a: b'\n- 'a #b'\n- x\n- meshbaseline-deny\n- \"\\u001B[2K\\r\"\n\
             - it's\n- a'b\n'on': 'off'\n"
        );
    }

    #[test]
    fn nesting() {
        let v = json!({"a": [[1, 2], {"b": [3], "c": {"d": "e"}}], "z": {"y": "x"}});
        assert_eq!(
            to_yaml(&v),
            "a:\n- - 1\n  - 2\n- b:\n  - 3\n  c:\n    d: e\nz:\n  'y': x\n"
        );
    }
}
