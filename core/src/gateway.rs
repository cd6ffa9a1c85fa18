//! Gateway and waypoint pods, recognised by the labels Istio puts on them (its Gateway API
//! deployment templates `kube-gateway.yaml` and `waypoint.yaml`, and its `gateway` Helm chart),
//! and the identities of waypoints. Pure; shared by the compiler and the audit.

use std::collections::{BTreeSet, HashMap};

use crate::inventory::{Inventory, PodInfo};

/// Pod label naming the Gateway API `Gateway` a pod serves (waypoints included).
pub const GATEWAY_NAME: &str = "gateway.networking.k8s.io/gateway-name";
/// Pod label naming the Gateway's class.
pub const GATEWAY_CLASS_NAME: &str = "gateway.networking.k8s.io/gateway-class-name";
/// The same, as Istio labelled gateway pods before 1.24 (kept on upgraded deployments).
pub const LEGACY_GATEWAY_NAME: &str = "istio.io/gateway-name";
/// Pod label of classic gateways (`istio: ingressgateway`), set by Istio's gateway chart.
pub const CLASSIC_GATEWAY: &str = "istio";
/// Pod annotation choosing injection templates; classic gateways use `gateway`.
pub const INJECT_TEMPLATES: &str = "inject.istio.io/templates";
/// Istio's GatewayClass for waypoints.
pub const WAYPOINT_CLASS: &str = "istio-waypoint";
const MANAGED: &str = "gateway.istio.io/managed";
/// The `gateway.istio.io/managed` value of waypoint pods.
const MESH_CONTROLLER: &str = "istio.io-mesh-controller";

/// What kind of gateway a pod is, with its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gateway<'a> {
    /// A waypoint: a Gateway of class `istio-waypoint`.
    Waypoint(&'a str),
    /// The pods Istio deploys for any other Gateway API `Gateway`.
    GatewayApi(&'a str),
    /// A classic gateway (`istio: <name>`, with its proxy as main container).
    Classic(&'a str),
}

impl Gateway<'_> {
    /// Whether it takes traffic from outside the mesh: not a waypoint, not an egress gateway
    /// (which receives mTLS from the mesh's sidecars).
    pub fn ingress(self) -> bool {
        match self {
            Gateway::Waypoint(_) => false,
            Gateway::GatewayApi(_) => true,
            Gateway::Classic(name) => !name.contains("egress"),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Gateway::Waypoint(n) => format!("waypoint {n:?}"),
            Gateway::GatewayApi(n) => format!("Gateway {n:?}"),
            Gateway::Classic(n) => format!("gateway istio={n}"),
        }
    }
}

/// The gateway a pod (or template) belongs to, if any. A Gateway API gateway's pod carries its
/// Gateway's name (`ShouldAttachPolicy` reads the same label); a classic gateway carries
/// `istio: <name>` and runs the proxy as its main container (or asks for the `gateway`
/// injection template).
pub fn gateway_of(pod: &PodInfo) -> Option<Gateway<'_>> {
    let labels = &pod.labels;
    if let Some(name) = labels
        .get(GATEWAY_NAME)
        .or_else(|| labels.get(LEGACY_GATEWAY_NAME))
    {
        let waypoint = labels.get(GATEWAY_CLASS_NAME).map(String::as_str) == Some(WAYPOINT_CLASS)
            || labels.get(MANAGED).map(String::as_str) == Some(MESH_CONTROLLER);
        return Some(if waypoint {
            Gateway::Waypoint(name)
        } else {
            Gateway::GatewayApi(name)
        });
    }
    let name = labels.get(CLASSIC_GATEWAY)?;
    let gateway_template = pod
        .annotations
        .get(INJECT_TEMPLATES)
        .is_some_and(|t| t.split(',').any(|t| t.trim() == "gateway"));
    (crate::dataplane::has_sidecar(pod) || gateway_template).then_some(Gateway::Classic(name))
}

/// Whether the compiler reads this pod: a pod labelled with its Gateway's name may be a
/// waypoint's, whose ServiceAccount is an identity `waypointOnly` admits.
pub fn names_a_gateway(pod: &PodInfo) -> bool {
    pod.labels.contains_key(GATEWAY_NAME)
}

/// The ServiceAccounts of each Gateway's pods, by (namespace, Gateway name).
#[derive(Clone, Debug, Default)]
pub struct GatewayAccounts(HashMap<(String, String), BTreeSet<String>>);

impl GatewayAccounts {
    /// As Istio's `gatewayToWaypointTransform` finds a waypoint's instances: the pods of the
    /// Gateway's namespace labelled with its name, whatever their phase.
    pub fn new(inventory: &Inventory) -> Self {
        let mut map: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
        for pod in inventory.pods.iter().filter(|p| names_a_gateway(p)) {
            let Some(name) = pod.labels.get(GATEWAY_NAME) else {
                continue;
            };
            // The API server sets `default` when a pod names no ServiceAccount.
            let sa = pod.service_account.as_deref().unwrap_or("default");
            map.entry((pod.namespace.to_string(), name.clone()))
                .or_default()
                .insert(sa.to_string());
        }
        GatewayAccounts(map)
    }

