package main

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// binDir is where build.sh put kube-apiserver and kube-controller-manager
// (TESTENV_BIN_DIR, else target/testenv/bin of the repository). Missing binaries fail the test.
func binDir(t *testing.T) string {
	if dir := os.Getenv("TESTENV_BIN_DIR"); dir != "" {
		return dir
	}
	dir, err := filepath.Abs("../../target/testenv/bin")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func clientFor(t *testing.T, kubeconfig string) *kubernetes.Clientset {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func whoami(t *testing.T, cs *kubernetes.Clientset) authenticationv1.UserInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return review.Status.UserInfo
}

// The control plane starts, mints working identities, enforces RBAC, and stops without
// leaving a process behind.
func TestControlPlaneIdentitiesAndCleanStop(t *testing.T) {
	dir := t.TempDir()
	cp, err := start(dir, binDir(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			cp.stop()
		}
	}()
	st, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	admin := clientFor(t, st.AdminKubeconfig)
	if got := whoami(t, admin); got.Username != "testenv-admin" {
		t.Fatalf("admin is %q", got.Username)
	}

	userConfig := filepath.Join(dir, "alice.kubeconfig")
	if err := mintUser(st, "alice", []string{"dev"}, userConfig); err != nil {
		t.Fatal(err)
	}
	alice := clientFor(t, userConfig)
	got := whoami(t, alice)
	if got.Username != "alice" || !contains(got.Groups, "dev") {
		t.Fatalf("alice is %q in %v", got.Username, got.Groups)
	}
	ctx := context.Background()
	// RBAC decides: a plain user may not list Secrets.
	if _, err := alice.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("alice listed secrets: %v", err)
	}

	if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "robot"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	saConfig := filepath.Join(dir, "robot.kubeconfig")
	if err := mintServiceAccount(st, "default", "robot", saConfig, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := whoami(t, clientFor(t, saConfig)); got.Username != "system:serviceaccount:default:robot" {
		t.Fatalf("robot is %q", got.Username)
	}
	if _, err := os.Stat(st.AuditLog); err != nil {
		t.Fatalf("no audit log: %v", err)
	}

	pids := []int{}
	for _, c := range cp.children {
		pids = append(pids, c.cmd.Process.Pid)
	}
	cp.stop()
	stopped = true
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d still running after stop", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); !os.IsNotExist(err) {
		t.Errorf("state.json left behind: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
