//! MB403: tenant Sidecars replacing the mesh's REGISTRY_ONLY default.

use std::sync::Arc;

use super::*;

fn sidecars(list: Vec<Sidecar>) -> Inventory {
    let mut i = with_namespaces(
        inv(),
        vec![mk_ns("shop", &[("istio-injection", "enabled")])],
    );
    i.sidecars = list.into_iter().map(Arc::new).collect();
    i
}

fn registry_only() -> Baseline {
    mk_baseline(json!({"network": {"egress": {"registryOnly": true}}}))
}

/// Istio's `getSidecarScope`: a namespace's own Sidecar (with a matching selector, or without
/// one) wins over the root one; `ConvertToSidecarScope` takes meshConfig's outbound policy
/// when the Sidecar sets none.
#[test]
fn mb403_tenant_sidecars_without_registry_only_fire() {
    let i = sidecars(vec![
        mk_sidecar("shop", "no-spec", json!({})),
        mk_sidecar(
            "shop",
            "allow-any",
            json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}}),
        ),
        mk_sidecar(
            "shop",
            "selected",
            json!({"workloadSelector": {"labels": {"app": "web"}}, "egress": [{"hosts": ["./*"]}]}),
        ),
    ]);
    let f = run(&registry_only(), &i);
    assert_eq!(
        hits(&f, Rule::MB403),
        vec!["shop/allow-any", "shop/no-spec", "shop/selected"]
    );
    let selected = f.iter().find(|f| f.name == "selected").unwrap();
    assert!(
        selected.message.contains("the workloads it selects"),
        "{}",
        selected.message
    );
    let no_spec = f.iter().find(|f| f.name == "no-spec").unwrap();
    assert!(
        no_spec.message.contains("meshConfig's applies"),
        "{}",
        no_spec.message
    );
}

#[test]
fn mb403_fires_for_a_platform_root_registry_only_sidecar_too() {
    let mut i = sidecars(vec![mk_sidecar("shop", "mine", json!({}))]);
    assert!(
        run(&strict(), &i).is_empty(),
        "no REGISTRY_ONLY default: nothing replaced"
    );
    i.sidecars.push(Arc::new(mk_sidecar(
        ROOT,
        "default",
        json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}),
    )));
    assert_eq!(hits(&run(&strict(), &i), Rule::MB403), vec!["shop/mine"]);
}

#[test]
fn mb403_near_misses_are_silent() {
    let i = sidecars(vec![mk_sidecar(
        "shop",
        "strict",
        json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}),
    )]);
    assert!(run(&registry_only(), &i).is_empty());
    let loose = sidecars(vec![mk_sidecar("shop", "mine", json!({}))]);
    let exempt = mk_baseline(json!({"network": {"egress": {"registryOnly": true}},
        "exemptions": [{"namespace": "shop", "controls": ["network"], "reason": "migration, OPS-1", "expires": ACTIVE}]}));
    assert!(run(&exempt, &loose).is_empty());
    // Unprotected namespaces are not the baseline's business (the root Sidecar still governs
    // them where they have no Sidecar of their own).
    let mut unprotected = loose.clone();
    unprotected.sidecars = vec![Arc::new(mk_sidecar("kube-system", "x", json!({})))];
    assert!(run(&registry_only(), &unprotected).is_empty());
}
