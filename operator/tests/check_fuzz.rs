//! `check` on random bytes and random YAML documents: exit 2, or a complete audit. Never a
//! panic, and never a silent skip: every document of the input is read, reported as not
//! read, or noted as a copy read once.

use std::path::{Path, PathBuf};

use meshbaseline::api::Baseline;
use meshbaseline::audit::Severity;
use meshbaseline::cli::check::{check, Report};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "List"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("meshbaseline.dev/v1alpha1", "MeshBaseline"),
];

const WORDS: &[&str] = &[
    "on",
    "off",
    "yes",
    "no",
    "y",
    "n",
    "~",
    "null",
    "0777",
    "1e3",
    "1_000",
    "<<",
    "*a",
    "&a",
    "DISABLE",
    "STRICT",
    "shop",
    "items",
    "kind",
    "metadata",
    "name",
    "namespace",
    "spec",
    "mtls",
    "mode",
    "containers",
    "- a",
    "[",
    "{",
    "---",
    "...",
    "!!binary",
    "\u{1b}[2K",
    "'",
    "\"",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        prop::sample::select(WORDS).prop_map(|w| json!(w)),
        "[a-z0-9.-]{0,10}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(WORDS), inner), 0..5).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A document that is mostly an object of a kind the loader reads.
fn document() -> impl Strategy<Value = Value> {
    (prop::sample::select(KINDS), "[a-z]{1,6}", value(), value()).prop_map(
        |((api, kind), name, spec, items)| {
            let mut doc = json!({"apiVersion": api, "kind": kind,
                                 "metadata": {"name": name, "namespace": "shop"}, "spec": spec});
            if kind == "List" {
                doc["items"] = items;
            }
            doc
        },
    )
}

/// Text mutations: a document's YAML with random text spliced in.
fn yaml_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(document(), 1..5),
        prop::collection::vec(
            (any::<prop::sample::Index>(), prop::sample::select(WORDS)),
            0..3,
        ),
    )
        .prop_map(|(docs, splices)| {
            let mut text = docs
                .iter()
                .map(meshbaseline::manifests::to_yaml)
                .collect::<Vec<_>>()
                .join("---\n");
            for (at, word) in splices {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                text.insert_str(i, word);
            }
            text
        })
}

fn run(dir: &Path, name: &str, bytes: &[u8]) -> Report {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    check(
        &Baseline::default_for_check(),
        &[PathBuf::from(&path)],
        "2026-06-01T00:00:00Z".parse().unwrap(),
        false,
        Severity::High,
    )
}

/// Exit 2, or a complete audit: every input read, and the exit code the findings give.
fn assert_exit_2_or_complete(report: &Report) {
    let loaded = &report.loaded;
    match report.exit_code() {
        2 => assert!(!loaded.errors.is_empty() || loaded.objects == 0),
        code => {
            assert!(
                loaded.errors.is_empty() && loaded.objects > 0,
                "{loaded:#?}"
            );
            let failing = report.findings.iter().any(|f| f.severity >= Severity::High);
            assert_eq!(code, u8::from(failing));
        }
    }
}

/// No silent skip: each document with content (split as kubectl splits) is read, reported
/// as not read, noted as a copy, or holds no object (null, or a List without items).
fn assert_every_document_accounted(report: &Report, text: &str) {
    let loaded = &report.loaded;
    if text.trim_start().starts_with('{')
        || loaded.errors.iter().any(|e| e.location.document.is_none())
    {
        return;
    }
    for (number, section) in sections(text) {
        let read = loaded.read.keys().any(|(_, d)| *d == number);
        let reported = loaded
            .errors
            .iter()
            .any(|e| e.location.document == Some(number))
            || loaded
                .notes
                .iter()
                .any(|n| n.location.document == Some(number));
        if read || reported {
            continue;
        }
        let holds_nothing = match meshbaseline::manifests::yaml::read_document(&section) {
            Ok(None) => true,
            Ok(Some(v)) => v
                .get("items")
                .is_some_and(|i| i.as_array().is_none_or(Vec::is_empty)),
            Err(_) => false,
        };
        assert!(holds_nothing, "document {number} silently skipped:\n{text}");
    }
}

/// kubectl's split: a line starting with `---` ends a document; text before the first one
/// counts only if it has content. Documents without content are left out.
fn sections(text: &str) -> Vec<(usize, String)> {
    let mut sections: Vec<Vec<&str>> = vec![vec![]];
    for line in text.split('\n') {
        if line.starts_with("---") {
            sections.push(vec![]);
        } else if let Some(last) = sections.last_mut() {
            last.push(line);
        }
    }
    let content = |s: &Vec<&str>| {
        s.iter()
            .any(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
    };
    if sections.len() > 1 && !content(&sections[0]) {
        sections.remove(0);
    }
    sections
        .iter()
        .enumerate()
        .filter(|(_, s)| content(s))
        .map(|(i, s)| (i + 1, s.join("\n")))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_yaml_documents(text in yaml_text()) {
        let dir = tempfile::tempdir().unwrap();
        let report = run(dir.path(), "docs.yaml", text.as_bytes());
        assert_exit_2_or_complete(&report);
        assert_every_document_accounted(&report, &text);
    }

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().unwrap();
        let report = run(dir.path(), "bytes.yaml", &bytes);
        assert_exit_2_or_complete(&report);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            assert_every_document_accounted(&report, text);
        }
    }

    #[test]
    fn random_text(text in "(\\PC|\n|---\n|: |- |\\[|\\{|&a |\\*a|<<: ){0,200}") {
        let dir = tempfile::tempdir().unwrap();
        let report = run(dir.path(), "text.yaml", text.as_bytes());
        assert_exit_2_or_complete(&report);
        assert_every_document_accounted(&report, &text);
    }
}
