package main

// End-to-end tests: the real siobridge binary, built once, runs as a subprocess configured
// through SIOBRIDGE_* variables; the app is an httptest server in the test that checks each
// webhook's signature, records it and answers with the actions the scenario calls for; the
// clients are the real socket.io-client 4.8 under Node (testdata/e2e/clients.js), driven line by
// line from the test. Everything runs on 127.0.0.1.
//
// When the tests are built with -race, siobridge is too, and every test checks that it exits 0
// (a race report makes it exit 66).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/proxy"
	"github.com/siobridge/siobridge/webhook"
)

const (
	// e2eWait bounds one wait for something that should happen.
	e2eWait = 10 * time.Second
	// e2eSlowWait is how long siobridge waits, in tests where something never answers and
	// makes it wait all of it (an ack, a webhook): what does answer must do so within it, on a
	// loaded machine too.
	e2eSlowWait = 5 * time.Second
	// e2eSecret signs the webhooks; the app refuses any whose signature does not verify.
	e2eSecret = "e2e-webhook-secret"
	// e2eHookPath is the app's webhook endpoint.
	e2eHookPath = "/siobridge-hook"
)

// siobridge is the binary every test here runs, built once.
var siobridge testkit.Binary

func TestMain(m *testing.M) {
	code := siobridge.Run(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines still running after the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// bridgeEnv comes first in every siobridge's environment here: a debug log, which tests read,
// and short waits between webhook retries.
var bridgeEnv = []string{
	"SIOBRIDGE_LOG_LEVEL=debug",
	"SIOBRIDGE_WEBHOOK_RETRY_WAIT_MIN=10ms",
	"SIOBRIDGE_WEBHOOK_RETRY_WAIT_MAX=50ms",
}

// ---- waiting ----

// changes wakes the goroutines waiting for a change of some shared state.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

// next returns a channel closed at the next notify; take it before looking at the state.
func (c *changes) next() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changes) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// waitUntil waits until cond holds, checking it after each change; it fails the test after
// e2eWait, or when abort is closed first.
func waitUntil(t *testing.T, what string, c *changes, cond func() bool, abort <-chan struct{}, abortWhy func() string) {
	t.Helper()
	timer := time.NewTimer(e2eWait)
	defer timer.Stop()
	for {
		ch := c.next()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-abort:
			if cond() {
				return
			}
			t.Fatalf("waiting for %s: %s", what, abortWhy())
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s", e2eWait, what)
		}
	}
}

// ---- siobridge ----

// bridge is a running siobridge process, and a client of its API.
type bridge struct {
	*testkit.Siobridge
	token   string // the API token, if any
	client  *http.Client
	markers atomic.Int64
}

// startBridge runs siobridge with the webhooks going to a (when not nil) and env, SIOBRIDGE_*
// settings that override the test defaults. Its cleanup stops it and checks it exited 0.
func startBridge(t *testing.T, a *app, env ...string) *bridge {
	t.Helper()
	full := slices.Clone(bridgeEnv)
	if a != nil {
		full = append(full, "SIOBRIDGE_WEBHOOK_URL="+a.hookURL(), "SIOBRIDGE_WEBHOOK_SECRET="+e2eSecret)
	}
	full = append(full, env...) // the last value of a variable wins
	b := &bridge{client: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: e2eWait}}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SIOBRIDGE_API_TOKEN="); ok {
			b.token = v
		}
	}
	b.Siobridge = testkit.StartSiobridge(t, testkit.Command{Args: []string{siobridge.Path(t)}, Env: full})
	t.Cleanup(b.client.CloseIdleConnections)
	return b
}

// url is the Socket.IO clients' URL.
func (b *bridge) url() string { return "http://" + b.Public }

// response is an HTTP answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// fetch sends one request; body is sent as is when a string, as JSON otherwise (nil: none).
// It is safe on any goroutine.
func (b *bridge) fetch(method, url string, body any, header http.Header) (response, error) {
	var text string
	switch v := body.(type) {
	case nil:
	case string:
		text = v
	default:
		j, err := json.Marshal(v)
		if err != nil {
			return response{}, err
		}
		text = string(j)
	}
	res, err := testkit.Fetch(b.client, method, url, text, header)
	if err != nil {
		return response{}, err
	}
	return response{res.Status, res.Header, []byte(res.Body)}, nil
}

// authHeader carries the bridge's API token, if it has one.
func (b *bridge) authHeader() http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	if b.token != "" {
		h.Set("Authorization", "Bearer "+b.token)
	}
	return h
}

// call is one API request with the token, on the test's goroutine.
func (b *bridge) call(t *testing.T, method, path string, body any) response {
	t.Helper()
	res, err := b.fetch(method, "http://"+b.API+path, body, b.authHeader())
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

// callJSON is an API request that must answer 200; its JSON answer is decoded into out.
func (b *bridge) callJSON(t *testing.T, method, path string, body, out any) {
	t.Helper()
	res := b.call(t, method, path, body)
	if res.status != http.StatusOK {
		t.Fatalf("%s %s %v: status %d, want 200: %s", method, path, body, res.status, res.body)
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, want JSON", method, path, ct)
	}
	if err := json.Unmarshal(res.body, out); err != nil {
		t.Fatalf("%s %s: answer %s: %v", method, path, res.body, err)
	}
}

// emit POSTs /emit and checks how many sockets it reached.
func (b *bridge) emit(t *testing.T, req map[string]any, wantSockets int) {
	t.Helper()
	var res struct {
		Sockets *int `json:"sockets"`
	}
	b.callJSON(t, http.MethodPost, "/emit", req, &res)
	if res.Sockets == nil || *res.Sockets != wantSockets {
		t.Fatalf("POST /emit %v reached %v sockets, want %d", req, ptrString(res.Sockets), wantSockets)
	}
}

// countCall POSTs /join, /leave or /disconnect and checks the count of sockets.
func (b *bridge) countCall(t *testing.T, path string, req map[string]any, wantSockets int) {
	t.Helper()
	var res struct {
		Sockets *int `json:"sockets"`
	}
	b.callJSON(t, http.MethodPost, path, req, &res)
	if res.Sockets == nil || *res.Sockets != wantSockets {
		t.Fatalf("POST %s %v: sockets %v, want %d", path, req, ptrString(res.Sockets), wantSockets)
	}
}

func ptrString(p *int) string {
	if p == nil {
		return "(missing)"
	}
	return strconv.Itoa(*p)
}

// socketInfo is an item of GET /sockets.
type socketInfo struct {
	ID        string          `json:"id"`
	Namespace string          `json:"namespace"`
	Rooms     []string        `json:"rooms"`
	Data      json.RawMessage `json:"data"`
	Handshake json.RawMessage `json:"handshake"`
}

// sockets is GET /sockets of namespace "/", optionally of one room, by socket id.
func (b *bridge) sockets(t *testing.T, room string) map[string]socketInfo {
	t.Helper()
	return b.socketsIn(t, "/", room)
}

// socketsIn is GET /sockets of a namespace, optionally of one room, by socket id.
func (b *bridge) socketsIn(t *testing.T, nsp, room string) map[string]socketInfo {
	t.Helper()
	path := "/sockets?namespace=" + url.QueryEscape(nsp)
	if room != "" {
		path += "&room=" + url.QueryEscape(room)
	}
	var res struct {
		Sockets []socketInfo `json:"sockets"`
	}
	b.callJSON(t, http.MethodGet, path, nil, &res)
	if res.Sockets == nil {
		t.Fatalf("GET %s: no sockets list", path)
	}
	out := make(map[string]socketInfo)
	for _, s := range res.Sockets {
		out[s.ID] = s
	}
	return out
}

// rooms is GET /rooms: room name → socket count.
func (b *bridge) rooms(t *testing.T) map[string]int {
	t.Helper()
	var res struct {
		Rooms []struct {
			Name    string `json:"name"`
			Sockets int    `json:"sockets"`
		} `json:"rooms"`
	}
	b.callJSON(t, http.MethodGet, "/rooms?namespace=/", nil, &res)
	if res.Rooms == nil {
		t.Fatal("GET /rooms: no rooms list")
	}
	out := make(map[string]int)
	for _, r := range res.Rooms {
		out[r.Name] = r.Sockets
	}
	return out
}

// metric returns the value of one series of GET /metrics, such as
// `siobridge_webhook_attempts_total{kind="event"}`.
func (b *bridge) metric(t *testing.T, series string) float64 {
	t.Helper()
	res := b.call(t, http.MethodGet, "/metrics", nil)
	if res.status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", res.status, res.body)
	}
	for line := range strings.Lines(string(res.body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("GET /metrics: %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("GET /metrics has no series %s:\n%s", series, res.body)
	return 0
}

// marker emits a numbered "marker" event to the clients through the API and checks that it is
// the next thing each of them receives: nothing else reached them before it.
func (b *bridge) marker(t *testing.T, clients ...*sioClient) {
	t.Helper()
	k := b.markers.Add(1)
	ids := make(map[string][]string) // by namespace
	for _, c := range clients {
		ids[c.nsp] = append(ids[c.nsp], c.id)
	}
	for nsp, to := range ids {
		b.emit(t, map[string]any{"event": "marker", "args": []any{k}, "namespace": nsp, "to": to}, len(to))
	}
	for _, c := range clients {
		m := c.next(t)
		if m.Type != "event" || m.Event != "marker" || !jsonEqual(m.Args, fmt.Sprintf("[%d]", k)) {
			t.Fatalf("client %d (%s): got %s before marker %d", c.n, c.id, m.line, k)
		}
	}
}

// ---- the app ----

// delivery is one webhook request the app received.
type delivery struct {
	ID      string // X-Siobridge-Delivery
	Attempt int    // X-Siobridge-Attempt
	Kind    string // X-Siobridge-Type
	Payload webhook.Payload
	Body    []byte // the raw body
	Status  int    // what the app answered; 0 while it has not yet
}

// statusLost, as a replyFunc's status, has the app handle the webhook and then close the
// connection without answering: the reply is lost on the way.
const statusLost = -1

// replyFunc decides the app's answer to a webhook: a status and a body (nil: none, a string
// as is, anything else as JSON). ctx ends when siobridge gives up the request.
type replyFunc func(ctx context.Context, d delivery) (int, any)

// app is the web app behind siobridge: it receives webhooks on e2eHookPath and serves mux's
// other routes.
type app struct {
	mux  *http.ServeMux
	addr string

	problems *testkit.Problems

	mu         sync.Mutex
	ts         *httptest.Server
	deliveries []*delivery
	reply      replyFunc
	seen       changes
}

// startApp starts the app; its cleanup closes it and fails the test on any webhook that was
// not as promised (signature, headers, payload, the body's id the delivery header's).
func startApp(t *testing.T) *app {
	t.Helper()
	a := &app{mux: http.NewServeMux(), problems: testkit.NewProblems(t, "app")}
	a.mux.HandleFunc("POST "+e2eHookPath, a.hook)
	a.ts = httptest.NewServer(a.mux)
	a.addr = a.ts.Listener.Addr().String()
	t.Cleanup(func() {
		a.mu.Lock()
		ts := a.ts
		a.ts = nil
		a.mu.Unlock()
		if ts != nil {
			ts.Close()
		}
	})
	return a
}

func (a *app) hookURL() string { return "http://" + a.addr + e2eHookPath }

func (a *app) setReply(f replyFunc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reply = f
}

func (a *app) hook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // siobridge gave up the request
	}
	if err := webhook.Verify(e2eSecret, r.Header.Get(webhook.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		a.problems.Add("webhook refused: %v: %s", err, body)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	d := &delivery{ID: r.Header.Get(webhook.HeaderDelivery), Kind: r.Header.Get(webhook.HeaderType), Body: body}
	d.Attempt, _ = strconv.Atoi(r.Header.Get(webhook.HeaderAttempt))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d.Payload); err != nil {
		a.problems.Add("webhook body %s: %v", body, err)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		a.problems.Add("webhook Content-Type %q, want application/json", ct)
	}
	if d.ID == "" || d.Attempt < 1 || d.Kind != string(d.Payload.Type) {
		a.problems.Add("webhook headers: delivery %q, attempt %q, type %q for a payload of type %q",
			d.ID, r.Header.Get(webhook.HeaderAttempt), d.Kind, d.Payload.Type)
	}
	// The id is signed with the body: a replay under another id would not verify.
	if d.Payload.ID != d.ID {
		a.problems.Add("webhook body id %q, %s %q: want the same", d.Payload.ID, webhook.HeaderDelivery, d.ID)
	}
	a.mu.Lock()
	a.deliveries = append(a.deliveries, d)
	reply := a.reply
	a.mu.Unlock()
	a.seen.notify()

	status, out := http.StatusOK, any(nil)
	if reply != nil {
		status, out = reply(r.Context(), *d)
	}
	var data []byte
	switch v := out.(type) {
	case nil:
	case string:
		data = []byte(v)
	default:
		if data, err = json.Marshal(v); err != nil {
			a.problems.Add("encoding the reply %v: %v", v, err)
		}
	}
	// Recorded before the answer goes out: once siobridge has it, the test sees it.
	a.mu.Lock()
	d.Status = status
	a.mu.Unlock()
	a.seen.notify()
	if status == statusLost {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// all returns copies of the deliveries received so far, in arrival order.
func (a *app) all() []delivery {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]delivery, len(a.deliveries))
	for i, d := range a.deliveries {
		out[i] = *d
	}
	return out
}

// waitFor returns the first delivery that satisfies match, waiting for it.
func (a *app) waitFor(t *testing.T, what string, match func(d delivery) bool) delivery {
	t.Helper()
	var found delivery
	waitUntil(t, what, &a.seen, func() bool {
		for _, d := range a.all() {
			if match(d) {
				found = d
				return true
			}
		}
		return false
	}, nil, nil)
	return found
}

// waitEvent returns the first delivery of event from socket id that the app answered.
func (a *app) waitEvent(t *testing.T, id, event string) delivery {
	t.Helper()
	return a.waitFor(t, fmt.Sprintf("the %q webhook of socket %s", event, id), func(d delivery) bool {
		return d.Kind == "event" && d.Payload.Socket.ID == id && d.Payload.Event == event && d.Status != 0
	})
}

// down closes the app's listener: siobridge's connections are refused until up.
func (a *app) down(t *testing.T) {
	t.Helper()
	a.mu.Lock()
	ts := a.ts
	a.ts = nil
	a.mu.Unlock()
	ts.Close()
}

// up serves the app again on the same address.
func (a *app) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		t.Fatalf("listening on %s again: %v", a.addr, err)
	}
	ts := httptest.NewUnstartedServer(a.mux)
	_ = ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	a.mu.Lock()
	a.ts = ts
	a.mu.Unlock()
}

