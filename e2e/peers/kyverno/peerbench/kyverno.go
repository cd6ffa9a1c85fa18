package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const kyvernoNS = "kyverno"

// kyvernoPeer is Kyverno's admission controller and background controller, run out of
// cluster the way Kyverno's chart configures them, each as its own API user.
type kyvernoPeer struct {
	binDir, crdDir, policy string
	qps, burst, genWorkers int
	admission, background  *process
	admArgs, bgArgs        []string
}

func (k *kyvernoPeer) name() string { return "kyverno" }

// Kyverno's processes act as the ServiceAccounts its chart creates (bound tokens): the admission
// controller checks, when a policy is created, that its own and the background controller's
// accounts may manage the generated kinds.
const (
	admissionSA  = "kyverno-admission-controller"
	backgroundSA = "kyverno-background-controller"
)

func saUser(name string) string { return "system:serviceaccount:" + kyvernoNS + ":" + name }

func (k *kyvernoPeer) users() []string { return []string{saUser(admissionSA), saUser(backgroundSA)} }

// kyvernoConfig is the chart's default `kyverno` ConfigMap, less the resource filters that
// name the chart's own RBAC objects and Pods (none exist here).
func kyvernoConfig() *unstructured.Unstructured {
	filters := []string{
		"[Event,*,*]", "[*/*,kube-system,*]", "[*/*,kube-public,*]", "[*/*,kube-node-lease,*]",
		"[Node,*,*]", "[Node/?*,*,*]", "[APIService,*,*]", "[APIService/?*,*,*]",
		"[TokenReview,*,*]", "[SubjectAccessReview,*,*]", "[SelfSubjectAccessReview,*,*]",
		"[Binding,*,*]", "[Pod/binding,*,*]", "[ReplicaSet,*,*]", "[ReplicaSet/?*,*,*]",
		"[EphemeralReport,*,*]", "[ClusterEphemeralReport,*,*]",
		"[ConfigMap,kyverno,kyverno]", "[ConfigMap,kyverno,kyverno-metrics]",
	}
	return obj("v1", "ConfigMap", kyvernoNS, "kyverno", map[string]any{"data": map[string]any{
		"enableDefaultRegistryMutation": "true",
		"defaultRegistry":               "docker.io",
		"generateSuccessEvents":         "false",
		"excludeGroups":                 "system:nodes",
		"resourceFilters":               strings.Join(filters, ""),
		"webhooks":                      `{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kyverno"]}]}}`,
	}})
}

func (k *kyvernoPeer) setup(ctx context.Context, cp *controlPlane, a *applier) error {
	var crds []*unstructured.Unstructured
	err := filepath.WalkDir(k.crdDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		docs, err := readDocuments(path)
		crds = append(crds, docs...)
		return err
	})
	if err != nil {
		return err
	}
	if len(crds) == 0 {
		return fmt.Errorf("no CRDs under %s", k.crdDir)
	}
	if err := a.applyCRDs(ctx, crds); err != nil {
		return err
	}
	objs := []*unstructured.Unstructured{obj("v1", "Namespace", "", kyvernoNS, nil), kyvernoConfig()}
	for _, sa := range []string{admissionSA, backgroundSA} {
		objs = append(objs, obj("v1", "ServiceAccount", kyvernoNS, sa, nil), clusterAdminBinding(saUser(sa)))
	}
	return a.applyAll(ctx, objs)
}

func (k *kyvernoPeer) env(deployment, serviceAccount string) []string {
	return []string{
		"KYVERNO_NAMESPACE=" + kyvernoNS,
		"KYVERNO_POD_NAME=" + deployment + "-peerbench",
		"KYVERNO_DEPLOYMENT=" + deployment,
		"KYVERNO_SERVICEACCOUNT_NAME=" + serviceAccount,
		"KYVERNO_ROLE_NAME=kyverno:" + strings.TrimPrefix(deployment, "kyverno-"),
		"KYVERNO_SVC=kyverno-svc",
		"INIT_CONFIG=kyverno",
		"METRICS_CONFIG=kyverno-metrics",
	}
}

