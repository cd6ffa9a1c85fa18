//! Long-running processes inside a node's or a pod's namespace. They are all forked by one
//! thread per node that lives as long as the node, with `PR_SET_PDEATHSIG`: when the node is
//! torn down, or the test process dies however it dies, they get SIGKILL.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::sys::{self, Credentials};
use super::Error;

type Job = Box<dyn FnOnce() + Send>;

/// The thread that forks every long-running process of a node.
pub(crate) struct Spawner {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spawner {
    pub fn start(name: &str) -> Result<Spawner, Error> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name(format!("spawner-{name}"))
            .spawn(move || {
                // Ends when the node drops its sender; its children then get SIGKILL.
                while let Ok(job) = rx.recv() {
                    job();
                }
            })?;
        Ok(Spawner {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Starts `cmd` in the namespace `netns` (`None`: the host's) as `creds`, with `binds`,
    /// its output appended to `log`.
    pub fn spawn(
        &self,
        mut cmd: Command,
        netns: Option<&str>,
        creds: Credentials,
        binds: sys::Binds,
        log: &Path,
    ) -> Result<Process, Error> {
        let fd = netns.map(sys::open_netns).transpose()?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        sys::configure(
            &mut cmd,
            fd.as_ref().map(|f| f.as_raw_fd()),
            creds,
            true,
            binds,
        );
        let describe = format!("{cmd:?}");
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(cmd.spawn());
        });
        self.jobs
            .as_ref()
            .ok_or_else(|| Error::Setup("the node is shut down".into()))?
            .send(job)
            .map_err(|_| Error::Setup("the node's spawner thread is gone".into()))?;
        let child = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| Error::Setup(format!("{describe}: no answer from the spawner thread")))?
            .map_err(|e| Error::Command {
                command: describe.clone(),
                detail: e.to_string(),
            })?;
        drop(fd);
        Ok(Process {
            child,
            describe,
            log: log.to_path_buf(),
        })
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A process the harness started; SIGKILL and reaped on drop.
pub struct Process {
    child: Child,
    describe: String,
    log: PathBuf,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Where its stdout and stderr go.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Fails, with the end of its log, when the process has exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(Error::Setup(format!(
                "{} exited with {status}; its log ends:\n{}",
                self.describe,
                self.log_tail(30)
            ))),
        }
    }

    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
