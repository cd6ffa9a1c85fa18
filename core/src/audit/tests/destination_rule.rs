use serde_json::json;

use std::sync::Arc;

use super::*;
use crate::audit::context::Ctx;
use crate::audit::destination_rule::{parse_host, servers, DrIndex, Host, Servers, Target};

const DOMAIN: &str = "cluster.local";

fn dr_inv(drs: Vec<DestinationRule>) -> Inventory {
    let mut i = inv();
    i.destination_rules = drs.into_iter().map(Arc::new).collect();
    i
}

/// The name of the DestinationRule a client in `client` uses for `host` of `server`.
fn lookup(i: &Inventory, client: &str, host: &str, server: &str) -> Option<String> {
    let base = strict();
    let (desired, scope) = (
        crate::compile::Compiled::default(),
        crate::compile::Scope::default(),
    );
    let ctx = Ctx::new(&base, i, &desired, &scope, now());
    let index = DrIndex::new(&ctx);
    index
        .lookup(client, Target::Service(host), server)
        .and_then(|dr| dr.metadata.name.clone())
}

const LEDGER: &str = "ledger.payments.svc.cluster.local";

/// Istio's `ResolveShortnameToFQDN`: only short names are completed; `*.payments.svc`, a
/// trailing dot or capitals are taken as written, and match no service.
#[test]
fn hosts_are_resolved_as_istio_resolves_them() {
    assert_eq!(
        parse_host("ledger", "payments", DOMAIN),
        Host::Exact(LEDGER.into())
    );
    assert_eq!(
        parse_host("*.payments.svc", "x", DOMAIN),
        Host::Wildcard(".payments.svc".into())
    );
    assert_eq!(
        servers(&parse_host("*.payments.svc", "x", DOMAIN), DOMAIN),
        Servers::External
    );
    assert_eq!(
        servers(&parse_host("ledger.payments.svc", "x", DOMAIN), DOMAIN),
        Servers::External
    );
    assert_eq!(
        servers(
            &parse_host("Ledger.payments.svc.cluster.local", "x", DOMAIN),
            DOMAIN
        ),
        Servers::One("payments".into()),
        "in the namespace's domain, but"
    );
    assert_eq!(
        servers(&parse_host("ledger", "payments", DOMAIN), DOMAIN),
        Servers::One("payments".into())
    );
    assert_eq!(
        servers(&parse_host("*.cluster.local", "x", DOMAIN), DOMAIN),
        Servers::All
    );
    assert_eq!(servers(&parse_host("*", "x", DOMAIN), DOMAIN), Servers::All);
    assert_eq!(
        servers(&parse_host("api.stripe.com", "x", DOMAIN), DOMAIN),
        Servers::External
    );
    assert_eq!(
        servers(&parse_host("*.example.com", "x", DOMAIN), DOMAIN),
        Servers::External
    );
}

#[test]
fn lookup_prefers_the_client_namespace() {
    let i = dr_inv(vec![
        mk_dr("checkout", "client-side", LEDGER, "ISTIO_MUTUAL"),
        mk_dr("payments", "server-side", "ledger", "DISABLE"),
        mk_dr(ROOT, "root", "*.cluster.local", "ISTIO_MUTUAL"),
    ]);
    assert_eq!(
        lookup(&i, "checkout", LEDGER, "payments").as_deref(),
        Some("client-side")
    );
    assert_eq!(
        lookup(&i, "orders", LEDGER, "payments").as_deref(),
        Some("server-side")
    );
    assert_eq!(
        lookup(&i, "payments", LEDGER, "payments").as_deref(),
        Some("server-side")
    );
}

#[test]
fn lookup_falls_back_to_the_root_namespace() {
    let i = dr_inv(vec![mk_dr(ROOT, "root", "*.cluster.local", "ISTIO_MUTUAL")]);
    assert_eq!(
        lookup(&i, "checkout", LEDGER, "payments").as_deref(),
        Some("root")
    );
}

