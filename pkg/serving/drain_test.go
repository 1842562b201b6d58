package serving

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// done waits, generously, for ctx to end.
func done(t *testing.T, ctx context.Context) bool {
	t.Helper()
	select {
	case <-ctx.Done():
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// send fails the test rather than hang when nothing takes the signal.
func send(t *testing.T, sigs chan<- os.Signal, s os.Signal) {
	t.Helper()
	select {
	case sigs <- s:
	case <-time.After(10 * time.Second):
		t.Fatalf("%v not taken", s)
	}
}

func TestDrain(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration
		// signals sent; cancelParent ends the parent context instead.
		signals      int
		cancelParent bool
		wantDraining bool
	}{
		{name: "stops after the delay", delay: 50 * time.Millisecond, signals: 1, wantDraining: true},
		{name: "a second signal stops at once", delay: time.Hour, signals: 2, wantDraining: true},
		{name: "no delay stops at once", delay: 0, signals: 1, wantDraining: true},
		{name: "the parent ending stops without draining", delay: time.Hour, cancelParent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &Drain{Delay: tc.delay, Log: logr.Discard()}
			parent, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Unbuffered: a send returns once Context has taken the signal.
			sigs := make(chan os.Signal)
			ctx := d.Context(parent, sigs)
			if d.Draining() || ctx.Err() != nil {
				t.Fatalf("before any signal: draining %t, context %v", d.Draining(), ctx.Err())
			}
			if tc.cancelParent {
				cancel()
			}
			var signalled time.Time
			if tc.signals > 0 {
				signalled = time.Now()
				send(t, sigs, syscall.SIGTERM)
				for deadline := time.Now().Add(10 * time.Second); !d.Draining() && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
				if !d.Draining() {
					t.Fatal("not draining after the signal")
				}
			}
			if tc.signals > 1 {
				// The delay is an hour: nothing but the second signal
				// may end the context.
				if ctx.Err() != nil {
					t.Fatalf("context ended during the delay: %v", ctx.Err())
				}
				send(t, sigs, syscall.SIGINT)
			}
			if !done(t, ctx) {
				t.Fatal("context did not end")
			}
			if tc.signals == 1 {
				if waited := time.Since(signalled); waited < tc.delay {
					t.Errorf("context ended %v after the signal, before the delay %v", waited, tc.delay)
				}
			}
			if d.Draining() != tc.wantDraining {
				t.Errorf("draining %t, want %t", d.Draining(), tc.wantDraining)
			}
		})
	}
}
