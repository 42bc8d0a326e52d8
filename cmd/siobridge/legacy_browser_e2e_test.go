package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/siobridge/siobridge/internal/testkit"
)

// pageWait bounds one wait for something a page should log.
const pageWait = 15 * time.Second

// seenRequest is one request that went through a recordingProxy.
type seenRequest struct {
	Method, Path string
	Query        url.Values
	Upgrade      string // the Upgrade header: "websocket" for a WebSocket
	Dest, Mode   string // Sec-Fetch-Dest and Sec-Fetch-Mode, as Chromium sends them
}

// recordingProxy is a reverse proxy on its own loopback address in front of siobridge, which
// has no request log: it records every request the browser makes to siobridge.
type recordingProxy struct {
	URL string

	mu   sync.Mutex
	seen []seenRequest
}

// startRecordingProxy serves on host (a loopback address), forwarding to target with the
// browser's Host, as siobridge's docs ask of a proxy in front.
func startRecordingProxy(t *testing.T, host, target string) *recordingProxy {
	t.Helper()
	to, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{}
	problems := testkit.NewProblems(t, "the recording proxy")
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(to)
			r.Out.Host = r.In.Host
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// A long poll the browser gave up (the page closed) is not a problem.
			if !errors.Is(err, context.Canceled) {
				problems.Add("%s %s: %v", r.Method, r.URL, err)
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", host, err)
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, seenRequest{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Upgrade: r.Header.Get("Upgrade"),
			Dest: r.Header.Get("Sec-Fetch-Dest"), Mode: r.Header.Get("Sec-Fetch-Mode"),
		})
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	_ = ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	p.URL = ts.URL
	return p
}

func (p *recordingProxy) requests() []seenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// pageLine is one JSON line a page logged.
type pageLine map[string]any

func (l pageLine) str(key string) string { s, _ := l[key].(string); return s }

