//! On the real API server, the generated ValidatingAdmissionPolicies refuse what they
//! must (a tenant with `edit` editing, deleting or impersonating generated objects; weak
//! tenant objects) with our message, admit the near misses, and never lock out the operator,
//! the garbage collector, the namespace controller or unprotected namespaces.
//!
//! The objects are compiled by the operator's own compiler (for the baseline's real uid and
//! the operator's real username) and written as the operator; the API server alone decides.

use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use meshbaseline::api::{Baseline, MeshBaseline};
use meshbaseline::compile::{compile, Scope};
use meshbaseline::inventory::{Inventory, NamespaceInfo};
use serde_json::{json, Value};

use meshbaseline_e2e::Cluster;

use crate::{real_cluster, TestResult};

const LABEL: &str = "e2e.meshbaseline.dev/scenario";

const NP: (&str, &str) = ("networking.k8s.io/v1", "NetworkPolicy");

/// The dynamic API of `obj`'s kind in `ns` for `client`.
async fn api_for(
    cluster: &Cluster,
    client: &kube::Client,
    ns: &str,
    obj: &Value,
) -> Result<Api<DynamicObject>, String> {
    let text = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (api, _) = cluster
        .api_as(client, text("/apiVersion"), text("/kind"), Some(ns))
        .await
        .map_err(|e| e.to_string())?;
    Ok(api)
}

/// Creates `obj` in `ns` as `client`; `Ok(())` or the API's refusal message.
async fn create(
    cluster: &Cluster,
    client: &kube::Client,
    ns: &str,
    obj: Value,
) -> Result<(), String> {
    let api = api_for(cluster, client, ns, &obj).await?;
    let obj: DynamicObject = serde_json::from_value(obj).map_err(|e| e.to_string())?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) => Err(format!("{} {}", e.code, e.message)),
        Err(e) => Err(e.to_string()),
    }
}

/// Creates `obj` in `ns` as `client` and returns the API server's `Warning` headers.
async fn create_warned(
    cluster: &Cluster,
    client: &kube::Client,
    ns: &str,
    obj: &Value,
) -> Result<Vec<String>, String> {
    let api = api_for(cluster, client, ns, obj).await?;
    let req = http::Request::post(api.resource_url())
        .header("content-type", "application/json")
        .body(kube::client::Body::from(obj.to_string().into_bytes()))
        .map_err(|e| e.to_string())?;
    let resp = client.send(req).await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    Ok(resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect())
}

fn refused(what: &str, r: Result<(), String>, words: &str, wrong: &mut Vec<String>) {
    match r {
        Err(m) if m.contains(words) => {}
        other => wrong.push(format!(
            "{what}: expected a refusal naming {words:?}, got {other:?}"
        )),
    }
}

fn admitted(what: &str, r: Result<(), String>, wrong: &mut Vec<String>) {
    if let Err(m) = r {
        wrong.push(format!("{what}: refused: {m}"));
    }
}

fn pa(name: &str, mode: &str, selector: bool) -> Value {
    let mut spec = json!({"mtls": {"mode": mode}});
    if selector {
        spec["selector"] = json!({"matchLabels": {"app": "x"}});
    }
    json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
           "metadata": {"name": name}, "spec": spec})
}

fn pod(name: &str, uid: i64, caps: &[&str]) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "app", "image": "registry.example/app:1",
               "securityContext": {"runAsUser": uid, "capabilities": {"add": caps}}}]}})
}

