package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

const tenantUser = "tenant"

// tenantSetup lets the tenant user edit Istio's kinds where it has `edit` (as a platform team
// grants its tenants) and binds `edit` in the given namespaces.
func tenantSetup(ctx context.Context, a *applier, namespaces []string) error {
	objs := []*unstructured.Unstructured{obj("rbac.authorization.k8s.io/v1", "ClusterRole", "", "peerbench-istio-edit", map[string]any{
		"metadata": map[string]any{"name": "peerbench-istio-edit", "labels": map[string]any{"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
		"rules": []any{map[string]any{
			"apiGroups": []any{"security.istio.io", "networking.istio.io"}, "resources": []any{"*"},
			"verbs": []any{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"},
		}},
	})}
	for _, ns := range namespaces {
		objs = append(objs, obj("rbac.authorization.k8s.io/v1", "RoleBinding", ns, "tenant-edit", map[string]any{
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
			"subjects": []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": tenantUser}},
		}))
	}
	return a.applyAll(ctx, objs)
}

// tenant makes writes as the tenant user.
type tenant struct {
	dyn dynamic.Interface
}

func (tn *tenant) ri(t *target, ns string) dynamic.ResourceInterface {
	return tn.dyn.Resource(t.gvr).Namespace(ns)
}

var tenantPatch = metav1.PatchOptions{FieldManager: "tenant-tool"}

func (tn *tenant) delete(ctx context.Context, t *target, ns string) error {
	return tn.ri(t, ns).Delete(ctx, t.name, metav1.DeleteOptions{})
}

func (tn *tenant) mergePatch(ctx context.Context, t *target, ns string, patch map[string]any) (*unstructured.Unstructured, error) {
	data, _ := json.Marshal(patch)
	return tn.ri(t, ns).Patch(ctx, t.name, types.MergePatchType, data, tenantPatch)
}

func (tn *tenant) jsonPatch(ctx context.Context, t *target, ns string, ops []any) (*unstructured.Unstructured, error) {
	data, _ := json.Marshal(ops)
	return tn.ri(t, ns).Patch(ctx, t.name, types.JSONPatchType, data, tenantPatch)
}

func (tn *tenant) put(ctx context.Context, t *target, ns string, edit func(spec map[string]any)) (*unstructured.Unstructured, error) {
	live, err := tn.ri(t, ns).Get(ctx, t.name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	spec, _ := live.Object["spec"].(map[string]any)
	edit(spec)
	return tn.ri(t, ns).Update(ctx, live, metav1.UpdateOptions{FieldManager: "tenant-tool"})
}

// apply server-side applies spec fields as another manager; a conflict with the peer's
// fields is forced when force is false, as a tenant would.
func (tn *tenant) apply(ctx context.Context, t *target, ns string, spec map[string]any, force bool) (*unstructured.Unstructured, error) {
	live, err := tn.ri(t, ns).Get(ctx, t.name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	body := map[string]any{"apiVersion": live.GetAPIVersion(), "kind": live.GetKind(),
		"metadata": map[string]any{"name": t.name, "namespace": ns}, "spec": spec}
	data, _ := json.Marshal(body)
	opts := metav1.PatchOptions{FieldManager: "tenant-tool", Force: &force}
	out, err := tn.ri(t, ns).Patch(ctx, t.name, types.ApplyPatchType, data, opts)
	if apierrors.IsConflict(err) && !force {
		return tn.apply(ctx, t, ns, spec, true)
	}
	return out, err
}

// latencies summarises repair times (milliseconds) of a series of attempts.
type latencies struct {
	Attempts       int     `json:"attempts"`
	Repaired       int     `json:"repaired"`
	TimeoutSeconds float64 `json:"timeoutSeconds"`
	P50ms          float64 `json:"p50Ms"`
	P99ms          float64 `json:"p99Ms"`
	MaxMs          float64 `json:"maxMs"`
	StoppedEarly   bool    `json:"stoppedEarly,omitempty"`
	samples        []float64
}

func (l *latencies) add(d time.Duration, ok bool) {
	l.Attempts++
	if ok {
		l.Repaired++
		l.samples = append(l.samples, float64(d.Microseconds())/1000)
	}
}

func (l *latencies) finish() {
	if len(l.samples) == 0 {
		return
	}
	sort.Float64s(l.samples)
	q := func(p float64) float64 {
		i := int(p*float64(len(l.samples))+0.999999) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(l.samples) {
			i = len(l.samples) - 1
		}
		return l.samples[i]
	}
	l.P50ms, l.P99ms, l.MaxMs = q(0.50), q(0.99), l.samples[len(l.samples)-1]
}

// repairSeries runs tamper in each namespace in turn and times the repair seen on the watch.
// It gives up after `giveUp` consecutive attempts without one repair.
func repairSeries(ctx context.Context, tr *tracker, t *target, namespaces []string, timeout time.Duration,
	tamper func(ns string) error) (latencies, error) {
	l := latencies{TimeoutSeconds: timeout.Seconds()}
	const giveUp = 3
	for _, ns := range namespaces {
		if !tr.isGood(t.short, ns) {
			continue
		}
		next := tr.nextGood(t.short, ns)
		began := time.Now()
		if err := tamper(ns); err != nil {
			tr.cancel(t.short, ns)
			return l, fmt.Errorf("%s in %s: %w", t.short, ns, err)
		}
		select {
		case at := <-next:
			l.add(at.Sub(began), true)
		case <-time.After(timeout):
			tr.cancel(t.short, ns)
			l.add(0, false)
		case <-ctx.Done():
			return l, ctx.Err()
		}
		if l.Repaired == 0 && l.Attempts >= giveUp {
			l.StoppedEarly = true
			break
		}
	}
	l.finish()
	return l, nil
}
