// Package serving runs the operational HTTP endpoints every long-running
// daaas-guard binary has: liveness (/healthz), readiness (/readyz) and
// Prometheus metrics (/metrics), with graceful shutdown.
package serving

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// Probes holds the readiness state reported on /readyz.
type Probes struct {
	ready atomic.Bool
}

// SetReady changes what /readyz answers.
func (p *Probes) SetReady(ready bool) { p.ready.Store(ready) }

// Handler serves /healthz, /readyz and /metrics from reg.
func (p *Probes) Handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !p.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Serve listens on addr and serves h until ctx ends, then shuts down,
// giving in-flight requests up to grace to finish. ready, when not nil,
// receives the bound address once listening.
func Serve(ctx context.Context, log logr.Logger, addr string, h http.Handler, grace time.Duration, ready chan<- string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving", "address", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// Flags are the operational flags every daaas-guard daemon takes.
type Flags struct {
	HealthAddr string
	Grace      time.Duration
	Zap        zap.Options
}

// Bind registers the flags on fs.
func (f *Flags) Bind(fs *flag.FlagSet) {
	fs.StringVar(&f.HealthAddr, "health-addr", ":8081", "address for /healthz, /readyz and /metrics")
	fs.DurationVar(&f.Grace, "shutdown-grace", 10*time.Second, "time in-flight requests get to finish on shutdown")
	f.Zap.BindFlags(fs)
}

// RunOperational serves only the operational endpoints, ready at once,
// until SIGINT or SIGTERM; it is what a daemon runs before it has work of
// its own. It returns the process exit code.
func RunOperational(name, notice string, f Flags) int {
	log := zap.New(zap.UseFlagOptions(&f.Zap)).WithName(name)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info(notice)
	probes := &Probes{}
	probes.SetReady(true)
	if err := Serve(ctx, log, f.HealthAddr, probes.Handler(NewRegistry()), f.Grace, nil); err != nil {
		log.Error(err, "serving")
		return 1
	}
	return 0
}
