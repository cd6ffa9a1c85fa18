use serde_json::json;

use std::sync::Arc;

use super::*;

fn ap_inv(aps: Vec<AuthorizationPolicy>) -> Inventory {
    let mut i = inv();
    i.authorization_policies = aps.into_iter().map(Arc::new).collect();
    i
}

#[test]
fn mb301_rules_without_an_authenticated_source_fire() {
    let i = ap_inv(vec![
        mk_ap(
            "payments",
            "no-from",
            json!({"rules": [{"to": [{"operation": {"paths": ["/healthz"]}}]}]}),
        ),
        mk_ap(
            "payments",
            "allow-all",
            json!({"action": "ALLOW", "rules": [{}]}),
        ),
        mk_ap(
            "payments",
            "negative",
            json!({"rules": [{"from": [{"source": {"notPrincipals": ["cluster.local/ns/x/sa/y"]}}]}]}),
        ),
        mk_ap(
            "payments",
            "ip-only",
            json!({"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]}),
        ),
        mk_ap(
            "payments",
            "one-of-two",
            json!({"rules": [{"from": [
                {"source": {"principals": ["cluster.local/ns/a/sa/b"]}},
                {"source": {"notNamespaces": ["evil"]}}
            ]}]}),
        ),
    ]);
    let f = run(&strict(), &i);
    assert_eq!(
        hits(&f, Rule::MB301),
        vec![
            "payments/allow-all",
            "payments/ip-only",
            "payments/negative",
            "payments/no-from",
            "payments/one-of-two"
        ]
    );
    let negative = f.iter().find(|f| f.name == "negative").unwrap();
    assert!(
        negative.message.contains("notPrincipals"),
        "{}",
        negative.message
    );
}

#[test]
fn mb301_near_misses_are_silent() {
    let i = ap_inv(vec![
        mk_ap(
            "payments",
            "principals",
            json!({"rules": [{"from": [{"source": {"principals": ["cluster.local/ns/checkout/sa/web"]}}]}]}),
        ),
        mk_ap(
            "payments",
            "namespaces",
            json!({"rules": [{"from": [{"source": {"namespaces": ["checkout"], "notPrincipals": ["x"]}}]}]}),
        ),
        mk_ap(
            "payments",
            "jwt",
            json!({"rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]}),
        ),
        mk_ap(
            "payments",
            "when",
            json!({"rules": [{"when": [{"key": "source.principal", "values": ["cluster.local/ns/a/sa/b"]}]}]}),
        ),
        mk_ap("payments", "deny", json!({"action": "DENY", "rules": [{}]})),
        mk_ap(
            "payments",
            "custom",
            json!({"action": "CUSTOM", "rules": [{}]}),
        ),
        mk_ap("payments", "deny-all", json!({})),
        mk_ap("kube-system", "open", json!({"rules": [{}]})),
    ]);
    assert!(run(&strict(), &i).is_empty());
}

#[test]
fn mb301_exemption_from_authorization() {
    let i = ap_inv(vec![mk_ap("payments", "open", json!({"rules": [{}]}))]);
    assert!(run(&exempting("payments", "authorization", ACTIVE), &i).is_empty());
    assert_eq!(
        run(&exempting("payments", "authorization", EXPIRED), &i).len(),
        1
    );
    assert_eq!(run(&exempting("payments", "mtls", ACTIVE), &i).len(), 1);
}
