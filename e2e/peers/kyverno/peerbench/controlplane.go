package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// testenvState is what `testenv up` leaves in <dir>/state.json.
type testenvState struct {
	Dir             string `json:"dir"`
	Server          string `json:"server"`
	AdminKubeconfig string `json:"adminKubeconfig"`
	AuditLog        string `json:"auditLog"`
	Pid             int    `json:"pid"`
}

// controlPlane is a fresh local control plane (e2e/testenv) in its own directory: etcd inside
// the testenv process, kube-apiserver and kube-controller-manager as its children.
type controlPlane struct {
	bin   string
	dir   string
	cmd   *exec.Cmd
	done  chan struct{}
	st    testenvState
	admin *rest.Config
	kube  kubernetes.Interface
	dyn   dynamic.Interface
}

func startControlPlane(binDir, dir string, qps float32, burst int) (*controlPlane, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "..", filepath.Base(dir)+"-testenv.log"))
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(binDir, "testenv")
	cmd := exec.Command(bin, "up", "--dir", dir, "--bin-dir", binDir)
	cmd.Stdout, cmd.Stderr = log, log
	// The control plane goes down with this process, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("%s: %w (build it with e2e/testenv/build.sh)", bin, err)
	}
	cp := &controlPlane{bin: bin, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); log.Close(); close(cp.done) }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		data, err := os.ReadFile(filepath.Join(dir, "state.json"))
		if err == nil && json.Unmarshal(data, &cp.st) == nil && cp.st.Pid != 0 {
			break
		}
		select {
		case <-cp.done:
			return nil, fmt.Errorf("testenv up exited before the control plane was ready; see %s", log.Name())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cp.stop()
			return nil, errors.New("control plane not ready after 5 minutes")
		}
	}
	if cp.admin, err = clientcmd.BuildConfigFromFlags("", cp.st.AdminKubeconfig); err != nil {
		cp.stop()
		return nil, err
	}
	cp.admin.QPS, cp.admin.Burst = qps, burst
	// Kyverno's ClusterPolicy is deprecated in favour of its CEL policy kinds: the API
	// server says so on every write of one.
	cp.admin.WarningHandler = rest.NoWarnings{}
	if cp.kube, err = kubernetes.NewForConfig(cp.admin); err != nil {
		cp.stop()
		return nil, err
	}
	if cp.dyn, err = dynamic.NewForConfig(cp.admin); err != nil {
		cp.stop()
		return nil, err
	}
	return cp, nil
}

// stop ends testenv (SIGTERM: it stops its children and etcd), SIGKILL after a minute.
func (cp *controlPlane) stop() {
	if cp.cmd.Process == nil {
		return
	}
	_ = cp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-cp.done:
	case <-time.After(time.Minute):
		_ = cp.cmd.Process.Kill()
		<-cp.done
	}
}

// kubeconfig mints a client certificate for user (in groups) and writes its kubeconfig.
func (cp *controlPlane) kubeconfig(user string, groups ...string) (string, error) {
	out := filepath.Join(cp.dir, user+".kubeconfig")
	args := []string{"kubeconfig", "--dir", cp.dir, "--user", user, "--out", out}
	for _, g := range groups {
		args = append(args, "--group", g)
	}
	if msg, err := exec.Command(cp.bin, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("testenv kubeconfig --user %s: %v: %s", user, err, msg)
	}
	return out, nil
}

// serviceAccountKubeconfig writes a kubeconfig with a bound token (one day) of an existing
// ServiceAccount.
func (cp *controlPlane) serviceAccountKubeconfig(ns, name string) (string, error) {
	out := filepath.Join(cp.dir, ns+"-"+name+".kubeconfig")
	args := []string{"kubeconfig", "--dir", cp.dir, "--serviceaccount", ns + "/" + name, "--ttl", "24h", "--out", out}
	if msg, err := exec.Command(cp.bin, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("testenv kubeconfig --serviceaccount %s/%s: %v: %s", ns, name, err, msg)
	}
	return out, nil
}

func (cp *controlPlane) clientFor(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = cp.admin.QPS, cp.admin.Burst
	return cfg, nil
}

// apiserverPid is the kube-apiserver child of the testenv process.
func (cp *controlPlane) apiserverPid() (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		comm, rest, ok := splitStat(string(stat))
		if !ok || comm != "kube-apiserver" {
			continue
		}
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(cp.st.Pid) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no kube-apiserver child of testenv (pid %d)", cp.st.Pid)
}
