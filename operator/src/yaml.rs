//! YAML output that reads the same through a YAML 1.1 parser (kubectl, Helm, PyYAML) as
//! through a YAML 1.2 one.
//!
//! serde_norway quotes the strings YAML 1.2 would read as something else (`true`, `1`, `null`)
//! but leaves `Off`, `yes`, `y`, `0o17`, `1_000` or `12:30` plain, which YAML 1.1 reads as
//! booleans, numbers or sexagesimals: a label value `on` in rendered output would reach the API
//! server as `true`. Strings like these are emitted single-quoted instead.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// Whether a plain scalar `s` is read as anything but the string `s` by a YAML 1.1 parser
/// (the implicit types bool, int, float, null, timestamp, merge and value).
pub fn yaml11_ambiguous(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~", "",
        "<<", "=",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    let digits = unsigned.replace('_', "");
    let numeric = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    // Integers in any base, with underscores, and sexagesimal (`1:30`, `-1:20.5`).
    if numeric(&digits, 10)
        || digits.strip_prefix("0b").is_some_and(|t| numeric(t, 2))
        || digits.strip_prefix("0x").is_some_and(|t| numeric(t, 16))
        || digits.strip_prefix("0o").is_some_and(|t| numeric(t, 8))
        || (unsigned.contains(':')
            && unsigned
                .split(':')
                .all(|part| numeric(&part.replace(['_', '.'], ""), 10)))
    {
        return true;
    }
    // Floats, `.inf` and `.nan` in any spelling (conservative: whatever Rust parses as a float).
    let lower = unsigned.to_ascii_lowercase();
    if digits.parse::<f64>().is_ok() || matches!(lower.as_str(), ".inf" | ".nan") {
        return true;
    }
    // Timestamps start `yyyy-m-d`.
    let mut parts = s.splitn(3, '-');
    let (y, m, rest) = (parts.next(), parts.next(), parts.next());
    if let (Some(y), Some(m), Some(rest)) = (y, m, rest) {
        let day: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = &rest[day.len()..];
        return y.len() == 4
            && numeric(y, 10)
            && (1..=2).contains(&m.len())
            && numeric(m, 10)
            && (1..=2).contains(&day.len())
            && (after.is_empty() || after.starts_with(['T', 't', ' ', '\t']));
    }
    false
}

/// A value serialized with every YAML 1.1-ambiguous string (key or value) replaced by its
/// placeholder, keeping the order of object keys.
struct Substituted<'a> {
    value: &'a Value,
    placeholders: &'a [(String, String)],
}

impl Substituted<'_> {
    fn key<'s>(&'s self, s: &'s str) -> &'s str {
        self.placeholders
            .iter()
            .find(|(original, _)| original == s)
            .map_or(s, |(_, placeholder)| placeholder.as_str())
    }
}

impl Serialize for Substituted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let child = |value| Substituted {
            value,
            placeholders: self.placeholders,
        };
        match self.value {
            Value::String(s) => serializer.serialize_str(self.key(s)),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&child(item))?;
                }
                seq.end()
            }
            Value::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    out.serialize_entry(self.key(k), &child(v))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

fn note_ambiguous(s: &str, out: &mut Vec<String>) {
    if yaml11_ambiguous(s) && !out.iter().any(|o| o == s) {
        out.push(s.to_string());
    }
}

fn collect_ambiguous(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => note_ambiguous(s, out),
        Value::Array(items) => items.iter().for_each(|v| collect_ambiguous(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                note_ambiguous(k, out);
                collect_ambiguous(v, out);
            }
        }
        _ => {}
    }
}

