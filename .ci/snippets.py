"""Runs every snippet of README.md and docs/ on the local control plane.

Run inside `target/testenv/bin/testenv run` (KUBECONFIG set), from .ci/test:

    python3 .ci/snippets.py [FILE.md ...]      # default: README.md and docs/**/*.md
    python3 .ci/snippets.py --self-test        # the runner's own test (no cluster needed)

The conventions (docs/testing.md):
- ```yaml blocks are applied with `kubectl apply --dry-run=server`; namespaces they name are
  created first. Under `<!-- snippet: demo -->` they are applied for real, to the demo state.
- ```sh blocks run with `bash -e` (as typed into a shell, stopping at the first failing
  command; a pipeline's status is its last command's) from the repository's root.
- ```console blocks: each `$ ` line (with its `\\` continuation lines) runs the same way; the
  other lines are output and are not compared.
- `<!-- snippet: skip (reason) -->` on the line before a block: not run (the reason is required).
- `<!-- snippet: demo -->`: runs after the demo state is set up (e2e/demo-state.sh: Istio's CRDs,
  ours, examples/mesh and examples/baseline.yaml) with `meshbaseline run` running; each file's
  demo blocks start from examples/baseline.yaml as written. Blocks without a marker run
  first, on a cluster with only the CRDs, as a reader's fresh cluster would be.
Other languages are not run. PATH starts with `meshbaseline` (target/debug) and `kubectl`.
A failing snippet is reported as FILE:LINE (the line of its opening fence, or of the `$ `
command); the run goes on and exits 1 at the end.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUN = {"yaml": "yaml", "yml": "yaml", "sh": "sh", "bash": "sh", "shell": "sh", "console": "console"}
MARKER = re.compile(r"^<!-- snippet: (skip \((?P<reason>.*)\)|demo) -->$")
TIMEOUT = 600


class Snippet:
    def __init__(self, path, line, lang, body, marker):
        self.path, self.line, self.lang, self.body, self.marker = path, line, lang, body, marker

    def where(self, line=None):
        return f"{self.path}:{line or self.line}"


def parse(path: pathlib.Path, text: str):
    """(snippets, errors) of a Markdown file."""
    snippets, errors = [], []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)(```+)\s*([\w+-]*)", lines[i])
        if not fence:
            if lines[i].startswith("<!-- snippet:") and not MARKER.match(lines[i].strip()):
                errors.append(f"{path}:{i + 1}: malformed marker (use `<!-- snippet: skip (reason) -->` or `<!-- snippet: demo -->`)")
            i += 1
            continue
        indent, ticks, lang = fence.group(1), fence.group(2), fence.group(3).lower()
        start = i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        prev = start - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        marker = None
        m = MARKER.match(lines[prev].strip()) if prev >= 0 else None
        if m:
            if m.group(0).startswith("<!-- snippet: skip"):
                if not (m.group("reason") or "").strip():
                    errors.append(f"{path}:{prev + 1}: a skip marker needs a reason")
                marker = "skip"
            else:
                marker = "demo"
        if lang in RUN:
            snippets.append(Snippet(path, start + 1, RUN[lang], body, marker))
        elif marker:
            errors.append(f"{path}:{prev + 1}: marker before a ```{lang} block, which is never run")
    return snippets, errors


def commands(snippet):
    """(line, command) of a console block."""
    out = []
    i = 0
    body = snippet.body
    while i < len(body):
        if body[i].startswith("$ "):
            line = snippet.line + 1 + i
            cmd = body[i][2:]
            while cmd.endswith("\\") and i + 1 < len(body):
                i += 1
                cmd = cmd + "\n" + body[i]
            out.append((line, cmd))
        i += 1
    return out


def shell(cmd: str, env):
    try:
        done = subprocess.run(["bash", "-e", "-c", cmd], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {TIMEOUT}s"
    return done.returncode, (done.stdout + done.stderr)


def apply_yaml(snippet, env, for_real: bool):
    text = "\n".join(snippet.body) + "\n"
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as err:
        return 1, f"not YAML: {err}"
    kubectl = env["MESHBASELINE_KUBECTL"]
    for ns in sorted({(d.get("metadata") or {}).get("namespace") for d in docs} - {None}):
        subprocess.run([kubectl, "create", "namespace", ns], env=env, capture_output=True, timeout=60)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        args = [kubectl, "apply", "-f", f.name] + ([] if for_real else ["--dry-run=server"])
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(f.name)
    return done.returncode, done.stdout + done.stderr


RESET = """kubectl replace -f examples/baseline.yaml >/dev/null
gen=$(kubectl get mb default -o jsonpath='{.metadata.generation}')
kubectl wait mb/default --for=jsonpath='{.status.observedGeneration}'="$gen" --timeout=60s >/dev/null
kubectl wait mb/default --for=condition=Ready --timeout=60s >/dev/null"""


def run(snippets, env, demo: bool, reset=None):
    """Runs the snippets of one phase; returns (passed, failures). In the demo phase each file
    starts from the demo state's baseline (`reset`), whatever the previous file changed."""
    passed, failures = 0, []
    current = None
    for s in snippets:
        if s.marker == "skip" or (s.marker == "demo") != demo:
            continue
        if reset and s.path != current:
            code, out = shell(reset, env)
            if code:
                failures.append(f"{s.path}: resetting the demo baseline failed\n{out}")
            current = s.path
        if s.lang == "yaml":
            results = [(s.line, *apply_yaml(s, env, for_real=demo))]
        elif s.lang == "sh":
            results = [(s.line, *shell("\n".join(s.body), env))]
        else:
            results = []
            for line, cmd in commands(s):
                code, out = shell(cmd, env)
                results.append((line, code, out))
                if code:
                    break
            if not results:
                results = [(s.line, 1, "a console block without `$ ` commands (mark it skip, or use ```text)")]
        bad = [(line, code, out) for line, code, out in results if code]
        if bad:
            line, code, out = bad[0]
            tail = "\n".join("    " + l for l in out.strip().splitlines()[-15:])
            failures.append(f"{s.where(line)}: {s.lang} snippet failed (exit {code})\n{tail}")
            print(f"FAIL {s.where(line)}", flush=True)
        else:
            passed += 1
            print(f"ok   {s.where()}", flush=True)
    return passed, failures


