use serde_json::json;

use std::sync::Arc;

use super::*;

fn pa_inv(pas: Vec<PeerAuthentication>) -> Inventory {
    let mut i = inv();
    i.peer_authentications = pas.into_iter().map(Arc::new).collect();
    i
}

#[test]
fn mb101_namespace_wide_permissive_or_disable_fires_under_strict() {
    let i = pa_inv(vec![
        mk_pa("payments", "perm", json!({"mtls": {"mode": "PERMISSIVE"}})),
        mk_pa("orders", "off", json!({"mtls": {"mode": "DISABLE"}})),
    ]);
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB101), vec!["orders/off", "payments/perm"]);
    let msg = &f[0].message;
    assert!(msg.contains("STRICT") && msg.contains("plaintext"), "{msg}");
}

#[test]
fn mb101_strict_unset_and_unprotected_namespaces_are_silent() {
    let i = pa_inv(vec![
        mk_pa("payments", "strict", json!({"mtls": {"mode": "STRICT"}})),
        mk_pa("payments", "unset", json!({"mtls": {"mode": "UNSET"}})),
        mk_pa("payments", "no-mtls", json!({})),
        mk_pa(
            "kube-system",
            "perm",
            json!({"mtls": {"mode": "PERMISSIVE"}}),
        ),
    ]);
    assert!(run(&strict(), &i).is_empty());
}

#[test]
fn mb101_under_a_permissive_baseline_only_disable_is_weaker() {
    let base = mk_baseline(json!({"mtls": {"mode": "PERMISSIVE"}}));
    let i = pa_inv(vec![
        mk_pa("payments", "perm", json!({"mtls": {"mode": "PERMISSIVE"}})),
        mk_pa("orders", "off", json!({"mtls": {"mode": "DISABLE"}})),
    ]);
    assert_eq!(hits(&run(&base, &i), Rule::MB101), vec!["orders/off"]);
}

#[test]
fn mb101_exemption_silences_until_it_expires() {
    let i = pa_inv(vec![mk_pa(
        "legacy-billing",
        "perm",
        json!({"mtls": {"mode": "PERMISSIVE"}}),
    )]);
    assert!(run(&exempting("legacy-billing", "mtls", ACTIVE), &i).is_empty());
    assert_eq!(
        hits(
            &run(&exempting("legacy-billing", "mtls", EXPIRED), &i),
            Rule::MB101
        ),
        vec!["legacy-billing/perm"]
    );
    // An exemption from another control does not cover mTLS.
    assert_eq!(
        run(&exempting("legacy-billing", "network", ACTIVE), &i).len(),
        1
    );
}

#[test]
fn mb101_a_label_does_not_make_a_tenant_object_ours() {
    // A tenant's DISABLE labelled `managed-by: meshbaseline`: audited like any other object,
    // and reported as an impersonation.
    let i = pa_inv(vec![mk_managed_pa(
        "payments",
        "x",
        json!({"mtls": {"mode": "DISABLE"}}),
    )]);
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB101), vec!["payments/x"]);
    assert_eq!(hits(&f, Rule::MB801), vec!["payments/x"]);
}

#[test]
fn mb102_workload_and_port_level_weakening_fires() {
    let sel = json!({"matchLabels": {"app": "ledger"}});
    let i = pa_inv(vec![
        mk_pa(
            "payments",
            "wl",
            json!({"selector": sel, "mtls": {"mode": "PERMISSIVE"}}),
        ),
        mk_pa(
            "payments",
            "port",
            json!({"selector": sel, "mtls": {"mode": "STRICT"}, "portLevelMtls": {"8443": {"mode": "DISABLE"}}}),
        ),
        mk_pa(
            "payments",
            "fine",
            json!({"selector": sel, "mtls": {"mode": "STRICT"}, "portLevelMtls": {"9000": {"mode": "STRICT"}}}),
        ),
    ]);
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB102), vec!["payments/port", "payments/wl"]);
    assert!(f
        .iter()
        .any(|f| f.message.contains("port 8443 mode DISABLE")));
    assert!(hits(&f, Rule::MB101).is_empty());
}

#[test]
fn mb103_counts_the_operators_mesh_wide_policy() {
    let i = pa_inv(vec![
        mk_managed_pa(
            ROOT,
            "meshbaseline-mesh-mtls",
            json!({"mtls": {"mode": "STRICT"}}),
        ),
        mk_pa(ROOT, "old-default", json!({"mtls": {"mode": "STRICT"}})),
    ]);
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB103), vec!["istio-system/old-default"]);
    assert!(f[0].message.contains("meshbaseline-mesh-mtls"));
}

#[test]
fn mb103_names_the_oldest_when_creation_times_are_known() {
    let mut a = mk_pa(ROOT, "newer", json!({"mtls": {"mode": "STRICT"}}));
    let mut b = mk_pa(ROOT, "older", json!({"mtls": {"mode": "STRICT"}}));
    a.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-03-01T00:00:00Z".parse().unwrap(),
    ));
    b.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2025-03-01T00:00:00Z".parse().unwrap(),
    ));
    let f = run(&strict(), &pa_inv(vec![a, b]));
    assert_eq!(hits(&f, Rule::MB103).len(), 2);
    assert!(
        f[0].message.contains("Istio uses the oldest, older"),
        "{}",
        f[0].message
    );
}

