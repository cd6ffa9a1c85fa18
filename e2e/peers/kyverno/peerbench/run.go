package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

type options struct {
	sizes                                         []int
	unselected                                    int
	repairs, newNamespaces                        int
	idle, settle                                  time.Duration
	convergeTimeout, repairTimeout, tamperTimeout time.Duration
	tamperAt                                      int
	qps, burst, genWorkers                        int
	work, testenvBin, istioCRDs                   string
}

type cpuFigures struct {
	Startup     float64            `json:"startup"`
	Convergence float64            `json:"convergence"`
	Idle        float64            `json:"idle"`
	Total       float64            `json:"total"`
	ByProcess   map[string]float64 `json:"byProcess"`
}

type serverFigures struct {
	PeakRSSMiB float64    `json:"peakRssMiB"`
	CPUSeconds cpuFigures `json:"cpuSeconds"`
}

type runResult struct {
	Peer                string             `json:"peer"`
	Namespaces          int                `json:"namespaces"`
	Settings            map[string]string  `json:"settings"`
	Converged           bool               `json:"converged"`
	ConvergenceSeconds  float64            `json:"convergenceSeconds"`
	ObjectsPresent      int                `json:"objectsPresent"`
	ObjectsWanted       int                `json:"objectsWanted"`
	ObjectsInUnselected int                `json:"objectsInUnselectedNamespaces"`
	PeakRSSMiB          float64            `json:"peakRssMiB"`
	PeakRSSByProcessMiB map[string]float64 `json:"peakRssByProcessMiB"`
	CPUSeconds          cpuFigures         `json:"cpuSeconds"`
	NetworkPolicyDelete latencies          `json:"networkPolicyDeleted"`
	AuthzPolicyEdit     latencies          `json:"authorizationPolicyEdited"`
	NewNamespace        latencies          `json:"newNamespace"`
	Tamper              []attackResult     `json:"tamper,omitempty"`
	IdleSeconds         float64            `json:"idleSeconds"`
	IdleWrites          auditWrites        `json:"idleWrites"`
	APIServer           serverFigures      `json:"apiServer"`
	// Etcd runs inside the testenv process; its figures are that process's.
	Etcd  serverFigures `json:"etcd"`
	Error string        `json:"error,omitempty"`
	// The machine's 1-, 5- and 15-minute load averages when the run began and ended (the
	// machine may be shared).
	LoadAtStart string `json:"loadAtStart"`
	LoadAtEnd   string `json:"loadAtEnd"`
}

func nsName(i int) string { return fmt.Sprintf("tenant-%05d", i) }

