//! Named network namespaces of the harness: `mbdp-<pid>-<node>-<role>`, the pid being the
//! test process that owns them, so a later run can tell what a dead process left behind.

use std::path::PathBuf;

use super::sys::{self, NETNS_DIR};
use super::Error;

/// Prefix of every network namespace, run directory and Node object the harness creates.
pub const PREFIX: &str = "mbdp-";

/// `mbdp-<pid>-<node index>`: the Node object's name, the node's namespace, the run directory.
pub fn node_base(node_index: u8) -> String {
    format!("{PREFIX}{}-{node_index}", std::process::id())
}

/// The owner's pid of a name made by [`node_base`] (`None` for anything else).
pub fn owner_pid(name: &str) -> Option<i32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// The directory of a node's sockets, kubeconfig copies and logs.
pub fn run_dir(base: &str) -> PathBuf {
    std::env::temp_dir().join(base)
}

/// `ip netns add`, with loopback up.
pub fn create(name: &str) -> Result<(), Error> {
    sys::ip_batch(None, &[format!("netns add {name}")])?;
    sys::ip_batch(Some(name), &["link set lo up".to_string()])
}

/// Kills what still runs inside (processes of the harness: the namespace is its own), then
/// `ip netns del`. Links and iptables rules inside go with the namespace.
pub fn delete(name: &str) -> Result<(), Error> {
    if !sys::netns_path(name).exists() {
        return Ok(());
    }
    if let Ok(pids) = sys::output(
        std::process::Command::new("ip").args(["netns", "pids", name]),
        None,
    ) {
        for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            sys::kill(pid);
        }
    }
    sys::ip_batch(None, &[format!("netns del {name}")])
}

/// The harness's namespaces now present, by name.
pub fn list() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect()
}

/// Removes the namespaces and run directories of harness processes that are no longer alive
/// (a run that was killed, or crashed before its cleanup). Those of live processes, another
/// suite's included, are left alone. Returns the namespaces removed.
pub fn sweep_stale() -> Result<Vec<String>, Error> {
    let stale = |name: &str| owner_pid(name).is_some_and(|pid| !sys::alive(pid));
    let mut removed = Vec::new();
    for name in list().into_iter().filter(|n| stale(n)) {
        delete(&name)?;
        removed.push(name);
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(PREFIX) && stale(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_names_of_the_harness_only() {
        assert_eq!(owner_pid("mbdp-4242-3-p7"), Some(4242));
        assert_eq!(owner_pid("mbdp-4242-3"), Some(4242));
        assert_eq!(owner_pid("mbi-node"), None);
        assert_eq!(owner_pid("mbdp-x-3"), None);
        assert!(node_base(3).starts_with(PREFIX));
        assert_eq!(owner_pid(&node_base(3)), Some(std::process::id() as i32));
    }
}
