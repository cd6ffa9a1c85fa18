//! What the NetworkPolicies that select a pod let through: other protocols than TCP (the mesh
//! only carries TCP) and egress beyond the cluster. NetworkPolicies add up, so one rule of any
//! of them is enough.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Serialize;

use crate::api::baseline::EgressMode;
use crate::audit::context::{name_of, ns_of, Ctx};
use crate::audit::network_policy::{egress_beyond, has_type, non_tcp_rules};
use crate::compile::names::BASELINE_NETWORK_POLICY;
use crate::inventory::PodInfo;
use crate::object::Kind;

use super::ObjectRef;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPosture {
    /// The NetworkPolicies that select the pod.
    pub policies: Vec<ObjectRef>,
    /// UDP (other than DNS to the cluster DNS pods) and SCTP: `blocked`, or `allowed`.
    pub udp: Verdict,
    /// ICMP: `blocked` or `allowed`.
    pub icmp: Verdict,
    /// The egress mode in force: the baseline's (`ClusterOnly`, `AllowList`, `Unrestricted`)
    /// when its NetworkPolicy selects the pod, `none` when no NetworkPolicy limits egress,
    /// `tenant` when only tenants' do.
    pub egress: String,
    /// Why traffic gets through: each rule that opens it, or "no NetworkPolicy limits ...".
    pub open: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    Blocked,
    Allowed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Blocked => "blocked",
            Verdict::Allowed => "allowed",
        }
    }
}

pub(super) fn network(ctx: &Ctx, pod: &PodInfo, index: &super::Index) -> NetworkPosture {
    let labels = pod.selector_labels();
    let selecting: Vec<&NetworkPolicy> = index.selecting(&pod.namespace, &labels).collect();
    let mut open = Vec::new();
    let (mut udp, mut icmp) = (Verdict::Blocked, Verdict::Blocked);
    for (ingress, ty) in [(true, "Ingress"), (false, "Egress")] {
        if !selecting.iter().any(|np| has_type(np, ty)) {
            udp = Verdict::Allowed;
            icmp = Verdict::Allowed;
            open.push(format!("no NetworkPolicy limits {}", ty.to_lowercase()));
        }
        for np in &selecting {
            for r in non_tcp_rules(ctx, np, &pod.namespace)
                .into_iter()
                .filter(|r| r.ingress == ingress)
            {
                udp = Verdict::Allowed;
                if r.every_protocol {
                    icmp = Verdict::Allowed;
                }
                open.push(format!(
                    "{}/{}: {}",
                    ns_of(&np.metadata),
                    name_of(&np.metadata),
                    r.what
                ));
            }
        }
    }
    let ours = selecting.iter().any(|np| {
        name_of(&np.metadata) == BASELINE_NETWORK_POLICY
            && ctx.is_ours(Kind::NetworkPolicy, &np.metadata)
    });
    let egress = if ours {
        match ctx.baseline.network.egress.mode {
            EgressMode::ClusterOnly => "ClusterOnly",
            EgressMode::AllowList => "AllowList",
            EgressMode::Unrestricted => "Unrestricted",
        }
    } else if selecting.iter().any(|np| has_type(np, "Egress")) {
        "tenant"
    } else {
        "none"
    };
    for np in selecting
        .iter()
        .filter(|np| !ctx.is_ours(Kind::NetworkPolicy, &np.metadata))
    {
        for what in egress_beyond(ctx, np) {
            open.push(format!(
                "{}/{}: {what}",
                ns_of(&np.metadata),
                name_of(&np.metadata)
            ));
        }
    }
    NetworkPosture {
        policies: selecting
            .iter()
            .map(|np| ObjectRef::new(ctx, "NetworkPolicy", Kind::NetworkPolicy, &np.metadata))
            .collect(),
        udp,
        icmp,
        egress: egress.to_string(),
        open,
    }
}

impl NetworkPosture {
    /// Whether the mesh's network layer holds: no UDP, no ICMP.
    pub fn closed(&self) -> bool {
        self.udp == Verdict::Blocked && self.icmp == Verdict::Blocked
    }
}
