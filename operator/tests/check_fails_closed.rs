//! `check`, `render` and the baseline reader fail closed: every way a careless or hostile
//! manifest author found to turn bad input into a clean pass, a hidden object or a hang,
//! each written as it was found.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use meshbaseline::audit::Severity;
use meshbaseline::cli::check::{run, Args, Format};
use serde_json::Value;

mod readers;
use readers::kubectl_local;

fn now() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn args(paths: Vec<PathBuf>) -> Args {
    Args {
        baseline: None,
        format: Format::Json,
        fail_on: Severity::High,
        skip_unreadable: false,
        paths,
    }
}

/// Exit code, the JSON report, stderr.
fn check(a: &Args) -> (u8, Value, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(a, now(), &mut out, &mut err).unwrap();
    let doc = serde_json::from_slice(&out).unwrap();
    (code, doc, String::from_utf8(err).unwrap())
}

fn rules(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}/{}",
                f["rule"].as_str().unwrap(),
                f["namespace"].as_str().unwrap_or("-"),
                f["name"].as_str().unwrap()
            )
        })
        .collect()
}

const STRICT: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n";
const DISABLE: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: weak, namespace: shop}\nspec: {mtls: {mode: DISABLE}}\n";

#[test]
fn a_broken_document_hides_no_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "three.yaml",
        &format!(
            "{STRICT}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: shop}}\ndata: *undefined_alias\n---\n{DISABLE}"
        ),
    );
    let mut a = args(vec![file]);
    let (code, doc, err) = check(&a);
    assert_eq!(code, 2, "an unread document is never a pass");
    assert!(
        err.contains("three.yaml (document 2): line 9: unknown anchor 'undefined_alias'"),
        "{err}"
    );
    assert!(
        rules(&doc).contains(&"MB101 shop/weak".to_string()),
        "{doc:#}"
    );
    a.skip_unreadable = true;
    let (code, doc, _) = check(&a);
    assert_eq!(code, 1, "the DISABLE policy is audited: {doc:#}");
    assert_eq!(doc["errors"][0]["document"], 2);
}

#[test]
fn the_same_file_is_read_once_and_symlink_cycles_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let permissive = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: shop}\nspec: {mtls: {mode: PERMISSIVE}}\n";
    let a_yaml = write(dir.path(), "a.yaml", permissive);
    let (code, doc, err) = check(&args(vec![dir.path().into(), a_yaml]));
    assert_eq!(code, 1);
    assert_eq!(rules(&doc), ["MB101 shop/p"], "one finding, not four");
    assert!(err.contains("same file as"), "{err}");

    let loop_dir = tempfile::tempdir().unwrap();
    write(loop_dir.path(), "mesh.yaml", STRICT);
    symlink(loop_dir.path(), loop_dir.path().join("again")).unwrap();
    let (code, doc, err) = check(&args(vec![loop_dir.path().into()]));
    assert_eq!(code, 0, "{doc:#}");
    // One mesh-wide policy: no MB103. (The baseline's own would not be in force, a low MB105,
    // since the one in force has the baseline's mode.)
    assert!(
        !rules(&doc).iter().any(|r| r.starts_with("MB103")),
        "no MB103 for one policy: {doc:#}"
    );
    assert!(err.contains("symlink cycle"), "{err}");
    // A second copy of the same object under another file name is read once, and a second,
    // different definition of it is an error: the cluster would hold only one.
    write(loop_dir.path(), "copy.yaml", STRICT);
    let (code, doc, _) = check(&args(vec![loop_dir.path().into()]));
    let mb103 = rules(&doc)
        .iter()
        .filter(|r| r.starts_with("MB103"))
        .count();
    assert_eq!((code, mb103), (0, 0), "{doc:#}");
    write(
        loop_dir.path(),
        "other.yaml",
        &STRICT.replace("STRICT", "PERMISSIVE"),
    );
    let (code, doc, _) = check(&args(vec![loop_dir.path().into()]));
    assert_eq!(code, 2);
    assert!(doc["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("also defined at"));
}

fn baseline_file(dir: &Path, spec: &str) -> PathBuf {
    write(
        dir,
        "baseline.yaml",
        &format!("apiVersion: meshbaseline.dev/v1alpha1\nkind: MeshBaseline\nmetadata: {{name: default}}\nspec:\n{spec}"),
    )
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshbaseline"))
}

#[test]
fn unknown_baseline_fields_are_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(
        dir.path(),
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    );
    for (spec, field) in [
        (
            "  network:\n    egress: {mdoe: AllowList, allowCidrs: [10.0.0.0/8]}\n",
            "spec.network.egress.mdoe",
        ),
        ("  mtlss: {mode: STRICT}\n", "spec.mtlss"),
        ("  mtls: {denyPlaintex: false}\n", "spec.mtls.denyPlaintex"),
    ] {
        let b = baseline_file(dir.path(), spec);
        let out = bin()
            .arg("check")
            .arg("--baseline")
            .arg(&b)
            .arg(&manifest)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "check accepted {field}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{field}: unknown field")),
            "{stderr}"
        );
        let out = bin()
            .args(["render", "--namespace", "shop", "--baseline"])
            .arg(&b)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "render accepted {field}");
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains(field));
    }
}

