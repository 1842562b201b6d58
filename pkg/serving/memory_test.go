package serving

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/go-logr/logr"
)

func TestMemoryTune(t *testing.T) {
	dir := t.TempDir()
	defer func(p string) { cgroupMemoryMax = p }(cgroupMemoryMax)
	prevGC := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(-1)
	defer debug.SetGCPercent(prevGC)
	defer debug.SetMemoryLimit(prevLimit)

	tests := []struct {
		name      string
		memoryMax string // "" means no file
		env       map[string]string
		wantGC    int
		wantLimit int64 // unchanged when equal to the initial limit
	}{
		{name: "limit from the cgroup", memoryMax: "1073741824\n", wantGC: 800, wantLimit: 858993459},
		{name: "no limit", memoryMax: "max\n", wantGC: 800, wantLimit: prevLimit},
		{name: "no cgroup", wantGC: 800, wantLimit: prevLimit},
		{name: "environment wins", memoryMax: "1073741824\n", env: map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}, wantGC: 100, wantLimit: prevLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(prevLimit)
			cgroupMemoryMax = filepath.Join(dir, "missing")
			if tc.memoryMax != "" {
				cgroupMemoryMax = filepath.Join(dir, tc.name)
				if err := os.WriteFile(cgroupMemoryMax, []byte(tc.memoryMax), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			DefaultMemory.Tune(logr.Discard())
			if got := debug.SetGCPercent(100); got != tc.wantGC {
				t.Errorf("GC percent %d, want %d", got, tc.wantGC)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("memory limit %d, want %d", got, tc.wantLimit)
			}
		})
	}
}
