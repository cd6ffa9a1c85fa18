//! The changes the property test makes: a tenant's, the platform's or the operator's
//! environment's, each written to the cluster and delivered as the watches would.

use super::*;

pub(super) fn namespace(name: &str, labels: u8) -> Value {
    let mut l = serde_json::Map::new();
    for (bit, (k, v)) in [
        ("mesh", "on"),
        ("istio-injection", "enabled"),
        ("team", "a label no baseline reads"),
        ("istio.io/dataplane-mode", "ambient"),
    ]
    .into_iter()
    .enumerate()
    {
        if labels & (1 << bit) != 0 {
            l.insert(k.into(), v.into());
        }
    }
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": l}})
}

/// The pod at a slot: in a tenant namespace, or istiod in the root; `shape` 0 is none.
fn pod(slot: usize, shape: u8) -> Option<Value> {
    let (ns, name) = match slot {
        6 => (ROOT, "istiod-1".to_string()),
        _ => (NAMESPACES[slot % 3], format!("app-{slot}")),
    };
    let mut app = json!({"name": "app", "image": "app"});
    let proxy = json!({"name": "istio-proxy", "image": "proxy"});
    let mut containers = vec![app.clone(), proxy];
    match shape {
        0 => return None,
        1 => {}
        2 => {
            app["securityContext"] = json!({"runAsUser": 1337});
            containers[0] = app;
        }
        3 => {
            app["securityContext"] = json!({"capabilities": {"add": ["NET_ADMIN"]}});
            containers[0] = app;
        }
        _ => containers.truncate(1),
    }
    Some(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": containers}, "status": {"phase": "Running"}}))
}

fn istio(kind: &str, group: &str, ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": format!("{group}/v1"), "kind": kind,
        "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

/// One change a tenant, the platform or the operator's environment makes.
#[derive(Clone, Debug)]
pub(super) enum Change {
    /// A pod created, replaced (0..4: its shape) or deleted (0).
    Pod(usize, u8),
    /// A tenant namespace's labels (a bit set: selected, injection, unread, ambient).
    Labels(usize, u8),
    /// A tenant's DestinationRule for the namespace's hosts with TLS off (the compiler reads
    /// it), or gone.
    DestinationRule(usize, bool),
    /// A tenant's AuthorizationPolicy: gone, ALLOW without a source, ALLOW with principals.
    AuthorizationPolicy(usize, u8),
    /// A tenant's PeerAuthentication: gone, PERMISSIVE, STRICT.
    PeerAuthentication(usize, u8),
    /// One of the operator's objects deleted, its spec edited, or its labels edited.
    Drift(usize, u8, u8),
    /// A tenant's ALLOW-all policy at a generated name, claiming the baseline as its owner.
    Forged(usize, bool),
    Resync,
}

pub(super) fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (0usize..7, 0u8..5).prop_map(|(s, p)| Change::Pod(s, p)),
        2 => (0usize..3, 0u8..16).prop_map(|(n, l)| Change::Labels(n, l)),
        1 => (0usize..3, any::<bool>()).prop_map(|(n, on)| Change::DestinationRule(n, on)),
        1 => (0usize..3, 0u8..3).prop_map(|(n, v)| Change::AuthorizationPolicy(n, v)),
        1 => (0usize..3, 0u8..3).prop_map(|(n, v)| Change::PeerAuthentication(n, v)),
        3 => (0usize..4, 0u8..3, 0u8..3).prop_map(|(n, o, h)| Change::Drift(n, o, h)),
        1 => (0usize..3, any::<bool>()).prop_map(|(n, on)| Change::Forged(n, on)),
        1 => Just(Change::Resync),
    ]
}

/// Writes `obj` (or deletes it, `None`) as someone else than the operator.
pub(super) fn put(ctx: &Ctx, cluster: &mut Cluster, at: Id, obj: Option<Value>) {
    match obj {
        Some(obj) => {
            let stored = cluster.store(obj);
            deliver(ctx, &stored, false, true);
        }
        None => {
            if let Some(old) = cluster.objects.remove(&at) {
                deliver(ctx, &old, true, true);
            }
        }
    }
}