#[test]
fn render_output_means_the_same_to_yaml_1_1_readers() {
    let dir = tempfile::tempdir().unwrap();
    let b = write(
        dir.path(),
        "b.yaml",
        "apiVersion: meshbaseline.dev/v1alpha1\nkind: MeshBaseline\nmetadata: {name: \"on\"}\nspec: {}\n",
    );
    let out = bin()
        .args([
            "render",
            "--namespace",
            "on",
            "--namespace",
            "no",
            "--namespace",
            "yes",
            "--namespace",
            "off",
            "--baseline",
        ])
        .arg(&b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    for ns in ["on", "no", "yes", "off"] {
        assert!(yaml.contains(&format!("  namespace: '{ns}'\n")), "{yaml}");
    }
    assert!(yaml.contains("meshbaseline.dev/baseline: 'on'\n"), "{yaml}");
    // kubectl (YAML 1.1) reads every name and label back as the string it was.
    let objects = kubectl_local(&yaml);
    let namespaces: Vec<&str> = objects
        .iter()
        .filter_map(|o| o.pointer("/metadata/namespace").and_then(Value::as_str))
        .collect();
    for ns in ["on", "no", "yes", "off"] {
        assert!(namespaces.contains(&ns), "{namespaces:?}");
    }
    assert!(objects
        .iter()
        .all(|o| o.pointer("/metadata/labels/meshbaseline.dev~1baseline")
            == Some(&Value::from("on"))));
}

/// Runs the binary, failing (and killing it) if it is still running after a minute: a hang
/// guard, not a timing assertion.
fn run_guarded(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("still running after 60 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn an_unreadable_subdirectory_is_named_and_its_siblings_are_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let weak = write(dir.path(), "weak.yaml", DISABLE);
    std::fs::set_permissions(&weak, std::fs::Permissions::from_mode(0o644)).unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    write(&locked, "x.yaml", STRICT);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = bin();
    cmd.args(["check", "--format", "json"]).arg(dir.path());
    // Root reads any directory: run as nobody then.
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap()
        == 0;
    if root {
        cmd.uid(65534).gid(65534);
    }
    let out = run_guarded(cmd);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: cannot read directory", locked.display())),
        "names the subdirectory: {stderr}"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        rules(&doc).contains(&"MB101 shop/weak".to_string()),
        "{doc:#}"
    );
}

#[test]
fn fifos_are_refused_at_once_and_deep_nesting_unread() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ok.yaml", DISABLE);
    let fifo = dir.path().join("pipe.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo (coreutils) is needed");
    let mut cmd = bin();
    cmd.args(["check", "--format", "json"]).arg(dir.path());
    let out = run_guarded(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("pipe.yaml: a FIFO, not a regular file; refused unread"),
        "{stderr}"
    );
    // Named on the command line too.
    let mut cmd = bin();
    cmd.arg("check").arg(&fifo);
    assert_eq!(run_guarded(cmd).status.code(), Some(2));

    let deep = write(dir.path(), "deep.json", &"[".repeat(200_000));
    let deep_yaml = write(
        dir.path(),
        "deep.yaml",
        &format!("a: {}", "[".repeat(200_000)),
    );
    for f in [deep, deep_yaml] {
        let (code, doc, _) = check(&args(vec![f]));
        assert_eq!(code, 2);
        let message = doc["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("nested more than 100 levels") || message.contains("recursion limit"),
            "{message}"
        );
    }
}

