package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// peer is one system under test: it installs what it needs on a fresh control plane, starts
// its processes (followed by the sampler), and applies its policy.
type peer interface {
	name() string
	// users are the API users its processes authenticate as (for the audit log).
	users() []string
	setup(ctx context.Context, cp *controlPlane, a *applier) error
	start(ctx context.Context, cp *controlPlane, s *sampler) error
	// applyPolicy returns when the request that stored the policy was sent.
	applyPolicy(ctx context.Context, a *applier) (time.Time, error)
	// settings describes how it was run (flags that matter), for the results.
	settings() map[string]string
	stop()
}

type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func spawn(dir, name, bin string, args, env []string) (*process, error) {
	log := filepath.Join(dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), log: log}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); see %s", p.name, p.cmd.ProcessState, p.log)
	default:
		return nil
	}
}

func (p *process) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP waits for url to answer 200 (any certificate: the peer's own, checked by the API
// server, not here).
func waitHTTP(ctx context.Context, url string, procs []*process, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // readiness probe of a local process
	}}
	return waitFor(ctx, timeout, url, func() (bool, error) {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return false, err
			}
		}
		resp, err := client.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// meshbaselinePeer is `meshbaseline run` as its own process, with the baseline file.
type meshbaselinePeer struct {
	bin, crd, baseline string
	qps, burst         int
	dir                string
	proc               *process
	args               []string
}

func (m *meshbaselinePeer) name() string    { return "meshbaseline" }
func (m *meshbaselinePeer) users() []string { return []string{"meshbaseline"} }

func (m *meshbaselinePeer) setup(ctx context.Context, cp *controlPlane, a *applier) error {
	crds, err := readDocuments(m.crd)
	if err != nil {
		return err
	}
	if err := a.applyCRDs(ctx, crds); err != nil {
		return err
	}
	return a.applyAll(ctx, []*unstructured.Unstructured{
		obj("v1", "Namespace", "", "meshbaseline-system", nil),
		clusterAdminBinding("meshbaseline"),
	})
}

func (m *meshbaselinePeer) start(ctx context.Context, cp *controlPlane, s *sampler) error {
	kc, err := cp.kubeconfig("meshbaseline")
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	m.dir = cp.dir
	m.args = []string{"run",
		"--metrics-addr=127.0.0.1:" + strconv.Itoa(port),
		"--lease-namespace=meshbaseline-system",
		"--pod-name=peerbench",
		"--qps=" + strconv.Itoa(m.qps),
		"--burst=" + strconv.Itoa(m.burst),
	}
	m.proc, err = spawn(cp.dir, "meshbaseline", m.bin, m.args, []string{"KUBECONFIG=" + kc, "RUST_LOG=info"})
	if err != nil {
		return err
	}
	s.add("meshbaseline", m.proc.cmd.Process.Pid)
	return waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", port), []*process{m.proc}, 2*time.Minute)
}

func (m *meshbaselinePeer) applyPolicy(ctx context.Context, a *applier) (time.Time, error) {
	docs, err := readDocuments(m.baseline)
	if err != nil {
		return time.Time{}, err
	}
	sent := time.Now()
	return sent, a.applyAll(ctx, docs)
}

func (m *meshbaselinePeer) settings() map[string]string {
	return map[string]string{"command": "meshbaseline " + join(m.args), "baseline": filepath.Base(m.baseline)}
}

func (m *meshbaselinePeer) stop() { m.proc.stop() }

var webhookConfigGVR = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}

// policyWebhookReady is true once Kyverno has registered the webhook that validates policies.
func policyWebhookReady(ctx context.Context, cp *controlPlane) (bool, error) {
	list, err := cp.dyn.Resource(webhookConfigGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	for _, w := range list.Items {
		if w.GetName() == "kyverno-policy-validating-webhook-cfg" {
			return true, nil
		}
	}
	return false, nil
}

func join(args []string) string {
	out := ""
	for i, a := range args {
		if i > 0 {
			out += " "
		}
		out += a
	}
	return out
}
