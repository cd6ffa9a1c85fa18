//! MB302, MB303, MB507–MB509: each fires, and its near misses stay silent.

use std::sync::Arc;

use super::*;

const AMBIENT: (&str, &str) = ("istio.io/dataplane-mode", "ambient");

fn ambient_inv(extra_ns_labels: &[(&str, &str)]) -> Inventory {
    let mut labels = vec![AMBIENT];
    labels.extend_from_slice(extra_ns_labels);
    with_namespaces(
        inv(),
        vec![
            mk_ns("shop", &labels),
            mk_ns("payments", &[("istio-injection", "enabled")]),
        ],
    )
}

fn ambient_pod(ns: &str, name: &str) -> PodInfo {
    let mut p = mk_pod(ns, name);
    p.containers.pop();
    p.annotations
        .insert("ambient.istio.io/redirection".into(), "enabled".into());
    p
}

fn with_label(mut p: PodInfo, k: &str, v: &str) -> PodInfo {
    p.labels.insert(k.into(), v.into());
    p
}

fn with_annotation(mut p: PodInfo, k: &str, v: &str) -> PodInfo {
    p.annotations.insert(k.into(), v.into());
    p
}

#[test]
fn mb302_http_attributes_bound_to_ztunnel_fire() {
    let mut i = ambient_inv(&[]);
    i.authorization_policies = vec![
        mk_ap(
            "shop",
            "get-only",
            json!({"rules": [{
                "from": [{"source": {"principals": ["cluster.local/ns/shop/sa/web"]}}],
                "to": [{"operation": {"methods": ["GET"], "ports": ["8080"]}}],
            }]}),
        ),
        mk_ap(
            "shop",
            "deny-admin",
            json!({"action": "DENY", "selector": {"matchLabels": {"app": "api"}},
            "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}),
        ),
        mk_ap(
            "shop",
            "jwt",
            json!({"rules": [{
                "from": [{"source": {"requestPrincipals": ["*"]}}],
                "when": [{"key": "request.headers[x-team]", "values": ["a"]}],
            }]}),
        ),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB302),
        vec!["shop/deny-admin", "shop/get-only", "shop/jwt"]
    );
    let deny = f
        .iter()
        .find(|f| f.name == "deny-admin" && f.rule == Rule::MB302)
        .unwrap();
    assert!(deny.message.contains("paths") && deny.message.contains("DENY rules without"));
    let jwt = f
        .iter()
        .find(|f| f.name == "jwt" && f.rule == Rule::MB302)
        .unwrap();
    assert!(
        jwt.message.contains("requestPrincipals")
            && jwt.message.contains("when request.headers[x-team]")
    );
}

#[test]
fn mb302_l4_rules_waypoint_bound_and_sidecar_namespaces_are_silent() {
    let mut i = ambient_inv(&[]);
    let l7 = json!({"rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]});
    let mut on_waypoint = l7.clone();
    on_waypoint["targetRefs"] =
        json!([{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}]);
    i.authorization_policies = vec![
        mk_ap(
            "shop",
            "l4",
            json!({"rules": [{
                "from": [{"source": {"namespaces": ["shop"]}}],
                "to": [{"operation": {"ports": ["8080"]}}],
                "when": [{"key": "source.ip", "values": ["10.0.0.0/8"]}],
            }]}),
        ),
        mk_ap("shop", "on-waypoint", on_waypoint),
        mk_ap("payments", "sidecar-l7", l7.clone()),
        mk_ap("unknown", "no-namespace-object", l7),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    assert!(hits(&run(&strict(), &i), Rule::MB302).is_empty());
}

fn waypoint_policy(ns: &str, name: &str, kind: &str, target: &str) -> AuthorizationPolicy {
    mk_ap(
        ns,
        name,
        json!({
            "targetRefs": [{"kind": kind, "group": "", "name": target}],
            "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/web"]}}],
                       "to": [{"operation": {"methods": ["GET"]}}]}],
        }),
    )
}

#[test]
fn mb303_waypoint_allow_without_an_l4_policy_fires() {
    let mut i = ambient_inv(&[("istio.io/use-waypoint", "waypoint")]);
    i.authorization_policies = vec![
        waypoint_policy("shop", "by-gateway", "Gateway", "waypoint"),
        waypoint_policy("shop", "by-service", "Service", "api"),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB303),
        vec!["shop/by-gateway", "shop/by-service"]
    );
}