    /// The principals of waypoint `name` in `namespace`, sorted; empty when no pod of it is
    /// known. Istio's `implicitWaypointPolicy` builds the same list
    /// (`<trustDomain>/ns/<namespace>/sa/<serviceAccount>`).
    pub fn principals(&self, trust_domain: &str, namespace: &str, name: &str) -> Vec<String> {
        self.0
            .get(&(namespace.to_string(), name.to_string()))
            .into_iter()
            .flatten()
            .map(|sa| format!("{trust_domain}/ns/{namespace}/sa/{sa}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::inventory::{mk_running_pod, SmallMap};

    fn labelled(ns: &str, name: &str, labels: &[(&str, &str)], sa: Option<&str>) -> PodInfo {
        let mut p = mk_running_pod(ns, name, &["istio-proxy"]);
        p.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<SmallMap>();
        p.service_account = sa.map(str::to_string);
        p
    }

    /// Istio's `kube-gateway.yaml` and `waypoint.yaml` templates label the pods of a Gateway
    /// with its name and class; `waypoint.yaml` marks them managed by the mesh controller.
    #[test]
    fn gateway_api_pods_are_told_apart_from_waypoints_by_class() {
        let gw = labelled(
            "shop",
            "web-istio-1",
            &[
                (GATEWAY_NAME, "web"),
                (GATEWAY_CLASS_NAME, "istio"),
                (MANAGED, "istio.io-gateway-controller"),
                ("sidecar.istio.io/inject", "false"),
            ],
            None,
        );
        assert_eq!(gateway_of(&gw), Some(Gateway::GatewayApi("web")));
        assert!(gateway_of(&gw).unwrap().ingress());
        let wp = labelled(
            "shop",
            "waypoint-1",
            &[
                (GATEWAY_NAME, "waypoint"),
                (GATEWAY_CLASS_NAME, WAYPOINT_CLASS),
            ],
            None,
        );
        assert_eq!(gateway_of(&wp), Some(Gateway::Waypoint("waypoint")));
        assert!(!gateway_of(&wp).unwrap().ingress());
        let legacy = labelled("shop", "old", &[(LEGACY_GATEWAY_NAME, "web")], None);
        assert_eq!(gateway_of(&legacy), Some(Gateway::GatewayApi("web")));
    }

    /// Istio's `gateway` chart labels its pods `istio: <release without istio->` and injects
    /// the `gateway` template, whose proxy is the pod's main container.
    #[test]
    fn classic_gateways_need_their_proxy_or_the_gateway_template() {
        let gw = labelled(
            "edge",
            "ingress",
            &[(CLASSIC_GATEWAY, "ingressgateway")],
            None,
        );
        assert_eq!(gateway_of(&gw), Some(Gateway::Classic("ingressgateway")));
        let egress = labelled(
            "edge",
            "egress",
            &[(CLASSIC_GATEWAY, "egressgateway")],
            None,
        );
        assert!(!gateway_of(&egress).unwrap().ingress());
        let mut app = labelled("edge", "app", &[(CLASSIC_GATEWAY, "ingressgateway")], None);
        app.containers[0].name = "app".into();
        assert_eq!(
            gateway_of(&app),
            None,
            "an app labelled istio= is no gateway"
        );
        app.annotations = [(INJECT_TEMPLATES.to_string(), "gateway".to_string())].into();
        assert_eq!(gateway_of(&app), Some(Gateway::Classic("ingressgateway")));
        let plain = labelled("edge", "plain", &[], None);
        assert_eq!(gateway_of(&plain), None);
    }

    /// Istio's `gatewayToWaypointTransform` (the pods labelled with the Gateway's name in its
    /// namespace, their `spec.serviceAccountName`) and `implicitWaypointPolicy` (one exact
    /// principal per ServiceAccount in the mesh's trust domain).
    #[test]
    fn waypoint_principals_are_its_pods_service_accounts_in_the_trust_domain() {
        let mut inv = Inventory::default();
        let pods = [
            labelled("shop", "a", &[(GATEWAY_NAME, "waypoint")], Some("waypoint")),
            labelled(
                "shop",
                "b",
                &[(GATEWAY_NAME, "waypoint")],
                Some("wp-canary"),
            ),
            labelled("shop", "c", &[(GATEWAY_NAME, "waypoint")], Some("waypoint")),
            labelled("shop", "d", &[(GATEWAY_NAME, "other")], Some("other")),
            labelled("catalog", "e", &[(GATEWAY_NAME, "waypoint")], Some("x")),
            labelled("shop", "f", &[(GATEWAY_NAME, "nosa")], None),
            labelled("shop", "g", &[], Some("waypoint")),
        ];
        inv.pods = pods.into_iter().map(Arc::new).collect();
        let accounts = GatewayAccounts::new(&inv);
        assert_eq!(
            accounts.principals("td.example", "shop", "waypoint"),
            [
                "td.example/ns/shop/sa/waypoint",
                "td.example/ns/shop/sa/wp-canary"
            ]
        );
        assert_eq!(
            accounts.principals("cluster.local", "shop", "nosa"),
            ["cluster.local/ns/shop/sa/default"]
        );
        assert!(accounts
            .principals("cluster.local", "shop", "gone")
            .is_empty());
    }
}
