package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

var (
	apGVR  = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
	npGVR  = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// target is one kind of generated object: its resource, its name and the spec both peers
// must produce in every selected namespace.
type target struct {
	short string // "AuthorizationPolicy", "NetworkPolicy"
	gvr   schema.GroupVersionResource
	name  string
	spec  any // normalised through JSON
}

// normalise makes two decoded documents comparable (numbers as float64, empty maps kept).
func normalise(v any) any {
	data, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(data, &out) != nil {
		return v
	}
	return out
}

func (t *target) good(obj *unstructured.Unstructured) bool {
	if obj == nil || obj.GetName() != t.name || obj.GetDeletionTimestamp() != nil {
		return false
	}
	return reflect.DeepEqual(normalise(obj.Object["spec"]), t.spec)
}

// readDocuments decodes a multi-document YAML or JSON file.
func readDocuments(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeDocuments(data, path)
}

func decodeDocuments(data []byte, what string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := map[string]any{}
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// desiredTargets renders the baseline with `meshbaseline render` for one namespace and takes
// the two per-namespace objects from it: what both peers must generate.
func desiredTargets(meshbaseline, baseline string) ([]*target, error) {
	dir, err := os.MkdirTemp("", "peerbench-render-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// A namespace with the label every benchmark namespace has.
	ns := "apiVersion: v1\nkind: Namespace\nmetadata: {name: peer-probe, labels: {mesh: \"on\"}}\n"
	if err := os.WriteFile(filepath.Join(dir, "ns.yaml"), []byte(ns), 0o600); err != nil {
		return nil, err
	}
	out, err := exec.Command(meshbaseline, "render", "--baseline", baseline, "--cluster", dir).Output()
	if err != nil {
		return nil, fmt.Errorf("meshbaseline render --baseline %s: %w", baseline, err)
	}
	docs, err := decodeDocuments(out, "meshbaseline render")
	if err != nil {
		return nil, err
	}
	var ts []*target
	for _, want := range []struct {
		kind string
		gvr  schema.GroupVersionResource
	}{{"AuthorizationPolicy", apGVR}, {"NetworkPolicy", npGVR}} {
		for _, d := range docs {
			if d.GetKind() == want.kind && d.GetNamespace() == "peer-probe" {
				ts = append(ts, &target{short: want.kind, gvr: want.gvr, name: d.GetName(), spec: normalise(d.Object["spec"])})
			}
		}
	}
	if len(ts) != 2 {
		return nil, fmt.Errorf("%s renders %d per-namespace AuthorizationPolicy/NetworkPolicy objects, want 2", baseline, len(ts))
	}
	return ts, nil
}

// checkPolicy fails unless the Kyverno ClusterPolicy generates exactly the rendered objects:
// each target once, same kind, name and spec, with synchronize and generateExisting.
func checkPolicy(policy *unstructured.Unstructured, targets []*target) error {
	rules, _, _ := unstructured.NestedSlice(policy.Object, "spec", "rules")
	found := map[string]bool{}
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		gen, ok := rule["generate"].(map[string]any)
		if !ok {
			continue
		}
		for _, t := range targets {
			if gen["kind"] != t.short || gen["name"] != t.name {
				continue
			}
			data, _ := gen["data"].(map[string]any)
			if !reflect.DeepEqual(normalise(data["spec"]), t.spec) {
				return fmt.Errorf("rule %v: the %s it generates differs from what the baseline renders", rule["name"], t.short)
			}
			if gen["synchronize"] != true || gen["generateExisting"] != true {
				return fmt.Errorf("rule %v: needs synchronize: true and generateExisting: true", rule["name"])
			}
			found[t.short] = true
		}
	}
	for _, t := range targets {
		if !found[t.short] {
			return fmt.Errorf("the policy has no generate rule for %s %s", t.short, t.name)
		}
	}
	return nil
}

// applier server-side applies documents as the benchmark's setup manager.
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newApplier(cp *controlPlane) (*applier, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cp.admin)
	if err != nil {
		return nil, err
	}
	return &applier{dyn: cp.dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

func (a *applier) apply(ctx context.Context, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		a.mapper.Reset()
		if m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
		}
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if ns := obj.GetNamespace(); ns != "" {
		ri = a.dyn.Resource(m.Resource).Namespace(ns)
	}
	force := true
	_, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "peerbench", Force: &force})
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	return nil
}

func (a *applier) applyAll(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		if err := a.apply(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// applyCRDs applies CRD documents and waits until each is Established.
func (a *applier) applyCRDs(ctx context.Context, objs []*unstructured.Unstructured) error {
	if err := a.applyAll(ctx, objs); err != nil {
		return err
	}
	for _, o := range objs {
		if err := waitFor(ctx, time.Minute, "CRD "+o.GetName()+" Established", func() (bool, error) {
			live, err := a.dyn.Resource(crdGVR).Get(ctx, o.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
			for _, c := range conds {
				if m, _ := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return err
		}
	}
	a.mapper.Reset()
	return nil
}

func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func obj(apiVersion, kind, ns, name string, rest map[string]any) *unstructured.Unstructured {
	o := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}
	if ns != "" {
		o["metadata"].(map[string]any)["namespace"] = ns
	}
	for k, v := range rest {
		o[k] = v
	}
	return &unstructured.Unstructured{Object: o}
}

// clusterAdminBinding binds cluster-admin to a user; a ServiceAccount's username
// (system:serviceaccount:NS:NAME) is bound as that ServiceAccount.
func clusterAdminBinding(user string) *unstructured.Unstructured {
	subject := map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
	if rest, ok := strings.CutPrefix(user, "system:serviceaccount:"); ok {
		ns, name, _ := strings.Cut(rest, ":")
		subject = map[string]any{"kind": "ServiceAccount", "namespace": ns, "name": name}
	}
	return obj("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "peerbench-"+strings.ReplaceAll(user, ":", "-"), map[string]any{
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
		"subjects": []any{subject},
	})
}

func ignoreAlreadyExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
