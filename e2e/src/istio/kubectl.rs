//! kubectl against the local control plane: manifests are read the way Kubernetes reads them
//! (YAML 1.1), and tokens are minted by the API server's TokenRequest.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::Error;

#[derive(Clone, Debug)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// `MESHBASELINE_KUBECTL` (else `kubectl` on PATH) with `KUBECONFIG`.
    pub fn from_env() -> Result<Kubectl, Error> {
        let kubeconfig = std::env::var_os("KUBECONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                Error::Setup(
                    "KUBECONFIG is not set: run the suite inside `target/testenv/bin/testenv run`"
                        .into(),
                )
            })?;
        let bin = std::env::var_os("MESHBASELINE_KUBECTL")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("kubectl"));
        Ok(Kubectl { bin, kubeconfig })
    }

    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// Runs kubectl with `args`, `stdin` on its standard input; its standard output.
    pub fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
        let mut child = Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Setup(format!("kubectl ({}): {e}", self.bin.display())))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(Error::Kubectl(format!(
                "kubectl {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim(),
                stdin
                    .map(|s| format!("\n--- its input:\n{s}"))
                    .unwrap_or_default()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn run(&self, args: &[&str]) -> Result<String, Error> {
        self.run_with(args, None)
    }

    /// `kubectl apply -f -` (client-side, as a tenant or a platform engineer would).
    pub fn apply(&self, yaml: &str) -> Result<(), Error> {
        self.run_with(&["apply", "-f", "-"], Some(yaml)).map(drop)
    }

    /// `kubectl apply --server-side --force-conflicts` of a file (CRDs).
    pub fn apply_file_server_side(&self, path: &std::path::Path) -> Result<(), Error> {
        let path = path.to_string_lossy();
        self.run(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            path.as_ref(),
        ])
        .map(drop)
    }

    /// A ServiceAccount token for `audience`, as the kubelet projects it into a pod.
    pub fn token(&self, namespace: &str, sa: &str, audience: &str) -> Result<String, Error> {
        let token = self.run(&[
            "-n",
            namespace,
            "create",
            "token",
            sa,
            "--audience",
            audience,
            "--duration",
            "2h",
        ])?;
        Ok(token.trim().to_string())
    }

    /// `jsonpath` of one object, or `None` when it does not exist.
    pub fn get(
        &self,
        namespace: &str,
        what: &str,
        jsonpath: &str,
    ) -> Result<Option<String>, Error> {
        let path = format!("jsonpath={jsonpath}");
        match self.run(&["-n", namespace, "get", what, "-o", &path]) {
            Ok(v) => Ok(Some(v)),
            Err(Error::Kubectl(e)) if e.contains("NotFound") || e.contains("not found") => Ok(None),
            Err(e) => Err(e),
        }
    }
}
