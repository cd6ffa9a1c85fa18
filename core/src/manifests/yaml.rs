//! One YAML document read the way kubectl reads it: libyaml's parser (go-yaml is a port of
//! it), go-yaml v2's YAML 1.1 resolution of plain scalars (`yes`, `on`, `y` are booleans,
//! `0777` is octal, `1_000` a number, `<<` merges a mapping) and sigs.k8s.io/yaml's conversion
//! to JSON (non-string keys become strings; a number without a fraction becomes an integer).
//! Serde's YAML readers follow YAML 1.2 instead: `<<: {mtls: {mode: DISABLE}}` would be a key
//! named `<<`, and the merged fields would vanish from what the audit sees.
//!
//! Bounded: nesting deeper than [`MAX_DEPTH`] and documents whose aliases expand to more than
//! [`MAX_NODES`] nodes are refused as soon as the parser reaches them.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::libyaml::{Event, Mark, Parser, Props, Scalar};

/// The deepest nesting of mappings and sequences a document may have.
pub const MAX_DEPTH: usize = 100;
/// The most nodes a document may have, aliases expanded.
pub const MAX_NODES: usize = 1_000_000;

const TAG: &str = "tag:yaml.org,2002:";

/// A document that cannot be read; `line` is 0-based within the text given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    pub line: Option<usize>,
    pub message: String,
}

fn error(mark: Mark, message: impl Into<String>) -> YamlError {
    YamlError {
        line: Some(mark.line),
        message: message.into(),
    }
}

/// Reads `text`, which holds at most one document. `Ok(None)` when there is none (only
/// comments, or an explicit null, which kubectl skips too).
pub fn read_document(text: &str) -> Result<Option<Value>, YamlError> {
    let Some(mut parser) = Parser::new(text.as_bytes()) else {
        return Err(YamlError {
            line: None,
            message: "out of memory".into(),
        });
    };
    let mut composer = Composer::default();
    let mut root = None;
    let mut documents = 0;
    loop {
        let (event, mark) = parser.next_event().map_err(|_| syntax_error(text))?;
        match event {
            Event::StreamStart | Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(root.filter(|v: &Value| !v.is_null())),
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(error(
                        mark,
                        "a second document after `...` without a `---` line: kubectl would drop it",
                    ));
                }
            }
            event => {
                if let Some(done) = composer.event(event, mark)? {
                    root = Some(done.into_value(mark)?);
                }
            }
        }
    }
}

/// libyaml does not expose its messages through this binding; serde_norway, which binds the
/// same parser, fails at the same place and says why.
fn syntax_error(text: &str) -> YamlError {
    match serde_norway::from_str::<serde_norway::Value>(text) {
        Err(e) => YamlError {
            line: e.location().map(|l| l.line().saturating_sub(1)),
            message: format!("not valid YAML: {e}"),
        },
        Ok(_) => YamlError {
            line: None,
            message: "not valid YAML".into(),
        },
    }
}

