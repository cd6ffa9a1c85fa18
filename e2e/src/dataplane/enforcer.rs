//! The NetworkPolicy enforcer: kube-router's network-policy controller (test-only, built by
//! `e2e/dataplane/kube-router/build.sh`) in the node's namespace, and the barrier that says
//! when it has caught up with the API.
//!
//! kube-router rewrites its rules on every change, after an informer delivers it. The barrier
//! writes a sentinel NetworkPolicy (`sync-<n>`, selecting a sentinel pod of its own namespace)
//! after everything the test wrote, and waits until a rule commented
//! `run through nw policy sync-<n>` is in both families' tables: watch events of one resource
//! arrive in order, so the sync that wrote it had seen every NetworkPolicy written before. It
//! also waits for every pod's jump rule (pods come through another informer), then flushes the
//! node's conntrack table so that no flow admitted earlier survives the change.
//! Assertions use rule comments, never chain names (they embed a hash of each sync).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use super::node::{ignore_missing, Node, NodeInner};
use super::pod::PodSpec;
use super::process::Process;
use super::sys::{self, Credentials};
use super::Error;

/// Names the kube-router binary when it is not in `target/dataplane/bin`.
pub const KUBE_ROUTER_ENV: &str = "MESHBASELINE_KUBE_ROUTER";
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Enforcer {
    process: Process,
    sequence: u32,
}

impl Enforcer {
    pub fn into_process(self) -> Process {
        self.process
    }
}

/// `MESHBASELINE_KUBE_ROUTER`, else `target/dataplane/bin/kube-router`; fails naming the build
/// script.
pub fn kube_router_binary() -> Result<PathBuf, Error> {
    let path = std::env::var_os(KUBE_ROUTER_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| super::workspace_root().join("target/dataplane/bin/kube-router"));
    if path.is_file() {
        return Ok(path);
    }
    Err(Error::Prerequisite(format!(
        "kube-router not found at {}: build it with e2e/dataplane/kube-router/build.sh \
         (or set {KUBE_ROUTER_ENV})",
        path.display()
    )))
}

/// The enforcer's sentinel namespace: unique per node of this process (a node index is reused
/// while the previous node's namespace may still be terminating).
fn sentinel_namespace(inner: &NodeInner) -> String {
    format!("{}-sync-{}", inner.name, inner.instance)
}

impl Node {
    /// Starts kube-router (from [`kube_router_binary`]) in the node's namespace, with its
    /// firewall (network policy) controller only, and waits for its first sync.
    pub async fn start_kube_router(&self) -> Result<(), Error> {
        self.start_kube_router_with(&kube_router_binary()?).await
    }

