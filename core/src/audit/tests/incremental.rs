//! The controller's pod path: a pod event that `PodCounts` calls the pod's own business is
//! handled by replacing that pod's findings with `audit_pod`'s; the result must always equal
//! a full audit of the new inventory.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::audit::{audit_in_scope, audit_pod, sort, PodCounts};
use crate::compile::{compile, Scope};

/// The pod at a slot: one of a few shapes, or absent.
fn shaped(slot: usize, shape: u8) -> Option<PodInfo> {
    let ns = ["payments", "shop", "ledger"][slot % 3];
    let mut p = mk_pod(ns, &format!("pod-{slot}"));
    match shape {
        0 => return None,
        1 => {}
        2 => p.containers[0].run_as_user = Some(1337),
        3 => p.containers[0].added_capabilities = vec!["NET_ADMIN".into()],
        4 => p.containers.truncate(1), // no sidecar
        5 => {
            p.labels
                .insert("istio.io/dataplane-mode".into(), "none".into());
            p.containers.truncate(1);
        }
        _ => {
            p.annotations.insert(
                "traffic.sidecar.istio.io/excludeOutboundPorts".into(),
                "5432".into(),
            );
        }
    }
    Some(p)
}

fn inventory(pods: &[Option<PodInfo>]) -> Inventory {
    let mut i = with_namespaces(
        inv(),
        vec![
            mk_ns("payments", &[("istio-injection", "enabled")]),
            mk_ns("shop", &[("istio.io/dataplane-mode", "ambient")]),
            mk_ns("ledger", &[("istio-injection", "enabled")]),
        ],
    );
    i.pods = pods.iter().flatten().cloned().map(Arc::new).collect();
    i
}

proptest! {
    #[test]
    fn pod_deltas_equal_a_full_audit(
        start in proptest::collection::vec(0u8..7, 6),
        events in proptest::collection::vec((0usize..6, 0u8..7), 1..40),
    ) {
        let b = strict();
        let scope = Scope::default();
        let mut pods: Vec<Option<PodInfo>> =
            start.iter().enumerate().map(|(i, s)| shaped(i, *s)).collect();
        let inv0 = inventory(&pods);
        // The compiler does not read pods: one compile serves every step.
        let desired = compile(&b, &inv0, &scope, now());
        let mut counts = PodCounts::default();
        for p in pods.iter().flatten() {
            counts.update(None, Some(p));
        }
        let mut findings = audit_in_scope(&b, &inv0, &desired, &scope, now());
        for (slot, shape) in events {
            let old = pods[slot].clone();
            let new = shaped(slot, shape);
            pods[slot] = new.clone();
            let inv = inventory(&pods);
            let full = audit_in_scope(&b, &inv, &desired, &scope, now());
            if counts.update(old.as_ref(), new.as_ref()) {
                findings = full;
                continue;
            }
            let name = format!("pod-{slot}");
            findings.retain(|f| !(f.kind == "Pod" && f.name == name));
            if let Some(p) = &new {
                findings.extend(audit_pod(&b, &inv, &desired, &scope, now(), p));
            }
            sort(&mut findings);
            prop_assert_eq!(&findings, &full);
        }
    }
}