/// How a node reads as a mapping key.
#[derive(Clone, Debug)]
enum Key {
    Merge,
    Text(String),
    Invalid(&'static str),
}

/// A completed node.
#[derive(Clone, Debug)]
struct Node {
    value: Value,
    /// Why the node cannot be a value (a non-finite number has no JSON form).
    not_a_value: Option<&'static str>,
    key: Key,
    /// Levels of collections in it (0 for a scalar).
    height: usize,
    nodes: usize,
}

impl Node {
    fn into_value(self, mark: Mark) -> Result<Value, YamlError> {
        match self.not_a_value {
            Some(why) => Err(error(mark, why)),
            None => Ok(self.value),
        }
    }
}

enum Frame {
    Sequence {
        anchor: Option<Vec<u8>>,
        items: Vec<Value>,
        height: usize,
        nodes: usize,
    },
    Mapping {
        anchor: Option<Vec<u8>>,
        entries: Vec<(Key, Value, Mark)>,
        key: Option<(Key, Mark)>,
        height: usize,
        nodes: usize,
    },
}

#[derive(Default)]
struct Composer {
    stack: Vec<Frame>,
    anchors: HashMap<Vec<u8>, Node>,
    nodes: usize,
}

impl Composer {
    /// Takes one node event; returns the root once it is complete.
    fn event(&mut self, event: Event, mark: Mark) -> Result<Option<Node>, YamlError> {
        let done = match event {
            Event::Scalar(s) => {
                let anchor = s.props.anchor.clone();
                let node = scalar(s).map_err(|m| error(mark, m))?;
                self.count(1, mark)?;
                self.anchor(anchor, &node);
                node
            }
            Event::Alias(name) => {
                let Some(node) = self.anchors.get(&name) else {
                    let name = String::from_utf8_lossy(&name);
                    return Err(error(mark, format!("unknown anchor '{name}' referenced")));
                };
                if self.stack.len() + node.height > MAX_DEPTH {
                    return Err(too_deep(mark));
                }
                let node = node.clone();
                self.count(node.nodes, mark)?;
                node
            }
            Event::SequenceStart(Props { anchor, .. }) => {
                self.open(mark)?;
                self.stack.push(Frame::Sequence {
                    anchor,
                    items: Vec::new(),
                    height: 1,
                    nodes: 1,
                });
                return Ok(None);
            }
            Event::MappingStart(Props { anchor, .. }) => {
                self.open(mark)?;
                self.stack.push(Frame::Mapping {
                    anchor,
                    entries: Vec::new(),
                    key: None,
                    height: 1,
                    nodes: 1,
                });
                return Ok(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Err(error(mark, "unbalanced collection end"));
                };
                let (anchor, node) = finish(frame)?;
                self.anchor(anchor, &node);
                node
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {
                return Ok(None)
            }
        };
        self.attach(done, mark)
    }

    fn open(&mut self, mark: Mark) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(too_deep(mark));
        }
        self.count(1, mark)
    }

    fn count(&mut self, n: usize, mark: Mark) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(error(
                mark,
                format!("more than {MAX_NODES} nodes once aliases are expanded"),
            ));
        }
        Ok(())
    }

    fn anchor(&mut self, anchor: Option<Vec<u8>>, node: &Node) {
        if let Some(name) = anchor {
            self.anchors.insert(name, node.clone());
        }
    }

    fn attach(&mut self, node: Node, mark: Mark) -> Result<Option<Node>, YamlError> {
        let Some(top) = self.stack.last_mut() else {
            return Ok(Some(node));
        };
        match top {
            Frame::Sequence {
                items,
                height,
                nodes,
                ..
            } => {
                *height = (*height).max(node.height + 1);
                *nodes += node.nodes;
                items.push(node.into_value(mark)?);
            }
            Frame::Mapping {
                entries,
                key,
                height,
                nodes,
                ..
            } => {
                *height = (*height).max(node.height + 1);
                *nodes += node.nodes;
                match key.take() {
                    None => *key = Some((node.key, mark)),
                    Some((k, at)) => entries.push((k, node.into_value(mark)?, at)),
                }
            }
        }
        Ok(None)
    }
}

fn too_deep(mark: Mark) -> YamlError {
    error(
        mark,
        format!("nested more than {MAX_DEPTH} levels deep; refused unread"),
    )
}

/// The node a finished collection makes, with its anchor.
fn finish(frame: Frame) -> Result<(Option<Vec<u8>>, Node), YamlError> {
    let (anchor, value, height, nodes) = match frame {
        Frame::Sequence {
            anchor,
            items,
            height,
            nodes,
        } => (anchor, Value::Array(items), height, nodes),
        Frame::Mapping {
            anchor,
            entries,
            height,
            nodes,
            ..
        } => {
            let mut map = Map::new();
            for (key, value, mark) in entries {
                match key {
                    // Later keys win, merged ones included, as in go-yaml v2.
                    Key::Text(k) => {
                        map.insert(k, value);
                    }
                    Key::Merge => merge(&mut map, value).map_err(|m| error(mark, m))?,
                    Key::Invalid(why) => return Err(error(mark, why)),
                }
            }
            (anchor, Value::Object(map), height, nodes)
        }
    };
    let node = Node {
        value,
        not_a_value: None,
        key: Key::Invalid("a mapping key must be a scalar (kubectl: invalid map key)"),
        height,
        nodes,
    };
    Ok((anchor, node))
}

