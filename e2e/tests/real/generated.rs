//! Every object the compiler generates is accepted by a real API server with
//! `fieldValidation=Strict`, against Istio's own CRDs (their schemas and CEL rules) and the
//! built-in NetworkPolicy validation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kube::api::{Patch, PatchParams, ValidationDirective};
use meshbaseline::cli::render::{render, Args};
use meshbaseline_e2e::cluster::parse_documents;
use serde_json::Value;

use crate::{real_cluster, TestResult};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The example baseline, and variants covering the other egress modes and mTLS mode.
fn baselines() -> Result<Vec<(String, String)>, Box<dyn std::error::Error + Send + Sync>> {
    let path = examples().join("baseline.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let example = parse_documents(&text)?.remove(0);
    let variant = |edit: &dyn Fn(&mut Value)| -> Result<String, serde_json::Error> {
        let mut v = example.clone();
        edit(&mut v["spec"]);
        serde_json::to_string(&v)
    };
    Ok(vec![
        ("examples".into(), text.clone()),
        (
            "ClusterOnly".into(),
            variant(&|s| s["network"]["egress"]["mode"] = "ClusterOnly".into())?,
        ),
        (
            "Unrestricted".into(),
            variant(&|s| {
                s["network"]["egress"] = serde_json::json!({"mode": "Unrestricted"});
            })?,
        ),
        (
            "PERMISSIVE".into(),
            variant(&|s| s["mtls"]["mode"] = "PERMISSIVE".into())?,
        ),
    ])
}

#[tokio::test]
async fn generated_objects_pass_strict_validation() -> TestResult {
    let cluster = real_cluster().await?;
    let admin = cluster.harness_client();
    let path = examples().join("cluster/namespaces.yaml");
    let namespaces =
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    for ns in parse_documents(&namespaces)? {
        // Recorded by the harness, deleted again below (they would change later scenarios).
        cluster.apply_as("meshbaseline-e2e", &ns, true).await?;
    }
    let params = PatchParams {
        dry_run: true,
        field_validation: Some(ValidationDirective::Strict),
        ..PatchParams::apply("meshbaseline").force()
    };
    let dir = tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut kinds = BTreeSet::new();
    let mut refused = Vec::new();
    let mut total = 0;
    for (label, text) in baselines()? {
        let file = dir.join(format!("{label}.yaml"));
        std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
        let args = Args {
            baseline: file,
            cluster: vec![examples().join("cluster")],
            namespace: Vec::new(),
        };
        let yaml =
            render(&args, jiff::Timestamp::now()).map_err(|e| format!("render {label}: {e}"))?;
        for obj in parse_documents(&yaml)? {
            total += 1;
            let text = |p: &str| {
                obj.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (api_version, kind) = (text("/apiVersion"), text("/kind"));
            let (ns, name) = (text("/metadata/namespace"), text("/metadata/name"));
            let (api, _) = cluster
                .api_as(&admin, &api_version, &kind, Some(&ns))
                .await?;
            match api.patch(&name, &params, &Patch::Apply(&obj)).await {
                Ok(_) => {
                    kinds.insert(format!("{api_version}/{kind}"));
                }
                Err(e) => refused.push(format!("{label}: {kind} {ns}/{name}: {e}")),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    cluster.cleanup().await?;
    assert!(
        refused.is_empty(),
        "refused by the API server: {refused:#?}"
    );
    for kind in [
        "security.istio.io/v1/AuthorizationPolicy",
        "security.istio.io/v1/PeerAuthentication",
        "networking.istio.io/v1/DestinationRule",
        "networking.istio.io/v1/Sidecar",
        "networking.k8s.io/v1/NetworkPolicy",
        "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy",
        "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding",
        "policy.networking.k8s.io/v1beta1/ClusterNetworkPolicy",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} among {total} objects: {kinds:?}"
        );
    }
    eprintln!("{total} generated objects accepted with fieldValidation=Strict: {kinds:?}");
    Ok(())
}

fn tempdir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("meshbaseline-real-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
