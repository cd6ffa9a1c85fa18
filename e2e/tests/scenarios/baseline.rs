//! A baseline produces every object docs/generated-objects.md lists, with the right content.

use serde_json::{json, Value};

use crate::fixtures::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_generates_every_object() -> TestResult {
    let env = Env::start("gen").await?;
    let a = env.add_namespace("a").await?;
    let b = env.add_namespace("b").await?;
    // Not selected: no objects.
    env.apply(&mk_namespace(&env.ns("other"), None)).await?;
    env.apply(&mk_baseline("gen", "gen", json!({}))).await?;

    let objects = env.wait_converged("gen").await?;
    let mb = env
        .wait_condition("gen", "Ready", "True", |r, _| r == "Enforced")
        .await?;
    // The findings count what the operator itself created: once its istiod NetworkPolicy
    // exists, nothing reports istiod as open (MB701), without waiting for a full resync.
    env.cluster
        .wait_for("findings that see the generated objects", WAIT, || async {
            let mb = env.baseline("gen").await?;
            let status = mb.and_then(|m| m.status).unwrap_or_default();
            Ok(status
                .findings
                .iter()
                .all(|f| f.rule != "MB701")
                .then_some(()))
        })
        .await?;
    let status = mb.status.clone().unwrap_or_default();
    assert_eq!(status.observed_generation, mb.metadata.generation);
    assert_eq!(status.namespaces.protected, 2);
    let keys: Vec<(&str, &str, &str)> = objects
        .keys()
        .map(|(k, n, m)| (k.as_str(), n.as_str(), m.as_str()))
        .collect();
    let mut want = vec![
        (
            "AuthorizationPolicy",
            ROOT,
            "meshbaseline-deny-sandbox-admin",
        ),
        (
            "AuthorizationPolicy",
            ROOT,
            "meshbaseline-waypoint-deny-sandbox-admin",
        ),
        ("NetworkPolicy", ROOT, "meshbaseline-istiod"),
        ("PeerAuthentication", ROOT, "meshbaseline-mesh-mtls"),
        ("Sidecar", ROOT, "meshbaseline-registry-only"),
    ];
    for ns in [&a, &b] {
        want.push(("AuthorizationPolicy", ns, "meshbaseline-deny-plaintext"));
        want.push(("DestinationRule", ns, "meshbaseline-mtls"));
        want.push(("NetworkPolicy", ns, "meshbaseline-baseline"));
    }
    // The Admin tier where the cluster serves it (the real control plane of the suite has
    // the network-policy-api CRDs; the simulator has not). The admission guards are off in
    // the scenarios' baselines (`mk_baseline`).
    if !env.cluster.is_simulated() {
        want.push(("ClusterNetworkPolicy", "", "meshbaseline-istiod-gen"));
        want.push(("ClusterNetworkPolicy", "", "meshbaseline-namespaces-gen"));
    }
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(status.managed_objects as usize, want.len());

    // A few key fields, explicitly.
    let get = |k: &str, ns: &str, n: &str| {
        objects[&(k.to_string(), ns.to_string(), n.to_string())].clone()
    };
    let deny = get("AuthorizationPolicy", &a, "meshbaseline-deny-plaintext");
    assert_eq!(deny["spec"]["action"], "DENY");
    assert_eq!(
        deny["spec"]["rules"],
        json!([{"from": [{"source": {"notPrincipals": ["*"]}}]}])
    );
    let owner = &deny["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "MeshBaseline");
    assert_eq!(owner["uid"].as_str(), mb.metadata.uid.as_deref());
    assert_eq!(owner["controller"], true);
    assert_eq!(
        deny["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "meshbaseline"
    );
    assert_eq!(
        deny["metadata"]["labels"]["meshbaseline.dev/baseline"],
        "gen"
    );
    let dr = get("DestinationRule", &b, "meshbaseline-mtls");
    assert_eq!(dr["spec"]["host"], format!("*.{b}.svc.cluster.local"));
    assert_eq!(dr["spec"]["trafficPolicy"]["tls"]["mode"], "ISTIO_MUTUAL");
    let np = get("NetworkPolicy", &a, "meshbaseline-baseline");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        np["spec"]["ingress"],
        json!([{"ports": [{"protocol": "TCP"}]}])
    );
    let egress = np["spec"]["egress"].to_string();
    assert!(
        egress.contains("203.0.113.0/24") && egress.contains("2001:db8::/48"),
        "{egress}"
    );
    let pa = get("PeerAuthentication", ROOT, "meshbaseline-mesh-mtls");
    assert_eq!(pa["spec"]["mtls"]["mode"], "STRICT");
    assert_eq!(pa["spec"].get("selector"), None);
    let sidecar = get("Sidecar", ROOT, "meshbaseline-registry-only");
    assert_eq!(
        sidecar["spec"]["outboundTrafficPolicy"]["mode"],
        "REGISTRY_ONLY"
    );
    let istiod = get("NetworkPolicy", ROOT, "meshbaseline-istiod");
    let ports: Vec<Value> = istiod["spec"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["ports"].as_array().cloned().unwrap_or_default())
        .map(|p| p["port"].clone())
        .collect();
    assert_eq!(ports, vec![json!(15012), json!(15017), json!(15014)]);
    // Written by the operator's field manager only.
    assert_eq!(
        managers_of(&deny, "f:spec"),
        vec!["meshbaseline".to_string()]
    );

    env.finish().await
}