/// `<<: MAP` or `<<: [MAP, ...]`: the earlier of several maps wins.
fn merge(map: &mut Map<String, Value>, value: Value) -> Result<(), &'static str> {
    const WANT: &str = "a merge key (<<) takes a mapping or a sequence of mappings";
    match value {
        Value::Object(m) => map.extend(m),
        Value::Array(items) => {
            for item in items.into_iter().rev() {
                match item {
                    Value::Object(m) => map.extend(m),
                    _ => return Err(WANT),
                }
            }
        }
        _ => return Err(WANT),
    }
    Ok(())
}

/// A scalar as go-yaml v2 resolves it.
#[derive(Clone, Debug, PartialEq)]
enum Resolved {
    Str(String),
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Null,
    Merge,
}

fn scalar(s: Scalar) -> Result<Node, String> {
    let text = String::from_utf8_lossy(&s.value).into_owned();
    let tag = s
        .props
        .tag
        .map(|t| String::from_utf8_lossy(&t).into_owned());
    let resolved = match tag.as_deref().and_then(|t| t.strip_prefix(TAG)) {
        None if tag.is_none() && s.plain_implicit => resolve(&text),
        None => Resolved::Str(text),
        Some("str") => Resolved::Str(text),
        Some("binary") => Resolved::Str(base64(&text)?),
        Some("merge") => Resolved::Merge,
        Some(t @ ("bool" | "int" | "float" | "null")) => match (t, resolve(&text)) {
            ("bool", r @ Resolved::Bool(_)) | ("null", r @ Resolved::Null) => r,
            ("int", r @ (Resolved::Int(_) | Resolved::Uint(_))) => r,
            ("float", r @ Resolved::Float(_)) => r,
            ("float", Resolved::Int(i)) => Resolved::Float(i as f64),
            ("float", Resolved::Uint(u)) => Resolved::Float(u as f64),
            _ => return Err(format!("cannot decode `{text}` as a !!{t}")),
        },
        // Timestamps stay text, as kubectl keeps them; unknown tags are ignored.
        Some(_) => Resolved::Str(text),
    };
    Ok(node(resolved))
}

fn node(r: Resolved) -> Node {
    let (value, not_a_value) = match &r {
        Resolved::Str(s) => (Value::String(s.clone()), None),
        Resolved::Merge => (Value::String("<<".into()), None),
        Resolved::Bool(b) => (Value::Bool(*b), None),
        Resolved::Int(i) => (Value::from(*i), None),
        Resolved::Uint(u) => (Value::from(*u), None),
        Resolved::Null => (Value::Null, None),
        Resolved::Float(f) => match json_float(*f) {
            Some(v) => (v, None),
            None => (Value::Null, Some("infinity and NaN have no JSON form")),
        },
    };
    let key = match r {
        Resolved::Str(s) => Key::Text(s),
        Resolved::Merge => Key::Merge,
        Resolved::Bool(b) => Key::Text(b.to_string()),
        Resolved::Int(i) => Key::Text(i.to_string()),
        Resolved::Uint(u) => Key::Text(u.to_string()),
        Resolved::Float(f) => Key::Text(go_float_key(f)),
        Resolved::Null => Key::Invalid("a null mapping key (kubectl: unsupported map key)"),
    };
    Node {
        value,
        not_a_value,
        key,
        height: 0,
        nodes: 1,
    }
}

