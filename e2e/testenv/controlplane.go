package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// state is what `up` leaves in <dir>/state.json for `down`, `kubeconfig` and the test harness.
type state struct {
	Dir             string `json:"dir"`
	Server          string `json:"server"`
	AdminKubeconfig string `json:"adminKubeconfig"`
	Etcd            string `json:"etcd"`
	AuditLog        string `json:"auditLog"`
	Pid             int    `json:"pid"`
}

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, fmt.Errorf("no control plane in %s (run `testenv up` first): %w", dir, err)
	}
	st := &state{}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("%s/state.json: %w", dir, err)
	}
	return st, nil
}

// controlPlane is a running etcd (in this process), kube-apiserver and kube-controller-manager
// (child processes of this one, killed by the kernel if this process dies).
type controlPlane struct {
	st       state
	etcd     *embed.Etcd
	children []*child
}

// child is a process of the control plane; done is closed once it has exited and been reaped.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
`

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func binary(binDir, name string) (string, error) {
	path := filepath.Join(binDir, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s not found next to testenv (build with e2e/testenv/build.sh): %w", name, err)
	}
	return path, nil
}

// start brings the control plane up in dir. On error everything already started is stopped.
func start(dir, binDir string, apiPort int) (cp *controlPlane, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	apiserverBin, err := binary(binDir, "kube-apiserver")
	if err != nil {
		return nil, err
	}
	kcmBin, err := binary(binDir, "kube-controller-manager")
	if err != nil {
		return nil, err
	}
	// Each start is a new cluster: the PKI is kept, etcd's data and the logs are not.
	for _, stale := range []string{"etcd", "state.json", "audit.log", "kube-apiserver.log", "kube-controller-manager.log"} {
		if err := os.RemoveAll(filepath.Join(dir, stale)); err != nil {
			return nil, err
		}
	}
	p, err := loadOrCreatePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, fmt.Errorf("PKI: %w", err)
	}
	if err := p.issueClient("admin", "testenv-admin", []string{"system:masters"}); err != nil {
		return nil, err
	}
	if err := p.issueClient("kcm", "system:kube-controller-manager", nil); err != nil {
		return nil, err
	}
	cp = &controlPlane{}
	defer func() {
		if err != nil {
			cp.stop()
			cp = nil
		}
	}()
	if cp.etcd, err = startEtcd(dir); err != nil {
		return cp, fmt.Errorf("etcd: %w", err)
	}
	if apiPort == 0 {
		if apiPort, err = freePort(); err != nil {
			return cp, err
		}
	}
	cp.st = state{
		Dir:             dir,
		Server:          "https://127.0.0.1:" + strconv.Itoa(apiPort),
		AdminKubeconfig: filepath.Join(dir, "admin.kubeconfig"),
		Etcd:            cp.etcd.Clients[0].Addr().String(),
		AuditLog:        filepath.Join(dir, "audit.log"),
		Pid:             os.Getpid(),
	}
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return cp, err
	}
	if err := cp.spawn(apiserverBin, "kube-apiserver",
		"--etcd-servers=http://"+cp.st.Etcd,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+p.path("apiserver.crt"),
		"--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.path("sa.pub"),
		"--service-account-signing-key-file="+p.path("sa.key"),
		// Dual-stack, as the clusters MB602 is about (dual-stack Services in protected namespaces).
		"--service-cluster-ip-range=10.96.0.0/16,fd00:10:96::/112",
		"--authorization-mode=RBAC",
		"--enable-admission-plugins=ValidatingAdmissionPolicy",
		"--allow-privileged=true",
		// The `kubernetes` Service's endpoints would name 127.0.0.1, which Endpoints refuse.
		"--endpoint-reconciler-type=none",
		"--audit-policy-file="+policy,
		"--audit-log-path="+cp.st.AuditLog,
		"--audit-log-mode=blocking",
		"--profiling=false",
		"-v=1",
	); err != nil {
		return cp, err
	}
	if err := writeKubeconfig(cp.st.AdminKubeconfig, cp.st.Server, p.path("ca.crt"), "", credential{
		certFile: p.path("admin.crt"), keyFile: p.path("admin.key"),
	}); err != nil {
		return cp, err
	}
	kcmConfig := filepath.Join(dir, "kube-controller-manager.kubeconfig")
	if err := writeKubeconfig(kcmConfig, cp.st.Server, p.path("ca.crt"), "", credential{
		certFile: p.path("kcm.crt"), keyFile: p.path("kcm.key"),
	}); err != nil {
		return cp, err
	}
	if err := cp.waitReady(p, 180*time.Second); err != nil {
		return cp, err
	}
	if err := cp.spawn(kcmBin, "kube-controller-manager",
		"--kubeconfig="+kcmConfig,
		"--authentication-kubeconfig="+kcmConfig,
		"--authorization-kubeconfig="+kcmConfig,
		// What the suite relies on: garbage collection (ownerReferences), namespace deletion,
		// default ServiceAccounts (pods need them), kube-root-ca.crt, and the aggregation of
		// ClusterRoles into admin/edit/view (tenants' rights on Istio's kinds).
		"--controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,"+
			"root-ca-certificate-publisher-controller,clusterrole-aggregation-controller",
		// Each controller acts as its own ServiceAccount with the bootstrap roles, as in a cluster.
		"--use-service-account-credentials=true",
		"--root-ca-file="+p.path("ca.crt"),
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"-v=1",
	); err != nil {
		return cp, err
	}
	if err := cp.waitControllers(90 * time.Second); err != nil {
		return cp, err
	}
	data, err := json.MarshalIndent(cp.st, "", "  ")
	if err != nil {
		return cp, err
	}
	return cp, os.WriteFile(filepath.Join(dir, "state.json"), data, 0o600)
}

func startEtcd(dir string) (*embed.Etcd, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "testenv"
	cfg.Dir = filepath.Join(dir, "etcd")
	client := mustURL(fmt.Sprintf("http://127.0.0.1:%d", clientPort))
	peer := mustURL(fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url{client}, []url{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url{peer}, []url{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = zapcore.ErrorLevel.String()
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	// A test cluster that is thrown away after the run: durability buys nothing, fsync costs.
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("not ready after 60s")
	}
}

func (cp *controlPlane) spawn(bin, name string, args ...string) error {
	logFile, err := os.Create(filepath.Join(cp.st.Dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Killed by the kernel when this process dies, however it dies: no process is left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	cp.children = append(cp.children, c)
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	return nil
}

func (cp *controlPlane) exited(name string) error {
	for _, c := range cp.children {
		if c.name == name && c.exited() {
			return fmt.Errorf("%s exited (%s); last lines of %s:\n%s", name, c.cmd.ProcessState,
				filepath.Join(cp.st.Dir, name+".log"), tail(filepath.Join(cp.st.Dir, name+".log"), 30))
		}
	}
	return nil
}

func (cp *controlPlane) waitReady(p *pki, timeout time.Duration) error {
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	cert, err := tls.LoadX509KeyPair(p.path("admin.crt"), p.path("admin.key"))
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if err := cp.exited("kube-apiserver"); err != nil {
			return err
		}
		resp, err := client.Get(cp.st.Server + "/readyz")
		if err == nil {
			body := make([]byte, 4096)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, body[:n])
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready after %s (%s); last lines of its log:\n%s",
		timeout, last, tail(filepath.Join(cp.st.Dir, "kube-apiserver.log"), 30))
}

// waitControllers waits for the default ServiceAccount, which the controller manager creates:
// pods cannot be created before it exists.
func (cp *controlPlane) waitControllers(timeout time.Duration) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.st.AdminKubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := cp.exited("kube-controller-manager"); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		cancel()
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("waiting for the controller manager: %w", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("kube-controller-manager did not create default/default within %s; last lines of its log:\n%s",
		timeout, tail(filepath.Join(cp.st.Dir, "kube-controller-manager.log"), 30))
}

// stop terminates the children (SIGTERM, then SIGKILL after 10 s) and closes etcd.
func (cp *controlPlane) stop() {
	for i := len(cp.children) - 1; i >= 0; i-- {
		c := cp.children[i]
		if c.exited() {
			continue
		}
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
	}
	if cp.etcd != nil {
		cp.etcd.Close()
	}
	if cp.st.Dir != "" {
		_ = os.Remove(filepath.Join(cp.st.Dir, "state.json"))
	}
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
