package socketio_test

// The legacy-client scenarios (testdata/interop/client2.js, socket.io-client 2.5.0, and
// legacy.html in Chromium on JSONP) against the reference they were written for: Node's
// socket.io 4.8 server with allowEIO3 (testdata/interop/v2reference.js). These tests keep the
// scenarios honest; the tests of siobridge's allow_eio3 run the same scenarios against it.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/siobridge/siobridge/internal/testkit"
)

// pageWait bounds one wait for something the page should log.
const pageWait = 15 * time.Second

// v2Line is one JSON line a client or the reference server printed.
type v2Line map[string]any

func (l v2Line) str(key string) string { s, _ := l[key].(string); return s }

// jsonOf is v as compact JSON, for comparisons.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startV2Reference runs v2reference.js on host with the given heartbeat, and returns it with
// its URL once it is ready.
func startV2Reference(t *testing.T, host string, pingInterval, pingTimeout time.Duration) (*testkit.NodeServer, string) {
	t.Helper()
	node := testkit.RequireTool(t, "node")
	testkit.RequireNodeModules(t, testkit.ClusterNode, "socket.io")
	testkit.RequireNodeModules(t, testkit.InteropNode, "socket.io-client", "socket.io-client-v2")
	s := &testkit.NodeServer{Process: testkit.Start(t, testkit.Command{
		Name: "the Node.js reference (v2reference.js)",
		Args: []string{node, "v2reference.js", "--host", host,
			"--ping-interval", fmt.Sprint(pingInterval.Milliseconds()), "--ping-timeout", fmt.Sprint(pingTimeout.Milliseconds())},
		Dir:       testkit.RootDir(t, testkit.InteropNode),
		Stdin:     true,
		CheckExit: true,
	})}
	ready := s.Expect(t, "the reference to be ready", func(m testkit.NodeMessage) bool { return m.Kind() == "ready" })
	if err := json.Unmarshal(ready["port"], &s.Port); err != nil || s.Port == 0 {
		t.Fatalf("the reference's ready line has no port: %v", ready)
	}
	return s, fmt.Sprintf("http://%s:%d", host, s.Port)
}

// startJS runs node SCRIPT URL ARGS... in testdata/interop; it must exit 0.
func startJS(t *testing.T, script, url string, args ...string) *testkit.Process {
	t.Helper()
	return testkit.Start(t, testkit.Command{
		Name:      strings.Join(append([]string{script}, args...), " "),
		Args:      append([]string{testkit.RequireTool(t, "node"), script, url}, args...),
		Dir:       testkit.RootDir(t, testkit.InteropNode),
		CheckExit: true,
	})
}

// finish waits for a client to exit 0 with {"step":"done"} last, and returns its lines by step.
func finish(t *testing.T, p *testkit.Process) map[string]v2Line {
	t.Helper()
	if err := p.Wait(interopProcTimeout); err != nil {
		t.Fatalf("%s: %v\n%s", p.Name(), err, p.Output())
	}
	steps := map[string]v2Line{}
	var last string
	for _, line := range p.Stdout.All() {
		var l v2Line
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("%s printed a line that is not a JSON object: %q", p.Name(), line)
		}
		last = l.str("step")
		if _, ok := steps[last]; !ok {
			steps[last] = l
		}
	}
	if last != "done" {
		t.Fatalf("%s: the last line is not {\"step\":\"done\"}\n%s", p.Name(), p.Output())
	}
	return steps
}

// serverSaw returns the reference's first line of kind about the socket id.
func serverSaw(t *testing.T, s *testkit.NodeServer, kind, id string) testkit.NodeMessage {
	t.Helper()
	return s.Expect(t, fmt.Sprintf("the reference's %s line for %s", kind, id), func(m testkit.NodeMessage) bool {
		return m.Kind() == kind && m.Text("id") == id
	})
}

