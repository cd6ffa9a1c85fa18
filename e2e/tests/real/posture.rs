//! `meshbaseline posture` live, against the real API server: what it lists (running pods, and
//! the templates of controllers with no running pod), the PeerAuthentication that decides each
//! port, dry-run policies that refuse nothing, and `--namespace` reading that namespace and the
//! root namespace only.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use meshbaseline::audit::Severity;
use meshbaseline::cli::posture::{run, Args, Format};
use serde_json::{json, Value};

use crate::{real_cluster, TestResult};

const NS: &str = "posture-live";

fn args(kubeconfig: &std::path::Path) -> Args {
    Args {
        baseline: None,
        format: Format::Json,
        fail_on: Severity::Critical,
        skip_unreadable: false,
        namespaces: vec![NS.into()],
        workload: Vec::new(),
        explain: None,
        kubeconfig: Some(kubeconfig.to_path_buf()),
        context: None,
        paths: Vec::new(),
    }
}

/// Runs the command on a thread of its own (it starts its own client runtime).
fn posture(a: Args) -> Result<(u8, Value, String), String> {
    std::thread::spawn(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code =
            run(&a, jiff::Timestamp::now(), &mut out, &mut err).map_err(|e| e.to_string())?;
        let doc = serde_json::from_slice(&out)
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out)))?;
        Ok((code, doc, String::from_utf8_lossy(&err).into_owned()))
    })
    .join()
    .map_err(|_| "posture panicked".to_string())?
}

fn workload<'a>(doc: &'a Value, kind: &str, name: &str) -> Option<&'a Value> {
    doc["workloads"]
        .as_array()?
        .iter()
        .find(|w| w["kind"] == kind && w["name"] == name)
}

