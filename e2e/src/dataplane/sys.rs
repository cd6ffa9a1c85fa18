//! The system calls and commands the harness is built on: entering a network namespace
//! (`setns`) in a dedicated thread or in a child process before `exec`, switching the child's
//! UID/GID, and running `ip`, `iptables-save`, `conntrack`... inside a namespace without
//! `ip netns exec` (no mount namespace needed: netlink and `/proc/sys/net` follow the calling
//! thread's network namespace).

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::Error;

/// Where `ip netns add` mounts named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The commands the harness runs, and the Debian package of each.
const REQUIRED: [(&str, &str); 9] = [
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("iptables-save", "iptables"),
    ("ip6tables", "iptables"),
    ("ip6tables-save", "iptables"),
    ("ipset", "ipset"),
    ("socat", "socat"),
    ("conntrack", "conntrack"),
    ("sysctl", "procps"),
];

/// Root and every command above, or an error naming what to install.
pub fn check_prerequisites() -> Result<(), Error> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Prerequisite(
            "the data-plane harness creates network namespaces, veth pairs and iptables rules: \
             run it as root"
                .into(),
        ));
    }
    let missing = missing(&std::env::var_os("PATH").unwrap_or_default());
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Prerequisite(format!(
        "missing on PATH: {}; install them with `apt-get install -y iptables ipset socat \
         iproute2 conntrack procps`",
        missing.join(", ")
    )))
}

/// The commands of `REQUIRED` that no directory of `path` (a `PATH` value) holds, each with
/// its Debian package.
fn missing(path: &std::ffi::OsStr) -> Vec<String> {
    REQUIRED
        .iter()
        .filter(|(cmd, _)| which_in(path, cmd).is_none())
        .map(|(cmd, pkg)| format!("{cmd} (Debian package {pkg})"))
        .collect()
}

fn which_in(path: &std::ffi::OsStr, cmd: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(cmd))
        .find(|p| p.is_file())
}

/// The bind-mounted file of a named network namespace.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub fn open_netns(name: &str) -> Result<File, Error> {
    let path = netns_path(name);
    File::open(&path).map_err(|e| Error::Setup(format!("network namespace {name}: {e}")))
}

/// Moves the calling thread into the network namespace `name`. Only for threads the harness
/// spawned for this purpose: a thread never leaves the namespace again.
pub fn enter_netns(name: &str) -> Result<(), Error> {
    let fd = open_netns(name)?;
    // SAFETY: fd is an open namespace file; setns affects only the calling thread.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(Error::Setup(format!(
            "setns into {name}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Runs `f` on a new thread inside the network namespace `name` and waits for its result.
/// Sockets keep the namespace they were created in, wherever they are used afterwards.
pub async fn in_netns<T, F>(name: &str, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let name = name.to_string();
    std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            let result = enter_netns(&name).and_then(|()| f());
            let _ = tx.send(result);
        })?;
    rx.await
        .map_err(|_| Error::Setup("a thread inside a network namespace panicked".into()))?
}

/// Who a process runs as inside its namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Credentials {
    pub fn root() -> Self {
        Credentials::default()
    }

    /// UID and GID (supplementary groups: only the GID).
    pub fn user(uid: u32, gid: u32) -> Self {
        Credentials {
            uid: Some(uid),
            gid: Some(gid),
        }
    }
}

/// Files bound over others in a process's own mount namespace: (source, target).
pub type Binds = Vec<(CString, CString)>;

/// `(source, target)` paths as C strings, made before the fork (no allocation after it).
pub fn binds(pairs: &[(PathBuf, PathBuf)]) -> Result<Binds, Error> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| Error::Setup(format!("{} holds a NUL byte", p.display())))
    };
    pairs.iter().map(|(s, t)| Ok((c(s)?, c(t)?))).collect()
}