#[test]
fn lookup_honours_export_to() {
    let i = dr_inv(vec![
        mk_dr_spec(
            "payments",
            "private",
            json!({"host": "ledger", "exportTo": ["."], "trafficPolicy": {"tls": {"mode": "DISABLE"}}}),
        ),
        mk_dr_spec(
            ROOT,
            "root",
            json!({"host": "*.local", "exportTo": ["checkout"], "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}),
        ),
    ]);
    // "." keeps the rule to its own namespace.
    assert_eq!(
        lookup(&i, "payments", LEDGER, "payments").as_deref(),
        Some("private")
    );
    // Other clients fall through to the root namespace, if it is exported to them.
    assert_eq!(
        lookup(&i, "checkout", LEDGER, "payments").as_deref(),
        Some("root")
    );
    assert_eq!(lookup(&i, "orders", LEDGER, "payments"), None);
}

#[test]
fn lookup_picks_the_most_specific_host() {
    let i = dr_inv(vec![
        mk_dr(
            "payments",
            "any",
            "*.payments.svc.cluster.local",
            "ISTIO_MUTUAL",
        ),
        mk_dr("payments", "exact", "ledger", "DISABLE"),
        mk_dr("payments", "broad", "*.svc.cluster.local", "ISTIO_MUTUAL"),
    ]);
    assert_eq!(
        lookup(&i, "orders", LEDGER, "payments").as_deref(),
        Some("exact")
    );
    assert_eq!(
        lookup(
            &i,
            "orders",
            "billing.payments.svc.cluster.local",
            "payments"
        )
        .as_deref(),
        Some("any")
    );
}

#[test]
fn mb201_fires_for_a_server_namespace_rule_and_names_both_objects() {
    let mut i = dr_inv(vec![mk_dr("payments", "ledger", "ledger", "DISABLE")]);
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB201), vec!["payments/ledger"]);
    let m = &f[0].message;
    assert!(m.contains("DestinationRule payments/ledger"), "{m}");
    assert!(m.contains("none (mesh default PERMISSIVE)"), "{m}");
    assert!(m.contains("spec.trafficPolicy.tls.mode: DISABLE"), "{m}");

    i.peer_authentications.push(Arc::new(mk_pa(
        ROOT,
        "mesh",
        json!({"mtls": {"mode": "STRICT"}}),
    )));
    let mb201 = |f: Vec<Finding>| f.into_iter().find(|f| f.rule == Rule::MB201).unwrap();
    let m = mb201(run(&strict(), &i)).message;
    assert!(
        m.contains("mesh-wide PeerAuthentication istio-system/mesh (STRICT)"),
        "{m}"
    );
    i.peer_authentications.push(Arc::new(mk_pa(
        "payments",
        "ns",
        json!({"mtls": {"mode": "STRICT"}}),
    )));
    let m = mb201(run(&strict(), &i)).message;
    assert!(
        m.contains("namespace-wide PeerAuthentication payments/ns (STRICT)"),
        "{m}"
    );
}

#[test]
fn mb201_fires_for_a_client_namespace_rule() {
    let i = dr_inv(vec![mk_dr("checkout", "to-ledger", LEDGER, "SIMPLE")]);
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB201), vec!["checkout/to-ledger"]);
    assert!(
        f[0].message.contains("clients in namespace checkout"),
        "{}",
        f[0].message
    );
}

#[test]
fn mb201_root_rule_fires_unless_every_client_is_shadowed() {
    let root_dr = mk_dr(ROOT, "plaintext", "*.cluster.local", "DISABLE");
    let mut i = with_namespaces(
        dr_inv(vec![root_dr]),
        vec![mk_ns("payments", &[("istio-injection", "enabled")])],
    );
    assert_eq!(
        hits(&run(&strict(), &i), Rule::MB201),
        vec!["istio-system/plaintext"]
    );
    // The operator's per-namespace ISTIO_MUTUAL rule is exported to all: it wins for every
    // client of payments, so the root rule no longer applies to anyone.
    i.destination_rules.push(Arc::new(
        serde_json::from_value(managed(json!({
            "metadata": {"name": "meshbaseline-mtls", "namespace": "payments"},
            "spec": {"host": "*.payments.svc.cluster.local", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
        })))
        .unwrap(),
    ));
    assert!(run(&strict(), &i).is_empty());
}

#[test]
fn mb201_shadowed_only_for_some_clients_still_fires_for_the_rest() {
    // Exported only to its own namespace: the client-side rule in checkout shadows nothing
    // in payments, so payments' own clients still use the DISABLE rule.
    let i = dr_inv(vec![
        mk_dr_spec(
            "payments",
            "ledger",
            json!({"host": "ledger", "exportTo": ["."], "trafficPolicy": {"tls": {"mode": "DISABLE"}}}),
        ),
        mk_dr("checkout", "ledger", LEDGER, "ISTIO_MUTUAL"),
    ]);
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB201), vec!["payments/ledger"]);
    assert!(f[0].message.contains("clients in namespace payments"));
    assert!(!f[0].message.contains("without their own"));
}

#[test]
fn mb201_subsets_and_port_level_settings_count() {
    let i = dr_inv(vec![mk_dr_spec(
        "payments",
        "ledger",
        json!({"host": "ledger", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"},
               "portLevelSettings": [{"port": {"number": 9090}, "tls": {"mode": "DISABLE"}}]},
               "subsets": [{"name": "v2", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}]}),
    )]);
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB201).len(), 1);
    assert!(f[0].message.contains("portLevelSettings[0] (port 9090)"));
    assert!(f[0].message.contains("subsets[0] (v2)"));
}

