package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/proxy"
)

const (
	testSecret = "browser-test-secret"
	// browserTestTimeout bounds the whole test, browser included.
	browserTestTimeout = 3 * time.Minute
	// pageWait bounds one wait for something a page should show.
	pageWait = 15 * time.Second
)

// siobridge is the binary the test runs, built once.
var siobridge testkit.Binary

func TestMain(m *testing.M) { os.Exit(siobridge.Run(m)) }

// TestBrowserChat is the demo as a user sees it: two Chromium pages load the chat through
// siobridge (the page from this app through the reverse proxy, socket.io.js from siobridge's
// embedded bundle), chat, join and leave a room. The screenshot of page B is written to
// t.ArtifactDir(): run with -artifacts to keep it.
func TestBrowserChat(t *testing.T) {
	chromium := testkit.RequireTool(t, "chromium")
	if _, ok := proxy.ClientBundle(); !ok {
		t.Fatal("the socket.io-client bundle is missing from proxy/clientdist, so siobridge would answer 404 for /socket.io/socket.io.js: run `make bundle` (or `make deps`)")
	}

	app := httptest.NewServer(newApp(testSecret)) // closed last: siobridge's shutdown sends it disconnects
	t.Cleanup(app.Close)
	sb := testkit.StartSiobridge(t, testkit.Command{
		Args: []string{siobridge.Path(t)},
		Env: []string{
			"SIOBRIDGE_SERVER_UPSTREAM=" + app.URL,
			"SIOBRIDGE_WEBHOOK_URL=" + app.URL + "/webhook",
			"SIOBRIDGE_WEBHOOK_SECRET=" + testSecret,
		},
	})
	url := "http://" + sb.Public + "/"

	browser := testkit.StartBrowser(t, chromium, browserTestTimeout)
	a := openPage(t, browser, "A", url)
	b := openPage(t, browser, "B", url) // each page is a new tab, in a window of its own
	for _, p := range []*tab{a, b} {
		p.waitLine("server: welcome, " + p.name())
	}

	// A chats; B gets it under A's name, A sees its own line only as "me".
	a.send("hello from page A", "")
	b.waitLine(a.name() + ": hello from page A")
	// B answers: had A been sent its own message too, that would have come before this one.
	b.send("hi from page B", "")
	a.waitLine(b.name() + ": hi from page B")
	a.wantLog("server: welcome, "+a.name(), "me: hello from page A", b.name()+": hi from page B")

	// Both join "tea"; A's room message reaches B.
	for _, p := range []*tab{a, b} {
		p.room("join", "tea")
		p.waitLine("rooms: " + p.id + ", tea")
	}
	a.send("tea time", "tea")
	b.waitLine("[tea] " + a.name() + ": tea time")

	// B leaves; A's next room message does not reach it, the public one after it does.
	b.room("leave", "tea")
	b.waitLine("rooms: " + b.id)
	a.send("anyone?", "tea")
	a.send("bye", "")
	b.waitLine(a.name() + ": bye")

	a.wantLog(
		"server: welcome, "+a.name(),
		"me: hello from page A",
		b.name()+": hi from page B",
		"rooms: "+a.id+", tea",
		"me: tea time",
		"me: anyone?",
		"me: bye",
	)
	b.wantLog(
		"server: welcome, "+b.name(),
		a.name()+": hello from page A",
		"me: hi from page B",
		"rooms: "+b.id+", tea",
		"[tea] "+a.name()+": tea time",
		"rooms: "+b.id,
		a.name()+": bye",
	)
	// The pages started on long-polling; by now both have upgraded to a WebSocket.
	for _, p := range []*tab{a, b} {
		if _, err := p.poll(`() => document.getElementById("status").textContent.endsWith(" over websocket")`); err != nil {
			t.Errorf("page %s did not upgrade to a WebSocket: %v; status %q", p.label, err, p.text("#status"))
		}
	}
	b.screenshot("page-b.png")
}

// tab is one browser tab showing the chat.
type tab struct {
	t      *testing.T
	label  string          // "A", "B"
	ctx    context.Context // the tab's chromedp context
	id     string          // the socket id the page shows once connected
	shot   string          // the last screenshot's path
	mu     sync.Mutex      // guards logged
	logged []string        // the tab's console messages
}

// name is the chat name the app gives the page's socket.
func (p *tab) name() string { return "guest-" + p.id[:4] }

