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

use crate::{kubeconfig, real_cluster, AnyError, TestResult};

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

    // A process's own /etc files, in its own mount namespace; the host's stay as they are.
    let host = std::fs::read_to_string("/etc/resolv.conf")?;
    let resolv = "nameserver 10.96.0.10\nsearch dataplane-harness.svc.cluster.local\n";
    let mut cat = std::process::Command::new("cat");
    cat.arg("/etc/resolv.conf");
    let seen = a
        .run_with(
            cat,
            Credentials::user(1337, 1337),
            &[("resolv.conf", resolv)],
            "",
            T,
        )
        .await?;
    assert_eq!(seen, resolv);
    assert_eq!(std::fs::read_to_string("/etc/resolv.conf")?, host);

    // Nothing leaves: the node routes only to the namespaces the harness made.
    for family in ["-4", "-6"] {
        let out = std::process::Command::new("ip")
            .args(["-n", node.netns(), family, "route", "show", "default"])
            .output()?;
        assert!(
            out.stdout.is_empty(),
            "a default route in the node: {out:?}"
        );
    }
    Ok(())
}

/// The host's own network state, as far as the harness could touch it.
fn host_state() -> Result<String, AnyError> {
    let run = |cmd: &str, args: &[&str]| -> Result<String, AnyError> {
        let out = std::process::Command::new(cmd).args(args).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // Rules without counters and comment lines (dates).
    let rules = |cmd| -> Result<String, AnyError> {
        Ok(run(cmd, &[])?
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(" [").next().unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n"))
    };
    Ok([
        run("ip", &["-o", "link", "show"])?,
        run("ip", &["-o", "addr", "show"])?,
        run("ip", &["route", "show", "table", "all"])?,
        run("ip", &["-6", "route", "show", "table", "all"])?,
        rules("iptables-save")?,
        rules("ip6tables-save")?,
        run("ipset", &["list", "-n"])?,
    ]
    .join("\n"))
}

fn ours() -> Vec<String> {
    let prefix = format!("mbdp-{}-", std::process::id());
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Alive and not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// A test that fails drops its node instead of shutting it down: everything still goes, and
/// the host's own namespace is as it was. A run that died leaves namespaces (and processes)
/// that the next node's start removes; those of live processes stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_left_behind_by_a_failed_or_dead_run() -> TestResult {
    let cluster = real_cluster().await?;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    cluster.apply_as("meshbaseline-e2e", &ns, true).await?;
    let before = host_state()?;
    let node = Node::start(&kubeconfig()?, NodeConfig::default()).await?;
    let name = node.name().to_string();
    let pod = node.add_pod(PodSpec::new(NS, "p")).await?;
    pod.serve_tcp(8080)?;
    node.start_kube_router().await?;
    let mut sleeper = std::process::Command::new("sleep");
    sleeper.arg("60");
    let process = pod.spawn("sleeper", sleeper, Credentials::user(1337, 1337))?;
    let pids: Vec<u32> = ours()
        .iter()
        .flat_map(|n| {
            std::process::Command::new("ip")
                .args(["netns", "pids", n])
                .output()
                .ok()
        })
        .flat_map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    assert!(
        pids.len() >= 3,
        "kube-router, socat and sleep in the node's and pod's namespaces: {pids:?}"
    );
    assert!(ours().len() >= 2);

    drop(node);
    assert!(ours().is_empty(), "namespaces left: {:?}", ours());
    for pid in &pids {
        assert!(!running(*pid), "process {pid} survived its node");
    }
    drop(process);
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.harness_client());
    assert!(nodes.get_opt(&name).await?.is_none(), "Node {name} left");
    let pods: Api<PodObject> = Api::namespaced(cluster.harness_client(), NS);
    assert!(pods.get_opt("p").await?.is_none(), "Pod {NS}/p left");
    assert_eq!(host_state()?, before, "the host's network state changed");

    // What a killed run left: a namespace named for a dead process, a link and a process in it.
    let mut gone = std::process::Command::new("true").spawn()?;
    let dead = gone.id();
    gone.wait()?;
    let stale = format!("mbdp-{dead}-9");
    let live = "mbdp-1-9".to_string();
    for n in [&stale, &live] {
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", n])
            .status()?
            .success();
        assert!(ok, "ip netns add {n}");
    }
    let ok = std::process::Command::new("ip")
        .args([
            "-n", &stale, "link", "add", "l0", "type", "veth", "peer", "name", "l1",
        ])
        .status()?
        .success();
    assert!(ok);
    let mut leftover = std::process::Command::new("ip")
        .args(["netns", "exec", &stale, "sleep", "60"])
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let removed = meshbaseline_e2e::dataplane::sweep_stale()?;
    let live_kept = std::path::Path::new("/run/netns").join(&live).exists();
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &live])
        .status();
    assert_eq!(removed, vec![stale.clone()]);
    assert!(live_kept, "the namespace of a live process was removed");
    let status = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(s) = leftover.try_wait()? {
                return Ok::<_, std::io::Error>(s);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await??;
    assert!(!status.success(), "the leftover process was killed");
    cluster.cleanup().await?;
    Ok(())
}