/// `value` as YAML (serde_norway's block style) in which no string is a plain scalar that
/// YAML 1.1 reads as another type.
pub fn to_string(value: &Value) -> Result<String, serde_norway::Error> {
    let plain = serde_norway::to_string(value)?;
    let mut ambiguous = Vec::new();
    collect_ambiguous(value, &mut ambiguous);
    if ambiguous.is_empty() {
        return Ok(plain);
    }
    // serde_norway single-quotes a string of digits with a leading zero (YAML 1.2 reads it as
    // a string, YAML 1.1 as an octal number). Each ambiguous string is emitted as such a
    // placeholder, then the quoted placeholder is replaced by the quoted string. The marker
    // occurs nowhere in the plain output, so only placeholders are replaced.
    let mut marker = String::from("7777");
    while plain.contains(&marker) {
        marker.push('7');
    }
    let placeholders: Vec<(String, String)> = ambiguous
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, format!("0{marker}{i:06}")))
        .collect();
    let mut out = serde_norway::to_string(&Substituted {
        value,
        placeholders: &placeholders,
    })?;
    for (original, placeholder) in &placeholders {
        // None of the ambiguous strings contains a quote or a line break.
        out = out.replace(&format!("'{placeholder}'"), &format!("'{original}'"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn yaml11_scalars_are_recognised() {
        for s in [
            "Off",
            "on",
            "Y",
            "n",
            "NO",
            "~",
            "",
            "1",
            "-1",
            "+1_000",
            "0b101",
            "0x1F",
            "017",
            "0o17",
            "1:30",
            "-1:30:00",
            "1.5",
            ".5",
            "1e3",
            "1.0e+3",
            ".inf",
            "-.Inf",
            ".NaN",
            "2026-12-31",
            "2026-1-2T10:00:00Z",
            "<<",
            "=",
        ] {
            assert!(yaml11_ambiguous(s), "{s:?}");
        }
        for s in [
            "Disabled",
            "Warn",
            "STRICT",
            "ClusterOnly",
            "a1",
            "1a",
            "10.0.0.0/8",
            "::1",
            "1:3a",
            "istio-system",
            "v1",
            "2026-12",
            "1.2.3",
            "*",
            "x=y",
            "onwards",
            "2026-12-31x",
        ] {
            assert!(!yaml11_ambiguous(s), "{s:?}");
        }
    }

    #[test]
    fn ambiguous_strings_are_quoted_and_the_rest_is_unchanged() {
        let v = json!({"b": ["Off", "Warn"], "on": {"y": "1:30", "z": "x"}, "a": "0777700"});
        let out = to_string(&v).unwrap();
        assert_eq!(
            out,
            "a: '0777700'\nb:\n- 'Off'\n- Warn\n'on':\n  'y': '1:30'\n  z: x\n"
        );
        let back: Value = serde_norway::from_str(&out).unwrap();
        assert_eq!(back, v);
        let clean = json!({"a": ["Disabled"], "b": 1});
        assert_eq!(
            to_string(&clean).unwrap(),
            serde_norway::to_string(&clean).unwrap()
        );
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "Off", "on", "y", "N", "1:30", "0b1", "07", "1_0", "~", "", "Warn", "a b", "x",
                "07777", "'0777", "0777'", "7777", "- a", "#", "a: b",
            ])
            .prop_map(str::to_string),
            "[a-z0-9:._ '-]{0,8}",
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            word().prop_map(Value::String),
            any::<bool>().prop_map(Value::Bool)
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(word(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The output reads back as the input, and no ambiguous string is left plain.
        #[test]
        fn round_trips_with_nothing_ambiguous_plain(v in value()) {
            let out = to_string(&v).unwrap();
            let back: Value = serde_norway::from_str(&out).unwrap();
            prop_assert_eq!(&back, &v);
            let mut ambiguous = Vec::new();
            collect_ambiguous(&v, &mut ambiguous);
            for s in ambiguous.iter().filter(|s| !s.is_empty()) {
                for line in out.lines() {
                    let plain = line.trim_start().trim_start_matches("- ");
                    prop_assert!(
                        plain != s.as_str() && !plain.ends_with(&format!(": {s}"))
                            && !plain.starts_with(&format!("{s}:")),
                        "{s:?} plain in {out}"
                    );
                }
            }
        }
    }
}
