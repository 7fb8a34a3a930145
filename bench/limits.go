package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// shippedLimits reads the CPU and memory limits of the exporter's container
// in packaging/kubernetes/daemonset.yaml: the limits this benchmark checks
// a scrape against, so that the numbers can never drift from the manifest.
func shippedLimits() (cpuMilli int, memBytes uint64, err error) {
	data, err := os.ReadFile("packaging/kubernetes/daemonset.yaml")
	if err != nil {
		return 0, 0, err
	}
	_, rest, ok := strings.Cut(string(data), "limits:")
	if !ok {
		return 0, 0, errors.New("daemonset.yaml has no limits")
	}
	cpu := regexp.MustCompile(`(?m)^\s+cpu:\s*"?(\d+)(m?)"?\s*$`).FindStringSubmatch(rest)
	mem := regexp.MustCompile(`(?m)^\s+memory:\s*"?(\d+)(Mi|Gi)"?\s*$`).FindStringSubmatch(rest)
	if cpu == nil || mem == nil {
		return 0, 0, errors.New("daemonset.yaml: limits without cpu or memory in the forms 500m and 128Mi")
	}
	cpuMilli, _ = strconv.Atoi(cpu[1])
	if cpu[2] == "" {
		cpuMilli *= 1000
	}
	m, _ := strconv.ParseUint(mem[1], 10, 64)
	memBytes = m << 20
	if mem[2] == "Gi" {
		memBytes = m << 30
	}
	return cpuMilli, memBytes, nil
}

// limitedResult is the exporter measured inside a CPU quota and a memory
// limit, as the DaemonSet runs it.
type limitedResult struct {
	sockets        int
	cpuMilli       int
	memBytes       uint64
	cold, warm     []time.Duration
	peak           uint64 // the cgroup's memory high-water mark
	failcnt        uint64 // times the memory limit was hit
	died           bool
	notMeasuredWhy string
}

// cgroup v1 controllers this machine kind mounts (no cgroup2 here).
const (
	cgroupCPU    = "/sys/fs/cgroup/cpu"
	cgroupMemory = "/sys/fs/cgroup/memory"
	limitedRuns  = 3 // cold starts; each followed by warm scrapes
	limitedWarm  = 5
)

// measureLimited runs the exporter (netlink, every collector, defaults) in
// a cgroup with the DaemonSet's CPU quota and memory limit: a cold start's
// first scrape and warm scrapes after it, each bounded by maxSample.
func (b *bench) measureLimited(sockets int) *limitedResult {
	res := &limitedResult{sockets: sockets}
	var err error
	if res.cpuMilli, res.memBytes, err = shippedLimits(); err != nil {
		res.notMeasuredWhy = err.Error()
		return res
	}
	name := fmt.Sprintf("tcpstate-bench-%d", os.Getpid())
	cpuDir, memDir := filepath.Join(cgroupCPU, name), filepath.Join(cgroupMemory, name)
	for _, d := range []string{cpuDir, memDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			res.notMeasuredWhy = fmt.Sprintf("no cgroup v1 controller to limit it (%v)", err)
			return res
		}
		defer os.Remove(d)
	}
	write := func(path, v string) error { return os.WriteFile(path, []byte(v), 0o644) }
	const period = 100_000
	if err := errors.Join(
		write(filepath.Join(cpuDir, "cpu.cfs_period_us"), strconv.Itoa(period)),
		write(filepath.Join(cpuDir, "cpu.cfs_quota_us"), strconv.Itoa(period*res.cpuMilli/1000)),
		write(filepath.Join(memDir, "memory.limit_in_bytes"), strconv.FormatUint(res.memBytes, 10)),
	); err != nil {
		res.notMeasuredWhy = fmt.Sprintf("cannot set the cgroup's limits: %v", err)
		return res
	}
	b.logf("under the DaemonSet's limits (cpu %dm, memory %d MiB) at %d sockets", res.cpuMilli, res.memBytes>>20, sockets)
	for i := 0; i < limitedRuns; i++ {
		s, err := b.startServer("limited", b.bins.exporter, "--collector.tcp.source=netlink")
		if err != nil {
			res.notMeasuredWhy = err.Error()
			return res
		}
		pid := strconv.Itoa(s.cmd.Process.Pid)
		if err := errors.Join(write(filepath.Join(cpuDir, "cgroup.procs"), pid), write(filepath.Join(memDir, "cgroup.procs"), pid)); err != nil {
			s.stop()
			res.notMeasuredWhy = fmt.Sprintf("cannot move the exporter into the cgroup: %v", err)
			return res
		}
		for k := 0; k <= limitedWarm; k++ {
			d, _, err := scrape(b.ctx, s.url)
			if err != nil {
				d = maxSample // timed out or the exporter died: record the bound
				select {
				case <-s.done:
					res.died = true
				default:
				}
			}
			if k == 0 {
				res.cold = append(res.cold, d)
			} else {
				res.warm = append(res.warm, d)
			}
			if res.died {
				break
			}
		}
		s.stop()
		if res.died {
			break
		}
	}
	res.peak = uint64(readInt(filepath.Join(memDir, "memory.max_usage_in_bytes")))
	res.failcnt = uint64(readInt(filepath.Join(memDir, "memory.failcnt")))
	return res
}

// worst returns the longest of samples.
func worst(samples []time.Duration) time.Duration {
	var w time.Duration
	for _, d := range samples {
		w = max(w, d)
	}
	return w
}
