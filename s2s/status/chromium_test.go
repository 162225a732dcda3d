package status_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium returns the path of Debian's Chromium, skipping the test when it
// is missing, unless CI=true, where a missing browser is a failure (.ci/run
// installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (Debian package chromium); CI must install it")
	}
	t.Skip("chromium is not installed (Debian package chromium)")
	return ""
}

// TestInChromium drives the page as a person does, in a real headless
// Chromium: it reads the link and the failure off the status page, types a
// domain into the form, submits it and reads the diagnosis.
func TestInChromium(t *testing.T) {
	path := chromium(t)
	f := newFixture(t)

	// The flags this machine needs: no sandbox (root), no GPU, and none of
	// the background connections that a closed network refuses.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	if err := chromedp.Do(bctx, chromedp.Navigate(f.srv.URL+"/s2s/")); err != nil {
		t.Fatal(err)
	}
	title := read(t, bctx, chromedp.Title())
	links := read(t, bctx, chromedp.Text(chromedp.CSS("#links")))
	failures := read(t, bctx, chromedp.Text(chromedp.CSS("#failures")))
	// Type the domain and press the button, as a person would; then wait
	// for the report page.
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS(`input[name="remote"]`), "down.example"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#summary")),
	); err != nil {
		t.Fatal(err)
	}
	summary := read(t, bctx, chromedp.Text(chromedp.CSS("#summary")))
	checks := read(t, bctx, chromedp.Text(chromedp.CSS("#checks")))
	t.Logf("the browser shows: %s", summary)
	if title != "s2s status" {
		t.Errorf("title %q", title)
	}
	for _, c := range []struct{ what, text, want string }{
		{"links", links, "remote.example"},
		{"links", links, "TLS1.3"},
		{"links", links, "dialback"},
		{"failures", failures, "down.example"},
		{"failures", failures, "TCP connect"},
		{"failures", failures, "connection refused"},
		{"summary", summary, "host.example cannot federate with down.example: TCP connect failed"},
		{"checks", checks, "Nothing listens on"},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("%s shows %q, without %q", c.what, c.text, c.want)
		}
	}
}

func read(t *testing.T, ctx context.Context, a chromedp.Action[string]) string {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
