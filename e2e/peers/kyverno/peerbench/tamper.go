package main

import (
	"context"
	"fmt"
	"reflect"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// attackResult is what one tamper attempt came to.
type attackResult struct {
	Target string `json:"target"`
	Attack string `json:"attack"`
	// Outcome: "undone", "not undone", "refused" (the API server or a webhook said no),
	// "no effect" (the write changed nothing the check looks at), "n/a".
	Outcome string  `json:"outcome"`
	Ms      float64 `json:"ms,omitempty"`
	Detail  string  `json:"detail,omitempty"`
}

// The fields a tenant switches each kind off with, as the operator's own tamper scenarios
// do: an added selector that matches nothing, and the rules (or egress) removed.
type tamperFields struct {
	addPath  []string
	addValue any
	remove   string
}

var fieldsOf = map[string]tamperFields{
	"AuthorizationPolicy": {[]string{"selector"}, map[string]any{"matchLabels": map[string]any{"nothing": "matches"}}, "rules"},
	"NetworkPolicy":       {[]string{"podSelector", "matchLabels"}, map[string]any{"none": "x"}, "egress"},
}

func nest(path []string, v any) map[string]any {
	out := map[string]any{path[len(path)-1]: v}
	for i := len(path) - 2; i >= 0; i-- {
		out = map[string]any{path[i]: out}
	}
	return out
}

func setPath(spec map[string]any, path []string, v any) {
	m := spec
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

type check int

const (
	checkSpec check = iota
	checkLabels
	checkOwners
)

type attack struct {
	name  string
	check check
	// prelude runs before the timed write (and is not timed).
	prelude func(ctx context.Context) error
	do      func(ctx context.Context) (*unstructured.Unstructured, error)
}

func attacks(tn *tenant, t *target, ns string, snap *unstructured.Unstructured) []attack {
	f := fieldsOf[t.short]
	add := nest(f.addPath, f.addValue)
	addName, rm := "spec."+joinDot(f.addPath), "spec."+f.remove
	nullLabels := map[string]any{}
	for k := range snap.GetLabels() {
		nullLabels[k] = nil
	}
	return []attack{
		{"delete", checkSpec, nil, func(ctx context.Context) (*unstructured.Unstructured, error) {
			return nil, tn.delete(ctx, t, ns)
		}},
		{"merge patch adds " + addName, checkSpec, nil, func(ctx context.Context) (*unstructured.Unstructured, error) {
			return tn.mergePatch(ctx, t, ns, map[string]any{"spec": add})
		}},
		{"JSON patch adds " + addName, checkSpec, nil, func(ctx context.Context) (*unstructured.Unstructured, error) {
			return tn.jsonPatch(ctx, t, ns, []any{map[string]any{"op": "add", "path": "/spec/" + joinSlash(f.addPath), "value": f.addValue}})
		}},
		{"PUT adds " + addName, checkSpec, nil, func(ctx context.Context) (*unstructured.Unstructured, error) {
			return tn.put(ctx, t, ns, func(s map[string]any) { setPath(s, f.addPath, f.addValue) })
		}},
		{"server-side apply (another manager) adds " + addName, checkSpec, nil, func(ctx context.Context) (*unstructured.Unstructured, error) {
			return tn.apply(ctx, t, ns, add, false)
		}},
		{"merge patch removes " + rm, checkSpec, nil, func(ctx context.Context) (*unstructured.Unstructured, error) {
			return tn.mergePatch(ctx, t, ns, map[string]any{"spec": map[string]any{f.remove: nil}})
		}},
		{"JSON patch removes " + rm, checkSpec, nil, func(ctx context.Context) (*unstructured.Unstructured, error) {
			return tn.jsonPatch(ctx, t, ns, []any{map[string]any{"op": "remove", "path": "/spec/" + f.remove}})
		}},
		{"PUT removes " + rm, checkSpec, nil, func(ctx context.Context) (*unstructured.Unstructured, error) {
			return tn.put(ctx, t, ns, func(s map[string]any) { delete(s, f.remove) })
		}},
		{"forced server-side apply empties " + rm, checkSpec, nil, func(ctx context.Context) (*unstructured.Unstructured, error) {
			return tn.apply(ctx, t, ns, map[string]any{f.remove: []any{}}, true)
		}},
		{"merge patch removes the peer's labels", checkLabels, nil, func(ctx context.Context) (*unstructured.Unstructured, error) {
			return tn.mergePatch(ctx, t, ns, map[string]any{"metadata": map[string]any{"labels": nullLabels}})
		}},
		{"merge patch removes ownerReferences", checkOwners, nil, func(ctx context.Context) (*unstructured.Unstructured, error) {
			if len(snap.GetOwnerReferences()) == 0 {
				return nil, errNotApplicable
			}
			return tn.mergePatch(ctx, t, ns, map[string]any{"metadata": map[string]any{"ownerReferences": nil}})
		}},
		{"labels removed, then merge patch removes " + rm, checkSpec, func(ctx context.Context) error {
			if _, err := tn.mergePatch(ctx, t, ns, map[string]any{"metadata": map[string]any{"labels": nullLabels}}); err != nil {
				return err
			}
			// Whatever the peer does about the labels happens before the timed edit.
			time.Sleep(2 * time.Second)
			return nil
		}, func(ctx context.Context) (*unstructured.Unstructured, error) {
			return tn.mergePatch(ctx, t, ns, map[string]any{"spec": map[string]any{f.remove: nil}})
		}},
	}
}

var errNotApplicable = fmt.Errorf("not applicable")

func joinDot(p []string) string   { return joinWith(p, ".") }
func joinSlash(p []string) string { return joinWith(p, "/") }
func joinWith(p []string, sep string) string {
	out := ""
	for i, s := range p {
		if i > 0 {
			out += sep
		}
		out += s
	}
	return out
}

// tamperSet runs every attack on both kinds in namespace ns, restoring the object (as the
// admin) before each attack that follows one the peer did not undo.
func tamperSet(ctx context.Context, cp *controlPlane, tr *tracker, tn *tenant, targets []*target, ns string, timeout time.Duration) ([]attackResult, error) {
	var out []attackResult
	for _, t := range targets {
		ri := cp.dyn.Resource(t.gvr).Namespace(ns)
		snap, err := ri.Get(ctx, t.name, metav1.GetOptions{})
		if err != nil {
			return out, fmt.Errorf("tamper set: %s %s/%s: %w", t.short, ns, t.name, err)
		}
		for _, a := range attacks(tn, t, ns, snap) {
			if err := restore(ctx, cp, tr, t, ns, snap); err != nil {
				return out, err
			}
			r := runAttack(ctx, cp, tr, t, ns, snap, a, timeout)
			r.Target = t.short
			out = append(out, r)
		}
		if err := restore(ctx, cp, tr, t, ns, snap); err != nil {
			return out, err
		}
	}
	return out, nil
}

func metaMatches(live, snap *unstructured.Unstructured, c check) bool {
	switch c {
	case checkLabels:
		return reflect.DeepEqual(live.GetLabels(), snap.GetLabels())
	case checkOwners:
		return reflect.DeepEqual(live.GetOwnerReferences(), snap.GetOwnerReferences())
	}
	return true
}

func runAttack(ctx context.Context, cp *controlPlane, tr *tracker, t *target, ns string, snap *unstructured.Unstructured, a attack, timeout time.Duration) attackResult {
	r := attackResult{Attack: a.name}
	if a.prelude != nil {
		if err := a.prelude(ctx); err != nil {
			r.Outcome, r.Detail = "refused", err.Error()
			return r
		}
	}
	next := tr.nextGood(t.short, ns)
	defer tr.cancel(t.short, ns)
	began := time.Now()
	res, err := a.do(ctx)
	switch {
	case err == errNotApplicable:
		r.Outcome, r.Detail = "n/a", "the peer sets no ownerReference"
		return r
	case err != nil:
		r.Outcome, r.Detail = "refused", err.Error()
		return r
	}
	if a.check == checkSpec {
		if res != nil && t.good(res) {
			r.Outcome = "no effect"
			return r
		}
		select {
		case at := <-next:
			r.Outcome, r.Ms = "undone", float64(at.Sub(began).Microseconds())/1000
		case <-time.After(timeout):
			r.Outcome = "not undone"
		}
		return r
	}
	if res != nil && metaMatches(res, snap, a.check) {
		r.Outcome = "no effect"
		return r
	}
	ri := cp.dyn.Resource(t.gvr).Namespace(ns)
	deadline := began.Add(timeout)
	for time.Now().Before(deadline) {
		live, err := ri.Get(ctx, t.name, metav1.GetOptions{})
		if err == nil && metaMatches(live, snap, a.check) {
			r.Outcome, r.Ms = "undone", float64(time.Since(began).Microseconds())/1000
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Outcome = "not undone"
	return r
}

// restore puts the object back as it was generated (spec, labels, ownerReferences) when it
// is not, and waits until the watch sees it good.
func restore(ctx context.Context, cp *controlPlane, tr *tracker, t *target, ns string, snap *unstructured.Unstructured) error {
	ri := cp.dyn.Resource(t.gvr).Namespace(ns)
	live, err := ri.Get(ctx, t.name, metav1.GetOptions{})
	switch {
	case ignoreNotFound(err) != nil:
		return err
	case err != nil:
		fresh := snap.DeepCopy()
		fresh.SetResourceVersion("")
		fresh.SetUID("")
		fresh.SetManagedFields(nil)
		fresh.SetCreationTimestamp(metav1.Time{})
		if _, err := ri.Create(ctx, fresh, metav1.CreateOptions{FieldManager: "peerbench"}); ignoreAlreadyExists(err) != nil {
			return fmt.Errorf("restore %s %s/%s: %w", t.short, ns, t.name, err)
		}
	case !t.good(live) || !metaMatches(live, snap, checkLabels) || !metaMatches(live, snap, checkOwners):
		live.Object["spec"] = snap.Object["spec"]
		live.SetLabels(snap.GetLabels())
		live.SetOwnerReferences(snap.GetOwnerReferences())
		if _, err := ri.Update(ctx, live, metav1.UpdateOptions{FieldManager: "peerbench"}); err != nil {
			return fmt.Errorf("restore %s %s/%s: %w", t.short, ns, t.name, err)
		}
	default:
		return nil
	}
	if err := waitFor(ctx, 30*time.Second, "restored "+t.short+" seen good", func() (bool, error) {
		return tr.isGood(t.short, ns), nil
	}); err != nil {
		return err
	}
	// Let the peer's reaction to the restoring write pass before the next attack.
	time.Sleep(2 * time.Second)
	return nil
}
