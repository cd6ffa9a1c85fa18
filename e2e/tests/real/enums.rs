//! Every enum value of the CRD, set through `kubectl` as a user would: from a YAML manifest
//! (read as YAML 1.1, values unquoted) and with a JSON merge patch; both accepted and read back
//! as written. The spellings YAML 1.1 turns into booleans are refused. The CRD itself and
//! rendered objects with such strings read the same through kubectl as through our parser.

use std::process::Command;

use meshbaseline::api::MeshBaseline;
use serde_json::{json, Value};

use crate::{real_cluster, TestResult};

const NAME: &str = "e2e-enums";

fn kubectl(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let bin = std::env::var("MESHBASELINE_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let kubeconfig = std::env::var(meshbaseline_e2e::KUBECONFIG_ENV).unwrap_or_default();
    let mut child = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{bin}: {e}"))?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        input
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// (path of the field under `spec`, its enum values), for every enum of the spec's schema.
/// Array levels are written `[]`.
fn spec_enums() -> Vec<(String, Vec<String>)> {
    fn walk(schema: &Value, path: &str, out: &mut Vec<(String, Vec<String>)>) {
        if let Some(values) = schema["enum"].as_array() {
            let values = values.iter().filter_map(Value::as_str).map(String::from);
            out.push((path.to_string(), values.collect()));
        }
        if let Some(props) = schema["properties"].as_object() {
            for (k, v) in props {
                walk(v, &format!("{path}.{k}"), out);
            }
        }
        if schema["items"].is_object() {
            walk(&schema["items"], &format!("{path}[]"), out);
        }
    }
    let crd =
        serde_json::to_value(<MeshBaseline as kube::CustomResourceExt>::crd()).unwrap_or_default();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut out = Vec::new();
    walk(spec, "spec", &mut out);
    out
}

/// A spec setting `path` to `value` (YAML text, the value unquoted), and the same as JSON.
/// List items get the other fields they require.
fn set(path: &str, value: &str) -> (String, Value) {
    match path {
        "spec.exemptions[].controls[]" => (
            format!(
                "  exemptions:\n  - namespace: e2e-enums\n    controls: [{value}]\n    \
                 reason: enum test\n    expires: \"2030-01-01T00:00:00Z\"\n"
            ),
            json!({"exemptions": [{"namespace": "e2e-enums", "controls": [value],
                   "reason": "enum test", "expires": "2030-01-01T00:00:00Z"}]}),
        ),
        _ => {
            let keys: Vec<&str> = path.trim_start_matches("spec.").split('.').collect();
            let mut yaml = String::new();
            let mut json = Value::String(value.to_string());
            for (depth, key) in keys.iter().enumerate() {
                let indent = "  ".repeat(depth + 1);
                let tail = if depth + 1 == keys.len() {
                    format!(" {value}")
                } else {
                    String::new()
                };
                yaml.push_str(&format!("{indent}{key}:{tail}\n"));
            }
            for key in keys.iter().rev() {
                json = json!({ *key: json });
            }
            (yaml, json)
        }
    }
}

/// The manifest of the test baseline: Audit mode (unless the field under test is the mode),
/// selecting no namespace, in a root namespace that does not exist, so nothing would ever be
/// generated for it; no operator runs while a real-cluster test holds the server.
fn manifest(fragment: &str) -> String {
    let mut spec = String::from(
        "  rootNamespace: e2e-enums-root\n  namespaceSelector:\n    matchLabels:\n      \
         e2e.meshbaseline.dev/scenario: enums-none\n",
    );
    if !fragment.starts_with("  mode:") {
        spec.push_str("  mode: Audit\n");
    }
    format!(
        "apiVersion: meshbaseline.dev/v1alpha1\nkind: MeshBaseline\nmetadata:\n  name: {NAME}\n\
         spec:\n{spec}{fragment}"
    )
}

fn read_back(path: &str) -> Result<Value, String> {
    let live: Value = serde_json::from_str(&kubectl(&["get", "mb", NAME, "-o", "json"], None)?)
        .map_err(|e| e.to_string())?;
    let mut at = &live;
    for key in path.split('.') {
        at = match key.strip_suffix("[]") {
            Some(list) => &at[list][0],
            None => &at[key],
        };
    }
    Ok(at.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_enum_value_is_set_through_kubectl_and_read_back() -> TestResult {
    let cluster = real_cluster().await?;
    let result = check().await;
    let deleted = kubectl(&["delete", "mb", NAME, "--ignore-not-found"], None);
    cluster.cleanup().await?;
    result?;
    deleted?;
    Ok(())
}

async fn check() -> TestResult {
    let enums = spec_enums();
    let paths: Vec<&str> = enums.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.admission.tenantObjects",
            "spec.exemptions[].controls[]",
            "spec.mode",
            "spec.mtls.mode",
            "spec.network.adminTier",
            "spec.network.egress.mode",
            "spec.tenantOverrides",
        ],
        "an enum was added: make sure `set` builds it"
    );
    let mut checked = 0;
    for (path, values) in &enums {
        for (i, value) in values.iter().enumerate() {
            // From a manifest, unquoted, as `kubectl apply -f` reads it.
            let (yaml, _) = set(path, value);
            kubectl(&["apply", "-f", "-"], Some(&manifest(&yaml)))
                .map_err(|e| format!("{path}: {value} from a manifest: {e}"))?;
            assert_eq!(read_back(path)?, json!(value), "{path} from a manifest");
            // With a JSON merge patch, to the next value (so the patch changes something).
            let next = &values[(i + 1) % values.len()];
            let (_, patch) = set(path, next);
            let patch = json!({ "spec": patch }).to_string();
            kubectl(
                &["patch", "mb", NAME, "--type", "merge", "-p", &patch],
                None,
            )
            .map_err(|e| format!("{path}: {next} by merge patch: {e}"))?;
            assert_eq!(read_back(path)?, json!(next), "{path} after a merge patch");
            checked += 1;
        }
    }
    assert_eq!(checked, 18, "enum values checked");

    // The old spelling is refused everywhere: unquoted (a boolean in YAML 1.1) and quoted.
    for path in ["spec.admission.tenantObjects", "spec.network.adminTier"] {
        let (yaml, json) = set(path, "Off");
        let field = path.rsplit('.').next().unwrap_or(path);
        let from_manifest = kubectl(&["apply", "-f", "-"], Some(&manifest(&yaml)));
        assert!(
            from_manifest.as_ref().is_err_and(|e| e.contains(field)),
            "{path}: Off from a manifest: {from_manifest:?}"
        );
        let patch = json!({ "spec": json }).to_string();
        let patched = kubectl(
            &["patch", "mb", NAME, "--type", "merge", "-p", &patch],
            None,
        );
        assert!(
            patched
                .as_ref()
                .is_err_and(|e| e.contains("Unsupported value: \"Off\"")),
            "{path}: \"Off\" by merge patch: {patched:?}"
        );
    }
    kubectl_reads_our_yaml_as_we_do()
}

/// The path of the first difference between `a` (kubectl's reading) and `b` (ours), with both.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.keys()
                .chain(y.keys())
                .find_map(|k| match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => first_difference(v, w, &format!("{path}.{k}")),
                    (v, w) => Some(format!("{path}.{k}: kubectl {v:?}, ours {w:?}")),
                })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, &format!("{path}[{i}]"))),
        _ => (a != b).then(|| format!("{path}: kubectl {a}, ours {b}")),
    }
}