// openPage opens url in a new tab of parent's browser and waits until the page says it is
// connected. On failure, the tab's screenshot, chat log and console are logged.
func openPage(t *testing.T, parent context.Context, label, url string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	p := &tab{t: t, label: label, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // opens the tab, bound to ctx (no timeout here)
		cancel()
		t.Fatalf("page %s: open a tab: %v", label, err)
	}
	console := chromedp.Console(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for m, err := range console {
			if err != nil {
				return // the tab's context ended
			}
			p.mu.Lock()
			p.logged = append(p.logged, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
			p.mu.Unlock()
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if p.shot == "" {
			p.screenshot("page-" + strings.ToLower(label) + "-failed.png")
		}
		t.Logf("page %s: screenshot %s (go test -artifacts keeps it)", label, p.shot)
		t.Logf("page %s: chat log %q", label, p.log())
		p.mu.Lock()
		t.Logf("page %s: console:\n%s", label, strings.Join(p.logged, "\n"))
		p.mu.Unlock()
	})

	p.do("load "+url, chromedp.Navigate(url))
	status, err := p.poll(`() => { const s = document.getElementById("status").textContent; return s.startsWith("connected as ") && s; }`)
	if err != nil {
		t.Fatalf("page %s never said it was connected: %v; status %q", label, err, p.text("#status"))
	}
	// examples/legacy's 2.x page says "over JSONP polling".
	m := regexp.MustCompile(`^connected as (\S{4,}) over (polling|websocket|JSONP polling)$`).FindStringSubmatch(status)
	if m == nil {
		t.Fatalf("page %s: status %q, want \"connected as <id> over <transport>\"", label, status)
	}
	p.id = m[1]
	return p
}

// send types text into the send form, and room (may be empty) into its room field, and
// clicks Send.
func (p *tab) send(text, room string) {
	p.t.Helper()
	p.do("send "+text, fill("send-room", room), fill("text", text), chromedp.Click(chromedp.ID("send-button")))
}

// room types room into the rooms form and clicks its button: "join" or "leave".
func (p *tab) room(button, room string) {
	p.t.Helper()
	p.do(button+" "+room, fill("room", room), chromedp.Click(chromedp.ID(button)))
}

// fill empties the input with this id and types value into it, as a user would.
// (chromedp.SetValue cannot set "": v0.23 drops an empty string argument.)
func fill(id, value string) chromedp.Action[chromedp.Void] {
	empty := chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).value = ""`, id))
	if value == "" {
		return empty
	}
	return chromedp.Steps(empty, chromedp.SendKeys(chromedp.ID(id), value))
}

// waitLine waits until the chat log has a line reading exactly line.
func (p *tab) waitLine(line string) {
	p.t.Helper()
	_, err := p.poll(`(want) => [...document.querySelectorAll("#log p")].some((p) => p.textContent === want)`, line)
	if err != nil {
		p.t.Fatalf("page %s: no %q in the chat log: %v; the log: %q", p.label, line, err, p.log())
	}
}

// wantLog checks the whole chat log, line by line.
func (p *tab) wantLog(want ...string) {
	p.t.Helper()
	if got := p.log(); !reflect.DeepEqual(got, want) {
		p.t.Errorf("page %s: chat log\n%q\nwant\n%q", p.label, got, want)
	}
}

// log is the chat log's lines (nil if it cannot be read).
func (p *tab) log() []string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	lines, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#log p")].map((p) => p.textContent)`))
	return lines
}

// text is the text of the element sel selects ("" if it cannot be read).
func (p *tab) text(sel string) string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	return s
}

// screenshot saves the tab's viewport as name in the test's artifact directory.
func (p *tab) screenshot(name string) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Logf("page %s: screenshot: %v", p.label, err)
		return
	}
	path := filepath.Join(p.t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Logf("page %s: screenshot: %v", p.label, err)
		return
	}
	p.shot = path
}

// poll waits up to pageWait for the JavaScript function fn, called with args, to return a
// truthy value, and returns it as a string ("true" for true).
func (p *tab) poll(fn string, args ...any) (string, error) {
	ctx, cancel := context.WithTimeout(p.ctx, pageWait+5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.PollFunction[any](fn,
		chromedp.WithPollingArgs(args...),
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(pageWait)))
	return fmt.Sprint(v), err
}

// do runs steps on the tab within pageWait; what names them in the error.
func (p *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, pageWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("page %s: %s: %v", p.label, what, err)
	}
}