// TestV2ReferenceScenarios runs each client2.js scenario against the reference, and checks what
// the siobridge tests will check: the ids, the transports, the heartbeat, the refusal.
func TestV2ReferenceScenarios(t *testing.T) {
	const interval, timeout = 300 * time.Millisecond, 200 * time.Millisecond
	ref, u := startV2Reference(t, "127.0.0.1", interval, timeout)

	for _, tc := range []struct {
		mode, connect, final string
	}{
		{"default", "polling", "websocket"},
		{"websocket", "websocket", "websocket"},
		{"polling", "polling", "polling"},
	} {
		t.Run("core "+tc.mode, func(t *testing.T) {
			steps := finish(t, startJS(t, "client2.js", u, "core", tc.mode))
			c := steps["connect"]
			// With the default transports the upgrade may be over before the connect event.
			if c.str("id") == "" || c.str("id") != c.str("engine") || (tc.mode != "default" && c.str("transport") != tc.connect) {
				t.Errorf("connect line %v: want the id to be the Engine.IO session id, over %s", c, tc.connect)
			}
			if f := steps["final"].str("transport"); f != tc.final {
				t.Errorf("final transport %q, want %q", f, tc.final)
			}
			if _, ok := steps["upgrade"]; ok != (tc.mode == "default") {
				t.Errorf("upgrade step printed: %v, want %v", ok, tc.mode == "default")
			}
			conn := serverSaw(t, ref, "connection", c.str("id"))
			if eio, nsp, tr := conn.Text("eio"), conn.Text("nsp"), conn.Text("transport"); eio != "3" || nsp != "/" || tr != tc.connect {
				t.Errorf("the reference saw protocol %q in %q over %q, want 3 in / over %s", eio, nsp, tr, tc.connect)
			}
			// The server-to-client ack came back whole.
			if got := jsonOf(t, steps["answered"]["value"]); got != `[{"answer":42,"q":"6×7?"},{"$bin":"0402"}]` {
				t.Errorf("answered %s", got)
			}
		})
	}

	t.Run("namespace with a query token", func(t *testing.T) {
		steps := finish(t, startJS(t, "client2.js", u, "namespace"))
		c := steps["connect"]
		if c.str("id") != "/chat#"+c.str("engine") {
			t.Errorf("socket.id %q, want /chat#<session id %q>", c.str("id"), c.str("engine"))
		}
		conn := serverSaw(t, ref, "connection", c.str("id"))
		if got := string(conn["auth"]); got != `{"token":"abc"}` {
			t.Errorf("the reference saw the auth %s, want the CONNECT packet's query {\"token\":\"abc\"}", got)
		}
	})

	t.Run("refused", func(t *testing.T) {
		steps := finish(t, startJS(t, "client2.js", u, "refused"))
		if got := jsonOf(t, steps["refused"]); got != `{"connected":false,"error":"not allowed","step":"refused"}` {
			t.Errorf("refused line %s: want the error event with the server's message", got)
		}
	})

	t.Run("heartbeat", func(t *testing.T) {
		p := startJS(t, "client2.js", u, "heartbeat", fmt.Sprint(interval.Milliseconds()), fmt.Sprint(timeout.Milliseconds()))
		steps := finish(t, p)
		h := steps["heartbeat"]
		if pongs, _ := h["pongs"].(float64); pongs < 4 || h["connected"] != true {
			t.Errorf("heartbeat line %v: want 4 pongs or more, still connected", h)
		}
		// The connection lasted until the client closed it.
		d := serverSaw(t, ref, "disconnect", steps["connect"].str("id"))
		if r := d.Text("reason"); r != "client namespace disconnect" {
			t.Errorf("the reference's disconnect reason %q, want the client's own close", r)
		}
	})

	for _, nsp := range []string{"/", "/chat"} {
		t.Run("chat v2 and v4 in "+nsp, func(t *testing.T) { testV2Chat(t, ref, u, nsp) })
	}
}

