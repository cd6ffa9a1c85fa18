//! The harness itself: pods answer on real sockets in both families, the enforcer applies a
//! NetworkPolicy, processes run in a pod as another user, Services reach their endpoint, and
//! nothing is left on the host afterwards, even from a run that died.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod as PodObject;
use kube::api::Api;
use meshbaseline_e2e::dataplane::{
    Credentials, Node, NodeConfig, PodSpec, Protocol, ServicePort, ServiceSpec,
};
use serde_json::json;

use crate::{kubeconfig, real_cluster, TestResult};

const NS: &str = "dataplane-harness";
const T: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_talk_and_the_enforcer_applies_a_policy() -> TestResult {
    let cluster = real_cluster().await?;
    cluster
        .apply_as(
            "meshbaseline-e2e",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            true,
        )
        .await?;
    let node = Node::start(&kubeconfig()?, NodeConfig::default()).await?;
    let result = check(&cluster, &node).await;
    let down = node.shutdown().await;
    cluster.cleanup().await?;
    result?;
    Ok(down?)
}

async fn check(cluster: &meshbaseline_e2e::Cluster, node: &Node) -> TestResult {
    let a = node
        .add_pod(
            PodSpec::new(NS, "a")
                .label("app", "a")
                .service_account("client"),
        )
        .await?;
    let b = node
        .add_pod(PodSpec::new(NS, "b").label("app", "b"))
        .await?;
    for port in [8080, 9090] {
        b.serve_tcp(port)?;
    }
    b.serve_udp(9000)?;
    node.start_kube_router().await?;

    // The Pod object as a kubelet would have written it.
    let live = Api::<PodObject>::namespaced(node.client(), NS)
        .get("a")
        .await?;
    let status = live.status.unwrap_or_default();
    let ips: Vec<String> = status
        .pod_ips
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.ip)
        .collect();
    let want: Vec<String> = a.addresses().iter().map(ToString::to_string).collect();
    assert_eq!(ips, want);
    assert_eq!(
        status.host_ip.as_deref(),
        Some(node.ipv4().to_string().as_str())
    );
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(
        live.spec.and_then(|s| s.service_account_name).as_deref(),
        Some("client")
    );

    for ipv6 in [false, true] {
        let ip = b.ip(ipv6).ok_or("b has both families")?;
        assert_eq!(
            a.tcp(SocketAddr::new(ip, 8080), T).await?.to_string(),
            format!("open ({NS}/b:8080)")
        );
        assert!(
            a.udp(SocketAddr::new(ip, 9000), T).await?.is_open(),
            "UDP before any policy"
        );
        assert!(
            a.ping(ip, T).await?.is_open(),
            "ICMP before any policy (v6: {ipv6})"
        );
    }

    // TCP only, both ways.
    cluster
        .apply_as(
            "meshbaseline-e2e",
            &json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "tcp-only", "namespace": NS},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"ports": [{"protocol": "TCP"}]}],
                     "egress": [{"ports": [{"protocol": "TCP"}]}]}}),
            true,
        )
        .await?;
    node.sync_policies().await?;
    for ipv6 in [false, true] {
        let ip = b.ip(ipv6).ok_or("b has both families")?;
        assert!(
            a.tcp(SocketAddr::new(ip, 9090), T).await?.is_open(),
            "TCP under tcp-only (v6: {ipv6})"
        );
        let udp = a.udp(SocketAddr::new(ip, 9000), T).await?;
        assert!(!udp.is_open(), "UDP under tcp-only (v6: {ipv6}): {udp}");
        let ping = a.ping(ip, T).await?;
        assert!(!ping.is_open(), "ICMP under tcp-only (v6: {ipv6}): {ping}");
    }
    let (v4, v6) = node.iptables_rules()?;
    for rules in [&v4, &v6] {
        assert!(rules.contains("\"run through nw policy tcp-only\""));
    }

    // A Service's ClusterIPs reach its endpoint through the node's DNAT.
    let ips = node
        .add_service(ServiceSpec::new(
            NS,
            "b",
            vec![ServicePort::new("http", Protocol::Tcp, 80, 8080)],
            vec![b.clone()],
        ))
        .await?;
    assert_eq!(ips.len(), 2, "dual-stack ClusterIPs: {ips:?}");
    for ip in ips {
        assert_eq!(
            a.tcp(SocketAddr::new(ip, 80), T).await?.to_string(),
            format!("open ({NS}/b:8080)")
        );
    }

    // Several processes in one pod, one of them as UID/GID 1337.
    let mut sleeper = std::process::Command::new("sleep");
    sleeper.arg("30");
    let mut proxy = a.spawn("proxy", sleeper, Credentials::user(1337, 1337))?;
    let mut second = std::process::Command::new("sleep");
    second.arg("30");
    let mut app = a.spawn("app", second, Credentials::root())?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid()))?;
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("1337")),
        "{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Gid:") && l.split_whitespace().nth(1) == Some("1337")),
        "{status}"
    );
    let netns_of = |pid: u32| {
        std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
    };
    let pod_ns = std::fs::metadata(format!("/run/netns/{}", a.netns()))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))?;
    assert_eq!(netns_of(proxy.pid())?, pod_ns);
    assert_eq!(netns_of(app.pid())?, pod_ns);
    assert!(proxy.alive() && app.alive());
    Ok(())
}
