//! The chart's RBAC grants exactly what the operator uses. The main scenario runs
//! with leader election on (Revert, drift repair with events, deletes, status, the CRD watch),
//! every request of the operator's client is mapped to the RBAC check a real API server makes,
//! and the set is compared with the chart's ClusterRole and Role.

#[path = "../../../operator/tests/support/chart_rbac.rs"]
#[allow(dead_code)]
mod chart_rbac;

use std::collections::BTreeSet;

use chart_rbac::{chart_dir, request_grant, ChartRbac, Grant};
use meshbaseline_e2e::{FaultConfig, RequestRecord, Verb};
use serde_json::json;

use crate::fixtures::*;

/// The chart's Role (leases) lives in the release namespace.
const LEASE_NAMESPACE: &str = meshbaseline_e2e::real::OPERATOR_NAMESPACE;

/// The request line a real client sent for a recorded request (versions do not matter to
/// RBAC). Server-side apply is a PATCH; the simulator records it as `Apply`.
fn request_line(r: &RequestRecord) -> (&'static str, String) {
    let base = if r.group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{}/v1", r.group)
    };
    let ns = if r.namespace.is_empty() {
        String::new()
    } else {
        format!("/namespaces/{}", r.namespace)
    };
    let (resource, sub) = match r.resource.split_once('/') {
        Some((res, sub)) => (res, Some(sub)),
        None => (r.resource.as_str(), None),
    };
    let mut path = format!("{base}{ns}/{resource}");
    if !r.name.is_empty() {
        path.push('/');
        path.push_str(&r.name);
    }
    if let Some(sub) = sub {
        path.push('/');
        path.push_str(sub);
    }
    let method = match r.verb {
        Verb::Get | Verb::List => "GET",
        Verb::Watch => {
            path.push_str("?watch=true");
            "GET"
        }
        Verb::Create => "POST",
        Verb::Update => "PUT",
        Verb::Apply | Verb::MergePatch | Verb::StrategicPatch | Verb::JsonPatch => "PATCH",
        Verb::Delete | Verb::DeleteCollection => "DELETE",
    };
    (method, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_grants_exactly_what_the_operator_uses() -> TestResult {
    let cluster = meshbaseline_e2e::Cluster::start().await?;
    Env::seed_root(&cluster).await?;
    // The Lease lives in the release namespace (a real cluster's setup made it already).
    if cluster
        .get("v1", "Namespace", None, LEASE_NAMESPACE)
        .await?
        .is_none()
    {
        cluster
            .apply_yaml(&mk_namespace(LEASE_NAMESPACE, None).to_string())
            .await?;
    }
    let config = meshbaseline::controller::Config {
        leader_election: true,
        lease_namespace: LEASE_NAMESPACE.into(),
        // Renewals (patch) within the scenario's few seconds.
        lease_duration: std::time::Duration::from_secs(3),
        lease_renew: std::time::Duration::from_millis(200),
        lease_margin: std::time::Duration::from_millis(500),
        ..test_config()
    };
    // Lists in pages, as against an API server with the WatchList gate off: the chart grants
    // `list` for that fallback. A streamed list is a watch, which the pages' watches use too.
    cluster.gate().set_faults(FaultConfig {
        refuse_streaming_lists: true,
        ..FaultConfig::default()
    });
    let op = Operator::start_with(&cluster, config);
    let env = Env {
        cluster,
        op,
        scenario: "rbac".into(),
    };
    let sim = env.cluster.gate();
    let a = env.add_namespace("a").await?;
    let b = env.add_namespace("b").await?;
    env.apply(&mk_peer_authentication(&a, "loose", "PERMISSIVE"))
        .await?;
    env.apply(&mk_baseline(
        "rbac",
        "rbac",
        json!({"tenantOverrides": "Revert", "admission": {"tenantObjects": "Warn"}}),
    ))
    .await?;
    env.wait_converged("rbac").await?;
    env.cluster
        .wait_for("PERMISSIVE reverted", WAIT, || async {
            let pa = env
                .cluster
                .get(
                    "security.istio.io/v1",
                    "PeerAuthentication",
                    Some(&a),
                    "loose",
                )
                .await?;
            Ok(pa
                .filter(|p| p.data["spec"]["mtls"]["mode"] == "STRICT")
                .map(|_| ()))
        })
        .await?;
    // The same drift twice: the second event is a repeat, recorded as a series (patch).
    for round in 1..=2 {
        env.cluster
            .delete(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                Some(&b),
                "meshbaseline-baseline",
            )
            .await?;
        env.wait_converged("rbac").await?;
        let metric = ("meshbaseline_drift_repairs_total", "kind=\"NetworkPolicy\"");
        env.cluster
            .wait_for("repair counted", WAIT, || async {
                Ok((env.op.metric(metric.0, metric.1) >= f64::from(round)).then_some(()))
            })
            .await?;
    }
    // An edit of each generated kind, repaired by replace (update); ClusterNetworkPolicy only
    // where its CRD is installed.
    let cnp_served = !env.cluster.is_simulated();
    let mut tampered = vec![
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some(b.as_str()),
            "meshbaseline-baseline",
        ),
        (
            "security.istio.io/v1",
            "AuthorizationPolicy",
            Some(b.as_str()),
            "meshbaseline-deny-plaintext",
        ),
        (
            "networking.istio.io/v1",
            "DestinationRule",
            Some(b.as_str()),
            "meshbaseline-mtls",
        ),
        (
            "security.istio.io/v1",
            "PeerAuthentication",
            Some(ROOT),
            "meshbaseline-mesh-mtls",
        ),
        (
            "networking.istio.io/v1",
            "Sidecar",
            Some(ROOT),
            "meshbaseline-registry-only",
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicy",
            None,
            "meshbaseline-tenant-rbac",
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicyBinding",
            None,
            "meshbaseline-tenant-rbac",
        ),
    ];
    if cnp_served {
        tampered.push((
            "policy.networking.k8s.io/v1beta1",
            "ClusterNetworkPolicy",
            None,
            "meshbaseline-namespaces-rbac",
        ));
    }
    for (api, kind, ns, name) in tampered {
        let patch = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null}}});
        env.cluster.merge_patch(api, kind, ns, name, &patch).await?;
        env.wait_converged("rbac").await?;
    }
    // The root namespace moves: every root object is deleted from the old one.
    let root = env.add_namespace("root").await?;
    env.apply(&mk_baseline(
        "rbac",
        "rbac",
        json!({"tenantOverrides": "Revert", "rootNamespace": root,
               "admission": {"tenantObjects": "Warn"}}),
    ))
    .await?;
    env.wait_converged("rbac").await?;
    // A namespace leaving: its objects are deleted by the operator.
    env.cluster
        .merge_patch(
            "v1",
            "Namespace",
            None,
            &b,
            &json!({"metadata": {"labels": {SCENARIO_LABEL: null}}}),
        )
        .await?;
    env.wait_converged("rbac").await?;
    env.wait_condition("rbac", "Ready", "True", |_, _| true)
        .await?;
    // Guards and the Admin tier switched off: their objects are deleted.
    env.apply(&mk_baseline(
        "rbac",
        "rbac",
        json!({"tenantOverrides": "Revert", "rootNamespace": root,
               "admission": {"guard": false, "tenantObjects": "Disabled"},
               "network": {"adminTier": "Disabled"}}),
    ))
    .await?;
    env.wait_converged("rbac").await?;
    env.cluster
        .wait_for("events recorded", WAIT, || async {
            let log = sim.requests();
            Ok((log.count(|r| r.resource == "events" && r.verb.is_write()) >= 3).then_some(()))
        })
        .await?;
    let log = sim.requests();
    let operator_user = env.cluster.operator_user();
    let real = !env.cluster.is_simulated();
    env.finish().await?;

    let rbac = ChartRbac::read(&chart_dir())?;
    let mut used_cluster = BTreeSet::new();
    let mut used_namespaced = BTreeSet::new();
    // On a real server its audit log says what was checked and decided; in the simulator the
    // request log is mapped to the checks a real server makes.
    let audit_log = audit_log_path();
    let checks = match (real, operator_user, audit_log) {
        (true, Some(user), Some(path)) => audited_checks(&path, &user)?,
        _ => {
            // The simulator, or a real cluster whose audit log this process cannot read
            // (the fault proxy's log holds the operator's real requests; a refused one would
            // have failed the scenario above).
            let mut checks = Vec::new();
            for r in log.records() {
                let (method, path) = request_line(r);
                checks.extend(request_grant(method, &path)?);
            }
            checks
        }
    };
    for (grant, ns) in checks {
        // Leases are the only namespaced grant (the Role in the operator's namespace).
        if grant.resource == "leases" {
            assert_eq!(ns.as_deref(), Some(LEASE_NAMESPACE), "{grant}");
            used_namespaced.insert(grant);
        } else {
            used_cluster.insert(grant);
        }
    }
    let missing: Vec<String> = used_cluster
        .difference(&rbac.cluster)
        .chain(used_namespaced.difference(&rbac.namespaced))
        .map(Grant::to_string)
        .collect();
    assert!(missing.is_empty(), "used but not granted: {missing:?}");

    // Grants a real API server checks that the simulator cannot show in its request log.
    let mut explained: BTreeSet<Grant> = BTreeSet::new();
    // Server-side apply creating an object needs `create` as well as `patch` on a real API
    // server; the simulator records the apply as a patch.
    for (group, resource) in [
        ("networking.k8s.io", "networkpolicies"),
        ("security.istio.io", "peerauthentications"),
        ("security.istio.io", "authorizationpolicies"),
        ("networking.istio.io", "destinationrules"),
        ("networking.istio.io", "sidecars"),
    ] {
        explained.insert(Grant::new(group, resource, "create"));
    }
    for resource in [
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
    ] {
        explained.insert(Grant::new(
            "admissionregistration.k8s.io",
            resource,
            "create",
        ));
    }
    // The simulator has no network-policy-api CRD: nothing of that kind is ever written there.
    let cnp_verbs: &[&str] = if cnp_served {
        &["create"]
    } else {
        &["list", "watch", "create", "update", "patch", "delete"]
    };
    for verb in cnp_verbs {
        explained.insert(Grant::new(
            "policy.networking.k8s.io",
            "clusternetworkpolicies",
            verb,
        ));
    }
    let unused: Vec<String> = rbac
        .cluster
        .difference(&used_cluster)
        .chain(rbac.namespaced.difference(&used_namespaced))
        .filter(|g| !explained.contains(*g))
        .map(Grant::to_string)
        .collect();
    assert!(unused.is_empty(), "granted but never used: {unused:?}");
    Ok(())
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The API server's audit log: `MESHBASELINE_E2E_AUDIT_LOG`, else `audit.log` of the local
/// control plane in `MESHBASELINE_TESTENV_DIR` (set by `testenv run`).
fn audit_log_path() -> Option<std::path::PathBuf> {
    match (
        std::env::var_os("MESHBASELINE_E2E_AUDIT_LOG"),
        std::env::var_os("MESHBASELINE_TESTENV_DIR"),
    ) {
        (Some(p), _) => Some(std::path::PathBuf::from(p)),
        (None, Some(dir)) => Some(std::path::Path::new(&dir).join("audit.log")),
        (None, None) => None,
    }
}