// ---- the Node clients ----

// nodeClients is one Node process running clients.js.
type nodeClients struct {
	*testkit.Process

	problems *testkit.Problems

	mu         sync.Mutex
	queues     map[int]chan clientMsg
	nextClient int
	nextRef    int
}

// clientMsg is one line clients.js printed.
type clientMsg struct {
	Client    int             `json:"client"`
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Engine    string          `json:"engine"` // the Engine.IO session id, on connect
	Transport string          `json:"transport"`
	Event     string          `json:"event"`
	Args      json.RawMessage `json:"args"`
	AckRef    int             `json:"ackRef"`
	Ref       int             `json:"ref"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
	Reason    string          `json:"reason"`
	Recovered bool            `json:"recovered"`
	line      string
}

// sioClient is one socket.io-client socket in the Node process.
type sioClient struct {
	nc     *nodeClients
	n      int
	nsp    string // its namespace
	id     string // its socket id, once connected
	engine string // its Engine.IO session id, once connected
	msgs   chan clientMsg
}

// startNode starts the client process, with socket.io-client 4.8; its cleanup closes stdin
// (every client disconnects) and checks that the process exited 0.
func startNode(t *testing.T) *nodeClients {
	t.Helper()
	return startClients(t, "socket.io-client")
}

// startNodeV2 is startNode with socket.io-client 2.x (clients.js --v2), for a bridge with
// allow_eio3.
func startNodeV2(t *testing.T) *nodeClients {
	t.Helper()
	return startClients(t, "socket.io-client-v2", "--v2")
}

// startClients runs clients.js with flags, once module loads.
func startClients(t *testing.T, module string, flags ...string) *nodeClients {
	t.Helper()
	node := testkit.RequireTool(t, "node")
	modules := testkit.RequireNodeModules(t, testkit.InteropNode, module)
	name := strings.Join(append([]string{"node clients.js"}, flags...), " ")
	// Reported after the process's own cleanup, once every line is in.
	nc := &nodeClients{queues: make(map[int]chan clientMsg), problems: testkit.NewProblems(t, name)}
	nc.Process = testkit.Start(t, testkit.Command{
		Name:      name,
		Args:      append([]string{node, "clients.js"}, flags...),
		Dir:       filepath.Join("testdata", "e2e"),
		Env:       []string{"NODE_PATH=" + modules},
		Stdin:     true,
		CheckExit: true,
		OnLine:    nc.route,
	})
	return nc
}

// route queues a line for its client.
func (nc *nodeClients) route(line string) {
	var m clientMsg
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		nc.problems.Add("stdout line is not JSON: %q", line)
		return
	}
	m.line = line
	if m.Type == "ready" {
		return
	}
	nc.mu.Lock()
	q := nc.queues[m.Client]
	nc.mu.Unlock()
	if q == nil {
		nc.problems.Add("a line for unknown client %d: %s", m.Client, line)
		return
	}
	select {
	case q <- m:
	default:
		nc.problems.Add("client %d's queue is full; dropped %s", m.Client, line)
	}
}

func (nc *nodeClients) send(t *testing.T, cmd map[string]any) {
	t.Helper()
	nc.SendJSON(t, cmd)
}

// open starts a client on rawURL (its path is the namespace) with socket.io-client options
// opts (forceNew and no reconnection are added), without waiting for it to connect.
func (nc *nodeClients) open(t *testing.T, rawURL string, opts map[string]any) *sioClient {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	nsp := u.Path
	if nsp == "" {
		nsp = "/"
	}
	nc.mu.Lock()
	c := &sioClient{nc: nc, n: nc.nextClient, nsp: nsp, msgs: make(chan clientMsg, 1024)}
	nc.nextClient++
	nc.queues[c.n] = c.msgs
	nc.mu.Unlock()
	if opts == nil {
		opts = map[string]any{}
	}
	nc.send(t, map[string]any{"op": "connect", "client": c.n, "url": rawURL, "opts": opts})
	return c
}

// connect opens a client and waits until it is connected.
func (nc *nodeClients) connect(t *testing.T, url string, opts map[string]any) *sioClient {
	t.Helper()
	c := nc.open(t, url, opts)
	m := c.next(t)
	if m.Type != "connect" || m.ID == "" {
		t.Fatalf("client %d: got %s, want a connect", c.n, m.line)
	}
	c.id, c.engine = m.ID, m.Engine
	return c
}

// next returns the next thing the client observed.
func (c *sioClient) next(t *testing.T) clientMsg {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.nc.Exited():
		select {
		case m := <-c.msgs:
			return m
		default:
		}
		t.Fatalf("client %d: the node process exited (%v)\nstderr:\n%s", c.n, c.nc.Err(), c.nc.Stderr)
	case <-time.After(e2eWait):
		t.Fatalf("client %d (%s): nothing received within %v", c.n, c.id, e2eWait)
	}
	return clientMsg{}
}

// expectEvent checks that the next thing the client observed is event.
func (c *sioClient) expectEvent(t *testing.T, event string) clientMsg {
	t.Helper()
	m := c.next(t)
	if m.Type != "event" || m.Event != event {
		t.Fatalf("client %d (%s): got %s, want event %q", c.n, c.id, m.line, event)
	}
	return m
}

// expectAck checks that the next thing the client observed is the acknowledgement ref.
func (c *sioClient) expectAck(t *testing.T, ref int) clientMsg {
	t.Helper()
	m := c.next(t)
	if m.Type != "ack" || m.Ref != ref {
		t.Fatalf("client %d (%s): got %s, want ack %d", c.n, c.id, m.line, ref)
	}
	return m
}

func (c *sioClient) emit(t *testing.T, event string, args ...any) {
	t.Helper()
	c.nc.send(t, map[string]any{"op": "emit", "client": c.n, "event": event, "args": nonNilArgs(args)})
}

// emitAck emits with an acknowledgement callback and returns its ref (see expectAck).
func (c *sioClient) emitAck(t *testing.T, event string, args ...any) int {
	t.Helper()
	c.nc.mu.Lock()
	c.nc.nextRef++
	ref := c.nc.nextRef
	c.nc.mu.Unlock()
	c.nc.send(t, map[string]any{"op": "emit", "client": c.n, "event": event, "args": nonNilArgs(args), "ack": ref})
	return ref
}

// answer calls the ack callback of an event the client received.
func (c *sioClient) answer(t *testing.T, ackRef int, args ...any) {
	t.Helper()
	c.nc.send(t, map[string]any{"op": "answer", "client": c.n, "ref": ackRef, "args": nonNilArgs(args)})
}

// close disconnects the client and waits for its disconnect.
func (c *sioClient) close(t *testing.T) {
	t.Helper()
	c.nc.send(t, map[string]any{"op": "close", "client": c.n})
	m := c.next(t)
	if m.Type != "disconnect" {
		t.Fatalf("client %d: got %s, want its disconnect", c.n, m.line)
	}
}

func nonNilArgs(args []any) []any {
	if args == nil {
		return []any{}
	}
	return args
}

// bin is how binary travels in commands to clients.js.
func bin(b []byte) map[string]string {
	return map[string]string{"$bin": base64.StdEncoding.EncodeToString(b)}
}

// ---- JSON helpers ----

func decodeJSON(raw []byte) (any, error) {
	var v any
	err := json.Unmarshal(raw, &v)
	return v, err
}

// jsonEqual reports whether got and want are the same JSON value.
func jsonEqual(got []byte, want string) bool {
	g, err1 := decodeJSON(got)
	w, err2 := decodeJSON([]byte(want))
	return err1 == nil && err2 == nil && reflect.DeepEqual(g, w)
}

func assertJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if !jsonEqual(got, want) {
		t.Fatalf("%s: got %s, want %s", what, got, want)
	}
}

// ---- scenarios ----

// TestE2EChat is the chat of the docs: the app answers sendMsg by emitting reviceMsg to
// everyone but the sender and acknowledging "sent", and answers a disconnect by telling the
// others. On every transport setup, polling only included, and in another namespace.
func TestE2EChat(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	var announce sync.Map // socket ids whose disconnect the app announces
	a.setReply(func(_ context.Context, d delivery) (int, any) {
		id := d.Payload.Socket.ID
		switch {
		case d.Kind == "event" && d.Payload.Event == "sendMsg":
			return http.StatusOK, map[string]any{
				"emit": []any{map[string]any{"event": "reviceMsg", "args": d.Payload.Args, "except": []string{id}}},
				"ack":  []any{"sent"},
			}
		case d.Kind == "disconnect":
			if _, ok := announce.Load(id); ok {
				// No namespace: the socket's.
				return http.StatusOK, map[string]any{"emit": []any{map[string]any{"event": "userLeft", "args": []any{id}}}}
			}
		}
		return http.StatusOK, nil
	})
	b := startBridge(t, a, "SIOBRIDGE_SOCKETIO_NAMESPACES=/,/chat")
	nc := startNode(t)
	t.Cleanup(func() {
		for _, d := range a.all() {
			if d.Payload.Namespace != "/" && d.Payload.Namespace != "/chat" {
				t.Errorf("a webhook about namespace %q", d.Payload.Namespace)
			}
		}
	})

	for _, tc := range []struct {
		name       string
		nsp        string
		transports []string
		handshake  string // the transport of the handshake request
		transport  string // the transport in use at the end; "" when it may be either
	}{
		{"default transports", "/", nil, "polling", ""},
		{"websocket only", "/", []string{"websocket"}, "websocket", "websocket"},
		{"polling only", "/", []string{"polling"}, "polling", "polling"},
		{"namespace /chat", "/chat", nil, "polling", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := map[string]any{}
			if tc.transports != nil {
				opts["transports"] = tc.transports
			}
			u := b.url()
			if tc.nsp != "/" {
				u += tc.nsp
			}
			alice := nc.connect(t, u, opts)
			bob := nc.connect(t, u, opts)
			var others []*sioClient // in "/", when the chat is not
			if tc.nsp != "/" {
				others = append(others, nc.connect(t, b.url(), opts))
			}

			ref := alice.emitAck(t, "sendMsg", "hi bob", map[string]any{"n": 1, "s": "é☃😀"})
			got := bob.expectEvent(t, "reviceMsg")
			assertJSON(t, "bob's reviceMsg", got.Args, `["hi bob",{"n":1,"s":"é☃😀"}]`)
			if tc.transport != "" && got.Transport != tc.transport {
				t.Errorf("bob received over %q, want %q", got.Transport, tc.transport)
			}
			ack := alice.expectAck(t, ref)
			assertJSON(t, "alice's ack", ack.Args, `["sent"]`)
			// Alice is excepted: the marker is the next thing she gets, not her own message.
			b.marker(t, alice, bob)

			d := a.waitEvent(t, alice.id, "sendMsg")
			p := d.Payload
			if p.Namespace != tc.nsp || p.Ack == nil || !*p.Ack || d.Status != http.StatusOK {
				t.Errorf("sendMsg webhook: namespace %q, ack %v, answered %d; want %s, true, 200", p.Namespace, p.Ack, d.Status, tc.nsp)
			}
			assertJSON(t, "sendMsg webhook args", p.Args, `["hi bob",{"n":1,"s":"é☃😀"}]`)
			if !slices.Contains(p.Socket.Rooms, alice.id) {
				t.Errorf("sendMsg webhook: socket rooms %q lack the socket's own room %q", p.Socket.Rooms, alice.id)
			}
			if h := p.Socket.Handshake; h == nil || h.Query["transport"] != tc.handshake || h.Query["EIO"] != "4" || h.Address != "127.0.0.1" {
				t.Errorf("sendMsg webhook: handshake %+v, want transport %s, EIO 4, address 127.0.0.1", h, tc.handshake)
			}

			announce.Store(alice.id, true)
			alice.close(t)
			d = a.waitFor(t, "alice's disconnect webhook", func(d delivery) bool {
				return d.Kind == "disconnect" && d.Payload.Socket.ID == alice.id
			})
			if d.Payload.Reason != "client namespace disconnect" || d.Payload.Namespace != tc.nsp {
				t.Errorf("disconnect webhook: reason %q in %q, want %q in %s", d.Payload.Reason, d.Payload.Namespace, "client namespace disconnect", tc.nsp)
			}
			assertJSON(t, "userLeft", bob.expectEvent(t, "userLeft").Args, fmt.Sprintf("[%q]", alice.id))
			// The other namespace heard nothing of this chat.
			b.marker(t, append(others, bob)...)
			bob.close(t)
			for _, c := range others {
				c.close(t)
			}
		})
	}

	t.Run("namespace not allowed", func(t *testing.T) {
		c := nc.open(t, b.url()+"/nope", nil)
		if m := c.next(t); m.Type != "connect_error" || m.Message != "Invalid namespace" {
			t.Errorf("got %s, want a connect_error saying Invalid namespace", m.line)
		}
	})
}

// TestE2ERooms joins rooms through a webhook reply and through POST /join, then emits to a
// room, lists rooms and sockets, and leaves through POST /leave and a webhook reply.
func TestE2ERooms(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	a.setReply(func(_ context.Context, d delivery) (int, any) {
		var args []string
		_ = json.Unmarshal(d.Payload.Args, &args)
		switch d.Payload.Event {
		case "joinRoom":
			return http.StatusOK, map[string]any{"join": args, "ack": []any{"joined"}}
		case "leaveRoom":
			return http.StatusOK, map[string]any{"leave": args, "ack": []any{"left"}}
		case "setName":
			return http.StatusOK, map[string]any{"data": map[string]any{"name": args[0]}, "ack": []any{"ok"}}
		case "kickMe":
			return http.StatusOK, map[string]any{"disconnect": true}
		}
		return http.StatusOK, nil
	})
	b := startBridge(t, a)
	nc := startNode(t)
	c0 := nc.connect(t, b.url(), nil)
	c1 := nc.connect(t, b.url(), nil)
	c2 := nc.connect(t, b.url(), nil)

	assertJSON(t, "joinRoom ack", c0.expectAck(t, c0.emitAck(t, "joinRoom", "r")).Args, `["joined"]`)
	b.countCall(t, "/join", map[string]any{"to": []string{c1.id}, "rooms": []string{"r"}}, 1)

	rooms := b.rooms(t)
	if rooms["r"] != 2 {
		t.Errorf("GET /rooms: %v, want r with 2 sockets", rooms)
	}
	for _, c := range []*sioClient{c0, c1, c2} {
		if _, ok := rooms[c.id]; ok {
			t.Errorf("GET /rooms lists the socket id room %s: %v", c.id, rooms)
		}
	}
	members := b.sockets(t, "r")
	if len(members) != 2 {
		t.Errorf("GET /sockets?room=r: %v, want %s and %s", members, c0.id, c1.id)
	}
	for _, c := range []*sioClient{c0, c1} {
		s, ok := members[c.id]
		if !ok || !slices.Contains(s.Rooms, "r") || !slices.Contains(s.Rooms, c.id) || s.Namespace != "/" {
			t.Errorf("GET /sockets?room=r: socket %s is %+v, want it there in rooms r and its own", c.id, s)
		}
	}
	// The next event webhook carries the room, and the data a reply set.
	assertJSON(t, "setName ack", c0.expectAck(t, c0.emitAck(t, "setName", "zoe")).Args, `["ok"]`)
	c0.emit(t, "whereAmI")
	d := a.waitEvent(t, c0.id, "whereAmI")
	if !slices.Contains(d.Payload.Socket.Rooms, "r") || !jsonEqual(d.Payload.Socket.Data, `{"name":"zoe"}`) {
		t.Errorf("event webhook after joining: socket rooms %q, data %s; want r among them, and {\"name\":\"zoe\"}", d.Payload.Socket.Rooms, d.Payload.Socket.Data)
	}
	assertJSON(t, "the args of an event without any", d.Payload.Args, `[]`)
	if s := b.sockets(t, "")[c0.id]; !jsonEqual(s.Data, `{"name":"zoe"}`) {
		t.Errorf("GET /sockets: data of %s is %s, want {\"name\":\"zoe\"}", c0.id, s.Data)
	}

	b.emit(t, map[string]any{"event": "roomMsg", "args": []any{"to r"}, "to": []string{"r"}}, 2)
	for _, c := range []*sioClient{c0, c1} {
		assertJSON(t, "roomMsg", c.expectEvent(t, "roomMsg").Args, `["to r"]`)
	}
	b.marker(t, c0, c1, c2) // c2 is not in r

	b.countCall(t, "/leave", map[string]any{"to": []string{c0.id}, "rooms": []string{"r"}}, 1)
	if members := b.sockets(t, "r"); len(members) != 1 || members[c1.id].ID != c1.id {
		t.Errorf("GET /sockets?room=r after c0 left: %v, want only %s", members, c1.id)
	}
	b.emit(t, map[string]any{"event": "roomMsg", "args": []any{"again"}, "to": []string{"r"}}, 1)
	assertJSON(t, "roomMsg", c1.expectEvent(t, "roomMsg").Args, `["again"]`)
	b.marker(t, c0, c1, c2)

	assertJSON(t, "leaveRoom ack", c1.expectAck(t, c1.emitAck(t, "leaveRoom", "r")).Args, `["left"]`)
	if members := b.sockets(t, "r"); len(members) != 0 {
		t.Errorf("GET /sockets?room=r after everyone left: %v, want none", members)
	}
	if rooms := b.rooms(t); len(rooms) != 0 {
		t.Errorf("GET /rooms after everyone left: %v, want none", rooms)
	}
	b.emit(t, map[string]any{"event": "roomMsg", "args": []any{"nobody"}, "to": []string{"r"}}, 0)
	b.marker(t, c0, c1, c2)

	// Disconnects: by a webhook reply, and through the API, with and without closing the
	// connection.
	disconnected := func(t *testing.T, c *sioClient) {
		t.Helper()
		if m := c.next(t); m.Type != "disconnect" || m.Reason != "io server disconnect" {
			t.Errorf("client %d: got %s, want a disconnect with reason %q", c.n, m.line, "io server disconnect")
		}
		d := a.waitFor(t, "the disconnect webhook of "+c.id, func(d delivery) bool {
			return d.Kind == "disconnect" && d.Payload.Socket.ID == c.id
		})
		if d.Payload.Reason != "server namespace disconnect" {
			t.Errorf("disconnect webhook of %s: reason %q, want %q", c.id, d.Payload.Reason, "server namespace disconnect")
		}
	}
	c2.emit(t, "kickMe")
	disconnected(t, c2)
	b.countCall(t, "/disconnect", map[string]any{"to": []string{c0.id}}, 1)
	disconnected(t, c0)
	b.countCall(t, "/disconnect", map[string]any{"to": []string{c1.id}, "close": true}, 1)
	disconnected(t, c1)
	if s := b.sockets(t, ""); len(s) != 0 {
		t.Errorf("GET /sockets after every socket was disconnected: %v", s)
	}
}

// TestE2EEmitSelection emits through the API to rooms, socket ids and exceptions, and checks
// that exactly the selected clients receive each event and that the count says so.
func TestE2EEmitSelection(t *testing.T) {
	t.Parallel()
	b := startBridge(t, startApp(t))
	nc := startNode(t)
	c := []*sioClient{nc.connect(t, b.url(), nil), nc.connect(t, b.url(), nil), nc.connect(t, b.url(), nil)}
	b.countCall(t, "/join", map[string]any{"to": []string{c[0].id, c[1].id}, "rooms": []string{"a"}}, 2)
	b.countCall(t, "/join", map[string]any{"to": []string{c[2].id}, "rooms": []string{"b"}}, 1)

	for i, tc := range []struct {
		name      string
		to        []string
		except    []string
		receivers []int
	}{
		{"a room", []string{"a"}, nil, []int{0, 1}},
		{"a socket id", []string{c[2].id}, nil, []int{2}},
		{"a room except a socket", []string{"a"}, []string{c[1].id}, []int{0}},
		{"everyone except a room", nil, []string{"a"}, []int{2}},
		{"everyone", nil, nil, []int{0, 1, 2}},
		{"two rooms, overlapping", []string{"a", "b", c[0].id}, nil, []int{0, 1, 2}},
		{"a room and an id except a room", []string{"a", c[2].id}, []string{"b"}, []int{0, 1}},
		{"a room nobody is in", []string{"empty"}, nil, nil},
		{"everyone except everyone", nil, []string{"a", "b"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := map[string]any{"event": "sel", "args": []any{i, tc.name}}
			if tc.to != nil {
				req["to"] = tc.to
			}
			if tc.except != nil {
				req["except"] = tc.except
			}
			b.emit(t, req, len(tc.receivers))
			for _, r := range tc.receivers {
				assertJSON(t, fmt.Sprintf("client %d", r), c[r].expectEvent(t, "sel").Args, fmt.Sprintf("[%d,%q]", i, tc.name))
			}
			b.marker(t, c...) // and nobody else got it
		})
	}

	t.Run("a batch", func(t *testing.T) {
		var res []map[string]any
		b.callJSON(t, http.MethodPost, "/emit", []any{
			map[string]any{"event": "first", "to": []string{"a"}},
			map[string]any{"event": "second", "to": []string{c[2].id}, "args": []any{2}},
			map[string]any{"event": "third", "except": []string{c[2].id}},
		}, &res)
		if len(res) != 3 || res[0]["sockets"] != 2.0 || res[1]["sockets"] != 1.0 || res[2]["sockets"] != 2.0 {
			t.Errorf("POST /emit batch: %v, want sockets 2, 1, 2", res)
		}
		for _, r := range []int{0, 1} {
			c[r].expectEvent(t, "first")
			c[r].expectEvent(t, "third")
		}
		c[2].expectEvent(t, "second")
		b.marker(t, c...)
	})
}

// TestE2EAcks checks acknowledgements both ways: the app answers a client's ack through its
// webhook reply, and POST /emit with ack_timeout_ms collects the clients' answers.
func TestE2EAcks(t *testing.T) {
	t.Parallel()
	const nested = `{"nested":{"list":[1,"two",{"three":3.5}],"none":null,"yes":true,"s":"é☃😀 \"q\""}}`
	a := startApp(t)
	a.setReply(func(_ context.Context, d delivery) (int, any) {
		switch d.Payload.Event {
		case "ask":
			return http.StatusOK, `{"ack":[` + nested + `,42]}`
		case "tell":
			return http.StatusOK, `{"ack":["nobody waits for this"]}`
		}
		return http.StatusOK, nil
	})
	b := startBridge(t, a)
	nc := startNode(t)
	c0 := nc.connect(t, b.url(), nil)
	c1 := nc.connect(t, b.url(), nil)

	t.Run("client to app", func(t *testing.T) {
		ack := c0.expectAck(t, c0.emitAck(t, "ask", "question?"))
		assertJSON(t, "ack args", ack.Args, `[`+nested+`,42]`)
		if d := a.waitEvent(t, c0.id, "ask"); d.Payload.Ack == nil || !*d.Payload.Ack {
			t.Errorf(`"ask" webhook: ack %v, want true`, d.Payload.Ack)
		}
		c0.emit(t, "tell", "no callback")
		if d := a.waitEvent(t, c0.id, "tell"); d.Payload.Ack == nil || *d.Payload.Ack {
			t.Errorf(`"tell" webhook: ack %v, want false`, d.Payload.Ack)
		}
		b.marker(t, c0)
	})

	t.Run("app to clients", func(t *testing.T) {
		const timeout = e2eSlowWait // c1 never answers: c0's answer must come within it
		type result struct {
			res response
			err error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			res, err := b.fetch(http.MethodPost, "http://"+b.API+"/emit",
				map[string]any{"event": "question", "args": []any{"ready?"}, "ack_timeout_ms": timeout.Milliseconds()}, b.authHeader())
			done <- result{res, err}
		}()
		q0 := c0.expectEvent(t, "question")
		q1 := c1.expectEvent(t, "question")
		for _, q := range []clientMsg{q0, q1} {
			assertJSON(t, "question args", q.Args, `["ready?"]`)
			if q.AckRef == 0 {
				t.Fatalf("client %d: question without an ack callback: %s", q.Client, q.line)
			}
		}
		c0.answer(t, q0.AckRef, "yes", map[string]any{"n": 1, "list": []any{true, nil}})
		// c1 never answers.
		var r result
		select {
		case r = <-done:
		case <-time.After(e2eWait):
			t.Fatal("POST /emit with ack_timeout_ms did not answer")
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
		if elapsed := time.Since(start); elapsed < timeout {
			t.Errorf("POST /emit answered after %v, before the ack timeout of %v though a client did not answer", elapsed, timeout)
		}
		if r.res.status != http.StatusOK {
			t.Fatalf("POST /emit: %d %s", r.res.status, r.res.body)
		}
		want := fmt.Sprintf(`{"sockets":2,"acks":[{"socket":%q,"args":["yes",{"n":1,"list":[true,null]}]}],"timed_out":[%q]}`, c0.id, c1.id)
		assertJSON(t, "POST /emit with ack_timeout_ms", r.res.body, want)
		b.marker(t, c0, c1)
	})

	t.Run("app to nobody", func(t *testing.T) {
		// Nobody to wait for: the answer comes at once, with both lists empty.
		start := time.Now()
		res := b.call(t, http.MethodPost, "/emit", map[string]any{"event": "question", "to": []string{"nobody"}, "ack_timeout_ms": 60000})
		if res.status != http.StatusOK || !jsonEqual(res.body, `{"sockets":0,"acks":[],"timed_out":[]}`) {
			t.Errorf("POST /emit with ack_timeout_ms to nobody: %d %s", res.status, res.body)
		}
		if elapsed := time.Since(start); elapsed > e2eWait {
			t.Errorf("POST /emit with ack_timeout_ms to nobody took %v", elapsed)
		}
	})
}

// TestE2EBinary sends binary both ways: a client's Buffers reach the app as {"$binary":...},
// and {"$binary":...} in the app's emits and in the clients' acks become real binary.
func TestE2EBinary(t *testing.T) {
	t.Parallel()
	all := make([]byte, 256)
	rev := make([]byte, 256)
	for i := range all {
		all[i], rev[i] = byte(i), byte(255-i)
	}
	b64 := base64.StdEncoding.EncodeToString
	a := startApp(t)
	b := startBridge(t, a)
	nc := startNode(t)

	for _, tc := range []struct {
		name       string
		transports []string
	}{
		{"websocket", []string{"websocket"}},
		{"polling", []string{"polling"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := nc.connect(t, b.url(), map[string]any{"transports": tc.transports})

			c.emit(t, "upload", "photo.bin", bin(all), map[string]any{"nested": []any{bin([]byte{1, 2, 3})}, "empty": bin(nil)})
			d := a.waitEvent(t, c.id, "upload")
			assertJSON(t, "upload webhook args", d.Payload.Args,
				fmt.Sprintf(`["photo.bin",{"$binary":%q},{"nested":[{"$binary":"AQID"}],"empty":{"$binary":""}}]`, b64(all)))

			b.emit(t, map[string]any{"event": "file", "to": []string{c.id}, "args": []any{map[string]any{
				"name":  "f",
				"data":  map[string]string{"$binary": b64(rev)},
				"parts": []any{map[string]string{"$binary": "AAE="}, "text", map[string]string{"$binary": ""}},
			}}}, 1)
			m := c.expectEvent(t, "file")
			assertJSON(t, "file args", m.Args, fmt.Sprintf(
				`[{"name":"f","data":{"$bin":%q,"$type":"Buffer"},"parts":[{"$bin":"AAE=","$type":"Buffer"},"text",{"$bin":"","$type":"Buffer"}]}]`, b64(rev)))

			done := make(chan response, 1)
			go func() {
				res, err := b.fetch(http.MethodPost, "http://"+b.API+"/emit",
					map[string]any{"event": "sendBack", "to": []string{c.id}, "ack_timeout_ms": e2eWait.Milliseconds()}, b.authHeader())
				if err != nil {
					res = response{body: []byte(err.Error())}
				}
				done <- res
			}()
			q := c.expectEvent(t, "sendBack")
			c.answer(t, q.AckRef, "got", bin([]byte{255, 0}))
			select {
			case res := <-done:
				if res.status != http.StatusOK {
					t.Fatalf("POST /emit: %d %s", res.status, res.body)
				}
				assertJSON(t, "binary ack", res.body, fmt.Sprintf(`{"sockets":1,"acks":[{"socket":%q,"args":["got",{"$binary":"/wA="}]}],"timed_out":[]}`, c.id))
			case <-time.After(e2eWait + time.Second):
				t.Fatal("POST /emit with ack_timeout_ms did not answer")
			}
			c.close(t)
		})
	}
}

// TestE2EHandshakeHeaders: by default webhooks and GET /sockets show every header of a
// client's handshake, its cookies and credentials included; with [webhook] handshake_headers,
// only those listed, whatever their case.
func TestE2EHandshakeHeaders(t *testing.T) {
	t.Parallel()
	sent := map[string]any{"Cookie": "session=s3cret", "Authorization": "Bearer user-token", "X-Tenant": "acme"}
	for _, tc := range []struct {
		name  string
		env   []string
		want  []string // header names shown
		exact bool     // only those
	}{
		{"default", nil, []string{"authorization", "cookie", "user-agent", "x-tenant"}, false},
		{"listed", []string{"SIOBRIDGE_WEBHOOK_HANDSHAKE_HEADERS=User-Agent, x-tenant,X-Absent"}, []string{"user-agent", "x-tenant"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := startApp(t)
			b := startBridge(t, a, tc.env...)
			c := startNode(t).connect(t, b.url(), map[string]any{"extraHeaders": sent})
			check := func(what string, headers map[string]string) {
				t.Helper()
				names := slices.Sorted(maps.Keys(headers))
				for _, n := range tc.want {
					if _, ok := headers[n]; !ok {
						t.Errorf("%s: handshake headers %v lack %q", what, names, n)
					}
				}
				if tc.exact && !slices.Equal(names, tc.want) {
					t.Errorf("%s: handshake headers %v, want only %v", what, names, tc.want)
				}
				if v, ok := headers["x-tenant"]; ok && v != "acme" {
					t.Errorf("%s: x-tenant %q, want acme", what, v)
				}
			}
			c.emit(t, "hello")
			connect := a.waitFor(t, "the connect webhook", func(d delivery) bool { return d.Kind == "connect" && d.Payload.Socket.ID == c.id })
			event := a.waitEvent(t, c.id, "hello")
			var hs struct{ Headers map[string]string }
			if err := json.Unmarshal(b.sockets(t, "")[c.id].Handshake, &hs); err != nil {
				t.Fatalf("GET /sockets handshake: %v", err)
			}
			c.close(t)
			disconnect := a.waitFor(t, "the disconnect webhook", func(d delivery) bool { return d.Kind == "disconnect" && d.Payload.Socket.ID == c.id })
			for _, d := range []delivery{connect, event, disconnect} {
				if d.Payload.Socket.Handshake == nil {
					t.Fatalf("%s webhook without a handshake: %s", d.Kind, d.Body)
				}
				check(d.Kind+" webhook", d.Payload.Socket.Handshake.Headers)
			}
			check("GET /sockets", hs.Headers)
		})
	}
}

// TestE2EConnectWebhook lets the app refuse a connection (with a message and data for the
// client's connect_error) and admit one with data, a room and a welcome event.
func TestE2EConnectWebhook(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	a.setReply(func(_ context.Context, d delivery) (int, any) {
		if d.Kind != "connect" {
			return http.StatusOK, nil
		}
		var auth struct {
			Token string `json:"token"`
		}
		if h := d.Payload.Socket.Handshake; h != nil {
			_ = json.Unmarshal(h.Auth, &auth)
		}
		switch auth.Token {
		case "bad":
			return http.StatusUnauthorized, map[string]any{"message": "invalid token", "data": map[string]any{"code": 42}}
		case "good":
			return http.StatusOK, map[string]any{
				"data": map[string]any{"user": "bob"},
				"join": []string{"vip"},
				"emit": []any{map[string]any{"event": "welcome", "args": []any{"bob"}, "to": []string{d.Payload.Socket.ID}}},
			}
		case "refused without a body":
			return http.StatusForbidden, nil
		case "text":
			return http.StatusOK, "OK"
		case "string data":
			return http.StatusOK, map[string]any{"data": "just a string"}
		case "admit then disconnect":
			return http.StatusOK, map[string]any{"disconnect": true}
		case "app failing":
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	b := startBridge(t, a, "SIOBRIDGE_SOCKETIO_NAMESPACES=*")
	nc := startNode(t)

	connectHook := func(t *testing.T, match func(auth json.RawMessage) bool) delivery {
		t.Helper()
		return a.waitFor(t, "a connect webhook", func(d delivery) bool {
			return d.Kind == "connect" && d.Status != 0 && d.Payload.Socket.Handshake != nil && match(d.Payload.Socket.Handshake.Auth)
		})
	}

	t.Run("refused", func(t *testing.T) {
		c := nc.open(t, b.url(), map[string]any{"auth": map[string]any{"token": "bad"}})
		m := c.next(t)
		if m.Type != "connect_error" || m.Message != "invalid token" || !jsonEqual(m.Data, `{"code":42}`) {
			t.Fatalf("got %s, want a connect_error with message %q and data {\"code\":42}", m.line, "invalid token")
		}
		d := connectHook(t, func(auth json.RawMessage) bool { return jsonEqual(auth, `{"token":"bad"}`) })
		if d.Status != http.StatusUnauthorized || d.Payload.Namespace != "/" {
			t.Errorf("connect webhook: namespace %q answered %d", d.Payload.Namespace, d.Status)
		}
		if s := b.sockets(t, ""); len(s) != 0 {
			t.Errorf("GET /sockets after a refused connection: %v, want none", s)
		}
	})

	t.Run("admitted with data, a room and a welcome", func(t *testing.T) {
		auth := map[string]any{"token": "good", "extra": []any{1, "two", nil}}
		c := nc.connect(t, b.url(), map[string]any{"auth": auth})
		assertJSON(t, "welcome args", c.expectEvent(t, "welcome").Args, `["bob"]`)

		d := connectHook(t, func(auth json.RawMessage) bool { return jsonEqual(auth, `{"token":"good","extra":[1,"two",null]}`) })
		p := d.Payload
		if p.Socket.ID != c.id || len(p.Socket.Rooms) != 0 || p.Socket.Rooms == nil || !jsonEqual(p.Socket.Data, "null") {
			t.Errorf("connect webhook socket: id %q rooms %q data %s; want id %s, rooms [], data null", p.Socket.ID, p.Socket.Rooms, p.Socket.Data, c.id)
		}

		s, ok := b.sockets(t, "")[c.id]
		if !ok || !jsonEqual(s.Data, `{"user":"bob"}`) || !slices.Contains(s.Rooms, "vip") {
			t.Errorf("GET /sockets: %+v, want data {\"user\":\"bob\"} and room vip", s)
		}
		if vip := b.sockets(t, "vip"); len(vip) != 1 || vip[c.id].ID != c.id {
			t.Errorf("GET /sockets?room=vip: %v, want only %s", vip, c.id)
		}
		c.emit(t, "hello")
		e := a.waitEvent(t, c.id, "hello")
		if !jsonEqual(e.Payload.Socket.Data, `{"user":"bob"}`) || !slices.Contains(e.Payload.Socket.Rooms, "vip") {
			t.Errorf("event webhook socket: data %s rooms %q, want {\"user\":\"bob\"} and vip", e.Payload.Socket.Data, e.Payload.Socket.Rooms)
		}
		b.marker(t, c)
		c.close(t)
	})

	t.Run("admitted without auth", func(t *testing.T) {
		c := nc.connect(t, b.url(), nil)
		d := a.waitFor(t, "the connect webhook", func(d delivery) bool { return d.Kind == "connect" && d.Payload.Socket.ID == c.id })
		if h := d.Payload.Socket.Handshake; h == nil || !jsonEqual(h.Auth, `{}`) {
			t.Errorf("connect webhook without auth: handshake %+v, want auth {}", h)
		}
		if s := b.sockets(t, "")[c.id]; !jsonEqual(s.Data, "null") {
			t.Errorf("GET /sockets: data %s, want null", s.Data)
		}
		b.marker(t, c) // no welcome for this one
		c.close(t)
	})

	t.Run("other replies", func(t *testing.T) {
		for _, tc := range []struct {
			token    string
			first    string // what the client sees first
			message  string // of a connect_error
			data     string // GET /sockets data of an admitted socket
			thenGone bool   // an admitted socket is disconnected right after
		}{
			{"refused without a body", "connect_error", "Connection refused by the application", "", false},
			{"text", "connect", "", "null", false},
			{"string data", "connect", "", `"just a string"`, false},
			{"admit then disconnect", "connect", "", "", true},
			{"app failing", "connect_error", "Connection refused: the application failed", "", false},
		} {
			t.Run(tc.token, func(t *testing.T) {
				c := nc.open(t, b.url(), map[string]any{"auth": map[string]any{"token": tc.token}})
				m := c.next(t)
				if m.Type != tc.first || m.Message != tc.message {
					t.Fatalf("got %s, want %s with message %q", m.line, tc.first, tc.message)
				}
				if tc.first != "connect" {
					return
				}
				c.id = m.ID
				if tc.thenGone {
					if m := c.next(t); m.Type != "disconnect" || m.Reason != "io server disconnect" {
						t.Errorf("got %s, want a disconnect by the server", m.line)
					}
					return
				}
				if s, ok := b.sockets(t, "")[c.id]; !ok || !jsonEqual(s.Data, tc.data) {
					t.Errorf("GET /sockets: %+v, want %s with data %s", s, c.id, tc.data)
				}
				b.marker(t, c)
				c.close(t)
			})
		}
	})

	t.Run("a namespace made on demand", func(t *testing.T) {
		c := nc.connect(t, b.url()+"/room-42", map[string]any{"auth": map[string]any{"token": "good"}})
		assertJSON(t, "welcome args", c.expectEvent(t, "welcome").Args, `["bob"]`)
		d := a.waitFor(t, "the connect webhook", func(d delivery) bool { return d.Kind == "connect" && d.Payload.Socket.ID == c.id })
		if d.Payload.Namespace != "/room-42" {
			t.Errorf("connect webhook namespace %q, want /room-42", d.Payload.Namespace)
		}
		if s, ok := b.socketsIn(t, "/room-42", "vip")[c.id]; !ok || !jsonEqual(s.Data, `{"user":"bob"}`) || s.Namespace != "/room-42" {
			t.Errorf("GET /sockets?namespace=/room-42&room=vip: %+v, want %s with data {\"user\":\"bob\"}", s, c.id)
		}
		c.emit(t, "hello")
		if e := a.waitEvent(t, c.id, "hello"); e.Payload.Namespace != "/room-42" {
			t.Errorf("event webhook namespace %q, want /room-42", e.Payload.Namespace)
		}
		b.marker(t, c)
		c.close(t)
	})
}

// checkDelivered checks the event webhooks of one socket, e1..eN, in arrival order: they
// came in order (n+1 not before n was settled), each with one delivery id of its own kept on
// its retries, with growing attempt numbers (attempts that could not connect are not seen);
// dropping duplicates by delivery id, the app handled each exactly once, in order. It returns
// each event's attempts as the app saw them.
func checkDelivered(t *testing.T, ds []delivery, n int) map[string][]delivery {
	t.Helper()
	return checkDeliveredRange(t, ds, 1, n)
}

// checkDeliveredRange is checkDelivered for the events e<from>..e<to>.
func checkDeliveredRange(t *testing.T, ds []delivery, from, to int) map[string][]delivery {
	t.Helper()
	byEvent := make(map[string][]delivery)
	idOwner := make(map[string]string)
	handled := make(map[string]bool)
	var order []string
	last := 0
	for _, d := range ds {
		ev := d.Payload.Event
		k, err := strconv.Atoi(strings.TrimPrefix(ev, "e"))
		if err != nil || k < from || k > to {
			t.Errorf("unexpected event %q", ev)
			continue
		}
		if k < last {
			t.Errorf("event %s arrived after e%d: out of order", ev, last)
		}
		last = k
		if owner, ok := idOwner[d.ID]; ok && owner != ev {
			t.Errorf("delivery id %s is used by %s and %s", d.ID, owner, ev)
		}
		idOwner[d.ID] = ev
		prev := byEvent[ev]
		if len(prev) > 0 && prev[0].ID != d.ID {
			t.Errorf("%s was sent with delivery ids %s and %s: a retry must keep its id", ev, prev[0].ID, d.ID)
		}
		if len(prev) > 0 && d.Attempt <= prev[len(prev)-1].Attempt || len(prev) == 0 && d.Attempt < 1 {
			t.Errorf("%s: attempt header %d after %d attempts seen", ev, d.Attempt, len(prev))
		}
		assertJSON(t, ev+" args", d.Payload.Args, fmt.Sprintf("[%d]", k))
		byEvent[ev] = append(prev, d)
		if d.Status >= 200 && d.Status <= 299 && !handled[d.ID] {
			handled[d.ID] = true
			order = append(order, ev)
		}
	}
	want := make([]string, 0, to-from+1)
	for k := from; k <= to; k++ {
		want = append(want, fmt.Sprintf("e%d", k))
	}
	if !slices.Equal(order, want) {
		t.Errorf("events handled (duplicates dropped): %v, want %v", order, want)
	}
	return byEvent
}

// TestE2EAppDown has a client emit e1..e10 while the app is failing, and checks that every
// event reaches it once it recovers, in order, none lost.
func TestE2EAppDown(t *testing.T) {
	t.Parallel()
	const n = 10
	events := func(a *app, id string) []delivery {
		var out []delivery
		for _, d := range a.all() {
			if d.Kind == "event" && d.Payload.Socket.ID == id {
				out = append(out, d)
			}
		}
		return out
	}

	t.Run("503 then 200, and a timeout", func(t *testing.T) {
		t.Parallel()
		a := startApp(t)
		var down atomic.Bool
		down.Store(true)
		a.setReply(func(ctx context.Context, d delivery) (int, any) {
			switch {
			case d.Kind != "event":
				return http.StatusOK, nil
			case down.Load():
				return http.StatusServiceUnavailable, `{"error":"down for maintenance"}`
			case d.Payload.Event == "e3" && d.Attempt == 1:
				// Handled, but answered too late: siobridge times out and sends it again.
				<-ctx.Done()
				return http.StatusOK, nil
			}
			return http.StatusOK, `{"ack":["done"]}`
		})
		// e3's first attempt waits for all of the timeout; every other must be answered within it.
		b := startBridge(t, a, "SIOBRIDGE_WEBHOOK_RETRIES=50", "SIOBRIDGE_WEBHOOK_TIMEOUT="+e2eSlowWait.String())
		c := startNode(t).connect(t, b.url(), nil)
		for i := 1; i < n; i++ {
			c.emit(t, fmt.Sprintf("e%d", i), i)
		}
		last := c.emitAck(t, fmt.Sprintf("e%d", n), n)
		a.waitFor(t, "e1 refused 4 times", func(d delivery) bool {
			return d.Payload.Event == "e1" && d.Attempt >= 4 && d.Status == http.StatusServiceUnavailable
		})
		down.Store(false)
		// e3's first attempt is held past the webhook timeout; the retry is answered.
		a.waitFor(t, "e3's first attempt", func(d delivery) bool { return d.Payload.Event == "e3" && d.Attempt == 1 })
		a.waitFor(t, "e3's second attempt", func(d delivery) bool { return d.Payload.Event == "e3" && d.Attempt == 2 })
		a.waitEvent(t, c.id, fmt.Sprintf("e%d", n))
		// The ack of the last event comes once its delivery is settled and counted.
		assertJSON(t, "the ack of the last event", c.expectAck(t, last).Args, `["done"]`)

		all := events(a, c.id)
		byEvent := checkDelivered(t, all, n)
		for series, want := range map[string]int{
			`siobridge_events_in_total{namespace="/"}`:                          n,
			`siobridge_webhook_attempts_total{kind="event"}`:                    len(all),
			`siobridge_webhook_retries_total{kind="event"}`:                     len(all) - n,
			`siobridge_webhook_deliveries_total{kind="event",outcome="ok"}`:     n,
			`siobridge_webhook_deliveries_total{kind="event",outcome="failed"}`: 0,
		} {
			if got := b.metric(t, series); got != float64(want) {
				t.Errorf("%s = %v, want %d", series, got, want)
			}
		}
		e1 := byEvent["e1"]
		if len(e1) < 5 {
			t.Errorf("e1 was sent %d times, want at least 5 (4 refused)", len(e1))
		}
		for i, d := range e1 {
			if d.Attempt != i+1 {
				t.Errorf("e1's attempt %d came with %s: %d", i+1, webhook.HeaderAttempt, d.Attempt)
			}
		}
		if e3 := byEvent["e3"]; len(e3) != 2 || e3[0].Status != http.StatusOK || e3[1].Status != http.StatusOK {
			t.Errorf("e3: %d attempts, want 2, both handled by the app (the first too late)", len(e3))
		}
		for i := 4; i <= n; i++ {
			if ds := byEvent[fmt.Sprintf("e%d", i)]; len(ds) != 1 {
				t.Errorf("e%d was sent %d times, want once", i, len(ds))
			}
		}
	})

	t.Run("listener closed and reopened", func(t *testing.T) {
		t.Parallel()
		a := startApp(t)
		a.mux.HandleFunc("GET /page", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "page") })
		b := startBridge(t, a, "SIOBRIDGE_WEBHOOK_EVENTS=event", "SIOBRIDGE_WEBHOOK_RETRIES=50", "SIOBRIDGE_SERVER_UPSTREAM=http://"+a.addr)
		c := startNode(t).connect(t, b.url(), nil)
		c.emit(t, "e1", 1)
		c.emit(t, "e2", 2)
		a.waitEvent(t, c.id, "e2")

		a.down(t)
		for i := 3; i <= n; i++ {
			c.emit(t, fmt.Sprintf("e%d", i), i)
		}
		b.AwaitLog(t, "3 refused connections", func(log string) bool {
			return strings.Count(log, "connection refused") >= 3
		})
		// The reverse proxy says so too.
		res, err := b.fetch("GET", "http://"+b.Public+"/page", nil, nil)
		if err != nil || res.status != http.StatusBadGateway || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(res.body), "connection refused") {
			t.Errorf("GET /page with the app down: %v %d %q %s, want a 502 page saying the connection was refused",
				err, res.status, res.header.Get("Content-Type"), res.body)
		}
		a.up(t)
		a.waitEvent(t, c.id, fmt.Sprintf("e%d", n))

		byEvent := checkDelivered(t, events(a, c.id), n)
		if e3 := byEvent["e3"]; len(e3) != 1 || e3[0].Attempt < 4 {
			t.Errorf("e3 reached the app as %+v, want once, at attempt 4 or later (3 refused)", e3)
		}
		if res, err := b.fetch("GET", "http://"+b.Public+"/page", nil, nil); err != nil || res.status != http.StatusOK || string(res.body) != "page" {
			t.Errorf("GET /page with the app back: %v %d %s, want 200 page", err, res.status, res.body)
		}
	})
}

// TestE2EBadAPIInput sends the API wrong requests: each gets its status and an {"error":...}
// body, and nothing reaches the clients; then a good one does.
func TestE2EBadAPIInput(t *testing.T) {
	t.Parallel()
	const token = "e2e-api-token"
	b := startBridge(t, startApp(t), "SIOBRIDGE_API_TOKEN="+token, "SIOBRIDGE_API_MAX_BODY_BYTES=256")
	c := startNode(t).connect(t, b.url(), nil)
	good := "Bearer " + token

	for _, tc := range []struct {
		name, method, path, body, auth string
		status                         int
		errHas                         string
	}{
		{"no token", "POST", "/emit", `{"event":"x"}`, "", 401, "token"},
		{"wrong token", "POST", "/emit", `{"event":"x"}`, "Bearer not-it", 401, "token"},
		{"token of another scheme", "POST", "/emit", `{"event":"x"}`, "Basic " + token, 401, "token"},
		{"no token on GET /sockets", "GET", "/sockets", "", "", 401, "token"},
		{"malformed JSON", "POST", "/emit", `{"event":`, good, 400, "JSON"},
		{"not JSON", "POST", "/join", `rooms=r`, good, 400, "JSON"},
		{"trailing data", "POST", "/emit", `{"event":"x"} {"event":"y"}`, good, 400, "after the JSON value"},
		{"empty body", "POST", "/emit", ``, good, 400, "empty"},
		{"unknown field", "POST", "/emit", `{"event":"x","room":"r"}`, good, 400, "room"},
		{"wrong type", "POST", "/emit", `{"event":"x","to":"r"}`, good, 400, "to"},
		{"no event", "POST", "/emit", `{"args":[1]}`, good, 400, "event"},
		{"reserved event", "POST", "/emit", `{"event":"connect"}`, good, 400, "reserved"},
		{"bad base64", "POST", "/emit", `{"event":"x","args":[{"$binary":"***"}]}`, good, 400, "base64"},
		{"batch with a bad item", "POST", "/emit", `[{"event":"x"},{"event":"disconnect"}]`, good, 400, "emit[1]"},
		{"join without rooms", "POST", "/join", `{"to":["x"]}`, good, 400, "rooms"},
		{"emit to an unknown namespace", "POST", "/emit", `{"event":"x","namespace":"/nope"}`, good, 404, "/nope"},
		{"join in an unknown namespace", "POST", "/join", `{"namespace":"/nope","rooms":["r"]}`, good, 404, "/nope"},
		{"sockets of an unknown namespace", "GET", "/sockets?namespace=/nope", "", good, 404, "/nope"},
		{"rooms of an unknown namespace", "GET", "/rooms?namespace=/nope", "", good, 404, "/nope"},
		{"oversized body", "POST", "/emit", `{"event":"x","args":["` + strings.Repeat("x", 300) + `"]}`, good, 413, "256"},
		{"oversized batch", "POST", "/emit", `[` + strings.Repeat(`{"event":"x"},`, 30) + `{"event":"x"}]`, good, 413, "256"},
		{"unknown route", "GET", "/nope", "", good, 404, "/nope"},
		{"wrong method", "GET", "/emit", "", good, 405, "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {"application/json"}}
			if tc.auth != "" {
				h.Set("Authorization", tc.auth)
			}
			res, err := b.fetch(tc.method, "http://"+b.API+tc.path, tc.body, h)
			if err != nil {
				t.Fatal(err)
			}
			if res.status != tc.status {
				t.Errorf("status %d, want %d: %s", res.status, tc.status, res.body)
			}
			if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want JSON", ct)
			}
			var e map[string]any
			if err := json.Unmarshal(res.body, &e); err != nil || len(e) != 1 {
				t.Fatalf("body %s, want {\"error\":...}", res.body)
			}
			if msg, _ := e["error"].(string); !strings.Contains(msg, tc.errHas) {
				t.Errorf("error %q does not mention %q", msg, tc.errHas)
			}
			if tc.status == http.StatusUnauthorized && res.header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
		})
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		if res, err := b.fetch("GET", "http://"+b.API+path, nil, nil); err != nil || res.status != http.StatusOK {
			t.Errorf("GET %s without a token: %v %d %s, want 200", path, err, res.status, res.body)
		}
	}
	// None of the refused emits reached the client (the marker is the first thing it gets),
	// and the API still works.
	b.marker(t, c)
	b.emit(t, map[string]any{"event": "after", "args": []any{"all that"}}, 1)
	assertJSON(t, "after", c.expectEvent(t, "after").Args, `["all that"]`)
}

// TestE2EAPINotForBrowsers: the API of a bridge without a token refuses what a web page could
// make a browser send it (a cross-site POST with an Origin, or a request under the page's own
// name rebound to 127.0.0.1), and serves curl's requests to 127.0.0.1 and localhost.
func TestE2EAPINotForBrowsers(t *testing.T) {
	t.Parallel()
	b := startBridge(t, nil)
	c := startNode(t).connect(t, b.url(), nil)
	_, port, _ := net.SplitHostPort(b.API)
	for _, tc := range []struct {
		name, method, path, body string
		header                   http.Header
		status                   int
		errHas                   string
	}{
		{"cross-site form POST", "POST", "/emit", `{"event":"pwned"}`,
			http.Header{"Origin": {"https://attacker.example"}, "Content-Type": {"text/plain"}}, 403, "does not serve browsers"},
		{"health check from a page", "GET", "/healthz", "", http.Header{"Origin": {"https://attacker.example"}}, 403, "does not serve browsers"},
		{"rebound name", "GET", "/sockets", "", http.Header{"Host": {"attacker.example:" + port}}, 403, `Host "attacker.example:` + port + `" is not a loopback address`},
		{"rebound name, emit", "POST", "/emit", `{"event":"pwned"}`, http.Header{"Host": {"attacker.example"}}, 403, "loopback"},
		{"127.0.0.1", "GET", "/sockets", "", http.Header{"Host": {"127.0.0.1:" + port}}, 200, ""},
		{"localhost", "GET", "/sockets", "", http.Header{"Host": {"localhost:" + port}}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := b.fetch(tc.method, "http://"+b.API+tc.path, tc.body, tc.header)
			if err != nil {
				t.Fatal(err)
			}
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.status, tc.status, res.body)
			}
			if tc.status == http.StatusOK {
				if !strings.Contains(string(res.body), c.id) {
					t.Errorf("GET /sockets: %s, want socket %s", res.body, c.id)
				}
				return
			}
			var e struct{ Error string }
			if err := json.Unmarshal(res.body, &e); err != nil || !strings.Contains(e.Error, tc.errHas) {
				t.Errorf("body %s, want an error saying %q", res.body, tc.errHas)
			}
		})
	}
	// Neither refused emit reached the client: the marker is the first thing it gets.
	b.marker(t, c)
}

// TestE2EReverseProxy requests the app's page and a WebSocket through siobridge's public port,
// and the client bundle, which siobridge serves itself.
func TestE2EReverseProxy(t *testing.T) {
	t.Parallel()
	const page = "<!doctype html><title>the app</title><p>hello from the app</p>\n"
	a := startApp(t)
	type seen struct {
		path, query, xff, proto, host string
	}
	requests := make(chan seen, 100)
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		requests <- seen{r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host")}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	})
	upgrader := websocket.Upgrader{}
	a.mux.HandleFunc("/app-ws", func(w http.ResponseWriter, r *http.Request) {
		requests <- seen{r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host")}
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			typ, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if err := conn.WriteMessage(typ, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	})
	a.mux.HandleFunc("POST /form", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Set-Cookie", "session=abc; Path=/")
		w.Header().Set("Location", "/done")
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, "%s %q %s", r.Method, body, r.Header.Get("Content-Type"))
	})
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	a.mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	})
	b := startBridge(t, a, "SIOBRIDGE_SERVER_UPSTREAM=http://"+a.addr)
	nextRequest := func(t *testing.T) seen {
		t.Helper()
		select {
		case s := <-requests:
			return s
		case <-time.After(e2eWait):
			t.Fatal("the app received no request")
			return seen{}
		}
	}

	t.Run("page", func(t *testing.T) {
		res, err := b.fetch("GET", "http://"+b.Public+"/?q=1&r=two", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.status != http.StatusOK || string(res.body) != page || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
			t.Errorf("GET /: %d %q %s, want the app's page", res.status, res.header.Get("Content-Type"), res.body)
		}
		want := seen{"/", "q=1&r=two", "127.0.0.1", "http", b.Public}
		if got := nextRequest(t); got != want {
			t.Errorf("the app saw %+v, want %+v", got, want)
		}
	})

	t.Run("a form post", func(t *testing.T) {
		res, err := b.fetch("POST", "http://"+b.Public+"/form", "a=1&b=two", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
		if err != nil {
			t.Fatal(err)
		}
		if want := `POST "a=1&b=two" application/x-www-form-urlencoded`; res.status != http.StatusCreated || string(res.body) != want ||
			res.header.Get("Location") != "/done" || res.header.Get("Set-Cookie") != "session=abc; Path=/" {
			t.Errorf("POST /form: %d %v %s; want 201, the app's headers and %s", res.status, res.header, res.body, want)
		}
	})

	t.Run("a streamed response", func(t *testing.T) {
		resp, err := b.client.Get("http://" + b.Public + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		// The first event comes through while the app still holds the response open.
		for _, want := range []string{"data: one\n", "\n"} {
			if line, err := r.ReadString('\n'); line != want {
				t.Fatalf("read %q (%v), want %q", line, err, want)
			}
		}
		releaseOnce.Do(func() { close(release) })
		if rest, err := io.ReadAll(r); err != nil || string(rest) != "data: two\n\n" {
			t.Errorf("the rest of the stream: %q (%v), want the second event", rest, err)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		dialer := websocket.Dialer{Proxy: nil, HandshakeTimeout: e2eWait}
		conn, resp, err := dialer.Dial("ws://"+b.Public+"/app-ws?room=1", nil)
		if err != nil {
			t.Fatalf("WebSocket through siobridge: %v (%+v)", err, resp)
		}
		defer conn.Close()
		if got, want := nextRequest(t), (seen{"/app-ws", "room=1", "127.0.0.1", "http", b.Public}); got != want {
			t.Errorf("the app saw %+v, want %+v", got, want)
		}
		_ = conn.SetReadDeadline(time.Now().Add(e2eWait))
		for _, msg := range []struct {
			typ  int
			data []byte
		}{
			{websocket.TextMessage, []byte("hello through siobridge")},
			{websocket.BinaryMessage, []byte{0, 1, 254, 255}},
			{websocket.TextMessage, []byte(strings.Repeat("long ", 20000))},
		} {
			if err := conn.WriteMessage(msg.typ, msg.data); err != nil {
				t.Fatal(err)
			}
			typ, got, err := conn.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if typ != msg.typ || !bytes.Equal(got, append([]byte("echo:"), msg.data...)) {
				t.Errorf("echo: type %d, %d bytes, want type %d and echo: with %d bytes", typ, len(got), msg.typ, len(msg.data))
			}
		}
	})

	t.Run("client bundle", func(t *testing.T) {
		res, err := b.fetch("GET", "http://"+b.Public+"/socket.io/socket.io.js", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The binary under test embeds what the test binary does (both built from this tree).
		bundle, ok := proxy.ClientBundle()
		if !ok {
			t.Fatal("the socket.io-client bundle is missing from proxy/clientdist: run `make bundle` (or `make deps`) and test again")
		}
		want, err := fs.ReadFile(bundle, "socket.io.js")
		if err != nil {
			t.Fatal(err)
		}
		if res.status != http.StatusOK || !strings.HasPrefix(res.header.Get("Content-Type"), "application/javascript") || !bytes.Equal(res.body, want) {
			t.Errorf("GET /socket.io/socket.io.js: %d %q, %d bytes; want 200, JavaScript, the bundle's %d bytes",
				res.status, res.header.Get("Content-Type"), len(res.body), len(want))
		}
		// The Socket.IO endpoint is siobridge's own too.
		res, err = b.fetch("GET", "http://"+b.Public+"/socket.io/?EIO=4&transport=polling", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.status != http.StatusOK || !bytes.HasPrefix(res.body, []byte(`0{"sid":`)) {
			t.Errorf("GET /socket.io/?EIO=4&transport=polling: %d %s, want an Engine.IO open packet", res.status, res.body)
		}
		// Neither reached the app: the next request it sees is this one.
		if _, err := b.fetch("GET", "http://"+b.Public+"/after", nil, nil); err != nil {
			t.Fatal(err)
		}
		if got := nextRequest(t); got.path != "/after" {
			t.Errorf("the app saw %+v, want only /after", got)
		}
	})
}

// TestE2EShutdown stops siobridge with SIGTERM while two clients are connected: it stops being
// ready, delivers a disconnect webhook for each socket, waits for the app's answers, then
// exits 0.
func TestE2EShutdown(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	arrived := make(chan string, 10)
	release := make(chan struct{})
	a.setReply(func(ctx context.Context, d delivery) (int, any) {
		if d.Kind == "disconnect" {
			arrived <- d.Payload.Socket.ID
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return http.StatusOK, nil
	})
	b := startBridge(t, a)
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before siobridge stops
	nc := startNode(t)
	c0 := nc.connect(t, b.url(), nil)
	c1 := nc.connect(t, b.url(), map[string]any{"transports": []string{"polling"}})
	if res, err := b.fetch("GET", "http://"+b.API+"/readyz", nil, nil); err != nil || res.status != http.StatusOK {
		t.Fatalf("GET /readyz before stopping: %v %d %s, want 200", err, res.status, res.body)
	}

	b.Terminate(t)
	got := map[string]bool{}
	for range 2 {
		select {
		case id := <-arrived:
			got[id] = true
		case <-time.After(e2eWait):
			t.Fatalf("disconnect webhooks arrived for %v only, want %s and %s", got, c0.id, c1.id)
		}
	}
	if !got[c0.id] || !got[c1.id] {
		t.Errorf("disconnect webhooks arrived for %v, want %s and %s", got, c0.id, c1.id)
	}
	// While the app holds the webhooks, siobridge waits for them, and is not ready.
	select {
	case <-b.Exited():
		t.Error("siobridge exited before the app answered its disconnect webhooks")
	default:
		res, err := b.fetch("GET", "http://"+b.API+"/readyz", nil, nil)
		if err != nil || res.status != http.StatusServiceUnavailable || !jsonEqual(res.body, `{"status":"unavailable","error":"shutting down"}`) {
			t.Errorf("GET /readyz while stopping: %v %d %s, want 503", err, res.status, res.body)
		}
	}
	releaseOnce.Do(func() { close(release) })
	if code := b.Stop(t); code != 0 {
		t.Errorf("siobridge exited with status %d, want 0", code)
	}

	for _, c := range []*sioClient{c0, c1} {
		var ds []delivery
		for _, d := range a.all() {
			if d.Kind == "disconnect" && d.Payload.Socket.ID == c.id {
				ds = append(ds, d)
			}
		}
		if len(ds) != 1 || ds[0].Payload.Reason != "server shutting down" || ds[0].Status != http.StatusOK {
			t.Errorf("disconnect webhooks of %s: %+v, want one, reason %q, answered 200", c.id, ds, "server shutting down")
		}
		if m := c.next(t); m.Type != "disconnect" {
			t.Errorf("client %d: got %s, want its disconnect", c.n, m.line)
		}
	}
	log := b.Log()
	if !strings.Contains(log, `msg="siobridge stopping"`) || strings.Contains(log, "given up") || strings.Contains(log, "dropped") {
		t.Errorf("siobridge's log does not show a clean stop:\n%s", log)
	}
}

// TestE2EWebSocketPollerOff runs siobridge with socketio.websocket_poller = false: each
// WebSocket has a reader goroutine of its own, and the stock client works the same, connected
// over WebSocket directly or upgraded from polling.
func TestE2EWebSocketPollerOff(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	a.setReply(answerAsk)
	b := startBridge(t, a, "SIOBRIDGE_SOCKETIO_WEBSOCKET_POLLER=false")
	b.AwaitLog(t, "websocket_poller=false", func(log string) bool { return strings.Contains(log, "websocket_poller=false") })
	nc := startNode(t)
	direct := nc.connect(t, b.url(), map[string]any{"transports": []string{"websocket"}})
	upgraded := nc.connect(t, b.url(), nil)
	for _, c := range []*sioClient{direct, upgraded} {
		assertJSON(t, "ack", c.expectAck(t, c.emitAck(t, "ask", "q")).Args, `["answer"]`)
		a.waitEvent(t, c.id, "ask")
	}
	b.emit(t, map[string]any{"event": "news", "args": []any{"to all"}}, 2)
	for _, c := range []*sioClient{direct, upgraded} {
		m := c.expectEvent(t, "news")
		assertJSON(t, "news", m.Args, `["to all"]`)
		if c == direct && m.Transport != "websocket" {
			t.Errorf("the WebSocket-only client got news over %q", m.Transport)
		}
	}
}

// TestE2EPollingPollerOff runs siobridge with socketio.polling_poller = false: every pending
// poll waits in a net/http handler, and the stock client over long-polling works the same.
func TestE2EPollingPollerOff(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	a.setReply(answerAsk)
	b := startBridge(t, a, "SIOBRIDGE_SOCKETIO_POLLING_POLLER=false")
	b.AwaitLog(t, "polling_poller=false", func(log string) bool {
		return strings.Contains(log, "polling_poller=false") && strings.Contains(log, "websocket_poller=true")
	})
	nc := startNode(t)
	c := nc.connect(t, b.url(), map[string]any{"transports": []string{"polling"}})
	assertJSON(t, "ack", c.expectAck(t, c.emitAck(t, "ask", "q")).Args, `["answer"]`)
	a.waitEvent(t, c.id, "ask")
	b.emit(t, map[string]any{"event": "news", "args": []any{"to all"}}, 1)
	m := c.expectEvent(t, "news")
	assertJSON(t, "news", m.Args, `["to all"]`)
	if m.Transport != "polling" {
		t.Errorf("the polling-only client got news over %q", m.Transport)
	}
}

// answerAsk is a replyFunc that acks every "ask" event with "answer".
func answerAsk(_ context.Context, d delivery) (int, any) {
	if d.Payload.Event == "ask" {
		return http.StatusOK, `{"ack":["answer"]}`
	}
	return http.StatusOK, nil
}
