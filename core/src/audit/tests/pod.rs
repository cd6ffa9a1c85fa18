use std::collections::BTreeMap;

use std::sync::Arc;

use super::*;

fn pod_inv(pods: Vec<PodInfo>) -> Inventory {
    let mut i = inv();
    i.pods = pods.into_iter().map(Arc::new).collect();
    i
}

fn template(ns: &str, name: &str) -> PodInfo {
    let mut p = mk_pod(ns, name);
    p.kind = "Deployment".into();
    p.phase = None;
    p.containers = vec![mk_container("app")];
    p
}

fn annotated(mut p: PodInfo, k: &str, v: &str) -> PodInfo {
    p.annotations = BTreeMap::from([(k.to_string(), v.to_string())]).into();
    p
}

#[test]
fn mb501_uid_or_gid_1337_outside_the_proxy_fires() {
    let mut by_container = mk_pod("payments", "container-uid");
    by_container.containers[0].run_as_user = Some(1337);
    let mut by_pod = mk_pod("payments", "pod-gid");
    by_pod.run_as_group = Some(1337);
    let mut init = mk_pod("payments", "init");
    init.containers.push(ContainerInfo {
        init: true,
        run_as_user: Some(1337),
        ..mk_container("wait-for-db")
    });
    let f = run(&strict(), &pod_inv(vec![by_container, by_pod, init]));
    assert_eq!(
        hits(&f, Rule::MB501),
        vec![
            "payments/container-uid",
            "payments/pod-gid",
            "payments/init"
        ],
        "only an init container: less severe, sorted after"
    );
    let init = f.iter().find(|f| f.name == "init").unwrap();
    assert_eq!(init.severity, crate::audit::Severity::High);
    assert!(init
        .message
        .contains("init container wait-for-db (UID 1337)"));
    assert!(init.message.contains("workaround"));
    let pod_gid = f.iter().find(|f| f.name == "pod-gid").unwrap();
    assert_eq!(pod_gid.severity, crate::audit::Severity::Critical);
    // Pod-level GID reaches the app container; the proxy container is not listed.
    assert!(pod_gid.message.contains("app (GID 1337)") && !pod_gid.message.contains("istio-proxy"));
}

#[test]
fn mb501_uid_1337_in_the_istio_proxy_container_is_silent() {
    let mut p = mk_pod("payments", "ledger");
    p.containers[1].run_as_user = Some(1337);
    p.containers[1].run_as_group = Some(1337);
    p.containers[0].run_as_user = Some(1000);
    let mut overridden = mk_pod("payments", "overridden");
    overridden.run_as_user = Some(1337);
    overridden.containers[0].run_as_user = Some(1000);
    assert!(run(&strict(), &pod_inv(vec![p, overridden])).is_empty());
}

#[test]
fn mb502_net_admin_net_raw_and_privileged_fire() {
    let mut caps = mk_pod("payments", "caps");
    caps.containers[0].added_capabilities = vec!["NET_ADMIN".into(), "CAP_NET_RAW".into()];
    let mut privileged = mk_pod("payments", "privileged");
    privileged.containers[0].privileged = true;
    let f = run(&strict(), &pod_inv(vec![caps, privileged]));
    assert_eq!(
        hits(&f, Rule::MB502),
        vec!["payments/caps", "payments/privileged"]
    );
}

#[test]
fn mb502_istio_init_and_harmless_capabilities_are_silent() {
    let mut p = mk_pod("payments", "ledger");
    p.containers.push(ContainerInfo {
        init: true,
        added_capabilities: vec!["NET_ADMIN".into(), "NET_RAW".into()],
        ..mk_container("istio-init")
    });
    p.containers[0].added_capabilities = vec!["NET_BIND_SERVICE".into()];
    assert!(run(&strict(), &pod_inv(vec![p])).is_empty());
}

#[test]
fn mb503_host_network_fires_only_in_protected_namespaces() {
    let mut p = mk_pod("payments", "agent");
    p.host_network = true;
    let mut sys = mk_pod("kube-system", "kube-proxy");
    sys.host_network = true;
    let f = run(&strict(), &pod_inv(vec![p, sys]));
    assert_eq!(hits(&f, Rule::MB503), vec!["payments/agent"]);
    assert_eq!(f.len(), 1);
}

