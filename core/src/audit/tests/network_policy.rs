use serde_json::json;

use std::sync::Arc;

use super::*;

fn np_inv(nps: Vec<NetworkPolicy>) -> Inventory {
    let mut i = inv();
    i.network_policies = nps.into_iter().map(Arc::new).collect();
    i
}

fn egress(rules: serde_json::Value) -> serde_json::Value {
    json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": rules})
}

fn dns_peer() -> serde_json::Value {
    json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
           "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}})
}

#[test]
fn mb401_all_destinations_or_ip_blocks_outside_the_allow_list_fire() {
    let i = np_inv(vec![
        mk_np(
            "payments",
            "no-to",
            egress(json!([{"ports": [{"protocol": "TCP", "port": 443}]}])),
        ),
        mk_np(
            "payments",
            "internet",
            egress(json!([{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]}])),
        ),
        mk_np(
            "payments",
            "v6",
            egress(
                json!([{"to": [{"ipBlock": {"cidr": "2001:db8::/32"}}], "ports": [{"port": 443}]}]),
            ),
        ),
    ]);
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB401),
        vec!["payments/internet", "payments/no-to", "payments/v6"]
    );
    assert!(hits(&f, Rule::MB402).is_empty());
}

#[test]
fn mb401_allow_listed_cidrs_and_in_cluster_peers_are_silent() {
    let base = mk_baseline(
        json!({"network": {"egress": {"allowCidrs": ["203.0.113.0/24", "2001:db8::/32"]}}}),
    );
    let i = np_inv(vec![
        mk_np(
            "payments",
            "psp",
            egress(
                json!([{"to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}, {"ipBlock": {"cidr": "2001:db8:1::/48"}}], "ports": [{"port": 443}]}]),
            ),
        ),
        mk_np(
            "payments",
            "cluster",
            egress(
                json!([{"to": [{"namespaceSelector": {}}, {"podSelector": {}}], "ports": [{"protocol": "TCP"}]}]),
            ),
        ),
        mk_np(
            "payments",
            "ingress-only",
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 8080}]}]}),
        ),
    ]);
    assert!(run(&base, &i).is_empty());
    // Outside the allow-list, the same CIDR fires.
    let wider = np_inv(vec![mk_np(
        "payments",
        "wide",
        egress(json!([{"to": [{"ipBlock": {"cidr": "203.0.0.0/16"}}], "ports": [{"port": 443}]}])),
    )]);
    assert_eq!(
        hits(&run(&base, &wider), Rule::MB401),
        vec!["payments/wide"]
    );
}

#[test]
fn mb401_is_silent_with_unrestricted_egress_and_when_exempt() {
    let i = np_inv(vec![mk_np(
        "payments",
        "internet",
        egress(json!([{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]}])),
    )]);
    assert!(run(
        &mk_baseline(json!({"network": {"egress": {"mode": "Unrestricted"}}})),
        &i
    )
    .is_empty());
    assert!(run(&exempting("payments", "network", ACTIVE), &i).is_empty());
    assert_eq!(run(&exempting("payments", "network", EXPIRED), &i).len(), 1);
}

#[test]
fn mb402_udp_sctp_and_portless_rules_fire() {
    let i = np_inv(vec![
        mk_np(
            "payments",
            "statsd",
            egress(
                json!([{"to": [{"podSelector": {}}], "ports": [{"protocol": "UDP", "port": 8125}]}]),
            ),
        ),
        mk_np(
            "payments",
            "public-dns",
            egress(
                json!([{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"protocol": "UDP", "port": 53}]}]),
            ),
        ),
        mk_np(
            "payments",
            "sctp",
            json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "SCTP", "port": 9999}]}]}),
        ),
        mk_np(
            "payments",
            "same-ns",
            json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
        ),
        mk_np(
            "payments",
            "dns-everywhere",
            egress(
                json!([{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}], "ports": [{"protocol": "UDP", "port": 53}]}]),
            ),
        ),
    ]);
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB402),
        vec![
            "payments/dns-everywhere",
            "payments/public-dns",
            "payments/same-ns",
            "payments/sctp",
            "payments/statsd"
        ]
    );
    let portless = f.iter().find(|f| f.name == "same-ns").unwrap();
    assert!(portless.message.contains("every protocol"));
}

#[test]
fn mb402_dns_to_the_dns_pods_and_tcp_are_silent() {
    let i = np_inv(vec![
        mk_np(
            "payments",
            "dns",
            egress(
                json!([{"to": [dns_peer()], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]),
            ),
        ),
        mk_np(
            "payments",
            "tcp",
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 8080}, {"protocol": "TCP", "port": 9090}]}]}),
        ),
    ]);
    assert!(run(&strict(), &i).is_empty());
    // A custom DNS port follows the baseline.
    let base = mk_baseline(
        json!({"network": {"dns": {"namespace": "kube-system", "podSelector": {"k8s-app": "kube-dns"}, "port": 5353}}}),
    );
    let custom = np_inv(vec![mk_np(
        "payments",
        "dns",
        egress(json!([{"to": [dns_peer()], "ports": [{"protocol": "UDP", "port": 5353}]}])),
    )]);
    assert!(run(&base, &custom).is_empty());
    assert_eq!(
        hits(&run(&strict(), &custom), Rule::MB402),
        vec!["payments/dns"]
    );
}

#[test]
fn network_rules_skip_operator_objects_and_unprotected_namespaces() {
    let open = egress(json!([{}]));
    let i = with_namespaces(
        np_inv(vec![
            mk_managed_np("payments", "meshbaseline-baseline", open.clone()),
            mk_np("kube-system", "open", open.clone()),
        ]),
        vec![mk_ns("payments", &[])],
    );
    // Offline (no baseline uid) the key the compiler generates is proof enough.
    let about_policies = |f: &[Finding]| -> Vec<String> {
        [Rule::MB401, Rule::MB402, Rule::MB801]
            .into_iter()
            .flat_map(|r| hits(f, r))
            .collect()
    };
    assert!(about_policies(&run(&strict(), &i)).is_empty());
    // In the cluster the ownerReference must name the baseline's uid: without it, or with a
    // forged one, the object is a tenant's, audited and flagged.
    let mut owned = strict();
    owned.uid = Some("u1".into());
    let f = run(&owned, &i);
    assert_eq!(
        hits(&f, Rule::MB401),
        vec!["payments/meshbaseline-baseline"]
    );
    assert_eq!(
        hits(&f, Rule::MB801),
        vec!["payments/meshbaseline-baseline"]
    );
    let mut forged = mk_managed_np("payments", "meshbaseline-baseline", open.clone());
    forged.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline", "name": "default",
        "uid": "not-u1", "controller": true}))
    .unwrap()]);
    let mut genuine = forged.clone();
    genuine.metadata.owner_references.as_mut().unwrap()[0].uid = "u1".into();
    let with = |np| with_namespaces(np_inv(vec![np]), vec![mk_ns("payments", &[])]);
    assert_eq!(hits(&run(&owned, &with(forged)), Rule::MB801).len(), 1);
    assert!(about_policies(&run(&owned, &with(genuine))).is_empty());
    // A name outside the desired set is never ours, whatever it carries.
    let stray = with(mk_managed_np("payments", "meshbaseline-extra", open));
    assert_eq!(
        hits(&run(&strict(), &stray), Rule::MB801),
        vec!["payments/meshbaseline-extra"]
    );
}
