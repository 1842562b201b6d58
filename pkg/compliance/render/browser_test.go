package render

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The HTML report is loaded in headless Chromium, the way an auditor
// opens it: it must render without console errors or failed loads, and
// its filters and drill-down must work. A screenshot is kept under out/.
// Chromium is a Debian package (apt-get install chromium); .ci/run
// installs it, so this test never skips.

func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed: apt-get install -y chromium (or set CHROMIUM to a Chrome binary); .ci/run installs it")
	return ""
}

// browser starts headless Chromium with a fresh profile and records every
// console error, uncaught exception, error log entry and request for
// anything but the page itself.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	b := &browser{ctx: ctx}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc(); wg.Wait() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser and opens a tab
		t.Fatalf("starting Chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.add(fmt.Sprintf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
			}
		}
	}()
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if u := e.Request.URL; !strings.HasPrefix(u, "file://") && !strings.HasPrefix(u, "data:") {
				b.add("request for an external asset: " + u)
			}
		case *network.EventLoadingFailed:
			b.add("failed load: " + e.ErrorText)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browser) add(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, msg)
}

func (b *browser) takeErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.errors
	b.errors = nil
	return out
}

// eval runs JavaScript in the page and returns its value.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

func do(t *testing.T, b *browser, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// outDir is the git-ignored out/ at the repository root.
func outDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "out", "compliance"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestHTMLReport_RendersInChromiumWithoutErrors(t *testing.T) {
	r := fixtureReport(t)
	var page bytes.Buffer
	if err := WriteHTML(&page, r); err != nil {
		t.Fatal(err)
	}
	dir := outDir(t)
	file := filepath.Join(dir, "report.html")
	if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	const shown = `document.querySelectorAll('#control-table tbody tr:not(.hidden)').length`
	do(t, b, chromedp.Navigate("file://"+file), chromedp.WaitVisible(chromedp.CSS(`#controls`)))
	if ready := eval[string](t, b, `document.documentElement.getAttribute('data-ready')`); ready != "true" {
		t.Error("the page's script did not finish")
	}
	if marks := eval[int](t, b, `document.querySelectorAll('svg rect, svg circle').length`); marks < 10 {
		t.Errorf("only %d chart marks drawn", marks)
	}
	if rows := eval[int](t, b, shown); rows != len(r.Controls) {
		t.Errorf("%d control rows shown, want %d", rows, len(r.Controls))
	}
	do(t, b, chromedp.Click(chromedp.CSS(`button[data-filter="not-satisfied"]`)))
	if rows := eval[int](t, b, shown); rows != r.Summary.ByStatus.NotSatisfied {
		t.Errorf("filtering by not satisfied shows %d rows, want %d", rows, r.Summary.ByStatus.NotSatisfied)
	}
	do(t, b, chromedp.Click(chromedp.CSS(`button[data-filter="all"]`)), chromedp.SendKeys(chromedp.CSS(`#search`), "CVE-2019-14697"))
	if rows := eval[int](t, b, shown); rows != 2 { // RA-5 and SI-2 carry the CVE
		t.Errorf("searching for a CVE shows %d rows, want 2 (RA-5, SI-2)", rows)
	}
	eval[bool](t, b, `(function () { var s = document.getElementById('search'); s.value = ''; return s.dispatchEvent(new Event('input')); }())`)
	if rows := eval[int](t, b, shown); rows != len(r.Controls) {
		t.Errorf("clearing the search shows %d rows, want %d", rows, len(r.Controls))
	}
	do(t, b, chromedp.Click(chromedp.CSS(`a[data-open="control-RA-5"]`)))
	if !eval[bool](t, b, `document.getElementById('control-RA-5').open`) {
		t.Error("following a control's link does not open its evidence")
	}
	do(t, b, chromedp.ScrollIntoView(chromedp.CSS(`body`)))
	shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	png := filepath.Join(dir, "report.png")
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.takeErrors() {
		t.Errorf("browser: %s", e)
	}
	t.Logf("HTML report: %s; screenshot: %s (%d bytes)", file, png, len(shot))
}

// The listener must see what it is meant to catch, or the test above
// could pass on a broken page.
func TestHTMLReport_BrowserCheckCatchesErrors(t *testing.T) {
	dir := outDir(t)
	file := filepath.Join(dir, "broken.html")
	broken := `<!DOCTYPE html><html><head><title>broken</title></head><body>
<img src="http://127.0.0.1:9/missing.png"><script>console.error("boom"); undefinedFunction();</script></body></html>`
	if err := os.WriteFile(file, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(file)
	b := newBrowser(t)
	do(t, b, chromedp.Navigate("file://"+file), chromedp.WaitReady(chromedp.CSS(`body`)), chromedp.Sleep(500*time.Millisecond))
	got := strings.Join(b.takeErrors(), "\n")
	for _, want := range []string{"console error: boom", "console exception", "undefinedFunction", "request for an external asset: http://127.0.0.1:9/missing.png"} {
		if !strings.Contains(got, want) {
			t.Errorf("the browser check missed %q; it saw:\n%s", want, got)
		}
	}
}