/// The RBAC checks the real API server made for `user`, from its audit log (JSON lines,
/// level Metadata or above). Fails on any request the server refused.
fn audited_checks(
    path: &std::path::Path,
    user: &str,
) -> Result<Vec<(Grant, Option<String>)>, BoxError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut checks = Vec::new();
    let mut refused = Vec::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["user"]["username"] != user || event["stage"] != "ResponseComplete" {
            continue;
        }
        let Some(resource) = event["objectRef"]["resource"].as_str() else {
            continue; // discovery and other non-resource URLs
        };
        let resource = match event["objectRef"]["subresource"].as_str() {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        let group = event["objectRef"]["apiGroup"].as_str().unwrap_or_default();
        let verb = event["verb"].as_str().unwrap_or_default();
        let grant = Grant::new(group, &resource, verb);
        if event["annotations"]["authorization.k8s.io/decision"] != "allow" {
            refused.push(format!("{grant}: {}", event["requestURI"]));
        }
        let ns = event["objectRef"]["namespace"].as_str().map(str::to_string);
        checks.push((grant, ns));
    }
    if !refused.is_empty() {
        return Err(format!("the API server refused the operator: {refused:?}").into());
    }
    if checks.is_empty() {
        return Err(format!("{}: no request of {user}", path.display()).into());
    }
    Ok(checks)
}
