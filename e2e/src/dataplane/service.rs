//! Services and EndpointSlices written by the harness (no endpoint controller runs on the local
//! control plane), and DNAT rules in the node's namespace standing in for kube-proxy: traffic
//! to a ClusterIP port goes to the first endpoint of that family. NetworkPolicies then see the
//! endpoint's pod address, as they do behind kube-proxy.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};

use super::node::{ignore_missing, Node, MANAGER};
use super::pod::Pod;
use super::sys;
use super::traffic::Protocol;
use super::Error;

#[derive(Clone, Debug)]
pub struct ServicePort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub target_port: u16,
}

impl ServicePort {
    pub fn new(name: &str, protocol: Protocol, port: u16, target_port: u16) -> Self {
        ServicePort {
            name: name.into(),
            protocol,
            port,
            target_port,
        }
    }
}

#[derive(Clone)]
pub struct ServiceSpec {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Written on the Service for readers (Istio); the harness's EndpointSlices decide.
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePort>,
    pub endpoints: Vec<Pod>,
}

impl ServiceSpec {
    pub fn new(namespace: &str, name: &str, ports: Vec<ServicePort>, endpoints: Vec<Pod>) -> Self {
        ServiceSpec {
            namespace: namespace.into(),
            name: name.into(),
            labels: BTreeMap::new(),
            selector: BTreeMap::new(),
            ports,
            endpoints,
        }
    }
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

impl Node {
    /// Creates the Service (dual-stack when the node is), one EndpointSlice per family, and
    /// the DNAT rules; returns the ClusterIPs the API server allocated.
    pub async fn add_service(&self, spec: ServiceSpec) -> Result<Vec<IpAddr>, Error> {
        let inner = &self.inner;
        let ports: Vec<Value> = spec
            .ports
            .iter()
            .map(|p| json!({"name": p.name, "protocol": protocol(p.protocol), "port": p.port, "targetPort": p.target_port}))
            .collect();
        let policy = if inner.config.dual_stack {
            "PreferDualStack"
        } else {
            "SingleStack"
        };
        let mut svc_spec = json!({"type": "ClusterIP", "ipFamilyPolicy": policy, "ports": ports});
        if !spec.selector.is_empty() {
            svc_spec["selector"] = json!(spec.selector);
        }
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": spec.labels},
            "spec": svc_spec,
        }))?;
        let params = PostParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        inner
            .state()
            .services
            .push((spec.namespace.clone(), spec.name.clone()));
        let created = Api::<Service>::namespaced(inner.admin.clone(), &spec.namespace)
            .create(&params, &service)
            .await?;
        let cluster_ips: Vec<IpAddr> = created
            .spec
            .and_then(|s| s.cluster_ips)
            .unwrap_or_default()
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let slices: Api<EndpointSlice> = Api::namespaced(inner.admin.clone(), &spec.namespace);
        for ipv6 in [false, true] {
            let endpoints: Vec<Value> = spec
                .endpoints
                .iter()
                .filter_map(|pod| Some(json!({
                    "addresses": [pod.ip(ipv6)?.to_string()],
                    "conditions": {"ready": true, "serving": true, "terminating": false},
                    "nodeName": inner.name,
                    "targetRef": {"kind": "Pod", "namespace": pod.namespace(), "name": pod.name()},
                })))
                .collect();
            if endpoints.is_empty() {
                continue;
            }
            let slice_ports: Vec<Value> = spec
                .ports
                .iter()
                .map(|p| json!({"name": p.name, "protocol": protocol(p.protocol), "port": p.target_port}))
                .collect();
            let slice: EndpointSlice = serde_json::from_value(json!({
                "metadata": {
                    "name": format!("{}-{}", spec.name, if ipv6 { "v6" } else { "v4" }),
                    "labels": {"kubernetes.io/service-name": spec.name,
                               "endpointslice.kubernetes.io/managed-by": MANAGER},
                },
                "addressType": if ipv6 { "IPv6" } else { "IPv4" },
                "endpoints": endpoints,
                "ports": slice_ports,
            }))?;
            slices.create(&params, &slice).await?;
        }
        self.dnat(&spec, &cluster_ips)?;
        Ok(cluster_ips)
    }

    fn dnat(&self, spec: &ServiceSpec, cluster_ips: &[IpAddr]) -> Result<(), Error> {
        let comment = format!("mbdp service {}/{}", spec.namespace, spec.name);
        for cip in cluster_ips {
            let ipv6 = cip.is_ipv6();
            let Some(endpoint) = spec.endpoints.iter().find_map(|p| p.ip(ipv6)) else {
                continue;
            };
            let iptables = if ipv6 { "ip6tables" } else { "iptables" };
            for p in &spec.ports {
                let to = if ipv6 {
                    format!("[{endpoint}]:{}", p.target_port)
                } else {
                    format!("{endpoint}:{}", p.target_port)
                };
                let proto = protocol(p.protocol).to_lowercase();
                let port = p.port.to_string();
                for chain in ["PREROUTING", "OUTPUT"] {
                    sys::run_in(
                        self.netns(),
                        iptables,
                        &[
                            "-t",
                            "nat",
                            "-A",
                            chain,
                            "-d",
                            &cip.to_string(),
                            "-p",
                            &proto,
                            "--dport",
                            &port,
                            "-m",
                            "comment",
                            "--comment",
                            &comment,
                            "-j",
                            "DNAT",
                            "--to-destination",
                            &to,
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// The Service and its EndpointSlices (the DNAT rules go with the node's namespace).
pub(crate) async fn delete(admin: &kube::Client, ns: &str, name: &str) -> Result<(), Error> {
    let services: Api<Service> = Api::namespaced(admin.clone(), ns);
    ignore_missing(
        services
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ()),
    )?;
    let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), ns);
    let list = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    ignore_missing(
        slices
            .delete_collection(&DeleteParams::default(), &list)
            .await
            .map(|_| ()),
    )
}