// createNamespaces creates the selected and unselected namespaces with a few writers.
func createNamespaces(ctx context.Context, a *applier, selected, unselected int) error {
	// Istio's root namespace, as in any mesh (the baseline's mesh-wide PeerAuthentication
	// goes there).
	objs := []*unstructured.Unstructured{obj("v1", "Namespace", "", "istio-system", nil)}
	for i := 0; i < selected; i++ {
		objs = append(objs, obj("v1", "Namespace", "", nsName(i), map[string]any{
			"metadata": map[string]any{"name": nsName(i), "labels": map[string]any{"mesh": "on", "istio-injection": "enabled"}}}))
	}
	for i := 0; i < unselected; i++ {
		objs = append(objs, obj("v1", "Namespace", "", fmt.Sprintf("other-%03d", i), nil))
	}
	work := make(chan *unstructured.Unstructured)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if err := a.apply(ctx, o); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// spread picks up to n namespaces evenly from selected ones, leaving out the first (the
// tamper set's).
func spread(total, n int) []string {
	var out []string
	if total <= 1 {
		return out
	}
	if n > total-1 {
		n = total - 1
	}
	for i := 0; i < n; i++ {
		out = append(out, nsName(1+i*(total-1)/n))
	}
	return out
}

func runOne(ctx context.Context, o options, p peer, n int, targets []*target) (res runResult) {
	res = runResult{Peer: p.name(), Namespaces: n, LoadAtStart: loadAverage()}
	if err := runPhases(ctx, o, p, n, targets, &res); err != nil {
		res.Error = err.Error()
	}
	res.LoadAtEnd = loadAverage()
	return res
}

func runPhases(ctx context.Context, o options, p peer, n int, targets []*target, res *runResult) error {
	cp, err := startControlPlane(o.testenvBin, filepath.Join(o.work, fmt.Sprintf("%s-%d", p.name(), n)), 1000, 2000)
	if err != nil {
		return err
	}
	defer cp.stop()
	a, err := newApplier(cp)
	if err != nil {
		return err
	}
	tn, drift, err := prepare(ctx, o, cp, a, p, n)
	if err != nil {
		return err
	}
	tr := newTracker(cp.dyn, targets)
	if err := tr.start(ctx); err != nil {
		return err
	}
	selected := make([]string, n)
	for i := range selected {
		selected[i] = nsName(i)
	}
	tr.selectNamespaces(selected)
	apiPid, err := cp.apiserverPid()
	if err != nil {
		return err
	}
	server := newSampler(250 * time.Millisecond)
	server.add("kube-apiserver", apiPid)
	server.add("etcd", cp.st.Pid)
	s := newSampler(250 * time.Millisecond)
	serverCPU0 := server.cpu()
	logf("%s/%d: starting", p.name(), n)
	startErr := p.start(ctx, cp, s)
	defer p.stop()
	res.Settings = p.settings()
	defer finishMemory(s, server, res)
	if startErr != nil {
		return startErr
	}
	if err := converge(ctx, o, p, a, tr, s, server, res); err != nil {
		return err
	}
	if err := driftPhases(ctx, o, cp, tr, tn, targets, drift, n, res); err != nil {
		return err
	}
	if n == o.tamperAt {
		logf("%s/%d: tamper set", p.name(), n)
		if res.Tamper, err = tamperSet(ctx, cp, tr, tn, targets, nsName(0), o.tamperTimeout); err != nil {
			return err
		}
	}
	return idle(o, cp, p, s, server, serverCPU0, res)
}

// prepare installs what both peers share (Istio's CRDs, the namespaces, the tenant's rights)
// and then the peer's own CRDs and configuration; it returns the tenant and the namespaces
// of the drift series.
func prepare(ctx context.Context, o options, cp *controlPlane, a *applier, p peer, n int) (*tenant, []string, error) {
	istio, err := readDocuments(o.istioCRDs)
	if err != nil {
		return nil, nil, err
	}
	if err := a.applyCRDs(ctx, istio); err != nil {
		return nil, nil, err
	}
	logf("%s/%d: creating %d namespaces (+%d unselected)", p.name(), n, n, o.unselected)
	if err := createNamespaces(ctx, a, n, o.unselected); err != nil {
		return nil, nil, err
	}
	drift := spread(n, o.repairs)
	if err := tenantSetup(ctx, a, append([]string{nsName(0)}, drift...)); err != nil {
		return nil, nil, err
	}
	tenantKC, err := cp.kubeconfig(tenantUser)
	if err != nil {
		return nil, nil, err
	}
	tenantCfg, err := cp.clientFor(tenantKC)
	if err != nil {
		return nil, nil, err
	}
	tenantDyn, err := dynamic.NewForConfig(tenantCfg)
	if err != nil {
		return nil, nil, err
	}
	return &tenant{dyn: tenantDyn}, drift, p.setup(ctx, cp, a)
}

// converge applies the policy and waits for every object, with the CPU it took.
func converge(ctx context.Context, o options, p peer, a *applier, tr *tracker, s, server *sampler, res *runResult) error {
	cpu0, server0 := s.cpu(), server.cpu()
	res.CPUSeconds.Startup = sum(cpu0)
	t0, err := p.applyPolicy(ctx, a)
	if err != nil {
		return fmt.Errorf("applying the policy: %w", err)
	}
	logf("%s/%d: policy applied; waiting for %d objects", p.name(), res.Namespaces, 2*res.Namespaces)
	at, ok := tr.waitConverged(ctx, o.convergeTimeout)
	res.Converged = ok
	if ok {
		res.ConvergenceSeconds = at.Sub(t0).Seconds()
	} else {
		res.ConvergenceSeconds = time.Since(t0).Seconds()
	}
	res.ObjectsPresent, res.ObjectsWanted, res.ObjectsInUnselected = tr.counts()
	cpu1, server1 := s.cpu(), server.cpu()
	res.CPUSeconds.Convergence = sum(cpu1) - sum(cpu0)
	res.APIServer.CPUSeconds.Convergence = server1["kube-apiserver"] - server0["kube-apiserver"]
	res.Etcd.CPUSeconds.Convergence = server1["etcd"] - server0["etcd"]
	logf("%s/%d: converged=%v in %.1fs (%d/%d objects)", p.name(), res.Namespaces, ok, res.ConvergenceSeconds, res.ObjectsPresent, res.ObjectsWanted)
	return nil
}

// idle lets the peer settle, then counts its writes in the audit log over the idle window.
func idle(o options, cp *controlPlane, p peer, s, server *sampler, serverCPU0 map[string]float64, res *runResult) error {
	logf("%s/%d: settling %s, then %s idle", p.name(), res.Namespaces, o.settle, o.idle)
	time.Sleep(o.settle)
	offset, cpuI0, serverI0 := auditSize(cp.st.AuditLog), s.cpu(), server.cpu()
	time.Sleep(o.idle)
	cpuI1, serverI1 := s.cpu(), server.cpu()
	res.IdleSeconds = o.idle.Seconds()
	res.CPUSeconds.Idle = sum(cpuI1) - sum(cpuI0)
	res.APIServer.CPUSeconds.Idle = serverI1["kube-apiserver"] - serverI0["kube-apiserver"]
	res.Etcd.CPUSeconds.Idle = serverI1["etcd"] - serverI0["etcd"]
	var err error
	if res.IdleWrites, err = countWrites(cp.st.AuditLog, offset, p.users()); err != nil {
		return err
	}
	res.CPUSeconds.ByProcess = s.cpu()
	res.CPUSeconds.Total = sum(res.CPUSeconds.ByProcess)
	end := server.cpu()
	res.APIServer.CPUSeconds.Total = end["kube-apiserver"] - serverCPU0["kube-apiserver"]
	res.Etcd.CPUSeconds.Total = end["etcd"] - serverCPU0["etcd"]
	return nil
}

func finishMemory(s, server *sampler, res *runResult) {
	res.PeakRSSMiB, res.PeakRSSByProcessMiB = s.stop()
	_, serverPeaks := server.stop()
	res.APIServer.PeakRSSMiB, res.Etcd.PeakRSSMiB = serverPeaks["kube-apiserver"], serverPeaks["etcd"]
}

// driftPhases: generated NetworkPolicies deleted, AuthorizationPolicies edited by the tenant,
// and new namespaces created, each timed from the write to the watch event of the repair.
func driftPhases(ctx context.Context, o options, cp *controlPlane, tr *tracker, tn *tenant, targets []*target, drift []string, n int, res *runResult) error {
	ap, np := targets[0], targets[1]
	var err error
	logf("%s/%d: %d NetworkPolicy deletions", res.Peer, n, len(drift))
	res.NetworkPolicyDelete, err = repairSeries(ctx, tr, np, drift, o.repairTimeout, func(ns string) error {
		return tn.delete(ctx, np, ns)
	})
	if err != nil {
		return err
	}
	logf("%s/%d: %d AuthorizationPolicy edits", res.Peer, n, len(drift))
	edit := map[string]any{"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"nothing": "matches"}}, "rules": nil}}
	res.AuthzPolicyEdit, err = repairSeries(ctx, tr, ap, drift, o.repairTimeout, func(ns string) error {
		_, err := tn.mergePatch(ctx, ap, ns, edit)
		return err
	})
	if err != nil {
		return err
	}
	logf("%s/%d: %d new namespaces", res.Peer, n, o.newNamespaces)
	res.NewNamespace, err = newNamespaces(ctx, cp, tr, targets, o.newNamespaces, o.repairTimeout)
	return err
}

// newNamespaces creates selected namespaces one at a time and times until both objects are in.
func newNamespaces(ctx context.Context, cp *controlPlane, tr *tracker, targets []*target, count int, timeout time.Duration) (latencies, error) {
	l := latencies{TimeoutSeconds: timeout.Seconds()}
	a, err := newApplier(cp)
	if err != nil {
		return l, err
	}
	for i := 0; i < count; i++ {
		ns := fmt.Sprintf("new-%03d", i)
		tr.selectNamespaces([]string{ns})
		var waits []<-chan time.Time
		for _, t := range targets {
			waits = append(waits, tr.nextGood(t.short, ns))
		}
		began := time.Now()
		if err := a.apply(ctx, obj("v1", "Namespace", "", ns, map[string]any{
			"metadata": map[string]any{"name": ns, "labels": map[string]any{"mesh": "on"}}})); err != nil {
			return l, err
		}
		var last time.Time
		ok := true
		deadline := time.After(timeout)
		for _, w := range waits {
			select {
			case at := <-w:
				if at.After(last) {
					last = at
				}
			case <-deadline:
				ok = false
			}
			if !ok {
				break
			}
		}
		for _, t := range targets {
			tr.cancel(t.short, ns)
		}
		l.add(last.Sub(began), ok)
		if l.Repaired == 0 && l.Attempts >= 3 {
			l.StoppedEarly = true
			break
		}
	}
	l.finish()
	return l, nil
}