// waitPageLine waits for the first line of #log, one JSON object a line, whose step is step
// (and event, when not "").
func waitPageLine(t *testing.T, ctx context.Context, step, event string) pageLine {
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
	var l pageLine
	if err != nil || json.Unmarshal([]byte(line), &l) != nil {
		log, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("log").textContent`))
		t.Fatalf("the page logged no %s %s within %v (%v); its log:\n%s", step, event, pageWait, err, log)
	}
	return l
}

func jsonText(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestE2ELegacyJSONPInChromium: socketio/testdata/interop/legacy.html, on the 2.x browser
// bundle with forceJSONP, in headless Chromium, from a page origin (127.0.0.1) listed in
// cors_origins, against siobridge with allow_eio3: a POST /emit reaches the page, binary
// included; the page's emits reach the webhook and the app's acks come back; the disconnect
// reaches the app. siobridge keeps no request log, so the page talks to it through a
// recording reverse proxy on 127.0.0.3 (startRecordingProxy), which checks that every
// Socket.IO request was JSONP: a script GET or a form POST, each with "j" in its query; none
// was XHR (no "j", Sec-Fetch-Dest empty) or a WebSocket.
func TestE2ELegacyJSONPInChromium(t *testing.T) {
	chromium := testkit.RequireTool(t, "chromium")
	modules := testkit.RequireNodeModules(t, testkit.InteropNode, "socket.io-client-v2")

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, testkit.RootDir(t, testkit.InteropNode+"/legacy.html"))
	})
	mux.HandleFunc("GET /socket.io.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, modules+"/socket.io-client-v2/dist/socket.io.js")
	})
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)

	a := startApp(t)
	a.setReply(func(ctx context.Context, d delivery) (int, any) {
		if d.Kind == "event" && d.Payload.Event == "echo" {
			return http.StatusOK, map[string]any{"ack": d.Payload.Args}
		}
		return chatReply(ctx, d)
	})
	b := startBridge(t, a, allowEIO3, "SIOBRIDGE_SOCKETIO_CORS_ORIGINS="+page.URL)
	front := startRecordingProxy(t, "127.0.0.3", b.url())

	ctx := testkit.StartBrowser(t, chromium, 2*time.Minute)
	pageURL := page.URL + "/?server=" + url.QueryEscape(front.URL)
	load, cancel := context.WithTimeout(ctx, pageWait)
	defer cancel()
	if _, err := chromedp.Run(load, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("load %s: %v", pageURL, err)
	}

	c := waitPageLine(t, ctx, "connect", "")
	id := c.str("id")
	if id == "" || id != c.str("engine") || c.str("transport") != "polling" || c["jsonp"] != true {
		t.Fatalf("the page's connect line %v: want the session id as socket id, over JSONP polling", c)
	}
	d := a.waitFor(t, "the page's connect webhook", func(d delivery) bool {
		return d.Kind == "connect" && d.Payload.Socket.ID == id && d.Status != 0
	})
	// The handshake is the page's first script GET: no Origin, but the page as referrer.
	if h := d.Payload.Socket.Handshake; h == nil || h.Query["EIO"] != "3" || h.Query["j"] == "" ||
		h.Headers["sec-fetch-dest"] != "script" || h.Headers["referer"] != page.URL+"/" {
		t.Errorf("the page's connect webhook: handshake %+v, want EIO 3, a j, a script of the page", h)
	}

	// POST /emit reaches the page, binary included (base64 in the JSONP payload).
	b.emit(t, map[string]any{"event": "news", "to": []string{id}, "args": []any{"from the API", map[string]string{"$binary": "AP8="}}}, 1)
	if got := jsonText(t, waitPageLine(t, ctx, "event", "news")["args"]); got != `["from the API",{"$bin":"00ff"}]` {
		t.Errorf("the page got news %s", got)
	}
	// The page's emit reaches the webhook (its form POST), and the app's ack comes back.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`void emitAck("echo", "from the page", {s: "é☃😀"}, new Uint8Array([1, 2]).buffer)`)); err != nil {
		t.Fatalf("emit from the page: %v", err)
	}
	assertJSON(t, "the page's echo webhook", a.waitEvent(t, id, "echo").Payload.Args, `["from the page",{"s":"é☃😀"},{"$binary":"AQI="}]`)
	if got := jsonText(t, waitPageLine(t, ctx, "ack", "echo")["value"]); got != `["from the page",{"s":"é☃😀"},{"$bin":"0102"}]` {
		t.Errorf("the page's echo ack %s", got)
	}
	// A "say" makes the page emit sendMsg, which the chat app acknowledges.
	b.emit(t, map[string]any{"event": "say", "to": []string{id}, "args": []any{"sendMsg", "said"}}, 1)
	if got := jsonText(t, waitPageLine(t, ctx, "ack", "sendMsg")["value"]); got != `["sent"]` {
		t.Errorf("the page's sendMsg ack %s", got)
	}
	assertJSON(t, "the page's sendMsg webhook", a.waitEvent(t, id, "sendMsg").Payload.Args, `["said"]`)

	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`void socket.close()`)); err != nil {
		t.Fatalf("close the page's socket: %v", err)
	}
	d = a.waitFor(t, "the page's disconnect webhook", func(d delivery) bool {
		return d.Kind == "disconnect" && d.Payload.Socket.ID == id
	})
	if d.Payload.Reason != "client namespace disconnect" {
		t.Errorf("the page's disconnect reason %q", d.Payload.Reason)
	}

	var methods []string
	for _, r := range front.requests() {
		line := jsonText(t, r)
		if !r.Query.Has("j") || r.Upgrade != "" {
			t.Errorf("a request that is not JSONP: %s", line)
		}
		if r.Path != "/socket.io/" || r.Query.Get("EIO") != "3" || r.Query.Get("transport") != "polling" {
			t.Errorf("a request that is not 2.x polling: %s", line)
		}
		// A JSONP GET is a script; a JSONP POST, a form sent into an iframe. XHR and fetch
		// are "empty".
		if want := map[string]string{"GET": "script", "POST": "iframe"}[r.Method]; r.Dest != want {
			t.Errorf("a %s request with Sec-Fetch-Dest %q, want %q: %s", r.Method, r.Dest, want, line)
		}
		methods = append(methods, r.Method)
	}
	if !slices.Contains(methods, "GET") || !slices.Contains(methods, "POST") {
		t.Errorf("the proxy saw the requests %v, want JSONP GETs and form POSTs", methods)
	}
}