func (k *kyvernoPeer) start(ctx context.Context, cp *controlPlane, s *sampler) error {
	admKC, err := cp.serviceAccountKubeconfig(kyvernoNS, admissionSA)
	if err != nil {
		return err
	}
	bgKC, err := cp.serviceAccountKubeconfig(kyvernoNS, backgroundSA)
	if err != nil {
		return err
	}
	var ports [5]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	rate := []string{"--clientRateLimitQPS=" + strconv.Itoa(k.qps), "--clientRateLimitBurst=" + strconv.Itoa(k.burst)}
	// The chart's arguments (defaults of values.yaml), out of cluster: webhooks by URL on
	// loopback (--serverIP), certificates from Kyverno's own CA. No reports controller runs,
	// so admission reports (its input) are off.
	k.admArgs = append([]string{
		"--kubeconfig=" + admKC,
		"--serverIP=127.0.0.1:" + strconv.Itoa(ports[0]),
		"--webhookServerHost=127.0.0.1",
		"--webhookServerPort=" + strconv.Itoa(ports[0]),
		"--caSecretName=kyverno-svc.kyverno.svc.kyverno-tls-ca",
		"--tlsSecretName=kyverno-svc.kyverno.svc.kyverno-tls-pair",
		"--backgroundServiceAccountName=" + saUser(backgroundSA),
		"--resyncPeriod=15m",
		"--crdWatcher=false",
		"--metricsHost=127.0.0.1",
		"--metricsPort=" + strconv.Itoa(ports[1]),
		"--controllerRuntimeMetricsAddress=127.0.0.1:" + strconv.Itoa(ports[2]),
		"--admissionReports=false",
		"--autoUpdateWebhooks=true",
		"--omitEvents=PolicyApplied,PolicySkipped",
		"--protectManagedResources=false",
		"--loggingFormat=text",
		"--v=2",
	}, rate...)
	k.admission, err = spawn(cp.dir, "kyverno-admission-controller", filepath.Join(k.binDir, "kyverno"), k.admArgs,
		k.env("kyverno-admission-controller", admissionSA))
	if err != nil {
		return err
	}
	s.add("kyverno-admission-controller", k.admission.cmd.Process.Pid)
	k.bgArgs = append([]string{
		"--kubeconfig=" + bgKC,
		"--genWorkers=" + strconv.Itoa(k.genWorkers),
		"--resyncPeriod=15m",
		"--metricsHost=127.0.0.1",
		"--metricsPort=" + strconv.Itoa(ports[3]),
		"--controllerRuntimeMetricsAddress=127.0.0.1:" + strconv.Itoa(ports[4]),
		"--omitEvents=PolicyApplied,PolicySkipped",
		"--loggingFormat=text",
		"--v=2",
	}, rate...)
	k.background, err = spawn(cp.dir, "kyverno-background-controller", filepath.Join(k.binDir, "background-controller"), k.bgArgs,
		k.env("kyverno-background-controller", backgroundSA))
	if err != nil {
		return err
	}
	s.add("kyverno-background-controller", k.background.cmd.Process.Pid)
	procs := []*process{k.admission, k.background}
	if err := waitHTTP(ctx, fmt.Sprintf("https://127.0.0.1:%d/health/readiness", ports[0]), procs, 3*time.Minute); err != nil {
		return err
	}
	return waitFor(ctx, 3*time.Minute, "Kyverno's policy webhook registered", func() (bool, error) {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return false, err
			}
		}
		return policyWebhookReady(ctx, cp)
	})
}

// applyPolicy creates the ClusterPolicy, retrying while Kyverno's webhooks settle.
func (k *kyvernoPeer) applyPolicy(ctx context.Context, a *applier) (time.Time, error) {
	docs, err := readDocuments(k.policy)
	if err != nil {
		return time.Time{}, err
	}
	var last error
	for i := 0; i < 60; i++ {
		sent := time.Now()
		if last = a.applyAll(ctx, docs); last == nil {
			return sent, nil
		}
		time.Sleep(time.Second)
	}
	return time.Time{}, last
}

func (k *kyvernoPeer) settings() map[string]string {
	return map[string]string{
		"admission controller":  "kyverno " + join(k.admArgs),
		"background controller": "background-controller " + join(k.bgArgs),
		"policy":                filepath.Base(k.policy),
	}
}

func (k *kyvernoPeer) stop() {
	k.background.stop()
	k.admission.stop()
}
