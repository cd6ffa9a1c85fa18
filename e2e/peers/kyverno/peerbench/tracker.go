package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

type key struct {
	kind, ns string
}

// tracker watches both generated kinds in every namespace and knows, per (kind, namespace),
// whether the live object is what it must be. Times are taken when the watch event arrives.
type tracker struct {
	mu       sync.Mutex
	targets  map[string]*target
	selected map[string]bool
	good     map[key]bool
	// goodSelected counts good objects in selected namespaces; stray counts objects of
	// either name in namespaces that are not selected.
	goodSelected int
	stray        map[key]bool
	want         int
	convergedAt  time.Time
	waiters      map[key][]chan time.Time
	factory      dynamicinformer.DynamicSharedInformerFactory
}

func newTracker(dyn dynamic.Interface, targets []*target) *tracker {
	t := &tracker{
		targets:  map[string]*target{},
		selected: map[string]bool{},
		good:     map[key]bool{},
		stray:    map[key]bool{},
		waiters:  map[key][]chan time.Time{},
		factory:  dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0),
	}
	for _, tg := range targets {
		tg := tg
		t.targets[tg.short] = tg
		inf := t.factory.ForResource(tg.gvr).Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { t.observe(tg, o, false) },
			UpdateFunc: func(_, o any) { t.observe(tg, o, false) },
			DeleteFunc: func(o any) { t.observe(tg, o, true) },
		})
	}
	return t
}

func (t *tracker) start(ctx context.Context) error {
	t.factory.Start(ctx.Done())
	for gvr, ok := range t.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("watch of %s did not sync", gvr.Resource)
		}
	}
	return nil
}

// selectNamespaces sets the namespaces that must hold both objects (before the policy).
func (t *tracker) selectNamespaces(names []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		t.selected[n] = true
	}
	t.want = len(t.selected) * len(t.targets)
	t.recount()
}

func (t *tracker) recount() {
	t.goodSelected = 0
	for k, g := range t.good {
		if g && t.selected[k.ns] {
			t.goodSelected++
		}
	}
}

func (t *tracker) observe(tg *target, o any, deleted bool) {
	now := time.Now()
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o, deleted = d.Obj, true
	}
	u, ok := o.(*unstructured.Unstructured)
	if !ok || u.GetName() != tg.name {
		return
	}
	k := key{tg.short, u.GetNamespace()}
	good := !deleted && tg.good(u)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.selected[k.ns] {
		if deleted {
			delete(t.stray, k)
		} else {
			t.stray[k] = true
		}
		return
	}
	was := t.good[k]
	t.good[k] = good
	switch {
	case good && !was:
		t.goodSelected++
		for _, w := range t.waiters[k] {
			w <- now
		}
		delete(t.waiters, k)
	case !good && was:
		t.goodSelected--
	}
	if t.want > 0 && t.goodSelected == t.want && t.convergedAt.IsZero() {
		t.convergedAt = now
	}
	if t.goodSelected < t.want {
		t.convergedAt = time.Time{}
	}
}

// counts returns the good objects in selected namespaces, how many are wanted, and the
// objects in namespaces that are not selected.
func (t *tracker) counts() (good, want, stray int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.goodSelected, t.want, len(t.stray)
}

func (t *tracker) isGood(kind, ns string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.good[key{kind, ns}]
}

// nextGood registers for the next time (kind, ns) turns good from not good.
func (t *tracker) nextGood(kind, ns string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{kind, ns}
	t.waiters[k] = append(t.waiters[k], ch)
	return ch
}

func (t *tracker) cancel(kind, ns string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.waiters, key{kind, ns})
}

// waitConverged waits until every selected namespace holds both good objects, and returns
// when that happened (the watch event of the last one).
func (t *tracker) waitConverged(ctx context.Context, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		t.mu.Lock()
		at := t.convergedAt
		t.mu.Unlock()
		if !at.IsZero() {
			return at, true
		}
		select {
		case <-ctx.Done():
			return time.Time{}, false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return time.Time{}, false
}