/// kubectl converts YAML to JSON text and decodes it again: a float without a fraction
/// below 1e21 is written as an integer and read back as one when it fits.
fn json_float(f: f64) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
        // In range and integral: the cast is exact.
        return Some(Value::from(f as i64));
    }
    Number::from_f64(f).map(Value::Number)
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`, which sigs.k8s.io/yaml uses for float keys.
fn go_float_key(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    let f = f as f32;
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// go-yaml v2's `resolve` for a plain scalar.
fn resolve(s: &str) -> Resolved {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Resolved::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Resolved::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        "<<" => return Resolved::Merge,
        _ => {}
    }
    match s.as_bytes()[0] {
        b'.' => match s.parse::<f64>() {
            Ok(f) if go_float_syntax(s) && f.is_finite() => Resolved::Float(f),
            _ => Resolved::Str(s.into()),
        },
        b'+' | b'-' | b'0'..=b'9' => resolve_number(s),
        _ => Resolved::Str(s.into()),
    }
}

fn resolve_number(s: &str) -> Resolved {
    let plain = s.replace('_', "");
    if let Some(i) = go_parse_int(&plain, true) {
        if let Ok(i) = i64::try_from(i) {
            return Resolved::Int(i);
        }
    }
    if let Some(u) = go_parse_int(&plain, false) {
        if let Ok(u) = u64::try_from(u) {
            return Resolved::Uint(u);
        }
    }
    if yaml_float_syntax(&plain) {
        if let Ok(f) = plain.parse::<f64>() {
            if f.is_finite() {
                return Resolved::Float(f);
            }
        }
    }
    let binary = plain
        .strip_prefix("0b")
        .map(|d| (false, d))
        .or_else(|| plain.strip_prefix("-0b").map(|d| (true, d)));
    if let Some((negative, digits)) = binary {
        let signed = if negative {
            format!("-{digits}")
        } else {
            digits.to_string()
        };
        if let Some(i) = parse_digits(&signed, 2, true).and_then(|i| i64::try_from(i).ok()) {
            return Resolved::Int(i);
        }
    }
    Resolved::Str(s.into())
}

/// Go's `strconv.ParseInt(s, 0, 64)` (or `ParseUint` when `signed` is false), without the
/// range check: a base prefix (`0x`, `0o`, `0b`, or a leading `0` for octal), then digits.
fn go_parse_int(s: &str, signed: bool) -> Option<i128> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'+') if signed => (false, &s[1..]),
        Some(b'-') if signed => (true, &s[1..]),
        _ => (false, s),
    };
    let (base, digits) = match rest.as_bytes() {
        [b'0', b'x' | b'X', ..] => (16, &rest[2..]),
        [b'0', b'b' | b'B', ..] => (2, &rest[2..]),
        [b'0', b'o' | b'O', ..] => (8, &rest[2..]),
        [b'0', _, ..] => (8, &rest[1..]),
        _ => (10, rest),
    };
    let n = parse_digits(digits, base, false)?;
    Some(if negative { -n } else { n })
}

/// Digits in `base` (an optional sign when `signed`), as an i128 that saturates far beyond
/// the 64-bit range.
fn parse_digits(s: &str, base: u32, signed: bool) -> Option<i128> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') if signed => (true, &s[1..]),
        Some(b'+') if signed => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i128 = 0;
    for c in digits.chars() {
        let d = c.to_digit(base)?;
        n = n
            .saturating_mul(i128::from(base))
            .saturating_add(i128::from(d));
    }
    Some(if negative { -n } else { n })
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`, go-yaml's float syntax.
fn yaml_float_syntax(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// What Go's `ParseFloat` accepts for a text starting with `.`: digits, then an exponent.
fn go_float_syntax(s: &str) -> bool {
    yaml_float_syntax(s)
}

/// Standard base64 (line breaks ignored), as go-yaml decodes `!!binary`.
fn base64(text: &str) -> Result<String, String> {
    const INVALID: &str = "!!binary value contains invalid base64 data";
    let mut bytes = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut padding = 0;
    for c in text.bytes().filter(|c| !matches!(c, b'\n' | b'\r')) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            _ => return Err(INVALID.into()),
        };
        if padding > 0 {
            return Err(INVALID.into());
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    let chars = text.bytes().filter(|c| !matches!(c, b'\n' | b'\r')).count();
    if chars % 4 != 0 || padding > 2 {
        return Err(INVALID.into());
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests;