// testV2Chat pairs a 2.x client (client2.js chat) with a 4.x one (client.js chat) in nsp: each
// one's sendMsg reaches the other, the 2.x one joins a room and gets what is sent there.
func testV2Chat(t *testing.T, ref *testkit.NodeServer, u, nsp string) {
	v2 := startJS(t, "client2.js", u, "chat", nsp)
	v4 := startJS(t, "client.js", u, "chat", nsp)
	connect := func(p *testkit.Process) string {
		c := testkit.TakeJSON(t, p.Stdout, p.Name()+" connect", func(l v2Line) bool { return l.str("step") == "connect" })
		return c.str("id")
	}
	id2, id4 := connect(v2), connect(v4)
	if (nsp == "/") != (id2 == strings.TrimPrefix(id2, "/chat#")) {
		t.Errorf("the 2.x client's id %q in %s", id2, nsp)
	}
	say := func(to string, args ...any) {
		ref.Call(t, map[string]any{"cmd": "emit", "nsp": nsp, "to": []string{to}, "event": "say", "args": args})
	}
	await := func(p *testkit.Process, step, event string) v2Line {
		return testkit.TakeJSON(t, p.Stdout, fmt.Sprintf("%s %s %s", p.Name(), step, event), func(l v2Line) bool {
			return l.str("step") == step && l.str("event") == event
		})
	}
	wantJSON := func(what string, got any, want string) {
		t.Helper()
		if g := jsonOf(t, got); g != want {
			t.Errorf("%s: %s, want %s", what, g, want)
		}
	}

	say(id2, "sendMsg", "hi v4", map[string]any{"n": 1, "s": "é☃😀"})
	wantJSON("v4's reviceMsg", await(v4, "event", "reviceMsg")["args"], `["hi v4",{"n":1,"s":"é☃😀"}]`)
	wantJSON("v2's ack", await(v2, "ack", "sendMsg")["value"], `["sent"]`)
	say(id4, "sendMsg", "hi v2")
	wantJSON("v2's reviceMsg", await(v2, "event", "reviceMsg")["args"], `["hi v2"]`)
	wantJSON("v4's ack", await(v4, "ack", "sendMsg")["value"], `["sent"]`)

	say(id2, "joinRoom", "r")
	wantJSON("v2's joinRoom ack", await(v2, "ack", "joinRoom")["value"], jsonOf(t, []any{[]string{id2, "r"}}))
	say(id4, "sendMsg", "to r", "r")
	say(id4, "sendMsg", "to all")
	await(v4, "ack", "sendMsg")
	await(v4, "ack", "sendMsg")
	ref.Call(t, map[string]any{"cmd": "emit", "nsp": nsp, "event": "marker"})

	e2 := finish(t, v2)["events"]
	e4 := finish(t, v4)["events"]
	wantJSON("v2's events", e2["events"], `[{"args":["hi v2"],"event":"reviceMsg"},{"args":["to r","r"],"event":"reviceMsg"},{"args":["to all"],"event":"reviceMsg"}]`)
	// v4 is not in r, and never gets its own messages.
	wantJSON("v4's events", e4["events"], `[{"args":["hi v4",{"n":1,"s":"é☃😀"}],"event":"reviceMsg"}]`)
}