#[test]
fn mb201_near_misses_are_silent() {
    let i = dr_inv(vec![
        mk_dr("payments", "mutual", "ledger", "ISTIO_MUTUAL"),
        mk_dr("payments", "stripe", "api.stripe.com", "SIMPLE"),
        mk_dr("payments", "ext", "*.example.com", "DISABLE"),
        mk_dr(
            "kube-system",
            "dns",
            "kube-dns.kube-system.svc.cluster.local",
            "DISABLE",
        ),
    ]);
    assert!(hits(&run(&strict(), &i), Rule::MB201).is_empty());
}

#[test]
fn mb201_is_silent_under_a_permissive_baseline_and_for_exempt_servers() {
    let i = dr_inv(vec![mk_dr("payments", "ledger", "ledger", "DISABLE")]);
    assert!(run(&mk_baseline(json!({"mtls": {"mode": "PERMISSIVE"}})), &i).is_empty());
    assert!(run(&exempting("payments", "mtls", ACTIVE), &i).is_empty());
    assert_eq!(run(&exempting("payments", "mtls", EXPIRED), &i).len(), 1);
}

#[test]
fn mb201_labelled_tenant_rules_are_findings_and_impersonations() {
    let i = dr_inv(vec![serde_json::from_value(managed(json!({
        "metadata": {"name": "x", "namespace": "payments"},
        "spec": {"host": "ledger", "trafficPolicy": {"tls": {"mode": "DISABLE"}}},
    })))
    .unwrap()]);
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB201), vec!["payments/x"]);
    assert_eq!(hits(&f, Rule::MB801), vec!["payments/x"]);
}

#[test]
fn mb201_mesh_wide_host_without_namespace_objects_uses_the_rules_own_namespace() {
    // Manifests often have no Namespace objects: the rule's own namespace still serves hosts.
    let i = dr_inv(vec![mk_dr("payments", "everything", "*.local", "DISABLE")]);
    assert!(i.namespaces.is_empty() && i.services.is_empty());
    let f = run(&strict(), &i);
    assert_eq!(hits(&f, Rule::MB201), vec!["payments/everything"]);
    // Its host being external keeps it silent.
    let ext = dr_inv(vec![mk_dr("payments", "ext", "*.example.com", "DISABLE")]);
    assert!(run(&strict(), &ext).is_empty());
}

/// Istio's `getExportedDestinationRuleFromNamespace`: the most specific exported rule of the
/// service's namespace is picked first, then checked for export to the client; when it is not
/// exported there, the search goes on in the root namespace, not to a broader rule.
#[test]
fn lookup_picks_the_most_specific_exported_rule_before_checking_export_to() {
    let i = dr_inv(vec![
        mk_dr_spec(
            "payments",
            "ledger-for-checkout",
            json!({"host": "ledger", "exportTo": ["checkout"], "trafficPolicy": {"tls": {"mode": "DISABLE"}}}),
        ),
        mk_dr(
            "payments",
            "namespace",
            "*.payments.svc.cluster.local",
            "ISTIO_MUTUAL",
        ),
        mk_dr(ROOT, "root", "*.cluster.local", "ISTIO_MUTUAL"),
    ]);
    assert_eq!(
        lookup(&i, "checkout", LEDGER, "payments").as_deref(),
        Some("ledger-for-checkout")
    );
    assert_eq!(
        lookup(&i, "orders", LEDGER, "payments").as_deref(),
        Some("root")
    );
    assert_eq!(
        lookup(
            &i,
            "orders",
            "billing.payments.svc.cluster.local",
            "payments"
        )
        .as_deref(),
        Some("namespace")
    );
    // Exported only elsewhere: not in its own namespace's local index.
    assert_eq!(
        lookup(&i, "payments", LEDGER, "payments").as_deref(),
        Some("namespace")
    );
}

/// Istio's `destinationRule`: a proxy in the root namespace looks at the root namespace's
/// private rules first (`rootNamespaceLocal`), then the service's namespace.
#[test]
fn lookup_from_the_root_namespace_reads_its_private_rules_first() {
    let i = dr_inv(vec![
        mk_dr_spec(
            ROOT,
            "gateway-private",
            json!({"host": "*.local", "exportTo": ["."], "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}),
        ),
        mk_dr("payments", "ledger", "ledger", "DISABLE"),
    ]);
    assert_eq!(
        lookup(&i, ROOT, LEDGER, "payments").as_deref(),
        Some("gateway-private")
    );
    assert_eq!(
        lookup(&i, "orders", LEDGER, "payments").as_deref(),
        Some("ledger")
    );
}

/// Istio's `ResolveShortnameToFQDN` and `MostSpecificHostMatch` take hosts as written: a rule
/// for `*.payments.svc` or with capitals matches no service, so it is no MB201.
#[test]
fn mb201_is_silent_for_hosts_istio_never_matches() {
    let i = dr_inv(vec![
        mk_dr("payments", "short-svc", "*.payments.svc", "DISABLE"),
        mk_dr("payments", "svc", "ledger.payments.svc", "DISABLE"),
    ]);
    assert!(hits(&run(&strict(), &i), Rule::MB201).is_empty());
}
