package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCountWritesSplitsThePeersWritesByResource(t *testing.T) {
	log := strings.Join([]string{
		`{"stage":"ResponseComplete","verb":"update","user":{"username":"peer"},"objectRef":{"resource":"leases"}}`,
		`{"stage":"ResponseComplete","verb":"patch","user":{"username":"peer"},"objectRef":{"resource":"networkpolicies"}}`,
		`{"stage":"ResponseStarted","verb":"patch","user":{"username":"peer"},"objectRef":{"resource":"networkpolicies"}}`,
		`{"stage":"ResponseComplete","verb":"get","user":{"username":"peer"},"objectRef":{"resource":"networkpolicies"}}`,
		`{"stage":"ResponseComplete","verb":"patch","user":{"username":"peer"},"objectRef":{"resource":"meshbaselines","subresource":"status"}}`,
		`{"stage":"ResponseComplete","verb":"create","user":{"username":"someone-else"},"objectRef":{"resource":"events"}}`,
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("ignored before the offset\n"+log), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := countWrites(path, int64(len("ignored before the offset\n")), []string{"peer"})
	if err != nil {
		t.Fatal(err)
	}
	if got.ByPeer != 3 || got.Leases != 1 || got.AllUsers != 4 {
		t.Fatalf("got %+v", got)
	}
	if got.ByResource["patch meshbaselines/status"] != 1 || got.ByResource["patch networkpolicies"] != 1 {
		t.Fatalf("by resource: %v", got.ByResource)
	}
}

func TestLatencyQuantilesAndMisses(t *testing.T) {
	l := latencies{}
	for i := 1; i <= 100; i++ {
		l.add(time.Duration(i)*time.Millisecond, true)
	}
	l.add(0, false)
	l.finish()
	if l.Attempts != 101 || l.Repaired != 100 || l.P50ms != 50 || l.P99ms != 99 || l.MaxMs != 100 {
		t.Fatalf("got %+v", l)
	}
	if cell, _, ok := latencyCell(l); ok || !strings.Contains(cell, "100 of 101") {
		t.Fatalf("a series with a miss must say so and not compete: %q", cell)
	}
}

func TestSplitStatTakesNamesWithSpacesAndParentheses(t *testing.T) {
	comm, rest, ok := splitStat("42 (a (b) c) S 7 1 1")
	if !ok || comm != "a (b) c" || !strings.HasPrefix(rest, "S 7") {
		t.Fatalf("got %q %q %v", comm, rest, ok)
	}
}

// The committed policy passes the equivalence check against its own specs, and fails it once
// a generated spec differs or synchronize is off.
func TestCheckPolicyCatchesADifferentSpecOrNoSync(t *testing.T) {
	docs, err := readDocuments("../policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	policy := docs[0]
	var targets []*target
	rules := policy.Object["spec"].(map[string]any)["rules"].([]any)
	for _, r := range rules {
		gen := r.(map[string]any)["generate"].(map[string]any)
		targets = append(targets, &target{short: gen["kind"].(string), name: gen["name"].(string),
			spec: normalise(gen["data"].(map[string]any)["spec"])})
	}
	if err := checkPolicy(policy, targets); err != nil {
		t.Fatalf("the committed policy: %v", err)
	}
	changed := policy.DeepCopy()
	gen := changed.Object["spec"].(map[string]any)["rules"].([]any)[1].(map[string]any)["generate"].(map[string]any)
	gen["data"].(map[string]any)["spec"].(map[string]any)["policyTypes"] = []any{"Ingress"}
	if err := checkPolicy(changed, targets); err == nil {
		t.Fatal("a different NetworkPolicy spec passed the check")
	}
	unsynced := policy.DeepCopy()
	unsynced.Object["spec"].(map[string]any)["rules"].([]any)[0].(map[string]any)["generate"].(map[string]any)["synchronize"] = false
	if err := checkPolicy(unsynced, targets); err == nil {
		t.Fatal("a rule without synchronize passed the check")
	}
}
