//! MB304: ingress gateways in protected namespaces, where the plaintext DENY refuses their
//! external clients.
//!
//! `meshbaseline-deny-plaintext` has no selector, and Istio attaches selector-less policies to
//! classic gateways and, with `ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY` (on by default), to
//! Gateway API gateways too (`ShouldAttachPolicy`). An AuthorizationPolicy selector is
//! `matchLabels` only and `targetRefs` only adds proxies, so no policy can leave the gateway
//! out: the gateway is reported instead (and refused at admission), never exempted by its
//! labels, which a tenant could put on any pod.

use super::context::Ctx;
use super::{Finding, Rule};
use crate::compile::names;
use crate::gateway::gateway_of;
use crate::inventory::PodInfo;
use crate::object::Kind;

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    for pod in &ctx.inventory.pods {
        check_pod(ctx, pod, out);
    }
}

pub(super) fn check_pod(ctx: &Ctx, pod: &PodInfo, out: &mut Vec<Finding>) {
    let Some(gateway) = gateway_of(pod).filter(|g| g.ingress()) else {
        return;
    };
    let ns = &*pod.namespace;
    if !ctx.applies(ns, Rule::MB304)
        || !ctx.generates(Kind::AuthorizationPolicy, ns, names::DENY_PLAINTEXT)
    {
        return;
    }
    out.push(ctx.finding(
        Rule::MB304,
        &pod.kind,
        Some(ns),
        &pod.name,
        format!(
            "{} {ns}/{} runs {} in protected namespace {ns}: AuthorizationPolicy {ns}/{} applies to every proxy of the namespace, gateways included (Istio cannot exclude one from a policy without a selector), and denies every request without an mTLS principal, so the gateway refuses all its external clients.",
            pod.kind,
            pod.name,
            gateway.describe(),
            names::DENY_PLAINTEXT,
        ),
        format!("Run the gateway in a namespace of its own that the baseline does not protect (Istio's recommended layout), or exempt {ns} from mtls while it must serve external clients."),
    ));
}
