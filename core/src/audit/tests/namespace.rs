use super::*;

#[test]
fn mb601_protected_namespaces_without_injection_fire() {
    let i = with_namespaces(
        inv(),
        vec![
            mk_ns("legacy-billing", &[("team", "finance")]),
            mk_ns("analytics", &[("istio-injection", "disabled")]),
            mk_ns("payments", &[("istio-injection", "enabled")]),
            mk_ns("checkout", &[("istio.io/rev", "stable")]),
            mk_ns("kube-system", &[]),
            mk_ns(ROOT, &[]),
        ],
    );
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB601), vec!["analytics", "legacy-billing"]);
    assert!(f
        .iter()
        .all(|f| f.kind == "Namespace" && f.namespace.is_none()));
    assert!(f.iter().any(|f| f.message.contains("\"disabled\"")));
}

#[test]
fn mb601_follows_the_selector_and_exemptions() {
    let i = with_namespaces(inv(), vec![mk_ns("legacy-billing", &[])]);
    let selective =
        mk_baseline(serde_json::json!({"namespaceSelector": {"matchLabels": {"mesh": "on"}}}));
    assert!(run(&selective, &i).is_empty());
    assert!(run(&exempting("legacy-billing", "workloads", ACTIVE), &i).is_empty());
    assert_eq!(
        run(&exempting("legacy-billing", "workloads", EXPIRED), &i).len(),
        1
    );
}

#[test]
fn mb602_ipv6_families_fire_and_ipv4_does_not() {
    let mut i = inv();
    i.services = vec![
        mk_svc("payments", "dual", &["IPv4", "IPv6"]),
        mk_svc("payments", "v6", &["IPv6"]),
        mk_svc("payments", "v4", &["IPv4"]),
        mk_svc("payments", "unspecified", &[]),
        mk_svc("kube-system", "dns6", &["IPv6"]),
    ];
    let mut prefer = mk_svc("payments", "prefer", &[]);
    prefer.ip_family_policy = Some("PreferDualStack".into());
    i.services.push(prefer);
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB602),
        vec!["payments/dual", "payments/prefer", "payments/v6"]
    );
}

#[test]
fn mb601_ambient_namespaces_are_in_the_mesh_and_opting_out_is_named() {
    let i = with_namespaces(
        inv(),
        vec![
            mk_ns("shop", &[("istio.io/dataplane-mode", "ambient")]),
            mk_ns(
                "shop-rev",
                &[
                    ("istio.io/dataplane-mode", "ambient"),
                    ("istio.io/rev", "canary"),
                ],
            ),
            mk_ns("batch", &[("istio.io/dataplane-mode", "none")]),
            mk_ns(
                "off",
                &[("istio-injection", "disabled"), ("istio.io/rev", "stable")],
            ),
        ],
    );
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB601), vec!["batch", "off"]);
    let batch = f.iter().find(|f| f.name == "batch").unwrap();
    assert!(
        batch
            .message
            .contains("istio.io/dataplane-mode is \"none\""),
        "{}",
        batch.message
    );
    assert!(batch.message.contains("neither data plane"));
}
