package serving

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

func TestScaler(t *testing.T) {
	defer runtime.SetDefaultGOMAXPROCS()
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
		t.Setenv("GOMAXPROCS", v) // restored after the test
		os.Unsetenv("GOMAXPROCS")
	}
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0) // the machine's or the container's CPUs
	now := time.Now()

	t.Run("added while requests queue, removed after the linger", func(t *testing.T) {
		s := Processors{Network: 1, Linger: time.Hour}.Scaler(logr.Discard())
		if s.Compute() != def {
			t.Fatalf("compute %d, want %d", s.Compute(), def)
		}
		s.shrink(now) // nothing added yet
		if got := runtime.GOMAXPROCS(0); got != def {
			t.Fatalf("GOMAXPROCS %d before any queueing, want %d", got, def)
		}
		s.Queued()
		s.Queued()
		if got := runtime.GOMAXPROCS(0); got != def+1 {
			t.Fatalf("GOMAXPROCS %d while requests queue, want %d", got, def+1)
		}
		s.shrink(time.Now().Add(time.Minute))
		if got := runtime.GOMAXPROCS(0); got != def+1 {
			t.Fatalf("GOMAXPROCS %d within the linger, want %d", got, def+1)
		}
		s.shrink(time.Now().Add(time.Hour + time.Minute))
		if got := runtime.GOMAXPROCS(0); got != def {
			t.Fatalf("GOMAXPROCS %d after the linger, want %d", got, def)
		}
		s.Queued()
		if got := runtime.GOMAXPROCS(0); got != def+1 {
			t.Fatalf("GOMAXPROCS %d when requests queue again, want %d", got, def+1)
		}
		s.shrink(time.Now().Add(2 * time.Hour))
	})

	t.Run("Start removes them", func(t *testing.T) {
		s := Processors{Network: 2, Linger: 20 * time.Millisecond}.Scaler(logr.Discard())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Start(ctx) }()
		s.Queued()
		if got := runtime.GOMAXPROCS(0); got != def+2 {
			t.Errorf("GOMAXPROCS %d while requests queue, want %d", got, def+2)
		}
		deadline := time.Now().Add(10 * time.Second)
		for runtime.GOMAXPROCS(0) != def && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := runtime.GOMAXPROCS(0); got != def {
			t.Errorf("GOMAXPROCS %d long after the last queued request, want %d", got, def)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})

	for _, tc := range []struct {
		name    string
		network int
		env     string
	}{
		{name: "none asked for", network: 0},
		{name: "GOMAXPROCS in the environment wins", network: 1, env: "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GOMAXPROCS(3)
			if tc.env != "" {
				t.Setenv("GOMAXPROCS", tc.env)
			}
			s := Processors{Network: tc.network}.Scaler(logr.Discard())
			s.Queued()
			if got := runtime.GOMAXPROCS(0); got != 3 || s.Compute() != 3 {
				t.Errorf("GOMAXPROCS %d, compute %d; want both 3", got, s.Compute())
			}
			if err := s.Start(context.Background()); err != nil { // returns at once
				t.Errorf("Start: %v", err)
			}
		})
	}

	var none *Scaler
	none.Queued() // a nil Scaler does nothing
}
