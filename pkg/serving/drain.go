package serving

import (
	"context"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// Drain delays a server's stop after its termination signal. A pod being
// deleted leaves its Service's endpoints only after the endpoint
// controllers and kube-proxy (or the API server's own resolver) have
// caught up, so requests keep arriving for a moment after the kubelet's
// SIGTERM; a server that closes its listener at once fails them, and for
// a webhook with failurePolicy Fail that rejects the API requests behind
// them. With Drain, the server reports not ready at the signal and keeps
// serving for Delay; only then does its context end and the server stop,
// finishing the requests it has already accepted.
type Drain struct {
	// Delay is how long the server keeps serving after the first signal;
	// 0 or less stops it at once.
	Delay time.Duration
	Log   logr.Logger

	draining atomic.Bool
}

// Draining reports whether the termination signal has arrived; readiness
// should fail from then on.
func (d *Drain) Draining() bool { return d.draining.Load() }

// Context returns a context that ends Delay after the first value received
// on sigs, at once if a second value arrives during the delay (an operator
// who signals again does not want to wait), or when parent ends.
func (d *Drain) Context(parent context.Context, sigs <-chan os.Signal) context.Context {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		defer cancel()
		select {
		case <-ctx.Done():
			return
		case s := <-sigs:
			d.draining.Store(true)
			d.Log.Info("termination signal: reporting not ready, serving until the delay ends", "signal", s.String(), "delay", d.Delay.String())
		}
		if d.Delay <= 0 {
			return
		}
		t := time.NewTimer(d.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case s := <-sigs:
			d.Log.Info("second signal: stopping without the rest of the delay", "signal", s.String())
		case <-ctx.Done():
		}
	}()
	return ctx
}

// SignalContext is Context for SIGINT and SIGTERM. Once the context has
// ended, those signals get Go's default handling back, so one more kills
// the process instead of waiting for the in-flight requests.
func (d *Drain) SignalContext() context.Context {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx := d.Context(context.Background(), sigs)
	go func() {
		<-ctx.Done()
		signal.Stop(sigs)
	}()
	return ctx
}