#[test]
fn nothing_readable_is_exit_2() {
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(check(&args(vec![empty.path().into()])).0, 2);
    let no_yaml = tempfile::tempdir().unwrap();
    write(no_yaml.path(), "notes.txt", DISABLE);
    let (code, _, err) = check(&args(vec![no_yaml.path().into()]));
    assert_eq!(code, 2);
    assert!(err.contains("no *.yaml, *.yml or *.json file"), "{err}");
    let comments = write(no_yaml.path(), "only-comments.yaml", "# nothing\n---\n");
    let (code, _, err) = check(&args(vec![comments]));
    assert_eq!(code, 2);
    assert!(err.contains("no Kubernetes object"), "{err}");
}

#[test]
fn a_list_in_a_list_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "lists.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: security.istio.io/v1\n    kind: PeerAuthentication\n    metadata: {name: inner, namespace: shop}\n    spec: {mtls: {mode: DISABLE}}\n  - 42\n",
    );
    let (code, doc, err) = check(&args(vec![f]));
    assert_eq!(code, 2, "the item 42 was not read");
    assert!(
        rules(&doc).contains(&"MB101 shop/inner".to_string()),
        "{doc:#}"
    );
    assert!(
        err.contains("lists.yaml (document 1, items[0].items[1]): a number"),
        "{err}"
    );
}

#[test]
fn baseline_rules_of_the_crd_apply_offline() {
    let dir = tempfile::tempdir().unwrap();
    let ns = write(
        dir.path(),
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    );
    let exemption = |controls: &str, reason: &str| {
        format!("  exemptions: [{{namespace: legacy, controls: {controls}, reason: {reason:?}, expires: \"2030-01-01T00:00:00Z\"}}]\n")
    };
    let cases = [
        (exemption("[mtls]", "ok"), "spec.exemptions[0].reason"),
        (
            exemption("[mtls]", &"x".repeat(1025)),
            "spec.exemptions[0].reason",
        ),
        (
            exemption("[mtls, mtls]", "migration"),
            "spec.exemptions[0].controls[1]",
        ),
    ];
    for (spec, field) in cases {
        let b = baseline_file(dir.path(), &spec);
        let mut a = args(vec![ns.clone()]);
        a.baseline = Some(b);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let e = run(&a, now(), &mut out, &mut err).unwrap_err();
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    let wrong = write(
        dir.path(),
        "v1.yaml",
        "apiVersion: meshbaseline.dev/v1\nkind: MeshBaseline\nmetadata: {name: default}\nspec: {}\n",
    );
    let mut a = args(vec![ns]);
    a.baseline = Some(wrong);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let e = run(&a, now(), &mut out, &mut err).unwrap_err().to_string();
    assert!(
        e.contains("apiVersion: \"meshbaseline.dev/v1\" is not served"),
        "{e}"
    );
}

#[test]
fn render_emits_nothing_for_an_invalid_namespace_name() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_NS!}\n",
    );
    let b = baseline_file(dir.path(), "  {}\n");
    let out = bin()
        .args(["render", "--cluster"])
        .arg(dir.path().join("ns.yaml"))
        .arg("--baseline")
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ns.yaml (document 2): Namespace \"Bad_NS!\": metadata.name: \"Bad_NS!\" is not a DNS-1123 label"),
        "{stderr}"
    );
}

#[test]
fn control_characters_never_reach_the_terminal_or_the_sarif_page() {
    let dir = tempfile::tempdir().unwrap();
    // A name with a terminal sequence is refused (not a valid name), and the refusal shows it
    // escaped; a file name with one is escaped in findings.
    write(
        dir.path(),
        "evil\u{1b}[2K\r.yaml",
        &format!("{DISABLE}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: \"x\\e[2K\\rx\", namespace: shop}}\nspec: {{containers: []}}\n"),
    );
    for format in ["table", "sarif"] {
        let out = bin()
            .args(["check", "--skip-unreadable", "--format", format])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let text = if format == "sarif" {
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
            strings(&doc).join("\n")
        } else {
            String::from_utf8(out.stdout).unwrap()
        };
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r'),
            "{format}: {text:?}"
        );
        assert!(text.contains("\\u{1b}[2K\\u{d}"), "{format}: {text}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => vec![],
    }
}