#[test]
fn mb303_is_silent_with_an_l4_allow_the_generated_policy_or_an_ingress_gateway() {
    let mut i = ambient_inv(&[("istio.io/use-waypoint", "waypoint")]);
    i.authorization_policies = vec![waypoint_policy("shop", "by-gateway", "Gateway", "waypoint")]
        .into_iter()
        .map(Arc::new)
        .collect();
    // The operator generates the waypoint-only policy once it knows the waypoint's pods;
    // until then MB303 still holds (and MB305 says why).
    let b = mk_baseline(json!({"authorization": {"waypointOnly": true}}));
    let f = run(&b, &i);
    assert_eq!(hits(&f, Rule::MB303), vec!["shop/by-gateway"]);
    assert_eq!(hits(&f, Rule::MB305), vec!["shop"]);
    i.pods = vec![Arc::new(mk_waypoint_pod(
        "shop",
        "waypoint-1",
        "waypoint",
        "waypoint",
    ))];
    let f = run(&b, &i);
    assert!(hits(&f, Rule::MB303).is_empty() && hits(&f, Rule::MB305).is_empty());
    i.pods.clear();
    // A tenant's own L4 ALLOW for the waypoint.
    i.authorization_policies.push(Arc::new(mk_ap(
        "shop",
        "waypoint-only",
        json!({"rules": [{
        "from": [{"source": {"principals": ["cluster.local/ns/shop/sa/waypoint"]}}]}]}),
    )));
    assert!(hits(&run(&strict(), &i), Rule::MB303).is_empty());
    // A Gateway that is not the namespace's waypoint (an ingress gateway), and DENY.
    let mut j = ambient_inv(&[("istio.io/use-waypoint", "waypoint")]);
    let mut deny = waypoint_policy("shop", "deny", "Service", "api");
    deny.spec.action = Some("DENY".into());
    j.authorization_policies = vec![
        waypoint_policy("shop", "ingress", "Gateway", "public-gw"),
        deny,
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    assert!(hits(&run(&strict(), &j), Rule::MB303).is_empty());
}

#[test]
fn mb507_pods_opting_out_of_an_ambient_namespace_fire() {
    let mut i = ambient_inv(&[]);
    i.pods = vec![
        with_label(
            template_in("shop", "batch"),
            "istio.io/dataplane-mode",
            "none",
        ),
        with_annotation(
            template_in("shop", "legacy"),
            "ambient.istio.io/redirection",
            "disabled",
        ),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB507), vec!["shop/batch", "shop/legacy"]);
    // Out of the mesh, so MB505 too, naming what is missing.
    assert_eq!(hits(&f, Rule::MB505), vec!["shop/batch", "shop/legacy"]);
}

fn template_in(ns: &str, name: &str) -> PodInfo {
    let mut p = mk_pod(ns, name);
    p.kind = "Deployment".into();
    p.phase = None;
    p.containers = vec![mk_container("app")];
    p
}

#[test]
fn mb507_near_misses_are_silent() {
    let mut i = ambient_inv(&[]);
    i.pods = vec![
        // none outside an ambient namespace: nothing to opt out of.
        with_label(
            template_in("payments", "none-in-sidecar-ns"),
            "istio.io/dataplane-mode",
            "none",
        ),
        // A waypoint opts out by design.
        with_label(
            with_label(
                ambient_pod("shop", "waypoint-abc"),
                "istio.io/dataplane-mode",
                "none",
            ),
            "gateway.istio.io/managed",
            "istio.io-mesh-controller",
        ),
        with_label(
            template_in("shop", "explicit"),
            "istio.io/dataplane-mode",
            "ambient",
        ),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    Arc::make_mut(&mut i.pods[1])
        .containers
        .push(mk_container("istio-proxy"));
    assert!(run(&strict(), &i).is_empty(), "{:?}", run(&strict(), &i));
    // A template the injector gives a sidecar (its pod label asks for one) is not in ztunnel's
    // hands: istio-cni leaves pods with a sidecar alone, whatever the opt-out says.
    i.pods = vec![Arc::new(with_annotation(
        with_label(
            template_in("shop", "injected"),
            "sidecar.istio.io/inject",
            "true",
        ),
        "ambient.istio.io/redirection",
        "disabled",
    ))];
    assert!(hits(&run(&strict(), &i), Rule::MB507).is_empty());
}

#[test]
fn mb508_bypass_inbound_capture_fires_on_ambient_pods_only() {
    let mut i = ambient_inv(&[]);
    let bypass = "ambient.istio.io/bypass-inbound-capture";
    i.pods = vec![
        with_annotation(ambient_pod("shop", "outbound-only"), bypass, "true"),
        with_annotation(template_in("shop", "template"), bypass, "1"),
        with_annotation(ambient_pod("shop", "off"), bypass, "false"),
        with_annotation(mk_pod("payments", "sidecar"), bypass, "true"),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB508),
        vec!["shop/outbound-only", "shop/template"]
    );
}