    pub async fn start_kube_router_with(&self, binary: &Path) -> Result<(), Error> {
        let inner = &self.inner;
        let ns = sentinel_namespace(inner);
        let namespaces: Api<Namespace> = Api::all(inner.admin.clone());
        let object: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
        match namespaces.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            other => {
                other?;
            }
        }
        self.add_unwired_pod(PodSpec::new(&ns, "sentinel")).await?;
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--kubeconfig={}", inner.kubeconfig.display()))
            .arg(format!("--hostname-override={}", inner.name))
            .args([
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--enable-cni=false",
                "--enable-ipv4=true",
                "--health-port=0",
                "--v=1",
            ])
            .arg(format!("--enable-ipv6={}", inner.config.dual_stack));
        for cidr in &inner.config.service_cidrs {
            cmd.arg(format!("--service-cluster-ip-range={cidr}"));
        }
        let process = inner.spawn(
            cmd,
            Some(&inner.name),
            Credentials::root(),
            &inner.log("kube-router"),
        )?;
        inner.state().enforcer = Some(Enforcer {
            process,
            sequence: 0,
        });
        self.sync_policies().await
    }

    /// Returns once kube-router has applied every NetworkPolicy written before the call and
    /// every pod of this node, then empties the node's conntrack table.
    pub async fn sync_policies(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let sequence = {
            let mut state = inner.state();
            let enforcer = state
                .enforcer
                .as_mut()
                .ok_or_else(|| Error::Setup("no enforcer: call start_kube_router first".into()))?;
            enforcer.sequence += 1;
            enforcer.sequence
        };
        let ns = sentinel_namespace(inner);
        let api: Api<NetworkPolicy> = Api::namespaced(inner.admin.clone(), &ns);
        let np: NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": format!("sync-{sequence}")},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
        }))?;
        api.create(&PostParams::default(), &np).await?;
        if sequence > 1 {
            let previous = format!("sync-{}", sequence - 1);
            ignore_missing(
                api.delete(&previous, &DeleteParams::default())
                    .await
                    .map(|_| ()),
            )?;
        }
        let expected = self.expected_comments(sequence);
        let started = std::time::Instant::now();
        while started.elapsed() < SYNC_TIMEOUT {
            self.check_enforcer()?;
            let (v4, v6) = self.iptables_rules()?;
            if expected.iter().all(|(c, ipv6)| {
                if *ipv6 {
                    v6.contains(c)
                } else {
                    v4.contains(c)
                }
            }) {
                let node = inner.name.clone();
                sys::run_in(&node, "conntrack", &["-F"])?;
                if inner.config.dual_stack {
                    sys::run_in(&node, "conntrack", &["-F", "-f", "ipv6"])?;
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::Timeout {
            what: format!(
                "kube-router to apply NetworkPolicy {ns}/sync-{sequence}; its log ends:\n{}",
                self.kube_router_log(30)
            ),
            after: SYNC_TIMEOUT,
        })
    }

    /// The rule comments that show a sync saw the sentinel and every wired pod: (comment,
    /// whether it is in the IPv6 table).
    fn expected_comments(&self, sequence: u32) -> Vec<(String, bool)> {
        let families: &[bool] = if self.inner.config.dual_stack {
            &[false, true]
        } else {
            &[false]
        };
        let state = self.inner.state();
        let mut out = Vec::new();
        for &ipv6 in families {
            out.push((format!("\"run through nw policy sync-{sequence}\""), ipv6));
            for (ns, name, has_v6) in &state.wired {
                if !ipv6 || *has_v6 {
                    out.push((
                        format!("destined to POD name:{name} namespace: {ns} to chain"),
                        ipv6,
                    ));
                }
            }
        }
        out
    }

    fn check_enforcer(&self) -> Result<(), Error> {
        match self.inner.state().enforcer.as_mut() {
            Some(e) => e.process.check_running(),
            None => Err(Error::Setup("no enforcer".into())),
        }
    }

    /// `iptables-save` and `ip6tables-save` of the node's filter table.
    pub fn iptables_rules(&self) -> Result<(String, String), Error> {
        let ns = self.netns();
        let v4 = sys::run_in(ns, "iptables-save", &["-t", "filter"])?;
        let v6 = if self.inner.config.dual_stack {
            sys::run_in(ns, "ip6tables-save", &["-t", "filter"])?
        } else {
            String::new()
        };
        Ok((v4, v6))
    }

    /// What the enforcer made of the policies, for a failing test to show: both families'
    /// filter tables, the ipsets, and the end of kube-router's log.
    pub fn enforcer_state(&self) -> String {
        let ns = self.netns();
        let run = |program: &str, args: &[&str]| {
            sys::run_in(ns, program, args).unwrap_or_else(|e| format!("{program}: {e}\n"))
        };
        format!(
            "# iptables-save\n{}\n# ip6tables-save\n{}\n# ipset list\n{}\n# kube-router log\n{}\n",
            run("iptables-save", &["-t", "filter"]),
            run("ip6tables-save", &["-t", "filter"]),
            run("ipset", &["list"]),
            self.kube_router_log(200)
        )
    }

    /// The last `lines` lines of kube-router's log.
    pub fn kube_router_log(&self, lines: usize) -> String {
        self.inner
            .state()
            .enforcer
            .as_ref()
            .map(|e| e.process.log_tail(lines))
            .unwrap_or_default()
    }
}

/// The sentinel namespace (its pod is deleted with the node's other pods).
pub(crate) async fn delete_sentinel(inner: &NodeInner) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(inner.admin.clone());
    ignore_missing(
        api.delete(&sentinel_namespace(inner), &DeleteParams::background())
            .await
            .map(|_| ()),
    )
}
