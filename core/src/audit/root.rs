//! MB701, MB702: root-namespace problems that no tenant exemption covers.

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::context::{age_key, name_of, ns_of, selector_matches, Ctx};
use super::network_policy::{has_type, port_range};
use super::{Finding, Rule};
use crate::api::istio::Sidecar;
use crate::object::Kind;

/// istiod's plaintext xDS, debug and ControlZ ports.
const PLAINTEXT_PORTS: [i32; 3] = [15010, 8080, 9876];

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    // Reported once, by the baseline that owns the root namespace.
    if !ctx.owns_root() {
        return;
    }
    istiod_ingress(ctx, out);
    sidecars(ctx, out);
}

/// The plaintext ports an ingress rule set of `np` opens ("all ports" when a rule has none).
fn open_ports(np: &NetworkPolicy) -> Vec<String> {
    let mut open = Vec::new();
    for (i, rule) in np
        .spec
        .iter()
        .flat_map(|s| s.ingress.iter().flatten())
        .enumerate()
    {
        let ports = rule.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            open.push(format!("ingress[{i}] allows all ports"));
            continue;
        }
        for p in ports {
            if p.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                continue;
            }
            let hit: Vec<String> = match port_range(p) {
                None => vec!["all ports".to_string()],
                Some((lo, hi)) => PLAINTEXT_PORTS
                    .iter()
                    .filter(|n| (lo..=hi).contains(*n))
                    .map(i32::to_string)
                    .collect(),
            };
            if !hit.is_empty() {
                open.push(format!("ingress[{i}] allows {}", hit.join(", ")));
            }
        }
    }
    open
}

fn istiod_ingress(ctx: &Ctx, out: &mut Vec<Finding>) {
    // Where istiod runs, which need not be the root namespace.
    let root = ctx.baseline.network.istiod_namespace.as_str();
    let istiod_pod = ctx
        .inventory
        .pods
        .iter()
        .find(|p| &*p.namespace == root && p.name.starts_with("istiod"));
    // Offline, a repository without the control plane has nothing to say about it.
    if !ctx.inventory.namespaces.contains_key(root) && istiod_pod.is_none() {
        return;
    }
    let labels = &ctx.baseline.network.control_plane.istiod_selector;
    let selecting: Vec<&NetworkPolicy> = ctx
        .inventory
        .network_policies
        .iter()
        .map(|o| &**o)
        .filter(|np| ns_of(&np.metadata) == root && has_type(np, "Ingress"))
        .filter(|np| {
            np.spec.as_ref().is_some_and(|s| {
                s.pod_selector
                    .as_ref()
                    .is_none_or(|sel| selector_matches(sel, labels))
            })
        })
        .collect();
    let selector_txt = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    if selecting.is_empty() {
        let (kind, ns, name) = match istiod_pod {
            Some(p) => (p.kind.as_str(), Some(root), &*p.name),
            None => ("Namespace", None, root),
        };
        out.push(ctx.finding(
            Rule::MB701,
            kind,
            ns,
            name,
            format!("No NetworkPolicy in {root} restricts ingress to the istiod pods ({selector_txt}): any pod, in the mesh or not, can reach istiod's plaintext xDS port 15010, its debug endpoints on 8080 and ControlZ on 9876, and read the mesh configuration without mTLS."),
            "Enable the baseline's network.controlPlane (it generates NetworkPolicy meshbaseline-istiod allowing only 15012, 15017 and 15014), or add an Ingress NetworkPolicy for istiod that allows only those ports.".to_string(),
        ));
        return;
    }
    for np in selecting
        .into_iter()
        .filter(|np| !ctx.is_ours(Kind::NetworkPolicy, &np.metadata))
    {
        let open = open_ports(np);
        if open.is_empty() {
            continue;
        }
        let name = name_of(&np.metadata);
        out.push(ctx.finding(
            Rule::MB701,
            "NetworkPolicy",
            Some(root),
            name,
            format!("NetworkPolicy {root}/{name} selects the istiod pods ({selector_txt}) and opens plaintext or debug ports ({}); NetworkPolicies add up, so this undoes any policy that limits istiod to 15012/15017/15014.", open.join("; ")),
            "Limit the policy's ingress ports to 15012 (mTLS xDS and CA), 15017 (webhooks) and 15014 (monitoring, from the monitoring namespaces), or delete it.".to_string(),
        ));
    }
}

/// Istio takes a root Sidecar as the mesh default when its `workloadSelector` is absent; an
/// empty one (`{}`) is a selector that matches the root namespace's own pods.
fn selector_less(sc: &Sidecar) -> bool {
    sc.spec.workload_selector.is_none()
}

/// MB702: Istio uses one selector-less root Sidecar, the oldest (`initSidecarScopes` sorts
/// them by creation time), and ignores the rest.
fn sidecars(ctx: &Ctx, out: &mut Vec<Finding>) {
    let root = ctx.root();
    let mut defaults: Vec<&Sidecar> = ctx
        .inventory
        .sidecars
        .iter()
        .map(|o| &**o)
        .filter(|s| ns_of(&s.metadata) == root && selector_less(s))
        .collect();
    if defaults.len() < 2 {
        return;
    }
    defaults.sort_by(|a, b| age_key(&a.metadata).cmp(&age_key(&b.metadata)));
    let names: Vec<&str> = defaults.iter().map(|s| name_of(&s.metadata)).collect();
    for sc in defaults
        .iter()
        .filter(|s| !ctx.is_ours(Kind::Sidecar, &s.metadata))
    {
        let name = name_of(&sc.metadata);
        out.push(ctx.finding(
            Rule::MB702,
            "Sidecar",
            Some(root),
            name,
            format!("{} Sidecars without a workloadSelector in the root namespace {root} ({}): each claims to be the mesh-wide default, Istio applies only the oldest, so the settings of the others (such as outboundTrafficPolicy REGISTRY_ONLY) silently do not apply.", defaults.len(), names.join(", ")),
            format!("Merge the settings into one selector-less Sidecar in {root} and delete {root}/{name} (with registryOnly the baseline generates meshbaseline-registry-only)."),
        ));
    }
}
