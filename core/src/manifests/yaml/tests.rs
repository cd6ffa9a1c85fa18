//! What kubectl 1.37 (`kubectl annotate --local -o json`) prints for each input, read here.

use serde_json::json;

use super::*;

fn read(text: &str) -> Value {
    read_document(text).unwrap().unwrap()
}

fn err(text: &str) -> String {
    read_document(text).unwrap_err().message
}

#[test]
fn yaml_1_1_scalars() {
    let v = read(
        "a: on\nb: y\nc: 0777\nd: 2001-12-14\ne: 1_000\nf: 0b101\ng: 0x1F\ni: 1e3\nj: ~\nk: 0o17\n\
         l: 2001-12-14t21:59:43.10-05:00\nm: +12\nn: 1:20\no: 12e\np: \"x\"\nq: 0x_1F\nr: -0b11\n\
         s: 0.\nt: -.5\nu: 08\nw: 1__0\nx: 0b2\nz: 1.5e3\naa: 'on'\nab: Off\nac: NULL\nad:\n",
    );
    assert_eq!(
        v,
        json!({"a": true, "b": true, "c": 511, "d": "2001-12-14", "e": 1000, "f": 5, "g": 31,
               "i": 1000, "j": null, "k": 15, "l": "2001-12-14t21:59:43.10-05:00", "m": 12,
               "false": "1:20", "o": "12e", "p": "x", "q": 31, "r": -3, "s": 0, "t": -0.5,
               "u": 8, "w": 10, "x": "0b2", "z": 1500, "aa": "on", "ab": false, "ac": null,
               "ad": null})
    );
}

#[test]
fn keys_become_strings_as_sigs_yaml_converts_them() {
    let v = read(
        "{1: a, true: b, 1.5: d, y: e, 0x10: f, 1e6: g, 0.0001: h, 1e-5: i, 123456.0: j, 1.0: k}",
    );
    assert_eq!(
        v,
        json!({"1": "k", "1.5": "d", "16": "f", "true": "e", "1e+06": "g", "0.0001": "h",
               "1e-05": "i", "123456": "j"})
    );
    assert!(err("{~: c}").contains("null mapping key"));
    assert!(err("{? [a, b]: c}").contains("mapping key must be a scalar"));
}

#[test]
fn merge_keys_and_duplicates_as_go_yaml_v2() {
    let v = read(
        "a: &x {p: 1, q: 2}\nb: {<<: *x, q: 3}\nc: {<<: [{p: 1}, {p: 2, r: 3}]}\nd: {q: 3, <<: {q: 2, r: 1}}\ne: {a: 1, a: 2}\n",
    );
    assert_eq!(
        v,
        json!({"a": {"p": 1, "q": 2}, "b": {"p": 1, "q": 3}, "c": {"p": 1, "r": 3},
               "d": {"q": 2, "r": 1}, "e": {"a": 2}})
    );
    assert!(err("a: {<<: 1}").contains("merge key"));
}

#[test]
fn tags() {
    let v = read("{a: !!str 123, b: !!int \"12\", c: !foo bar, d: !!binary aGVsbG8=, e: !!null \"\", f: !!bool yes, g: !!float 1, h: !!int \"0o17\"}");
    assert_eq!(
        v,
        json!({"a": "123", "b": 12, "c": "bar", "d": "hello", "e": null, "f": true, "g": 1, "h": 15})
    );
    assert!(err("a: !!int abc").contains("cannot decode"));
    assert!(err("a: !!binary 'aGVs bG8='").contains("invalid base64"));
}

#[test]
fn numbers_as_kubectl_prints_them() {
    let v = read("{a: 99999999999999999999, b: 1.0, c: 9223372036854775807, d: 18446744073709551615, e: 1e400}");
    assert_eq!(v["b"], json!(1));
    assert_eq!(v["c"], json!(9223372036854775807i64));
    assert_eq!(v["d"], json!(18446744073709551615u64));
    assert_eq!(v["e"], json!("1e400"));
    assert_eq!(v["a"].as_f64(), Some(1e20));
    assert!(err("a: .inf").contains("no JSON form"));
    // Only as a value: a key `.nan` is a string.
    assert_eq!(read("{.nan: x}"), json!({".nan": "x"}));
}

#[test]
fn documents_and_errors() {
    assert_eq!(read_document("# only a comment\n").unwrap(), None);
    assert_eq!(read_document("~\n").unwrap(), None);
    // kubectl reads the first document only and drops the rest in silence; refused here.
    assert!(
        err("a: 1\n...\nb: 2\n").contains("not valid YAML"),
        "{}",
        err("a: 1\n...\nb: 2\n")
    );
    assert!(err("a: *nowhere\n").contains("unknown anchor 'nowhere'"));
    let e = read_document("a: 1\nb: [\n").unwrap_err();
    assert!(e.message.starts_with("not valid YAML"), "{e:?}");
    assert_eq!(e.line, Some(2));
}

#[test]
fn nesting_and_aliases_are_bounded() {
    let deep = "[".repeat(200_000);
    let started = std::time::Instant::now();
    assert!(err(&deep).contains("nested more than 100 levels"));
    let flat = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(read_document(&flat).is_ok());
    let one_more = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert!(read_document(&one_more).is_err());
    // Billion laughs: ten times ten, nine levels deep.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert!(err(&bomb).contains("nodes once aliases are expanded"));
    // Not a timing assertion: only that the refusals above ran at all in a test run.
    let _ = started.elapsed();
}