/// Writes the compiled objects of `mb` as the operator.
async fn enforce(
    cluster: &Cluster,
    operator: &kube::Client,
    operator_user: &str,
    mb: &MeshBaseline,
    namespaces: &[&str],
    now: jiff::Timestamp,
) -> TestResult {
    let baseline = Baseline::try_from(mb)?;
    let mut inventory = Inventory::default();
    for ns in namespaces {
        inventory.namespaces.insert(
            ns.to_string(),
            NamespaceInfo {
                name: ns.to_string(),
                labels: [(LABEL.to_string(), "admission".to_string())].into(),
                terminating: false,
            },
        );
    }
    let scope = Scope {
        operator_user: operator_user.into(),
        ..Scope::default()
    };
    let compiled = compile(&baseline, &inventory, &scope, now);
    let params = PatchParams::apply("meshbaseline").force();
    for o in &compiled.objects {
        let k = o.key.kind;
        let (api, _) = cluster
            .api_as(operator, &k.api_version(), k.name(), Some(&o.key.namespace))
            .await?;
        api.patch(&o.key.name, &params, &Patch::Apply(o.manifest()))
            .await
            .map_err(|e| format!("{}: {e}", o.key))?;
    }
    // Admission policies take effect once the API server has compiled them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test]
async fn admission_guards_refuse_tenants_and_never_lock_out() -> TestResult {
    let cluster = real_cluster().await?;
    let admin = cluster.harness_client();
    let operator = cluster.client();
    let operator_user = cluster.operator_user().ok_or("no operator user")?;
    let (a, b, free) = ("admission-a", "admission-b", "admission-free");
    for (ns, protected) in [(a, true), (b, true), (free, false)] {
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        if protected {
            obj["metadata"]["labels"] = json!({LABEL: "admission"});
        }
        cluster.apply_as("meshbaseline-e2e", &obj, true).await?;
    }
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let spec = json!({
        "namespaceSelector": {"matchLabels": {LABEL: "admission"}},
        "admission": {"guard": true, "tenantObjects": "Deny"},
        "network": {"egress": {"registryOnly": true}},
        "exemptions": [{"namespace": b, "controls": ["mtls"], "reason": "migration ticket 42",
                        "expires": expires.to_string()}],
    });
    let mb_obj = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
                        "metadata": {"name": "admission"}, "spec": spec});
    cluster.apply_as("meshbaseline-e2e", &mb_obj, true).await?;
    let mb: MeshBaseline = Api::<MeshBaseline>::all(admin.clone())
        .get("admission")
        .await?;
    let now = jiff::Timestamp::now();
    enforce(&cluster, &operator, &operator_user, &mb, &[a, b], now).await?;

    let tenant = cluster.tenant_client();
    let mut wrong = Vec::new();
    let (nps, _) = cluster.api_as(&tenant, NP.0, NP.1, Some(a)).await?;
    // The guard: edits, deletes and impersonations of generated objects.
    let edit = json!({"spec": {"podSelector": {"matchLabels": {"none": "x"}}}});
    let r = nps
        .patch(
            "meshbaseline-baseline",
            &PatchParams::default(),
            &Patch::Merge(&edit),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    refused(
        "tenant narrows the generated NetworkPolicy",
        r,
        "generated by MeshBaseline admission",
        &mut wrong,
    );
    let r = nps
        .delete("meshbaseline-baseline", &DeleteParams::default())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    refused(
        "tenant deletes the generated NetworkPolicy",
        r,
        "Change the MeshBaseline admission",
        &mut wrong,
    );
    let apply = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "meshbaseline-baseline"},
        "spec": {"podSelector": {"matchLabels": {"none": "x"}}}});
    let r = nps
        .patch(
            "meshbaseline-baseline",
            &PatchParams::apply("tenant-tool").force(),
            &Patch::Apply(&apply),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    refused(
        "tenant force-applies over the generated NetworkPolicy",
        r,
        "guarded",
        &mut wrong,
    );
    // `kubectl delete networkpolicies --all`: admission sees each object; ours stays.
    let _ = nps
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    if nps.get_opt("meshbaseline-baseline").await?.is_none() {
        wrong.push("a tenant's delete-collection removed the generated NetworkPolicy".into());
    }
    let posing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "meshbaseline-extra"}, "spec": {"podSelector": {}}});
    refused(
        "tenant creates an object with our name prefix",
        create(&cluster, &tenant, a, posing.clone()).await,
        "guarded",
        &mut wrong,
    );
    let labelled = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "mine", "labels": {"app.kubernetes.io/managed-by": "meshbaseline"}},
        "spec": {"podSelector": {}}});
    refused(
        "tenant creates an object with our label",
        create(&cluster, &tenant, a, labelled).await,
        "guarded",
        &mut wrong,
    );
    let own = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "mine"}, "spec": {"podSelector": {}}});
    admitted(
        "near miss: the tenant's own NetworkPolicy",
        create(&cluster, &tenant, a, own).await,
        &mut wrong,
    );
    admitted(
        "no lock-out: our name prefix outside protected namespaces",
        create(&cluster, &tenant, free, posing).await,
        &mut wrong,
    );
    // The operator is not refused.
    let (ops, _) = cluster.api_as(&operator, NP.0, NP.1, Some(a)).await?;
    let relabel = json!({"metadata": {"annotations": {"e2e": "operator-may"}}});
    if let Err(e) = ops
        .patch(
            "meshbaseline-baseline",
            &PatchParams::default(),
            &Patch::Merge(&relabel),
        )
        .await
    {
        wrong.push(format!("the operator was refused: {e}"));
    }

    // Tenant objects (Deny), each with its near miss.
    refused(
        "MB101",
        create(&cluster, &tenant, a, pa("loose", "PERMISSIVE", false)).await,
        "MB101",
        &mut wrong,
    );
    admitted(
        "MB101 near miss",
        create(&cluster, &tenant, a, pa("strict", "STRICT", false)).await,
        &mut wrong,
    );
    refused(
        "MB102",
        create(&cluster, &tenant, a, pa("wl", "DISABLE", true)).await,
        "MB102",
        &mut wrong,
    );
    let mut port = pa("port", "STRICT", true);
    port["spec"]["portLevelMtls"] = json!({"8080": {"mode": "PERMISSIVE"}});
    refused(
        "MB102 port level",
        create(&cluster, &tenant, a, port).await,
        "MB102",
        &mut wrong,
    );
    admitted(
        "MB102 near miss",
        create(&cluster, &tenant, a, pa("wl-ok", "STRICT", true)).await,
        &mut wrong,
    );
    let dr = |name: &str, host: &str, mode: &str| {
        json!({"apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule", "metadata": {"name": name},
        "spec": {"host": host, "trafficPolicy": {"tls": {"mode": mode}}}})
    };
    refused(
        "MB201",
        create(&cluster, &tenant, a, dr("plain", "reviews", "DISABLE")).await,
        "MB201",
        &mut wrong,
    );
    refused(
        "MB201 wildcard",
        create(&cluster, &tenant, a, dr("all", "*.local", "SIMPLE")).await,
        "MB201",
        &mut wrong,
    );
    refused(
        "MB201 with a trailing dot and capitals",
        create(
            &cluster,
            &tenant,
            a,
            dr(
                "dotted",
                "Reviews.admission-a.svc.cluster.local.",
                "DISABLE",
            ),
        )
        .await,
        "MB201",
        &mut wrong,
    );
    admitted(
        "MB201 near miss: an external host",
        create(&cluster, &tenant, a, dr("ext", "api.example.com", "SIMPLE")).await,
        &mut wrong,
    );
    let ap = |name: &str, rules: Value| {
        json!({"apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy", "metadata": {"name": name},
        "spec": {"action": "ALLOW", "rules": rules}})
    };
    refused(
        "MB301",
        create(&cluster, &tenant, a, ap("open", json!([{}]))).await,
        "MB301",
        &mut wrong,
    );
    refused(
        "MB301 negative source",
        create(
            &cluster,
            &tenant,
            a,
            ap(
                "neg",
                json!([{"from": [{"source": {"notPrincipals": ["x"]}}]}]),
            ),
        )
        .await,
        "MB301",
        &mut wrong,
    );
    admitted(
        "MB301 near miss",
        create(
            &cluster,
            &tenant,
            a,
            ap("ok", json!([{"from": [{"source": {"namespaces": [a]}}]}])),
        )
        .await,
        &mut wrong,
    );
    refused(
        "MB501",
        create(&cluster, &tenant, a, pod("proxy-uid", 1337, &[])).await,
        "MB501",
        &mut wrong,
    );
    admitted(
        "MB501 near miss",
        create(
            &cluster,
            &tenant,
            a,
            pod("app-uid", 1000, &["NET_BIND_SERVICE"]),
        )
        .await,
        &mut wrong,
    );
    let deployment = |name: &str, cap: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name}, "spec": {"selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app",
            "image": "registry.example/app:1", "securityContext": {"capabilities": {"add": [cap]}}}]}}}})
    };
    refused(
        "MB502 in a template",
        create(&cluster, &tenant, a, deployment("raw", "net_raw")).await,
        "MB502",
        &mut wrong,
    );
    admitted(
        "MB502 near miss",
        create(&cluster, &tenant, a, deployment("bind", "NET_BIND_SERVICE")).await,
        &mut wrong,
    );
    // The ReplicationController controller is let through (kube-system), so its template is
    // checked when the tenant writes it.
    let rc = |name: &str, uid: i64| {
        json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name}, "spec": {"replicas": 0, "selector": {"app": name},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app",
            "image": "registry.example/app:1", "securityContext": {"runAsUser": uid}}]}}}})
    };
    refused(
        "MB501 in a ReplicationController",
        create(&cluster, &tenant, a, rc("rc-proxy", 1337)).await,
        "MB501",
        &mut wrong,
    );
    admitted(
        "MB501 near miss in a ReplicationController",
        create(&cluster, &tenant, a, rc("rc-app", 1000)).await,
        &mut wrong,
    );
    // MB403: a tenant Sidecar must keep REGISTRY_ONLY (Istio applies one Sidecar per proxy).
    let sidecar = |name: &str, spec: Value| {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
               "metadata": {"name": name}, "spec": spec})
    };
    refused(
        "MB403 without outboundTrafficPolicy",
        create(
            &cluster,
            &tenant,
            a,
            sidecar("scope", json!({"egress": [{"hosts": ["./*"]}]})),
        )
        .await,
        "MB403",
        &mut wrong,
    );
    refused(
        "MB403 ALLOW_ANY",
        create(
            &cluster,
            &tenant,
            a,
            sidecar(
                "open",
                json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}}),
            ),
        )
        .await,
        "MB403",
        &mut wrong,
    );
    admitted(
        "MB403 near miss",
        create(
            &cluster,
            &tenant,
            a,
            sidecar(
                "strict",
                json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}),
            ),
        )
        .await,
        &mut wrong,
    );
    // MB506: capture narrowed or switched off by annotation, on a pod and in a template.
    let annotated_pod = |name: &str, k: &str, v: &str| {
        let mut p = pod(name, 1000, &[]);
        p["metadata"]["annotations"] = json!({k: v});
        p
    };
    refused(
        "MB506 includeInboundPorts",
        create(
            &cluster,
            &tenant,
            a,
            annotated_pod(
                "some-ports",
                "traffic.sidecar.istio.io/includeInboundPorts",
                "8080",
            ),
        )
        .await,
        "MB506",
        &mut wrong,
    );
    let mut no_capture = deployment("no-capture", "NET_BIND_SERVICE");
    no_capture["spec"]["template"]["metadata"]["annotations"] =
        json!({"sidecar.istio.io/interceptionMode": "NONE"});
    refused(
        "MB506 interceptionMode NONE in a template",
        create(&cluster, &tenant, a, no_capture).await,
        "MB506",
        &mut wrong,
    );
    admitted(
        "MB506 near miss: what the injector writes",
        create(
            &cluster,
            &tenant,
            a,
            annotated_pod(
                "all-ports",
                "traffic.sidecar.istio.io/includeInboundPorts",
                "*",
            ),
        )
        .await,
        &mut wrong,
    );
    // Exemptions: b is exempt from mtls now, not after the exemption expires (the compiler
    // rewrites the literal list; the operator does so at the expiry).
    admitted(
        "exempt namespace",
        create(&cluster, &tenant, b, pa("loose", "PERMISSIVE", false)).await,
        &mut wrong,
    );
    admitted(
        "no lock-out: unprotected namespace",
        create(&cluster, &tenant, free, pa("loose", "PERMISSIVE", false)).await,
        &mut wrong,
    );
    enforce(
        &cluster,
        &operator,
        &operator_user,
        &mb,
        &[a, b],
        expires + jiff::SignedDuration::from_secs(1),
    )
    .await?;
    refused(
        "after the exemption expired",
        create(&cluster, &tenant, b, pa("loose2", "PERMISSIVE", false)).await,
        "MB101",
        &mut wrong,
    );

    // Warn mode: admitted, with the rule's message as a warning.
    let mut warn_spec = spec.clone();
    warn_spec["admission"]["tenantObjects"] = json!("Warn");
    let mut warn_mb = mb.clone();
    warn_mb.spec = serde_json::from_value(warn_spec)?;
    enforce(&cluster, &operator, &operator_user, &warn_mb, &[a, b], now).await?;
    match create_warned(&cluster, &tenant, a, &pa("warned", "PERMISSIVE", false)).await {
        Ok(w) if w.iter().any(|w| w.contains("MB101")) => {}
        other => wrong.push(format!(
            "Warn mode: expected admission with an MB101 warning, got {other:?}"
        )),
    }
    match create_warned(&cluster, &tenant, a, &pa("quiet", "STRICT", false)).await {
        Ok(w) if w.is_empty() => {}
        other => wrong.push(format!(
            "Warn mode near miss: expected no warning, got {other:?}"
        )),
    }

    // The controllers still clean up: the namespace controller empties a deleted namespace,
    // the garbage collector deletes what the deleted baseline owned.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    namespaces.delete(a, &DeleteParams::default()).await?;
    Api::<MeshBaseline>::all(admin.clone())
        .delete("admission", &DeleteParams::default())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (vaps, _) = cluster
        .api_as(
            &admin,
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicy",
            None,
        )
        .await?;
    let (b_np, _) = cluster.api_as(&admin, NP.0, NP.1, Some(b)).await?;
    loop {
        let ns_gone = namespaces.get_opt(a).await?.is_none();
        let owned_gone = b_np.get_opt("meshbaseline-baseline").await?.is_none()
            && vaps
                .get_opt("meshbaseline-guard-admission")
                .await?
                .is_none();
        if ns_gone && owned_gone {
            break;
        }
        if Instant::now() > deadline {
            wrong.push(format!("not cleaned up within 60 s: namespace gone {ns_gone}, owned objects gone {owned_gone}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    cluster.cleanup().await?;
    assert!(wrong.is_empty(), "{wrong:#?}");
    Ok(())
}
