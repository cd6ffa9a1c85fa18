//! Every object the compiler generates is accepted by a real API server with
//! `fieldValidation=Strict`, against Istio's own CRDs (their schemas and CEL rules) and the
//! built-in NetworkPolicy validation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kube::api::{Api, DynamicObject, Patch, PatchParams, ValidationDirective};
use meshbaseline::cli::render::{render, Args};
use meshbaseline_e2e::cluster::parse_documents;
use meshbaseline_e2e::real::apply_admin;
use serde_json::Value;

use crate::{real_cluster, TestResult};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The example baseline, and variants covering the other egress modes and mTLS mode.
fn baselines() -> Result<Vec<(String, String)>, Box<dyn std::error::Error + Send + Sync>> {
    let text = std::fs::read_to_string(examples().join("baseline.yaml"))?;
    let mut out = vec![("examples/baseline.yaml".to_string(), text.clone())];
    for (label, from, to) in [
        ("ClusterOnly", "mode: AllowList", "mode: ClusterOnly"),
        ("Unrestricted", "mode: AllowList", "mode: Unrestricted"),
        ("PERMISSIVE", "mode: STRICT", "mode: PERMISSIVE"),
    ] {
        assert!(text.contains(from), "examples/baseline.yaml has no `{from}`");
        out.push((label.to_string(), text.replacen(from, to, 1)));
    }
    Ok(out)
}

#[tokio::test]
async fn generated_objects_pass_strict_validation() -> TestResult {
    let cluster = real_cluster().await?;
    let admin = cluster.harness_client();
    let namespaces = std::fs::read_to_string(examples().join("cluster/namespaces.yaml"))?;
    for ns in parse_documents(&namespaces)? {
        apply_admin(&admin, &ns).await?;
    }
    let params = PatchParams {
        dry_run: true,
        field_validation: Some(ValidationDirective::Strict),
        ..PatchParams::apply("meshbaseline").force()
    };
    let dir = tempdir()?;
    let mut kinds = BTreeSet::new();
    let mut refused = Vec::new();
    let mut total = 0;
    for (label, text) in baselines()? {
        let file = dir.join(format!("{label}.yaml"));
        std::fs::write(&file, text)?;
        let args = Args {
            baseline: file,
            cluster: vec![examples().join("cluster")],
            namespace: Vec::new(),
        };
        let yaml = render(&args, jiff::Timestamp::now())?;
        for obj in parse_documents(&yaml)? {
            total += 1;
            let text = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
            let (api_version, kind) = (text("/apiVersion"), text("/kind"));
            let (ns, name) = (text("/metadata/namespace"), text("/metadata/name"));
            let (ar, _) = cluster.resource(&api_version, &kind).await?;
            let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &ns, &ar);
            match api.patch(&name, &params, &Patch::Apply(&obj)).await {
                Ok(_) => {
                    kinds.insert(format!("{api_version}/{kind}"));
                }
                Err(e) => refused.push(format!("{label}: {kind} {ns}/{name}: {e}")),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(refused.is_empty(), "refused by the API server: {refused:#?}");
    for kind in [
        "security.istio.io/v1/AuthorizationPolicy",
        "security.istio.io/v1/PeerAuthentication",
        "networking.istio.io/v1/DestinationRule",
        "networking.istio.io/v1/Sidecar",
        "networking.k8s.io/v1/NetworkPolicy",
    ] {
        assert!(kinds.contains(kind), "no {kind} among {total} objects: {kinds:?}");
    }
    eprintln!("{total} generated objects accepted with fieldValidation=Strict: {kinds:?}");
    Ok(())
}

fn tempdir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("meshbaseline-real-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
