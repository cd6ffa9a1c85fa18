// Command peerbench runs the same workload against MeshBaseline and Kyverno, each alone on a
// fresh local control plane (e2e/testenv), at several namespace counts, and writes the raw
// figures as JSON and a Markdown table. See e2e/peers/kyverno/run.sh and docs/peers.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s peerbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

type results struct {
	Started   string            `json:"started"`
	Command   string            `json:"command"`
	Machine   map[string]string `json:"machine"`
	Versions  map[string]string `json:"versions"`
	Workload  map[string]any    `json:"workload"`
	Runs      []runResult       `json:"runs"`
	Converged bool              `json:"allConverged"`
}

func main() {
	var (
		o                                                       options
		sizes, peers, out, table, versions                      string
		mbBin, mbCRD, baseline, kyvernoBin, kyvernoCRDs, policy string
		requireConvergence                                      bool
	)
	flag.StringVar(&sizes, "namespaces", "100,1000,5000", "namespace counts, comma-separated")
	flag.StringVar(&peers, "peers", "meshbaseline,kyverno", "peers to run, in this order")
	flag.IntVar(&o.unselected, "unselected", 10, "namespaces the selector does not select")
	flag.IntVar(&o.repairs, "repairs", 100, "drift repairs of each kind")
	flag.IntVar(&o.newNamespaces, "new-namespaces", 10, "namespaces created after convergence")
	flag.DurationVar(&o.idle, "idle", 10*time.Minute, "idle window whose writes are counted")
	flag.DurationVar(&o.settle, "settle", 30*time.Second, "quiet time before the idle window")
	flag.DurationVar(&o.convergeTimeout, "converge-timeout", 30*time.Minute, "give up on convergence after")
	flag.DurationVar(&o.repairTimeout, "repair-timeout", 30*time.Second, "give up on one repair after")
	flag.DurationVar(&o.tamperTimeout, "tamper-timeout", 30*time.Second, "give up on undoing one attack after")
	flag.IntVar(&o.tamperAt, "tamper-at", 0, "namespace count whose runs include the tamper set (default: the smallest)")
	flag.IntVar(&o.qps, "qps", 300, "client QPS of every peer process")
	flag.IntVar(&o.burst, "burst", 300, "client burst of every peer process")
	flag.IntVar(&o.genWorkers, "gen-workers", 20, "Kyverno background controller --genWorkers")
	flag.StringVar(&o.work, "work", "target/peers/work", "state directories and logs")
	flag.StringVar(&o.testenvBin, "testenv-bin", "target/testenv/bin", "directory of testenv, kube-apiserver, kube-controller-manager")
	flag.StringVar(&o.istioCRDs, "istio-crds", "", "Istio's CRDs (shared/istio/crds.yaml)")
	flag.StringVar(&mbBin, "meshbaseline", "target/release/meshbaseline", "the meshbaseline binary")
	flag.StringVar(&mbCRD, "meshbaseline-crd", "crds/meshbaselines.meshbaseline.dev.yaml", "the MeshBaseline CRD")
	flag.StringVar(&baseline, "baseline", "e2e/peers/kyverno/baseline.yaml", "the MeshBaseline of the workload")
	flag.StringVar(&kyvernoBin, "kyverno-bin", "target/peers/kyverno/bin", "directory of kyverno and background-controller")
	flag.StringVar(&kyvernoCRDs, "kyverno-crds", "", "Kyverno's config/crds directory (of the pinned module)")
	flag.StringVar(&policy, "policy", "e2e/peers/kyverno/policy.yaml", "the Kyverno ClusterPolicy of the workload")
	flag.StringVar(&out, "out", "", "JSON file for the raw figures")
	flag.StringVar(&table, "table", "", "Markdown file for the table")
	flag.StringVar(&versions, "versions", "", "name=version pairs to record, comma-separated")
	flag.BoolVar(&requireConvergence, "require-convergence", false, "exit 1 unless every peer converged at every size")
	renderFrom := flag.String("render-from", "", "only write --table from this results file (no run)")
	flag.Parse()
	if *renderFrom != "" {
		if err := render(*renderFrom, table); err != nil {
			fmt.Fprintln(os.Stderr, "peerbench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o, sizes, peers, out, table, versions, mbBin, mbCRD, baseline, kyvernoBin, kyvernoCRDs, policy, requireConvergence); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		os.Exit(1)
	}
}

func run(o options, sizes, peers, out, table, versions, mbBin, mbCRD, baseline, kyvernoBin, kyvernoCRDs, policy string, requireConvergence bool) error {
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return fmt.Errorf("--namespaces: %q is not a count of at least 2", s)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.tamperAt == 0 {
		o.tamperAt = o.sizes[0]
		for _, n := range o.sizes {
			o.tamperAt = min(o.tamperAt, n)
		}
	}
	if o.istioCRDs == "" || kyvernoCRDs == "" || out == "" || table == "" {
		return fmt.Errorf("--istio-crds, --kyverno-crds, --out and --table are required")
	}
	targets, err := desiredTargets(mbBin, baseline)
	if err != nil {
		return err
	}
	pol, err := readDocuments(policy)
	if err != nil {
		return err
	}
	if len(pol) != 1 {
		return fmt.Errorf("%s: want one ClusterPolicy", policy)
	}
	if err := checkPolicy(pol[0], targets); err != nil {
		return fmt.Errorf("%s: %w", policy, err)
	}
	var ps []peer
	for _, name := range strings.Split(peers, ",") {
		switch strings.TrimSpace(name) {
		case "meshbaseline":
			ps = append(ps, &meshbaselinePeer{bin: mbBin, crd: mbCRD, baseline: baseline, qps: o.qps, burst: o.burst})
		case "kyverno":
			ps = append(ps, &kyvernoPeer{binDir: kyvernoBin, crdDir: kyvernoCRDs, policy: policy, qps: o.qps, burst: o.burst, genWorkers: o.genWorkers})
		default:
			return fmt.Errorf("--peers: unknown peer %q", name)
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		return err
	}
	r := results{
		Started:  time.Now().UTC().Format(time.RFC3339),
		Command:  strings.Join(os.Args, " "),
		Machine:  machine(),
		Versions: parsePairs(versions),
		Workload: map[string]any{
			"namespaces": o.sizes, "unselectedNamespaces": o.unselected, "repairsOfEachKind": o.repairs,
			"newNamespaces": o.newNamespaces, "idleSeconds": o.idle.Seconds(), "tamperAt": o.tamperAt,
			"clientQPS": o.qps, "clientBurst": o.burst, "repairTimeoutSeconds": o.repairTimeout.Seconds(),
			"tamperTimeoutSeconds": o.tamperTimeout.Seconds(), "convergeTimeoutSeconds": o.convergeTimeout.Seconds(),
		},
		Converged: true,
	}
	for _, n := range o.sizes {
		for _, p := range ps {
			res := runOne(ctx, o, p, n, targets)
			if res.Error != "" {
				logf("%s/%d: %s", p.name(), n, res.Error)
			}
			r.Converged = r.Converged && res.Converged && res.Error == ""
			r.Runs = append(r.Runs, res)
			// Written after every run, so a long run that is stopped keeps what it measured.
			if err := write(out, table, &r); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	if requireConvergence && !r.Converged {
		return fmt.Errorf("not every peer converged at every size (see %s)", out)
	}
	return nil
}

func write(out, table string, r *results) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	for _, p := range []string{out, table} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(table, []byte(markdown(r)), 0o644)
}

func render(from, table string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	return os.WriteFile(table, []byte(markdown(&r)), 0o644)
}

func parsePairs(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func machine() map[string]string {
	m := map[string]string{"cpus": strconv.Itoa(runtime.NumCPU()), "goos": runtime.GOOS, "goarch": runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(data), "\n"); ok {
			m["memory"] = strings.Join(strings.Fields(strings.TrimPrefix(line, "MemTotal:")), " ")
		}
	}
	m["loadAtStart"] = loadAverage()
	return m
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}
