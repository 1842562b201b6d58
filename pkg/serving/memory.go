package serving

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
)

// Memory says how the garbage collector trades memory for CPU.
type Memory struct {
	// GCPercent is the heap growth that triggers a collection (GOGC).
	// Policy evaluation allocates about 145 KB per review in the webhook
	// (the library's pod fixtures), almost all of it garbage at once, so
	// Go's default 100 spends a large share of the CPU in the collector.
	// Each collection also slows the reviews it overlaps (mark assists),
	// which is most of the webhook's latency tail under load: at 800, p99 at concurrency 8 was about 14% lower
	// than at 400 and CPU per review the same or lower, for about 160 MiB
	// more resident memory (440 against 280 MiB; docs/performance.md).
	// 0 keeps Go's default.
	GCPercent int
	// LimitFraction of the container's memory limit (cgroup v2
	// memory.max) becomes the soft limit (GOMEMLIMIT), so a high
	// GCPercent collects early instead of running out of memory. 0
	// disables it.
	LimitFraction float64
}

// DefaultMemory is what long-running binaries use unless told otherwise.
var DefaultMemory = Memory{GCPercent: 800, LimitFraction: 0.8}

// cgroupMemoryMax is where cgroup v2 puts the container's memory limit.
var cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// Tune applies m. GOGC and GOMEMLIMIT in the environment win, so an
// operator can always override the binary.
func (m Memory) Tune(log logr.Logger) {
	if _, set := os.LookupEnv("GOGC"); !set && m.GCPercent > 0 {
		debug.SetGCPercent(m.GCPercent)
		log.Info("garbage collector", "gcPercent", m.GCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); set || m.LimitFraction <= 0 {
		return
	}
	limit, ok := containerMemoryLimit()
	if !ok {
		return
	}
	soft := int64(float64(limit) * m.LimitFraction)
	debug.SetMemoryLimit(soft)
	log.Info("memory limit", "containerLimitBytes", limit, "softLimitBytes", soft)
}

// containerMemoryLimit reads the cgroup v2 limit; "max" or no cgroup
// means there is none.
func containerMemoryLimit() (int64, bool) {
	b, err := os.ReadFile(cgroupMemoryMax)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}
