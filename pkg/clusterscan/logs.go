package clusterscan

import (
	"bytes"
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// LogSource reads a container's log. It is an interface so that tests on
// an API server without kubelets can serve the logs themselves.
type LogSource interface {
	// Logs returns the log of container in the pod, at most limit bytes; a
	// longer log is an error, not a truncated log.
	Logs(ctx context.Context, namespace, pod, container string, limit int64) ([]byte, error)
}

// APILogs reads logs through the API server (pods/log), which asks the
// kubelet.
type APILogs struct {
	Client kubernetes.Interface
}

var _ LogSource = APILogs{}

// Logs implements LogSource.
func (a APILogs) Logs(ctx context.Context, namespace, pod, container string, limit int64) ([]byte, error) {
	rc, err := a.Client.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, LimitBytes: &[]int64{limit + 1}[0]}).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the log of pod %s/%s: %w", namespace, pod, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the log of pod %s/%s: %w", namespace, pod, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("the log of pod %s/%s is longer than %d bytes", namespace, pod, limit)
	}
	return data, nil
}

// reportLine finds the tool's JSON report in a pod log. kube-bench and
// kube-hunter print their report as one line on stdout; the log also holds
// stderr (kube-bench logs there), so the report is the last line that
// starts a JSON object or array.
func reportLine(log []byte) ([]byte, error) {
	lines := bytes.Split(log, []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		l := bytes.TrimSpace(lines[i])
		if len(l) > 0 && (l[0] == '{' || l[0] == '[') {
			return l, nil
		}
	}
	n := len(lines)
	if n > 0 && len(bytes.TrimSpace(lines[n-1])) == 0 {
		n--
	}
	return nil, fmt.Errorf("no JSON report in the log (%d lines)", n)
}