#[test]
fn mb103_a_single_mesh_wide_policy_is_silent() {
    let i = pa_inv(vec![
        mk_pa(ROOT, "default", json!({"mtls": {"mode": "STRICT"}})),
        mk_pa("payments", "ns-wide", json!({"mtls": {"mode": "STRICT"}})),
    ]);
    let f = run(&strict(), &i);
    assert!(hits(&f, Rule::MB103).is_empty());
    // But the baseline's own, created after it, would not be in force.
    assert_eq!(
        hits(&f, Rule::MB105),
        vec!["istio-system/meshbaseline-mesh-mtls"]
    );
    assert_eq!(f.len(), 1);
    // The one in force is STRICT like the baseline: the mesh's mode is unchanged.
    assert_eq!(f[0].severity, crate::audit::Severity::Low);
    assert!(
        f[0].message.contains("has the baseline's mode STRICT"),
        "{}",
        f[0].message
    );
}

#[test]
fn mb104_selector_in_the_root_namespace_fires() {
    let i = pa_inv(vec![
        mk_pa(
            ROOT,
            "gw",
            json!({"selector": {"matchLabels": {"app": "x"}}, "mtls": {"mode": "STRICT"}}),
        ),
        mk_pa(
            ROOT,
            "mesh",
            json!({"selector": {"matchLabels": {}}, "mtls": {"mode": "STRICT"}}),
        ),
    ]);
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB104), vec!["istio-system/gw"]);
    // An empty selector is mesh-wide to Istio: it shadows the baseline's (MB105).
    assert_eq!(
        hits(&f, Rule::MB105),
        vec!["istio-system/meshbaseline-mesh-mtls"]
    );
    assert_eq!(f.len(), 2, "{f:#?}");
}

#[test]
fn mb101_mesh_wide_permissive_in_the_root_namespace_fires() {
    let i = pa_inv(vec![mk_pa(
        ROOT,
        "mesh",
        json!({"mtls": {"mode": "PERMISSIVE"}}),
    )]);
    assert_eq!(
        hits(&run(&strict(), &i), Rule::MB101),
        vec!["istio-system/mesh"]
    );
}

fn created(mut pa: PeerAuthentication, at: &str) -> PeerAuthentication {
    pa.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        at.parse().unwrap(),
    ));
    pa
}

/// Istio's `addPeerAuthentication` (and `ComposePeerAuthentication`) keep the oldest
/// mesh-wide PeerAuthentication, by creation time then name, and ignore the others.
#[test]
fn mb105_an_older_mesh_wide_policy_puts_ours_out_of_force() {
    let ours = || {
        created(
            mk_managed_pa(
                ROOT,
                "meshbaseline-mesh-mtls",
                json!({"mtls": {"mode": "STRICT"}}),
            ),
            "2026-02-01T00:00:00Z",
        )
    };
    let older = created(mk_pa(ROOT, "legacy", json!({})), "2025-02-01T00:00:00Z");
    let f = run(&strict(), &pa_inv(vec![ours(), older]));
    assert_eq!(
        hits(&f, Rule::MB105),
        vec!["istio-system/meshbaseline-mesh-mtls"]
    );
    let m = &f.iter().find(|f| f.rule == Rule::MB105).unwrap().message;
    assert!(
        m.contains("istio-system/legacy (mode UNSET, which Istio reads as PERMISSIVE"),
        "{m}"
    );
    // Same second: the name decides, as in Istio ("a-..." sorts before "meshbaseline-...").
    let tie = created(
        mk_pa(ROOT, "a-tie", json!({"mtls": {"mode": "STRICT"}})),
        "2026-02-01T00:00:00Z",
    );
    assert_eq!(
        hits(&run(&strict(), &pa_inv(vec![ours(), tie])), Rule::MB105).len(),
        1
    );
    // Newer ones are ignored by Istio: ours is in force (MB103 still reports the duplicate).
    let newer = created(
        mk_pa(ROOT, "newer", json!({"mtls": {"mode": "PERMISSIVE"}})),
        "2026-03-01T00:00:00Z",
    );
    let f = run(&strict(), &pa_inv(vec![ours(), newer]));
    assert!(hits(&f, Rule::MB105).is_empty());
    assert_eq!(hits(&f, Rule::MB103), vec!["istio-system/newer"]);
    // Ours alone, or with namespace-level policies only: in force.
    let f = run(
        &strict(),
        &pa_inv(vec![
            ours(),
            mk_pa("payments", "ns", json!({"mtls": {"mode": "STRICT"}})),
        ]),
    );
    assert!(hits(&f, Rule::MB105).is_empty());
}

#[test]
fn mb105_is_reported_by_the_baseline_that_owns_the_root_only() {
    let i = pa_inv(vec![mk_pa(
        ROOT,
        "old",
        json!({"mtls": {"mode": "STRICT"}}),
    )]);
    let b = strict();
    let scope = crate::compile::Scope {
        owns_root: false,
        ..crate::compile::Scope::default()
    };
    let desired = crate::compile::compile(&b, &i, &scope, now());
    let f = super::super::audit_in_scope(&b, &i, &desired, &scope, now());
    assert!(hits(&f, Rule::MB105).is_empty());
}
