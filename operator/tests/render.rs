//! `meshbaseline render` on the examples: snapshots of the library function, and the real
//! binary for exit codes and an empty stdout on bad input.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use meshbaseline::cli::render::{render, Args, RenderError};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

fn example_args() -> Args {
    Args {
        baseline: repo("examples/baseline.yaml"),
        cluster: vec![repo("examples/cluster")],
        namespace: vec![],
    }
}

#[test]
fn render_examples_cluster() {
    let yaml = render(&example_args(), now()).unwrap();
    insta::assert_snapshot!("examples_cluster", yaml);
}

#[test]
fn render_examples_after_the_exemption_expired() {
    let before = render(&example_args(), now()).unwrap();
    let after = render(&example_args(), "2031-01-01T00:00:00Z".parse().unwrap()).unwrap();
    let legacy_ap = "name: meshbaseline-deny-plaintext\n  namespace: legacy-billing\n";
    assert!(!before.contains(legacy_ap), "exempt from mtls until 2030");
    assert!(before.contains("name: meshbaseline-baseline\n  namespace: legacy-billing\n"));
    assert!(after.contains(legacy_ap), "{after}");
}

#[test]
fn render_examples_with_namespace_flags() {
    let args = Args {
        baseline: repo("examples/baseline.yaml"),
        cluster: vec![],
        namespace: vec!["orders".into(), "billing".into()],
    };
    // Namespaces without labels are not selected by the example's selector: root objects only.
    let yaml = render(&args, now()).unwrap();
    insta::assert_snapshot!("examples_namespaces", yaml);
}

#[test]
fn rendered_stream_parses_back_and_validates() {
    let yaml = render(&example_args(), now()).unwrap();
    let schemas = IstioSchemas::load();
    let mut count = 0;
    for de in serde_norway::Deserializer::from_str(&yaml) {
        let v: serde_json::Value = serde::Deserialize::deserialize(de).unwrap();
        count += 1;
        use k8s_openapi::api::admissionregistration::v1 as adm;
        if v["kind"] == "NetworkPolicy" {
            let _: k8s_openapi::api::networking::v1::NetworkPolicy =
                serde_json::from_value(v).unwrap();
        } else if v["kind"] == "ValidatingAdmissionPolicy" {
            let _: adm::ValidatingAdmissionPolicy = serde_json::from_value(v).unwrap();
        } else if v["kind"] == "ValidatingAdmissionPolicyBinding" {
            let _: adm::ValidatingAdmissionPolicyBinding = serde_json::from_value(v).unwrap();
        } else if v["kind"] == "ClusterNetworkPolicy" {
            // Checked against its CRD on the real server (e2e `real` tests).
            assert_eq!(v["apiVersion"], "policy.networking.k8s.io/v1beta1");
        } else {
            assert!(schemas.errors(&v).is_empty(), "{v:#}");
        }
    }
    assert_eq!(count, yaml.matches("---\n").count());
    assert!(count > 5);
}

#[test]
fn cluster_manifest_errors_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ns.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: [not, a, string]}\n",
    )
    .unwrap();
    let args = Args {
        baseline: repo("examples/baseline.yaml"),
        cluster: vec![dir.path().to_path_buf()],
        namespace: vec![],
    };
    let err = render(&args, now()).unwrap_err();
    assert!(matches!(err, RenderError::Manifests(_)));
    let msg = err.to_string();
    assert!(msg.contains("ns.yaml (document 2)"), "{msg}");
    assert!(msg.contains("metadata.name"), "{msg}");
}

#[test]
fn bad_namespace_flag_and_missing_files() {
    let args = Args {
        baseline: repo("examples/baseline.yaml"),
        cluster: vec![],
        namespace: vec!["Shop".into()],
    };
    assert_eq!(
        render(&args, now()).unwrap_err().to_string(),
        r#"--namespace "Shop": not a valid namespace name (DNS-1123 label)"#
    );
    let args = Args {
        baseline: repo("examples/does-not-exist.yaml"),
        ..Args::default()
    };
    let msg = render(&args, now()).unwrap_err().to_string();
    assert!(msg.contains("does-not-exist.yaml: cannot read"), "{msg}");
    let args = Args {
        baseline: repo("examples/cluster/namespaces.yaml"),
        ..Args::default()
    };
    let msg = render(&args, now()).unwrap_err().to_string();
    assert!(
        msg.ends_with("namespaces.yaml: no MeshBaseline found"),
        "{msg}"
    );
}

#[test]
fn binary_renders_examples_and_fails_cleanly_on_invalid_baseline() {
    let bin = env!("CARGO_BIN_EXE_meshbaseline");
    let ok = Command::new(bin)
        .args(["render", "--baseline"])
        .arg(repo("examples/baseline.yaml"))
        .arg("--cluster")
        .arg(repo("examples/cluster"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("---\napiVersion: "));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: meshbaseline.dev/v1alpha1\nkind: MeshBaseline\nmetadata: {name: default}\nspec:\n  network: {egress: {allowCidrs: [10.0.0.0/33]}}\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["render", "--namespace", "shop", "--baseline"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml (document 1)"), "{stderr}");
    assert!(
        stderr.contains(r#"spec.network.egress.allowCidrs[0]: "10.0.0.0/33" is not a CIDR"#),
        "{stderr}"
    );
}

#[test]
fn uid_from_a_cluster_dump_gives_no_owner_reference() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.yaml");
    std::fs::write(
        &path,
        "apiVersion: meshbaseline.dev/v1alpha1\nkind: MeshBaseline\nmetadata: {name: default, uid: 1b4e28ba-2fa1-11d2-883f-0016d3cca427}\nspec: {}\n",
    )
    .unwrap();
    let args = Args {
        baseline: path,
        cluster: vec![],
        namespace: vec!["shop".into()],
    };
    let yaml = render(&args, now()).unwrap();
    assert!(yaml.contains("namespace: shop"), "{yaml}");
    assert!(!yaml.contains("ownerReferences"), "{yaml}");
}