#[tokio::test]
async fn posture_reads_the_cluster_and_explains_each_port() -> TestResult {
    let cluster = real_cluster().await?;
    let kubeconfig = std::path::PathBuf::from(
        std::env::var_os(meshbaseline_e2e::KUBECONFIG_ENV).ok_or("no kubeconfig")?,
    );
    let label = "e2e.meshbaseline.dev/scenario";
    for obj in [
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NS, "labels": {label: NS, "istio-injection": "enabled"}}}),
        // Audit: nothing is generated, should an operator run; posture reads what is there.
        json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
            "metadata": {"name": NS}, "spec": {"mode": "Audit", "namespaceSelector": {"matchLabels": {label: NS}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1", "ports": [{"containerPort": 8080}]}]}}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare", "namespace": NS, "labels": {"app": "bare"}},
            "spec": {"containers": [{"name": "bare", "image": "bare:1"}]}}),
        json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "web-strict", "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "STRICT"}, "portLevelMtls": {"8080": {"mode": "PERMISSIVE"}}}}),
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny-plaintext-trial", "namespace": NS, "annotations": {"istio.io/dry-run": "true"}},
            "spec": {"action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]}}),
    ] {
        cluster.apply_as("meshbaseline-e2e", &obj, true).await?;
    }
    // The kubelet's part: the pod runs (no kubelet here, so its status is written directly).
    let pods: Api<Pod> = Api::namespaced(cluster.harness_client(), NS);
    pods.patch_status(
        "bare",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"phase": "Running"}})),
    )
    .await?;

    let (code, doc, err) = posture(args(&kubeconfig))?;
    assert_eq!(code, 0, "{err}\n{doc:#}");
    assert_eq!(doc["objects"], "observed");
    assert!(
        doc["baselines"].as_array().unwrap().iter().any(|b| b == NS),
        "{doc:#}"
    );
    // The Deployment has no running pod (no kubelet): its template stands for it.
    let web =
        workload(&doc, "Deployment", "web").ok_or_else(|| format!("no Deployment/web: {doc:#}"))?;
    assert_eq!(web["dataPlane"]["mode"], "sidecar", "{web:#}");
    let port = |w: &Value, p: Value| {
        w["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["port"] == p)
            .cloned()
            .unwrap()
    };
    let p8080 = port(web, json!(8080));
    assert_eq!(
        (
            p8080["mtls"]["mode"].as_str(),
            p8080["mtls"]["level"].as_str()
        ),
        (Some("PERMISSIVE"), Some("port")),
        "{p8080:#}"
    );
    assert_eq!(
        p8080["plaintext"], "accepted",
        "the DENY is a dry run: {p8080:#}"
    );
    assert_eq!(p8080["dryRun"][0]["name"], "deny-plaintext-trial");
    let other = port(web, json!("*"));
    assert_eq!(
        (other["mtls"]["mode"].as_str(), other["plaintext"].as_str()),
        (Some("STRICT"), Some("refused")),
        "{other:#}"
    );
    assert_eq!(other["mtls"]["policy"]["name"], "web-strict");
    // The running pod has no sidecar: in no data plane.
    let bare = workload(&doc, "Pod", "bare").ok_or_else(|| format!("no Pod/bare: {doc:#}"))?;
    assert_eq!(
        (
            bare["dataPlane"]["mode"].as_str(),
            bare["protection"].as_str()
        ),
        (Some("none"), Some("unprotected")),
        "{bare:#}"
    );
    assert!(
        bare["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "MB505"),
        "{bare:#}"
    );
    // Only this namespace's workloads are listed.
    assert!(doc["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["namespace"] == NS));

    // --explain and --workload on the live cluster.
    let mut a = args(&kubeconfig);
    a.format = Format::Table;
    a.explain = Some(format!("{NS}/Deployment/web:8080"));
    let (code, out) = std::thread::spawn(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run(&a, jiff::Timestamp::now(), &mut out, &mut err).map(|c| (c, out))
    })
    .join()
    .map_err(|_| "posture panicked")??;
    let text = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("Port 8080 gets PERMISSIVE from the port policy posture-live/web-strict")
            && text.contains("ACCEPTED"),
        "{text}"
    );
    let mut a = args(&kubeconfig);
    a.workload = vec!["Deployment/nope".into()];
    assert_eq!(posture(a)?.0, 2, "a workload that does not exist");
    Ok(())
}

const PLATFORM_NS: &str = "posture-platform";
const PLATFORM_ROOT: &str = "posture-root";
/// Where istio-cni's settings live: a namespace posture is not asked about.
const CNI_NS: &str = "posture-cni";

/// The rule ids among the findings of `kind`/`name` in the JSON report.
fn rules(doc: &Value, kind: &str, name: &str) -> Result<Vec<String>, String> {
    let w = workload(doc, kind, name).ok_or_else(|| format!("no {kind}/{name}: {doc:#}"))?;
    Ok(w["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["rule"].as_str().map(str::to_string))
        .collect())
}

/// The live command reads the platform's settings as `check` reads them from files: the mesh
/// configuration in the root namespace (MB307 follows its `pathNormalization` both ways),
/// istio-cni's ConfigMap wherever it is (MB603, though `--namespace` narrows the rest), and a
/// cluster without Istio's Gateway CRD is a note, not an error.
#[tokio::test]
async fn posture_reads_the_mesh_configuration_and_istio_cni() -> TestResult {
    let cluster = real_cluster().await?;
    let kubeconfig = std::path::PathBuf::from(
        std::env::var_os(meshbaseline_e2e::KUBECONFIG_ENV).ok_or("no kubeconfig")?,
    );
    let label = "e2e.meshbaseline.dev/scenario";
    let mesh = |normalization: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": PLATFORM_ROOT},
            "data": {"mesh": format!("rootNamespace: {PLATFORM_ROOT}\npathNormalization:\n  normalization: {normalization}\n")}})
    };
    for obj in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLATFORM_ROOT}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CNI_NS}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLATFORM_NS,
            "labels": {label: PLATFORM_NS, "istio.io/dataplane-mode": "ambient"}}}),
        mesh("MERGE_SLASHES"),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": PLATFORM_NS},
            "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {"metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "api", "image": "api:1", "ports": [{"containerPort": 8080}]}]}}}}),
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny-admin", "namespace": PLATFORM_NS},
            "spec": {"action": "DENY", "selector": {"matchLabels": {"app": "api"}},
                "rules": [{"to": [{"operation": {"ports": ["8080"], "paths": ["/admin"]}}]}]}}),
    ] {
        cluster.apply_as("meshbaseline-e2e", &obj, true).await?;
    }
    let dir = std::env::temp_dir().join(format!("posture-platform-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let baseline = dir.join("baseline.yaml");
    std::fs::write(
        &baseline,
        format!(
            "apiVersion: meshbaseline.dev/v1alpha1\nkind: MeshBaseline\nmetadata: {{name: platform}}\n\
             spec:\n  rootNamespace: {PLATFORM_ROOT}\n  namespaceSelector: {{matchLabels: {{{label}: {PLATFORM_NS}}}}}\n"
        ),
    )?;
    let platform_args = || {
        let mut a = args(&kubeconfig);
        a.namespaces = vec![PLATFORM_NS.into()];
        a.baseline = Some(baseline.clone());
        a
    };

    // The mesh merges slashes: a DENY on paths holds. No istio-cni settings yet.
    let (_, doc, err) = posture(platform_args())?;
    let found = rules(&doc, "Deployment", "api")?;
    assert!(
        !found.iter().any(|r| r == "MB307" || r == "MB603"),
        "{found:?}\n{err}"
    );
    assert!(
        doc["notes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n == "the cluster does not serve gateways.networking.istio.io"),
        "{doc:#}"
    );

    // Without MERGE_SLASHES `//admin` escapes the DENY; istio-cni, in a namespace posture was
    // not asked about, leaves the ambient namespace out of the mesh.
    cluster
        .apply_as("meshbaseline-e2e", &mesh("NONE"), true)
        .await?;
    let cni = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "istio-cni-config", "namespace": CNI_NS},
        "data": {"EXCLUDE_NAMESPACES": format!("kube-system, {PLATFORM_NS}")}});
    cluster.apply_as("meshbaseline-e2e", &cni, true).await?;
    let (_, doc, err) = posture(platform_args())?;
    let found = rules(&doc, "Deployment", "api")?;
    assert!(
        found.iter().any(|r| r == "MB307") && found.iter().any(|r| r == "MB603"),
        "{found:?}\n{err}"
    );

    // A mesh configuration that is not YAML is an error naming it, not a silent default.
    let mut broken = mesh("NONE");
    broken["data"]["mesh"] = json!("pathNormalization: [");
    cluster.apply_as("meshbaseline-e2e", &broken, true).await?;
    let failed = posture(platform_args());
    cluster
        .delete("v1", "ConfigMap", Some(CNI_NS), "istio-cni-config")
        .await?;
    cluster
        .apply_as("meshbaseline-e2e", &mesh("MERGE_SLASHES"), true)
        .await?;
    std::fs::remove_dir_all(&dir)?;
    let e = failed.expect_err("a broken mesh configuration must fail the command");
    assert!(
        e.contains(&format!("ConfigMap {PLATFORM_ROOT}/istio")),
        "{e}"
    );
    Ok(())
}
