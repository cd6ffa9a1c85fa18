package main

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The kernel reports CPU times in /proc/<pid>/stat in USER_HZ, which Linux fixes at 100.
const userHz = 100

// splitStat returns the command name of a /proc/<pid>/stat line and the fields after it
// (state, ppid, ...). The name is in parentheses and may itself contain spaces.
func splitStat(stat string) (comm, rest string, ok bool) {
	open, end := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return "", "", false
	}
	return stat[open+1 : end], strings.TrimSpace(stat[end+1:]), true
}

// cpuSeconds is the user + system CPU time of a process (all its threads) so far.
func cpuSeconds(pid int) float64 {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	_, rest, ok := splitStat(string(stat))
	f := strings.Fields(rest)
	// After the name: state(0) ppid(1) ... utime(11) stime(12).
	if !ok || len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / userHz
}

// statusKiB reads a "Name:   N kB" line of /proc/<pid>/status (VmRSS, VmHWM).
func statusKiB(pid int, field string) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// sampler follows a set of processes: the peak of the sum of their resident memory (sampled),
// each one's own peak (VmHWM, exact) and their CPU time.
type sampler struct {
	mu      sync.Mutex
	pids    map[string]int
	hwm     map[string]int64
	peakSum int64
	stopped chan struct{}
	done    chan struct{}
}

func newSampler(every time.Duration) *sampler {
	s := &sampler{pids: map[string]int{}, hwm: map[string]int64{}, stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stopped:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) add(name string, pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pids[name] = pid
}

func (s *sampler) sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum int64
	for name, pid := range s.pids {
		sum += statusKiB(pid, "VmRSS")
		if h := statusKiB(pid, "VmHWM"); h > s.hwm[name] {
			s.hwm[name] = h
		}
	}
	if sum > s.peakSum {
		s.peakSum = sum
	}
}

// cpu is the CPU seconds of every followed process, by name.
func (s *sampler) cpu() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]float64{}
	for name, pid := range s.pids {
		out[name] = cpuSeconds(pid)
	}
	return out
}

// stop ends the sampling (after a last sample) and returns the peaks in MiB.
func (s *sampler) stop() (peakSumMiB float64, hwmMiB map[string]float64) {
	close(s.stopped)
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	hwmMiB = map[string]float64{}
	for name, h := range s.hwm {
		hwmMiB[name] = float64(h) / 1024
	}
	return float64(s.peakSum) / 1024, hwmMiB
}

func sum(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

func diff(after, before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}