/// Prepares `cmd` to start inside the network namespace `netns_fd` (else the caller's), with
/// `binds` mounted in a private mount namespace, as `creds`, and (with `parent_death`) to be
/// killed when the thread that spawns it ends. Order matters: setns and mount need the
/// capabilities that setuid drops, and a credential change clears the parent-death signal.
pub fn configure(
    cmd: &mut Command,
    netns_fd: Option<RawFd>,
    creds: Credentials,
    parent_death: bool,
    binds: Binds,
) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let hook = move || -> std::io::Result<()> {
        // Only async-signal-safe calls between fork and exec.
        let check = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        // SAFETY: plain system calls on values owned by this (forked) process.
        unsafe {
            if let Some(fd) = netns_fd {
                check(libc::setns(fd, libc::CLONE_NEWNET))?;
            }
            if !binds.is_empty() {
                // A private copy of the mounts, so the host's /etc stays as it is.
                check(libc::unshare(libc::CLONE_NEWNS))?;
                let root = c"/".as_ptr();
                let flags = libc::MS_REC | libc::MS_PRIVATE;
                check(libc::mount(
                    std::ptr::null(),
                    root,
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                ))?;
                for (source, target) in &binds {
                    let null = std::ptr::null();
                    check(libc::mount(
                        source.as_ptr(),
                        target.as_ptr(),
                        null,
                        libc::MS_BIND,
                        null as *const libc::c_void,
                    ))?;
                }
            }
            if let Some(gid) = creds.gid {
                check(libc::setgroups(1, &gid))?;
                check(libc::setgid(gid))?;
            }
            if let Some(uid) = creds.uid {
                check(libc::setuid(uid))?;
            }
            if parent_death {
                check(libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ))?;
                // The spawning thread may have ended before the prctl.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Runs a short command inside `netns` (root) and returns its stdout; fails with its stderr.
pub fn run_in(netns: &str, program: &str, args: &[&str]) -> Result<String, Error> {
    let fd = open_netns(netns)?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    configure(
        &mut cmd,
        Some(fd.as_raw_fd()),
        Credentials::root(),
        false,
        Vec::new(),
    );
    let out = output(&mut cmd, None)?;
    drop(fd);
    Ok(out)
}

/// Runs `cmd` inside `netns` as `creds` with `binds` and `stdin`, killing it after `timeout`;
/// its stdout.
pub fn run_as(
    netns: &str,
    mut cmd: Command,
    creds: Credentials,
    binds: Binds,
    stdin: &str,
    timeout: Duration,
) -> Result<String, Error> {
    let fd = open_netns(netns)?;
    configure(&mut cmd, Some(fd.as_raw_fd()), creds, false, binds);
    let describe = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command {
            command: describe.clone(),
            detail: e.to_string(),
        })?;
    drop(fd);
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.as_bytes())?;
    }
    let deadline = std::time::Instant::now() + timeout;
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(Error::Command {
            command: describe,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command to completion (with `stdin` fed to it) and returns its stdout.
pub fn output(cmd: &mut Command, stdin: Option<&str>) -> Result<String, Error> {
    let describe = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Command {
        command: describe.clone(),
        detail: e.to_string(),
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(Error::Command {
            command: describe,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip` commands, one per line, in one `ip -batch` run (inside `netns` when given).
pub fn ip_batch(netns: Option<&str>, lines: &[String]) -> Result<(), Error> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"]);
    output(&mut cmd, Some(&(lines.join("\n") + "\n"))).map(|_| ())
}

/// Writes sysctls (`net.ipv4.ip_forward=1`...) inside `netns`.
pub fn sysctls(netns: &str, settings: &[&str]) -> Result<(), Error> {
    let mut args = vec!["-q", "-w"];
    args.extend_from_slice(settings);
    run_in(netns, "sysctl", &args).map(|_| ())
}

/// Whether a process with this id is alive (signal 0).
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// SIGKILL to a process the harness started (never a group, never by name).
pub fn kill(pid: i32) {
    if pid > 0 {
        // SAFETY: sends a signal to one process id the harness recorded as its own.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_command_is_named_with_its_package() {
        let empty = std::env::temp_dir().join(format!("dataplane-no-tools-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let missing = missing(empty.as_os_str());
        std::fs::remove_dir_all(&empty).unwrap();
        assert_eq!(missing.len(), REQUIRED.len());
        assert!(missing.contains(&"ipset (Debian package ipset)".to_string()));
        assert!(missing.contains(&"iptables (Debian package iptables)".to_string()));
        assert!(missing.contains(&"socat (Debian package socat)".to_string()));
    }
}
