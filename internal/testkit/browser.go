package testkit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// StartBrowser starts headless Chromium (the path RequireTool(t, "chromium") gives) with a
// fresh profile, and returns its first tab's context, for chromedp. The browser stops when the
// test ends, or after within; when the test failed, its output is logged.
func StartBrowser(t testing.TB, chromium string, within time.Duration) context.Context {
	t.Helper()
	var out Lines
	parent, cancelParent := context.WithTimeout(context.Background(), within)
	alloc, cancelAlloc := chromedp.NewExecAllocator(parent,
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Without these Chromium reaches for the network at start, which is closed here.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		// Crashpad's database goes to $XDG_CONFIG_HOME/chromium, not the profile directory.
		chromedp.Env("XDG_CONFIG_HOME="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir()),
		chromedp.WindowSize(900, 800),
		chromedp.CombinedOutput(&out),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser to exit
		cancelParent()
		if t.Failed() {
			t.Logf("chromium output (without its D-Bus complaints):\n%s", withoutDBus(out.String()))
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v\n%s", chromium, err, withoutDBus(out.String()))
	}
	return ctx
}

// withoutDBus drops the lines where Chromium says it has no D-Bus, as in every container.
func withoutDBus(out string) string {
	var keep []string
	for line := range strings.Lines(out) {
		if !strings.Contains(line, ":ERROR:dbus/") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}