// TestV2ReferenceJSONPInChromium loads legacy.html, with the 2.x browser bundle, in headless
// Chromium from one loopback origin, with forceJSONP, against the reference on another: the
// server's emit reaches the page, the page's emits reach the server, binary included, and every
// request the server got was JSONP (a "j" in its query): no XHR, no WebSocket.
func TestV2ReferenceJSONPInChromium(t *testing.T) {
	chromium := testkit.RequireTool(t, "chromium")
	ref, server := startV2Reference(t, "127.0.0.2", 25*time.Second, 20*time.Second)
	modules := testkit.RequireNodeModules(t, testkit.InteropNode, "socket.io-client-v2")

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, testkit.RootDir(t, testkit.InteropNode+"/legacy.html"))
	})
	mux.HandleFunc("GET /socket.io.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, modules+"/socket.io-client-v2/dist/socket.io.js")
	})
	page := httptest.NewServer(mux) // 127.0.0.1: another origin than the reference's
	t.Cleanup(page.Close)

	ctx := testkit.StartBrowser(t, chromium, 2*time.Minute)
	pageURL := page.URL + "/?server=" + url.QueryEscape(server)
	load, cancel := context.WithTimeout(ctx, pageWait)
	defer cancel()
	if _, err := chromedp.Run(load, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("load %s: %v", pageURL, err)
	}
	// logLine waits for the page's first log line of step (and event, when not "").
	logLine := func(step, event string) v2Line {
		t.Helper()
		wait, cancel := context.WithTimeout(ctx, pageWait+5*time.Second)
		defer cancel()
		line, err := chromedp.Run(wait, chromedp.PollFunction[string](
			`(step, event) => document.getElementById("log").textContent.split("\n").find((line) => {
				try { const l = JSON.parse(line); return l.step === step && (!event || l.event === event); } catch { return false; }
			})`,
			chromedp.WithPollingArgs(step, event),
			chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(pageWait)))
		var l v2Line
		if err != nil || json.Unmarshal([]byte(line), &l) != nil {
			log, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("log").textContent`))
			t.Fatalf("the page logged no %s %s within %v (%v); its log:\n%s", step, event, pageWait, err, log)
		}
		return l
	}

	c := logLine("connect", "")
	id := c.str("id")
	if id == "" || id != c.str("engine") || c.str("transport") != "polling" || c["jsonp"] != true {
		t.Fatalf("the page's connect line %v: want the session id as socket id, over JSONP polling", c)
	}

	// The server emits to the page, binary included (base64 in the JSONP payload).
	ref.Call(t, map[string]any{"cmd": "emit", "to": []string{id}, "event": "news", "args": []any{"from node", map[string]any{"$bin": "00ff"}}})
	if got := jsonOf(t, logLine("event", "news")["args"]); got != `["from node",{"$bin":"00ff"}]` {
		t.Errorf("the page got news %s", got)
	}
	// The page emits: its form POSTs reach the server, and the acks come back.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`void emitAck("echo", "from the page", {s: "é☃😀"}, new Uint8Array([1, 2]).buffer)`)); err != nil {
		t.Fatalf("emit from the page: %v", err)
	}
	ev := serverSaw(t, ref, "event", id)
	if got := string(ev["args"]); ev.Text("event") != "echo" || got != `["from the page",{"s":"é☃😀"},{"$bin":"0102"}]` {
		t.Errorf("the reference got %s %s from the page", ev.Text("event"), got)
	}
	if got := jsonOf(t, logLine("ack", "echo")["value"]); got != `["from the page",{"s":"é☃😀"},{"$bin":"0102"}]` {
		t.Errorf("the page's echo ack %s", got)
	}
	// A "say" from the server makes the page emit with an ack, as client2.js's chat does.
	ref.Call(t, map[string]any{"cmd": "emit", "to": []string{id}, "event": "say", "args": []any{"sendMsg", "said"}})
	if got := jsonOf(t, logLine("ack", "sendMsg")["value"]); got != `["sent"]` {
		t.Errorf("the page's sendMsg ack %s", got)
	}

	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`void socket.close()`)); err != nil {
		t.Fatalf("close the page's socket: %v", err)
	}
	if r := serverSaw(t, ref, "disconnect", id).Text("reason"); r != "client namespace disconnect" {
		t.Errorf("the reference's disconnect reason %q", r)
	}

	// Every request was JSONP: GETs of scripts and form POSTs, each with j in its query.
	var methods []string
	for _, m := range ref.Pending() {
		if m.Kind() != "request" {
			continue
		}
		var q map[string]string
		_ = json.Unmarshal(m["query"], &q)
		line, _ := json.Marshal(m)
		if _, ok := q["j"]; !ok || string(m["upgrade"]) != "false" {
			t.Errorf("a request that is not JSONP polling: %s", line)
		}
		if q["EIO"] != "3" || q["transport"] != "polling" {
			t.Errorf("a request with EIO %q over %q: %s", q["EIO"], q["transport"], line)
		}
		methods = append(methods, m.Text("method"))
	}
	if !slices.Contains(methods, "GET") || !slices.Contains(methods, "POST") {
		t.Errorf("the reference saw the requests %v, want JSONP GETs and form POSTs", methods)
	}
}