/// istio-cni's host rules (`cni/pkg/iptables`): TCP from a node socket to a local ambient pod
/// is SNATed to 169.254.7.127 and accepted before ztunnel. A host-network pod is such a socket.
#[test]
fn mb503_is_critical_where_the_mesh_has_ambient_namespaces() {
    let mut p = mk_pod("payments", "agent");
    p.host_network = true;
    let f = run(&strict(), &pod_inv(vec![p.clone()]));
    assert_eq!(f[0].severity, crate::audit::Severity::High);
    let i = with_namespaces(
        pod_inv(vec![p]),
        vec![
            mk_ns("payments", &[("istio-injection", "enabled")]),
            mk_ns("shop", &[("istio.io/dataplane-mode", "ambient")]),
        ],
    );
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB503), vec!["payments/agent"]);
    assert_eq!(f[0].severity, crate::audit::Severity::Critical);
    assert!(f[0].message.contains("169.254.7.127"), "{}", f[0].message);
}

/// istio-iptables' `handleInboundPortsInclude` captures only `includeInboundPorts` (every port
/// for `*`, none for ""); outbound likewise for `includeOutboundIPRanges`; `NONE` interception
/// installs no rules (and istiod builds no inbound listener).
#[test]
fn mb506_capture_narrowed_or_switched_off_fires() {
    let cases = [
        (
            "traffic.sidecar.istio.io/includeInboundPorts",
            "8080",
            "only these inbound ports",
        ),
        (
            "traffic.sidecar.istio.io/includeInboundPorts",
            "",
            "no inbound ports",
        ),
        (
            "traffic.sidecar.istio.io/includeOutboundIPRanges",
            "10.0.0.0/8",
            "only these outbound",
        ),
        (
            "sidecar.istio.io/interceptionMode",
            "NONE",
            "no traffic is captured",
        ),
    ];
    for (k, v, says) in cases {
        let f = run(
            &strict(),
            &pod_inv(vec![annotated(template("payments", "w"), k, v)]),
        );
        assert_eq!(hits(&f, Rule::MB506), vec!["payments/w"], "{k}={v:?}");
        assert!(f[0].message.contains(says), "{k}={v:?}: {}", f[0].message);
    }
    // What the injector writes itself with istio-cni.
    for (k, v) in [
        ("traffic.sidecar.istio.io/includeInboundPorts", "*"),
        ("traffic.sidecar.istio.io/includeOutboundIPRanges", "*"),
        ("sidecar.istio.io/interceptionMode", "REDIRECT"),
        ("sidecar.istio.io/interceptionMode", "TPROXY"),
    ] {
        let f = run(
            &strict(),
            &pod_inv(vec![annotated(mk_pod("payments", "p"), k, v)]),
        );
        assert!(f.is_empty(), "{k}={v}: {f:#?}");
    }
}

#[test]
fn mb504_share_process_namespace_next_to_the_sidecar() {
    let mut with = mk_pod("payments", "debug");
    with.share_process_namespace = true;
    let mut injected = template("payments", "injected");
    injected.share_process_namespace = true;
    let mut without = mk_pod("payments", "no-sidecar");
    without.containers.pop();
    without.share_process_namespace = true;
    let mut not_injected = template("legacy-billing", "plain");
    not_injected.share_process_namespace = true;
    let i = with_namespaces(
        pod_inv(vec![with, injected, without, not_injected]),
        vec![
            mk_ns("payments", &[("istio-injection", "enabled")]),
            mk_ns("legacy-billing", &[]),
        ],
    );
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB504),
        vec!["payments/debug", "payments/injected"]
    );
}

#[test]
fn mb505_running_pods_without_a_sidecar_fire() {
    let mut running = mk_pod("payments", "running");
    running.containers.pop();
    let mut done = running.clone();
    done.name = "done".into();
    done.phase = Some("Succeeded".into());
    let mut failed = done.clone();
    failed.name = "failed".into();
    failed.phase = Some("Failed".into());
    let f = run(
        &strict(),
        &pod_inv(vec![running, done, failed, mk_pod("payments", "meshed")]),
    );
    assert_eq!(hits(&f, Rule::MB505), vec!["payments/running"]);
}

#[test]
fn mb505_templates_follow_namespace_injection() {
    let pods = vec![
        template("payments", "injected"),
        template("legacy-billing", "plain"),
        template("unknown", "unknown"),
    ];
    let i = with_namespaces(
        pod_inv(pods),
        vec![
            mk_ns("payments", &[("istio-injection", "enabled")]),
            mk_ns("legacy-billing", &[]),
        ],
    );
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB505), vec!["legacy-billing/plain"]);
    // Opting out by annotation is missing a sidecar wherever the namespace is.
    let opted = annotated(
        template("payments", "opted-out"),
        "sidecar.istio.io/inject",
        "false",
    );
    let i = with_namespaces(
        pod_inv(vec![opted]),
        vec![mk_ns("payments", &[("istio.io/rev", "stable")])],
    );
    assert_eq!(
        hits(&run(&strict(), &i), Rule::MB505),
        vec!["payments/opted-out"]
    );
}

