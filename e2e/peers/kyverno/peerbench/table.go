package main

import (
	"fmt"
	"sort"
	"strings"
)

// row is one line of the comparison: a figure for each peer, lower is better when both
// are numbers.
type row struct {
	metric string
	values map[string]string
	nums   map[string]float64
}

func find(r *results, peer string, n int) *runResult {
	for i := range r.Runs {
		if r.Runs[i].Peer == peer && r.Runs[i].Namespaces == n {
			return &r.Runs[i]
		}
	}
	return nil
}

func sizesOf(r *results) []int {
	seen := map[int]bool{}
	var out []int
	for _, run := range r.Runs {
		if !seen[run.Namespaces] {
			seen[run.Namespaces] = true
			out = append(out, run.Namespaces)
		}
	}
	sort.Ints(out)
	return out
}

func latencyCell(l latencies) (string, float64, bool) {
	if l.Attempts == 0 {
		return "–", 0, false
	}
	if l.Repaired == 0 {
		return fmt.Sprintf("none of %d within %.0f s", l.Attempts, l.TimeoutSeconds), 0, false
	}
	cell := fmt.Sprintf("%s / %s", ms(l.P50ms), ms(l.P99ms))
	if l.Repaired < l.Attempts {
		cell += fmt.Sprintf(" (%d of %d; rest not within %.0f s)", l.Repaired, l.Attempts, l.TimeoutSeconds)
		return cell, 0, false
	}
	return cell, l.P99ms, true
}

func ms(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f s", v/1000)
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}

func rowsFor(a, b *runResult) []row {
	type fig struct {
		metric string
		cell   func(*runResult) (string, float64, bool)
	}
	figs := []fig{
		{"convergence: policy applied → last object present", func(x *runResult) (string, float64, bool) {
			if !x.Converged {
				return fmt.Sprintf("not within %.0f s (%d of %d objects)", x.ConvergenceSeconds, x.ObjectsPresent, x.ObjectsWanted), 0, false
			}
			return fmt.Sprintf("%.1f s", x.ConvergenceSeconds), x.ConvergenceSeconds, true
		}},
		{"peak RSS, all the peer's processes (MiB; sum of each one's VmHWM)", func(x *runResult) (string, float64, bool) {
			peak := sum(x.PeakRSSByProcessMiB)
			return fmt.Sprintf("%.1f", peak), peak, peak > 0
		}},
		{"CPU seconds: convergence / whole run", func(x *runResult) (string, float64, bool) {
			return fmt.Sprintf("%.1f / %.1f", x.CPUSeconds.Convergence, x.CPUSeconds.Total), x.CPUSeconds.Total, true
		}},
		{"drift: generated NetworkPolicy deleted, repair p50 / p99", func(x *runResult) (string, float64, bool) {
			return latencyCell(x.NetworkPolicyDelete)
		}},
		{"drift: AuthorizationPolicy edited (selector added, rules removed), repair p50 / p99", func(x *runResult) (string, float64, bool) {
			return latencyCell(x.AuthzPolicyEdit)
		}},
		{"new namespace: both objects present, p50 / p99", func(x *runResult) (string, float64, bool) {
			return latencyCell(x.NewNamespace)
		}},
		{"API writes by the peer in the idle window (all / of them Leases)", func(x *runResult) (string, float64, bool) {
			return fmt.Sprintf("%d / %d", x.IdleWrites.ByPeer, x.IdleWrites.Leases), float64(x.IdleWrites.ByPeer), true
		}},
		{"API writes by the peer in the idle window, Leases aside", func(x *runResult) (string, float64, bool) {
			n := x.IdleWrites.ByPeer - x.IdleWrites.Leases
			return fmt.Sprintf("%d", n), float64(n), true
		}},
		{"kube-apiserver CPU seconds: convergence / idle window", func(x *runResult) (string, float64, bool) {
			return fmt.Sprintf("%.1f / %.1f", x.APIServer.CPUSeconds.Convergence, x.APIServer.CPUSeconds.Idle), x.APIServer.CPUSeconds.Convergence, true
		}},
		{"kube-apiserver peak RSS (MiB)", func(x *runResult) (string, float64, bool) {
			return fmt.Sprintf("%.0f", x.APIServer.PeakRSSMiB), x.APIServer.PeakRSSMiB, x.APIServer.PeakRSSMiB > 0
		}},
		{"etcd CPU seconds: convergence / idle window", func(x *runResult) (string, float64, bool) {
			return fmt.Sprintf("%.1f / %.1f", x.Etcd.CPUSeconds.Convergence, x.Etcd.CPUSeconds.Idle), x.Etcd.CPUSeconds.Convergence, true
		}},
	}
	var rows []row
	for _, f := range figs {
		r := row{metric: f.metric, values: map[string]string{}, nums: map[string]float64{}}
		for _, x := range []*runResult{a, b} {
			if x == nil {
				continue
			}
			if x.Error != "" && f.metric == figs[0].metric {
				r.values[x.Peer] = "failed: " + firstLine(x.Error)
				continue
			}
			cell, num, ok := f.cell(x)
			r.values[x.Peer] = cell
			// A run that failed part-way has no figure to compare.
			if ok && x.Error == "" {
				r.nums[x.Peer] = num
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// better names the peer with the lower figure and by how much.
func better(r row) string {
	m, mok := r.nums["meshbaseline"]
	k, kok := r.nums["kyverno"]
	switch {
	case !mok && !kok:
		return ""
	case mok && !kok:
		return "MeshBaseline"
	case kok && !mok:
		return "**Kyverno**"
	case m == k:
		return "even"
	case m < k:
		if m == 0 {
			return "MeshBaseline"
		}
		return fmt.Sprintf("MeshBaseline (%.1f×)", k/m)
	default:
		if k == 0 {
			return "**Kyverno**"
		}
		return fmt.Sprintf("**Kyverno** (%.1f×)", m/k)
	}
}

func markdown(r *results) string {
	var b strings.Builder
	b.WriteString("| namespaces | figure | MeshBaseline | Kyverno | lower is better |\n|---|---|---|---|---|\n")
	for _, n := range sizesOf(r) {
		for _, row := range rowsFor(find(r, "meshbaseline", n), find(r, "kyverno", n)) {
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", n, row.metric,
				orDash(row.values["meshbaseline"]), orDash(row.values["kyverno"]), better(row))
		}
	}
	tamper := map[string]map[string]attackResult{}
	var order []string
	for _, run := range r.Runs {
		for _, a := range run.Tamper {
			k := a.Target + ": " + a.Attack
			if tamper[k] == nil {
				tamper[k] = map[string]attackResult{}
				order = append(order, k)
			}
			tamper[k][run.Peer] = a
		}
	}
	if len(order) > 0 {
		b.WriteString("\n| tamper (as a tenant with `edit`) | MeshBaseline | Kyverno |\n|---|---|---|\n")
		for _, k := range order {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", k, outcome(tamper[k]["meshbaseline"]), outcome(tamper[k]["kyverno"]))
		}
	}
	return b.String()
}

func outcome(a attackResult) string {
	switch {
	case a.Outcome == "":
		return "–"
	case a.Outcome == "undone":
		return "undone in " + ms(a.Ms)
	default:
		return a.Outcome
	}
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