#[test]
fn mb509_use_waypoint_none_fires_only_where_the_namespace_uses_a_waypoint() {
    let mut i = ambient_inv(&[("istio.io/use-waypoint", "waypoint")]);
    i.pods = vec![
        with_label(
            ambient_pod("shop", "direct"),
            "istio.io/use-waypoint",
            "none",
        ),
        with_label(
            ambient_pod("shop", "other"),
            "istio.io/use-waypoint",
            "special",
        ),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let mut svc = mk_svc("shop", "api", &[]);
    svc.use_waypoint = Some("none".into());
    i.services = vec![svc];
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB509), vec!["shop/api", "shop/direct"]);
    // Without a namespace waypoint, `none` changes nothing.
    let mut j = ambient_inv(&[]);
    j.pods = vec![with_label(
        ambient_pod("shop", "direct"),
        "istio.io/use-waypoint",
        "none",
    )]
    .into_iter()
    .map(Arc::new)
    .collect();
    assert!(run(&strict(), &j).is_empty());
}

#[test]
fn ambient_rules_obey_exemptions() {
    let mut i = ambient_inv(&[]);
    i.pods = vec![with_label(
        template_in("shop", "batch"),
        "istio.io/dataplane-mode",
        "none",
    )]
    .into_iter()
    .map(Arc::new)
    .collect();
    i.authorization_policies = vec![mk_ap(
        "shop",
        "get-only",
        json!({"rules": [{
        "from": [{"source": {"namespaces": ["shop"]}}],
        "to": [{"operation": {"methods": ["GET"]}}]}]}),
    )]
    .into_iter()
    .map(Arc::new)
    .collect();
    assert!(hits(
        &run(&exempting("shop", "workloads", ACTIVE), &i),
        Rule::MB507
    )
    .is_empty());
    assert!(hits(
        &run(&exempting("shop", "authorization", ACTIVE), &i),
        Rule::MB302
    )
    .is_empty());
    assert_eq!(
        hits(&run(&strict(), &i), Rule::MB302),
        vec!["shop/get-only"]
    );
}

#[test]
fn mb302_selector_policies_are_silent_where_sidecar_pods_share_the_namespace() {
    let mut i = ambient_inv(&[]);
    // Injected by pod label in an ambient namespace: the sidecar enforces L7 itself.
    i.pods = vec![with_label(
        template_in("shop", "legacy"),
        "sidecar.istio.io/inject",
        "true",
    )]
    .into_iter()
    .map(Arc::new)
    .collect();
    let l7 = json!({"selector": {"matchLabels": {"app": "legacy"}},
        "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]});
    let mut namespace_wide = l7.clone();
    namespace_wide.as_object_mut().unwrap().remove("selector");
    i.authorization_policies = vec![
        mk_ap("shop", "legacy-get", l7),
        mk_ap("shop", "all-get", namespace_wide),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    // The namespace-wide one still reaches the ambient pods.
    assert_eq!(hits(&run(&strict(), &i), Rule::MB302), vec!["shop/all-get"]);
    // A waypoint runs istio-proxy too, but does not make the namespace mixed.
    let mut waypoint = with_label(
        ambient_pod("shop", "waypoint-1"),
        "gateway.istio.io/managed",
        "istio.io-mesh-controller",
    );
    waypoint.containers.push(mk_container("istio-proxy"));
    i.pods = vec![waypoint].into_iter().map(Arc::new).collect();
    assert_eq!(
        hits(&run(&strict(), &i), Rule::MB302),
        vec!["shop/all-get", "shop/legacy-get"]
    );
}