def environment():
    env = dict(os.environ)
    kubectl = env.get("MESHBASELINE_KUBECTL") or shutil.which("kubectl") or "kubectl"
    env["MESHBASELINE_KUBECTL"] = kubectl
    target = pathlib.Path(env.get("CARGO_TARGET_DIR") or ROOT / "target")
    bin_dir = target / "snippets" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, path in (("kubectl", kubectl), ("meshbaseline", target / "debug" / "meshbaseline")):
        link = bin_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(pathlib.Path(path).resolve())
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env


def start_operator(env):
    log = open(pathlib.Path(env.get("MESHBASELINE_TESTENV_DIR", tempfile.gettempdir())) / "snippets-operator.log", "w")
    operator = subprocess.Popen(["meshbaseline", "run", "--leader-election=false", "--metrics-addr", "127.0.0.1:0",
                                 "--log-format", "text"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    code, out = shell("kubectl wait mb/default --for=condition=Ready --timeout=60s", env)
    if code:
        operator.terminate()
        raise SystemExit(f"the demo state's baseline did not become Ready:\n{out}")
    return operator


def files(args):
    if args:
        return [pathlib.Path(a) for a in args]
    return [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


def main(args) -> int:
    if not os.environ.get("KUBECONFIG"):
        print("run inside target/testenv/bin/testenv run (KUBECONFIG names the local control plane)", file=sys.stderr)
        return 2
    snippets, errors = [], []
    for path in files(args):
        found, errs = parse(path.relative_to(ROOT) if path.is_absolute() else path, path.read_text())
        snippets += found
        errors += errs
    env = environment()
    started = time.monotonic()
    code, out = shell("e2e/demo-state.sh crds", env)
    if code:
        print(out)
        return 1
    passed, failures = run(snippets, env, demo=False)
    code, out = shell("e2e/demo-state.sh mesh", env)
    if code:
        print(out)
        return 1
    operator = start_operator(env)
    try:
        more, more_failures = run(snippets, env, demo=True, reset=RESET)
    finally:
        operator.terminate()
        operator.wait(timeout=30)
    passed += more
    failures += more_failures
    skipped = sum(1 for s in snippets if s.marker == "skip")
    for problem in errors + failures:
        print(problem)
    print(f"snippets of {len(files(args))} files in {time.monotonic() - started:.0f}s")
    print(f"snippets: {passed} passed, {len(failures) + len(errors)} failed, {skipped} skipped")
    return 1 if failures or errors else 0


def self_test() -> int:
    """The runner finds every block, honours the markers and names the failing line."""
    doc = "\n".join([
        "# t",                                   # 1
        "```sh",                                 # 2
        "true",                                  # 3
        "```",                                   # 4
        "<!-- snippet: skip (needs a GPU) -->",  # 5
        "```sh",                                 # 6
        "false",                                 # 7
        "```",                                   # 8
        "```console",                            # 9
        "$ echo a \\",                           # 10
        "    b",                                 # 11
        "a b",                                   # 12
        "$ exit 3",                              # 13
        "```",                                   # 14
        "<!-- snippet: skip () -->",             # 15
        "```text",                               # 16
        "x",                                     # 17
        "```",                                   # 18
        "<!-- snippet: demo -->",                # 19
        "",                                      # 20
        "```sh",                                 # 21
        "exit 4",                                # 22
        "```",                                   # 23
    ])
    snippets, errors = parse(pathlib.Path("t.md"), doc)
    assert [(s.line, s.lang, s.marker) for s in snippets] == [
        (2, "sh", None), (6, "sh", "skip"), (9, "console", None), (21, "sh", "demo")], snippets
    assert errors == ["t.md:15: a skip marker needs a reason",
                      "t.md:15: marker before a ```text block, which is never run"], errors
    assert commands(snippets[2]) == [(10, "echo a \\\n    b"), (13, "exit 3")]
    env = dict(os.environ)
    passed, failures = run(snippets, env, demo=False)
    assert passed == 1 and len(failures) == 1 and failures[0].startswith("t.md:13: console snippet failed (exit 3)"), failures
    passed, failures = run(snippets, env, demo=True)
    assert passed == 0 and failures[0].startswith("t.md:21: sh snippet failed (exit 4)"), failures
    print("snippets self-test: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    sys.exit(main(sys.argv[1:]))