pub(super) fn apply(ctx: &Ctx, cluster: &mut Cluster, change: &Change) {
    match change.clone() {
        Change::Pod(slot, shape) => {
            let ns = if slot == 6 {
                ROOT
            } else {
                NAMESPACES[slot % 3]
            };
            let name = if slot == 6 {
                "istiod-1".to_string()
            } else {
                format!("app-{slot}")
            };
            put(ctx, cluster, id("Pod", ns, &name), pod(slot, shape));
        }
        Change::Labels(n, labels) => {
            let ns = NAMESPACES[n];
            put(
                ctx,
                cluster,
                id("Namespace", "", ns),
                Some(namespace(ns, labels)),
            );
        }
        Change::Drift(n, object, how) => drift(ctx, cluster, n, object, how),
        Change::Resync => ctx.resync(),
        tenant => {
            let (at, obj) = tenant_object(&tenant);
            put(ctx, cluster, at, obj);
        }
    }
}

/// A tenant's object as a change leaves it (`None`: deleted).
fn tenant_object(change: &Change) -> (Id, Option<Value>) {
    let (kind, group, ns, name, spec) = match *change {
        Change::DestinationRule(n, on) => {
            let ns = NAMESPACES[n];
            let spec = json!({"host": format!("*.{ns}.svc.cluster.local"),
                "trafficPolicy": {"tls": {"mode": "DISABLE"}}});
            (
                "DestinationRule",
                "networking.istio.io",
                ns,
                "tenant-dr",
                on.then_some(spec),
            )
        }
        Change::AuthorizationPolicy(n, variant) => {
            let rules = match variant {
                1 => json!([{}]),
                _ => json!([{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b"]}}]}]),
            };
            let spec = json!({"action": "ALLOW", "rules": rules});
            let on = variant > 0;
            (
                "AuthorizationPolicy",
                "security.istio.io",
                NAMESPACES[n],
                "tenant-ap",
                on.then_some(spec),
            )
        }
        Change::PeerAuthentication(n, variant) => {
            let mode = if variant == 1 { "PERMISSIVE" } else { "STRICT" };
            let spec = json!({"mtls": {"mode": mode}});
            let on = variant > 0;
            (
                "PeerAuthentication",
                "security.istio.io",
                NAMESPACES[n],
                "tenant-pa",
                on.then_some(spec),
            )
        }
        Change::Forged(n, on) => {
            let spec = json!({"action": "ALLOW", "rules": [{}]});
            (
                "AuthorizationPolicy",
                "security.istio.io",
                NAMESPACES[n],
                "meshbaseline-forged",
                on.then_some(spec),
            )
        }
        _ => unreachable!("not a tenant's object"),
    };
    let obj = spec.map(|spec| {
        let mut obj = istio(kind, group, ns, name, spec);
        if name.starts_with(names::GENERATED_PREFIX) {
            obj["metadata"]["ownerReferences"] = json!([{"apiVersion": "meshbaseline.dev/v1alpha1",
                "kind": "MeshBaseline", "name": "b", "uid": UID, "controller": true}]);
        }
        obj
    });
    (id(kind, ns, name), obj)
}

/// Someone else changes one of the operator's objects, if it exists: in a tenant namespace
/// (`n` < 3) or in the root.
fn drift(ctx: &Ctx, cluster: &mut Cluster, n: usize, object: u8, how: u8) {
    let (kind, ns, name) = match (n, object) {
        (3, 0) => ("PeerAuthentication", ROOT, names::MESH_PEER_AUTHENTICATION),
        (3, _) => ("NetworkPolicy", ROOT, names::ISTIOD_NETWORK_POLICY),
        (n, 0) => ("AuthorizationPolicy", NAMESPACES[n], names::DENY_PLAINTEXT),
        (n, 1) => (
            "DestinationRule",
            NAMESPACES[n],
            names::MTLS_DESTINATION_RULE,
        ),
        (n, _) => (
            "NetworkPolicy",
            NAMESPACES[n],
            names::BASELINE_NETWORK_POLICY,
        ),
    };
    let at = id(kind, ns, name);
    let Some(mut obj) = cluster.objects.get(&at).cloned() else {
        return;
    };
    match how {
        0 => return put(ctx, cluster, at, None),
        1 => {
            let spec = &mut obj["spec"];
            match kind {
                "NetworkPolicy" => spec["podSelector"] = json!({"matchLabels": {"x": "y"}}),
                "PeerAuthentication" => spec["mtls"] = json!({"mode": "PERMISSIVE"}),
                "DestinationRule" => spec["trafficPolicy"] = json!({"tls": {"mode": "DISABLE"}}),
                _ => spec["selector"] = json!({"matchLabels": {"x": "y"}}),
            }
        }
        _ => obj["metadata"]["labels"]["tenant"] = json!("t"),
    }
    put(ctx, cluster, at, Some(obj));
}
