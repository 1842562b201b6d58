package localenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Process is one of our binaries running against the local control plane.
type Process struct {
	Name string
	// Log is the file its output goes to.
	Log string
	// Health is the host:port of its /healthz and /readyz.
	Health string

	cmd  *exec.Cmd
	done chan error
}

// StartProcess runs bin with args and the kubeconfig, its output in
// WorkDir/<name>.log. The process's --health-addr must be health
// (FreeAddr gives one). It is stopped by Stop, or by Env.Stop.
func (e *Env) StartProcess(name, bin, kubeconfig, health string, args ...string) (*Process, error) {
	logPath := filepath.Join(e.opts.WorkDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a Ctrl-C at the terminal reaches only us,
	// and we stop it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &Process{Name: name, Log: logPath, Health: health, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logFile.Close() }()
	e.procs = append(e.procs, p)
	return p, nil
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// WaitReady waits until /readyz answers 200, failing early if the process
// exits.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration) error {
	return WaitFor(ctx, timeout, func() error {
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("%s exited (%v); see %s", p.Name, err, p.Log)
		default:
		}
		resp, err := http.Get("http://" + p.Health + "/readyz")
		if err != nil {
			return fmt.Errorf("%s not ready: %w", p.Name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s not ready: /readyz answered %s", p.Name, resp.Status)
		}
		return nil
	})
}

// Stop asks the process to shut down gracefully (SIGTERM) and kills it
// after 15 s.
func (p *Process) Stop() error {
	select {
	case err := <-p.done:
		p.done <- err
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return err
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("%s did not stop within 15s; killed", p.Name)
	}
}

// FreeAddr returns a free loopback host:port.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// FreePort returns a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
