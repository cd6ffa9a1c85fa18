// Command testenv runs a local Kubernetes control plane on loopback for MeshBaseline's
// end-to-end suite: etcd (embedded), kube-apiserver and kube-controller-manager, built from
// the Go modules of Kubernetes and etcd (see build.sh). No container, no node, no kubelet.
//
//	testenv up   --dir D                  start; stay in the foreground until SIGINT/SIGTERM
//	testenv run  --dir D -- CMD ARGS...   start, run CMD with KUBECONFIG set, stop; CMD's exit code
//	testenv down --dir D                  stop the control plane that `up` started in D
//	testenv kubeconfig --dir D --user NAME [--group G]... --out FILE
//	testenv kubeconfig --dir D --serviceaccount NS/NAME [--ttl 24h] --out FILE
package main

import (
	"errors"
	"flag"
	"fmt"
	neturl "net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type url = neturl.URL

func mustURL(s string) url {
	u, err := neturl.Parse(s)
	if err != nil {
		// Only called with URLs built from "http://127.0.0.1:<port>".
		panic(err)
	}
	return *u
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = cmdUp(os.Args[2:])
	case "run":
		var code int
		code, err = cmdRun(os.Args[2:])
		if err == nil {
			os.Exit(code)
		}
	case "down":
		err = cmdDown(os.Args[2:])
	case "kubeconfig":
		err = cmdKubeconfig(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: testenv up|run|down|kubeconfig --dir DIR ... (see the package doc)")
	os.Exit(2)
}

func defaultBinDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "."
	}
	return filepath.Dir(exe)
}

type upFlags struct {
	dir, binDir string
	port        int
}

func parseUp(name string, args []string) (*upFlags, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := &upFlags{}
	fs.StringVar(&f.dir, "dir", "target/testenv/cluster", "state directory (PKI, etcd data, logs, kubeconfigs)")
	fs.StringVar(&f.binDir, "bin-dir", defaultBinDir(), "directory of kube-apiserver and kube-controller-manager")
	fs.IntVar(&f.port, "port", 0, "kube-apiserver port on 127.0.0.1 (0: a free port)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	return f, fs.Args(), nil
}

func cmdUp(args []string) error {
	f, _, err := parseUp("up", args)
	if err != nil {
		return err
	}
	began := time.Now()
	cp, err := start(f.dir, f.binDir, f.port)
	if err != nil {
		return err
	}
	fmt.Printf("control plane ready in %.1fs: %s\nKUBECONFIG=%s\naudit log: %s\n",
		time.Since(began).Seconds(), cp.st.Server, cp.st.AdminKubeconfig, cp.st.AuditLog)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	cp.stop()
	fmt.Println("control plane stopped")
	return nil
}

func cmdRun(args []string) (int, error) {
	f, rest, err := parseUp("run", args)
	if err != nil {
		return 0, err
	}
	if len(rest) == 0 {
		return 0, errors.New("no command after --")
	}
	began := time.Now()
	cp, err := start(f.dir, f.binDir, f.port)
	if err != nil {
		return 0, err
	}
	defer cp.stop()
	fmt.Fprintf(os.Stderr, "testenv: control plane ready in %.1fs at %s\n", time.Since(began).Seconds(), cp.st.Server)
	cmd := exec.Command(rest[0], rest[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+cp.st.AdminKubeconfig,
		"MESHBASELINE_E2E_KUBECONFIG="+cp.st.AdminKubeconfig,
		"MESHBASELINE_TESTENV_DIR="+cp.st.Dir,
	)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go func() {
		if s, ok := <-signals; ok && cmd.Process != nil {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(signals)
	close(signals)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

func cmdDown(args []string) error {
	f, _, err := parseUp("down", args)
	if err != nil {
		return err
	}
	st, err := readState(f.dir)
	if err != nil {
		return err
	}
	if err := syscall.Kill(st.Pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal testenv process %d: %w", st.Pid, err)
	}
	for i := 0; i < 300; i++ {
		if syscall.Kill(st.Pid, 0) != nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("testenv process %d still running after 30s", st.Pid)
}

func cmdKubeconfig(args []string) error {
	fs := flag.NewFlagSet("kubeconfig", flag.ContinueOnError)
	dir := fs.String("dir", "target/testenv/cluster", "state directory of a running control plane")
	user := fs.String("user", "", "a plain user (client certificate)")
	sa := fs.String("serviceaccount", "", "NAMESPACE/NAME of an existing ServiceAccount (bound token)")
	ttl := fs.Duration("ttl", 24*time.Hour, "token lifetime (serviceaccount)")
	out := fs.String("out", "", "kubeconfig to write")
	var groups stringList
	fs.Var(&groups, "group", "a group of --user (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || (*user == "") == (*sa == "") {
		return errors.New("need --out and exactly one of --user or --serviceaccount")
	}
	st, err := readState(*dir)
	if err != nil {
		return err
	}
	if *user != "" {
		return mintUser(st, *user, groups, *out)
	}
	ns, name, ok := strings.Cut(*sa, "/")
	if !ok || ns == "" || name == "" {
		return fmt.Errorf("--serviceaccount %q: want NAMESPACE/NAME", *sa)
	}
	return mintServiceAccount(st, ns, name, *out, *ttl)
}