/// `minimum: 0.0` is 0 in kubectl's JSON: numbers are compared as numbers.
fn numbers_as_floats(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The committed CRD and a rendered object with strings YAML 1.1 reads as other types: kubectl
/// (YAML 1.1) reads them as our parser (YAML 1.2) does.
fn kubectl_reads_our_yaml_as_we_do() -> TestResult {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crd_path = root.join("crds/meshbaselines.meshbaseline.dev.yaml");
    let crd_text = std::fs::read_to_string(&crd_path)?;
    let ours: Value = serde_norway::from_str(&crd_text)?;
    let theirs: Value = serde_json::from_str(&kubectl(
        &["create", "--dry-run=client", "-o", "json", "-f", "-"],
        Some(&crd_text),
    )?)?;
    let difference = first_difference(
        &numbers_as_floats(theirs["spec"].clone()),
        &numbers_as_floats(ours["spec"].clone()),
        "spec",
    );
    assert_eq!(difference, None, "kubectl reads the CRD differently");

    let tricky = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "e2e-yaml11", "labels": {"on": "Off", "y": "no"}},
        "data": {"a": "yes", "b": "1:30", "c": "0o17", "d": "2030-01-01", "e": "~", "f": "1_000"}});
    let text = meshbaseline::manifests::to_yaml(&tricky);
    let read: Value = serde_json::from_str(&kubectl(
        &["create", "--dry-run=client", "-o", "json", "-f", "-"],
        Some(&text),
    )?)?;
    assert_eq!(read["data"], tricky["data"], "{text}");
    assert_eq!(
        read["metadata"]["labels"], tricky["metadata"]["labels"],
        "{text}"
    );
    Ok(())
}