#[test]
fn mb506_bypass_annotations_fire_and_harmless_ones_do_not() {
    let pods = vec![
        annotated(
            mk_pod("payments", "off"),
            "sidecar.istio.io/inject",
            "false",
        ),
        annotated(
            mk_pod("payments", "ranges"),
            "traffic.sidecar.istio.io/excludeOutboundIPRanges",
            "0.0.0.0/0",
        ),
        annotated(
            mk_pod("payments", "ports"),
            "traffic.sidecar.istio.io/excludeInboundPorts",
            "9999",
        ),
        annotated(mk_pod("payments", "on"), "sidecar.istio.io/inject", "true"),
        annotated(
            mk_pod("payments", "cpu"),
            "sidecar.istio.io/proxyCPU",
            "100m",
        ),
        annotated(
            mk_pod("payments", "empty"),
            "traffic.sidecar.istio.io/excludeOutboundPorts",
            "",
        ),
    ];
    let f = run(&strict(), &pod_inv(pods));
    assert_eq!(
        hits(&f, Rule::MB506),
        vec!["payments/off", "payments/ports", "payments/ranges"]
    );
}

#[test]
fn workload_rules_obey_exemptions_and_the_audit_switch() {
    let mut p = mk_pod("payments", "agent");
    p.host_network = true;
    let i = pod_inv(vec![p]);
    assert!(run(&exempting("payments", "workloads", ACTIVE), &i).is_empty());
    assert_eq!(
        run(&exempting("payments", "workloads", EXPIRED), &i).len(),
        1
    );
    assert!(run(
        &mk_baseline(serde_json::json!({"workloads": {"audit": false}})),
        &i
    )
    .is_empty());
    let only_team =
        mk_baseline(serde_json::json!({"namespaceSelector": {"matchLabels": {"mesh": "on"}}}));
    assert!(run(&only_team, &i).is_empty());
}

fn labelled(mut p: PodInfo, k: &str, v: &str) -> PodInfo {
    p.labels.insert(k.to_string(), v.to_string());
    p
}

#[test]
fn mb501_ambient_pods_are_silent_uid_1337_is_not_exempt_from_ztunnel() {
    let mut ambient = template("shop", "uid");
    ambient.containers[0].run_as_user = Some(1337);
    let mut sidecar = template("payments", "uid");
    sidecar.containers[0].run_as_user = Some(1337);
    let i = with_namespaces(
        pod_inv(vec![ambient, sidecar]),
        vec![
            mk_ns("shop", &[("istio.io/dataplane-mode", "ambient")]),
            mk_ns("payments", &[("istio-injection", "enabled")]),
        ],
    );
    assert_eq!(hits(&run(&strict(), &i), Rule::MB501), vec!["payments/uid"]);
}

#[test]
fn mb505_and_mb506_read_the_injection_label_before_the_annotation() {
    let pods = vec![
        // Disabled by label on a Deployment template: Istio honours it.
        labelled(
            template("payments", "by-label"),
            "sidecar.istio.io/inject",
            "false",
        ),
        // The label wins over the annotation: injected, nothing to report.
        labelled(
            annotated(
                template("payments", "label-wins"),
                "sidecar.istio.io/inject",
                "false",
            ),
            "sidecar.istio.io/inject",
            "true",
        ),
        // An annotation "true" does not opt in where the namespace has no injection labels.
        annotated(
            template("legacy-billing", "annotation-only"),
            "sidecar.istio.io/inject",
            "true",
        ),
        // A label "true" does.
        labelled(
            template("legacy-billing", "opted-in"),
            "sidecar.istio.io/inject",
            "true",
        ),
    ];
    let i = with_namespaces(
        pod_inv(pods),
        vec![
            mk_ns("payments", &[("istio-injection", "enabled")]),
            mk_ns("legacy-billing", &[]),
        ],
    );
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB505),
        vec!["legacy-billing/annotation-only", "payments/by-label"]
    );
    assert_eq!(hits(&f, Rule::MB506), vec!["payments/by-label"]);
    let m = &f.iter().find(|f| f.rule == Rule::MB506).unwrap().message;
    assert!(
        m.contains("label sidecar.istio.io/inject: \"false\""),
        "{m}"
    );
}

