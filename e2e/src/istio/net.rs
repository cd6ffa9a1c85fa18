//! A node made of Linux network namespaces: a node namespace that routes between pod
//! namespaces (a veth pair per pod, a /32 route on the node side, a default route via the node
//! in the pod), and processes started inside a namespace as a given UID. Deleting a namespace
//! removes its links, routes and iptables rules with it; the host's own namespace is never
//! touched.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Error;

/// The commands this module runs, and the Debian package of each.
const REQUIRED: [(&str, &str); 5] = [
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("socat", "socat"),
    ("setpriv", "util-linux"),
    ("curl", "curl"),
];

/// Root and every command above, or an error that says what to install.
pub fn check_prerequisites() -> Result<(), Error> {
    let uid = run_out(Command::new("id").arg("-u"))?;
    if uid.trim() != "0" {
        return Err(Error::Prerequisite(
            "the Istio data-plane suite creates network namespaces and iptables rules: run it as root"
                .into(),
        ));
    }
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|(cmd, _)| !on_path(cmd))
        .map(|(cmd, pkg)| format!("{cmd} (Debian package {pkg})"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Prerequisite(format!(
        "missing on PATH: {}; install them with `apt-get install -y iproute2 iptables socat util-linux curl`",
        missing.join(", ")
    )))
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// Runs `cmd`; its standard output, or an error with its standard error.
pub fn run_out(cmd: &mut Command) -> Result<String, Error> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<(), Error> {
    run_out(Command::new("ip").args(args)).map(drop)
}

/// `cmd` inside network namespace `ns` as `uid` (root when `None`).
pub fn in_netns(ns: &str, uid: Option<u32>, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]);
    if let Some(uid) = uid {
        let (u, g) = (format!("--reuid={uid}"), format!("--regid={uid}"));
        cmd.args(["setpriv", &u, &g, "--clear-groups", "--"]);
    }
    cmd.arg(program).args(args);
    cmd
}

/// A process the suite started, in its own process group (its children too: pilot-agent's
/// Envoy); stopped with the whole group.
pub struct Process {
    pub name: String,
    child: Child,
    pub log: std::path::PathBuf,
}

impl Process {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Process, Error> {
        let out = File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Setup(format!("{name}: {e}")))?;
        Ok(Process {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// An error with the log's tail when the process has exited.
    pub fn check_alive(&mut self) -> Result<(), Error> {
        if let Some(status) = self.child.try_wait()? {
            return Err(Error::Setup(format!(
                "{} exited ({status}); its log ({}) ends:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 25)
            )));
        }
        Ok(())
    }

    fn signal_group(&self, signal: &str) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args([signal, "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM to the group, SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            self.signal_group("-KILL");
            return;
        }
        self.signal_group("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (a child that ignored SIGTERM).
        self.signal_group("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The node: a network namespace with the node IP on its loopback, forwarding between pods.
pub struct Node {
    pub netns: String,
    pub ip: Ipv4Addr,
    /// Prefix of every namespace and link this node creates.
    prefix: String,
    pods: Vec<String>,
}

impl Node {
    pub fn create(prefix: &str, addr: Ipv4Addr) -> Result<Node, Error> {
        let netns = format!("{prefix}-node");
        ip(&["netns", "add", &netns])?;
        let node = Node {
            netns,
            ip: addr,
            prefix: prefix.to_string(),
            pods: Vec::new(),
        };
        ip(&["-n", &node.netns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &node.netns,
            "addr",
            "add",
            &format!("{addr}/32"),
            "dev",
            "lo",
        ])?;
        run_out(&mut in_netns(
            &node.netns,
            None,
            "sysctl",
            &[
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ],
        ))?;
        Ok(node)
    }

    /// A pod namespace with `addr`, linked to the node; returns its namespace's name.
    pub fn add_pod(&mut self, name: &str, addr: Ipv4Addr) -> Result<String, Error> {
        let netns = format!("{}-{name}", self.prefix);
        // Link names are at most 15 bytes: the pod's index, not its name.
        let host_side = format!("mbv{}", self.pods.len());
        ip(&["netns", "add", &netns])?;
        self.pods.push(netns.clone());
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &netns,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            &host_side,
            "netns",
            &self.netns,
        ])?;
        let node_ip = self.ip.to_string();
        ip(&["-n", &self.netns, "link", "set", &host_side, "up"])?;
        ip(&[
            "-n",
            &self.netns,
            "route",
            "add",
            &format!("{addr}/32"),
            "dev",
            &host_side,
        ])?;
        run_out(&mut in_netns(
            &self.netns,
            None,
            "sysctl",
            &["-qw", &format!("net.ipv4.conf.{host_side}.proxy_arp=1")],
        ))?;
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{addr}/32"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n", &netns, "route", "add", &node_ip, "dev", "eth0", "scope", "link",
        ])?;
        ip(&[
            "-n", &netns, "route", "add", "default", "via", &node_ip, "dev", "eth0",
        ])?;
        Ok(netns)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A pod's veth goes with its namespace, and its iptables rules too.
        for ns in self.pods.iter().chain(std::iter::once(&self.netns)) {
            let _ = ip(&["netns", "delete", ns]);
        }
    }
}

/// Deletes namespaces a previous run of this suite left behind (its process was killed before
/// it could clean up): `<base>-<pid>-...` where no process `pid` runs any more.
pub fn sweep_stale(base: &str) {
    let Ok(out) = run_out(Command::new("ip").args(["netns", "list"])) else {
        return;
    };
    for line in out.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(&format!("{base}-")) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "delete", name]);
        }
    }
}