#[test]
fn mb506_ignores_the_ports_the_injector_excludes_itself() {
    let exclude = "traffic.sidecar.istio.io/excludeInboundPorts";
    let mut custom = annotated(mk_pod("payments", "custom-status"), exclude, "15021, 16000");
    custom
        .annotations
        .insert("status.sidecar.istio.io/port".into(), "16000".into());
    let pods = vec![
        annotated(mk_pod("payments", "cni"), exclude, "15020"),
        annotated(
            mk_pod("payments", "all-status"),
            exclude,
            "15020,15021,15090",
        ),
        custom,
        annotated(mk_pod("payments", "user"), exclude, "8080,15020"),
        annotated(
            mk_pod("payments", "status"),
            "sidecar.istio.io/status",
            "{}",
        ),
    ];
    let f = run(&strict(), &pod_inv(pods));
    assert_eq!(hits(&f, Rule::MB506), vec!["payments/user"]);
    let m = &f[0].message;
    assert!(m.contains("\"8080\"") && !m.contains("15020"), "{m}");
}

#[test]
fn mb505_names_the_missing_data_plane() {
    let mut not_captured = mk_pod("shop", "not-captured");
    not_captured.containers.pop();
    let mut captured = not_captured.clone();
    captured.name = "captured".into();
    captured
        .annotations
        .insert("ambient.istio.io/redirection".into(), "enabled".into());
    let mut no_sidecar = mk_pod("payments", "no-sidecar");
    no_sidecar.containers.pop();
    let i = with_namespaces(
        pod_inv(vec![
            not_captured,
            captured,
            no_sidecar,
            template("legacy-billing", "plain"),
        ]),
        vec![
            mk_ns("shop", &[("istio.io/dataplane-mode", "ambient")]),
            mk_ns("payments", &[("istio-injection", "enabled")]),
            mk_ns("legacy-billing", &[]),
        ],
    );
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB505),
        vec![
            "legacy-billing/plain",
            "payments/no-sidecar",
            "shop/not-captured"
        ]
    );
    let msg = |name: &str| f.iter().find(|f| f.name == name).unwrap().message.clone();
    assert!(msg("not-captured").contains("without ambient capture"));
    assert!(msg("no-sidecar").contains("without an istio-proxy sidecar"));
    assert!(msg("plain").contains("in neither data plane"));
}

#[test]
fn mb505_ambient_templates_are_in_the_mesh_and_sidecar_annotations_do_not_matter() {
    let pods = vec![
        template("shop", "web"),
        // Waypoints and ambient manifests often carry inject=false: harmless in ambient.
        labelled(
            template("shop", "waypoint"),
            "sidecar.istio.io/inject",
            "false",
        ),
        annotated(
            template("shop", "ranges"),
            "traffic.sidecar.istio.io/excludeOutboundIPRanges",
            "10.0.0.0/8",
        ),
    ];
    let i = with_namespaces(
        pod_inv(pods),
        vec![mk_ns("shop", &[("istio.io/dataplane-mode", "ambient")])],
    );
    assert!(run(&strict(), &i).is_empty());
}

/// The injection template reads `sidecar.istio.io/interceptionMode`, else the ProxyConfig's
/// (`proxy.istio.io/config`, YAML or JSON): a ProxyConfig with `interceptionMode: NONE` switches
/// capture off unless the annotation says otherwise.
#[test]
fn mb506_reads_the_proxy_config_annotation() {
    use k8s_openapi::api::core::v1::Pod;
    let pod = |annotations: serde_json::Value| {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "w", "namespace": "payments", "annotations": annotations},
            "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]},
            "status": {"phase": "Running"},
        }))
        .unwrap();
        PodInfo::from_pod(&p)
    };
    for (annotations, fires) in [
        (
            json!({"proxy.istio.io/config": "interceptionMode: NONE\nholdApplicationUntilProxyStarts: true"}),
            true,
        ),
        (
            json!({"proxy.istio.io/config": "{\"interceptionMode\": \"NONE\"}"}),
            true,
        ),
        (
            json!({"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true"}),
            false,
        ),
        (
            json!({"proxy.istio.io/config": "interceptionMode: NONE", "sidecar.istio.io/interceptionMode": "REDIRECT"}),
            false,
        ),
    ] {
        let p = pod(annotations.clone());
        let f = run(&strict(), &pod_inv(vec![p.clone()]));
        assert_eq!(
            !hits(&f, Rule::MB506).is_empty(),
            fires,
            "{annotations}: {f:#?}"
        );
        if fires {
            assert!(f
                .iter()
                .any(|f| f.message.contains("proxy.istio.io/config interceptionMode")));
        }
        // Only the interception mode is kept of the ProxyConfig.
        assert!(p
            .annotations
            .get("proxy.istio.io/config")
            .is_none_or(|v| v == "NONE"));
    }
}
