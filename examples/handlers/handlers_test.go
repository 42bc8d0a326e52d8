// Package handlers_test runs the example webhook handlers (python/handler.py, node/handler.js)
// behind the real siobridge binary, with two real socket.io-client clients, and checks what a
// user of each handler would see: the clients get in, a chat is acknowledged and reaches the
// other client but not its sender, and a request with a bad signature is refused.
//
// It needs /usr/bin/python3, node, and socket.io-client installed by `make deps`.
package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/siobridge/siobridge/webhook"
)

const (
	secret = "handlers-test-secret"
	// systemPython is Debian's interpreter; the python3 on PATH may be a pyenv one.
	systemPython = "/usr/bin/python3"
	// waitFor bounds every wait for something a process should print or do.
	waitFor = 20 * time.Second
	// stopWait is how long a process may take to exit after SIGTERM before it is killed.
	stopWait = 15 * time.Second
	depsHint = "install the test dependencies with `make deps` (.ci/install-deps: Node.js, " +
		"socket.io-client in socketio/testdata/interop)"
)

// handlers are the example handlers, each started with PORT=0 so that it picks a free port
// and prints it ("listening on <port>").
var handlers = []struct {
	name string
	argv []string // relative to examples/handlers
}{
	{"python", []string{systemPython, "python/handler.py"}},
	{"node", []string{"node", "node/handler.js"}},
}

func TestHandlers(t *testing.T) {
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	nodePath := filepath.Join(repo, "socketio", "testdata", "interop", "node_modules")
	if _, err := os.Stat(filepath.Join(nodePath, "socket.io-client", "package.json")); err != nil {
		t.Fatalf("socket.io-client is not installed: %v\n%s", err, depsHint)
	}
	for _, bin := range []string{"node", systemPython} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s: %v\n%s", bin, err, depsHint)
		}
	}
	siobridge := buildSiobridge(t)
	clientsJS := filepath.Join(t.TempDir(), "clients.js")
	if err := os.WriteFile(clientsJS, []byte(clientsScript), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, h := range handlers {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			handler := start(t, h.name, h.argv, "PORT=0", "SIOBRIDGE_WEBHOOK_SECRET="+secret)
			m := handler.stdout.waitMatch(t, regexp.MustCompile(`^listening on (\d+)$`), "its `listening on <port>` line")
			hookURL := "http://127.0.0.1:" + m[1] + "/siobridge"

			t.Run("signature", func(t *testing.T) { testSignature(t, hookURL) })
			t.Run("repeated delivery", func(t *testing.T) { testRepeated(t, hookURL, handler.stdout) })
			t.Run("clients", func(t *testing.T) { testClients(t, siobridge, hookURL, clientsJS, nodePath) })
		})
	}
}

// testSignature sends webhooks straight to the handler: signed ones get their actions, the
// others 401.
func testSignature(t *testing.T, hookURL string) {
	now := time.Now()
	connect := []byte(`{"id":"SIGCONNECT","type":"connect","namespace":"/","socket":{"id":"S1","rooms":[],"data":null}}`)
	chat := []byte(`{"id":"SIGCHAT","type":"event","namespace":"/","socket":{"id":"S1","rooms":["S1","lobby"],"data":{"name":"guest"}},"event":"chat","args":["hi",{"n":1}],"ack":true}`)
	disconnect := []byte(`{"id":"SIGDISCONNECT","type":"disconnect","namespace":"/","socket":{"id":"S1","rooms":["S1","lobby"],"data":{"name":"guest"}},"reason":"transport close"}`)
	noID := []byte(`{"type":"connect","namespace":"/","socket":{"id":"S1","rooms":[],"data":null}}`)
	valid := webhook.Sign(secret, now, connect)
	cases := []struct {
		name   string
		body   []byte
		sig    string
		status int
		reply  string // the JSON reply expected with status 200
	}{
		{"connect", connect, valid, 200, `{"data":{"name":"guest"},"join":["lobby"]}`},
		{"chat", chat, webhook.Sign(secret, now, chat), 200, `{"ack":["ok"],"emit":[{"event":"chat","args":["hi",{"n":1}],"to":["lobby"],"except":["S1"]}]}`},
		{"disconnect", disconnect, webhook.Sign(secret, now, disconnect), 200, `{}`},
		{"no signature", connect, "", 401, ""},
		{"another secret", connect, webhook.Sign("not-"+secret, now, connect), 401, ""},
		{"another body", connect, webhook.Sign(secret, now, chat), 401, ""},
		{"last digit changed", connect, flipLast(valid), 401, ""},
		{"v1 cut short", connect, valid[:len(valid)-2], 401, ""},
		{"signed 10 minutes ago", connect, webhook.Sign(secret, now.Add(-10*time.Minute), connect), 401, ""},
		{"signed 10 minutes ahead", connect, webhook.Sign(secret, now.Add(10*time.Minute), connect), 401, ""},
		{"garbage", connect, "nonsense", 401, ""},
		{"no delivery id in the body", noID, webhook.Sign(secret, now, noID), 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := postHook(t, hookURL, c.body, c.sig)
			if status != c.status {
				t.Fatalf("status %d, want %d; body %s", status, c.status, body)
			}
			if c.status == 200 && !jsonEqual(body, []byte(c.reply)) {
				t.Fatalf("reply %s, want %s", body, c.reply)
			}
		})
	}
}

// testRepeated sends the handler a delivery twice, as siobridge does when an answer does not
// reach it in time: the second gets the first's reply and is not handled again (the handler
// says so on its stdout), and the same body under another id is a new delivery.
func testRepeated(t *testing.T, hookURL string, stdout *lines) {
	const id = "REPEATEDCHATDELIVERY00000A"
	chat := []byte(`{"id":"` + id + `","type":"event","namespace":"/","socket":{"id":"S2","rooms":["S2","lobby"],"data":null},"event":"chat","args":["twice"],"ack":true}`)
	want := `{"ack":["ok"],"emit":[{"event":"chat","args":["twice"],"to":["lobby"],"except":["S2"]}]}`
	for i := range 2 {
		// Signed anew at each attempt, as siobridge does.
		status, body := postHook(t, hookURL, chat, webhook.Sign(secret, time.Now().Add(time.Duration(i)*time.Second), chat))
		if status != 200 || !jsonEqual(body, []byte(want)) {
			t.Fatalf("attempt %d: %d %s, want 200 %s", i+1, status, body, want)
		}
	}
	stdout.waitMatch(t, regexp.MustCompile(`^duplicate delivery `+id+`$`), "the handler noting the repeated delivery")
	other := bytes.Replace(chat, []byte(id), []byte("ANOTHERCHATDELIVERY0000000"), 1)
	if status, body := postHook(t, hookURL, other, webhook.Sign(secret, time.Now(), other)); status != 200 || !jsonEqual(body, []byte(want)) {
		t.Fatalf("another id: %d %s, want 200 %s", status, body, want)
	}
	// A line for the first attempt, or for the other id, would have come before the marker.
	marker := bytes.Replace(chat, []byte(id), []byte("MARKERDELIVERY000000000000"), 1)
	for range 2 {
		postHook(t, hookURL, marker, webhook.Sign(secret, time.Now(), marker))
	}
	stdout.waitMatch(t, regexp.MustCompile(`^duplicate delivery MARKERDELIVERY0+$`), "the marker's duplicate line")
	var dups []string
	for _, l := range stdout.all() {
		if strings.HasPrefix(l, "duplicate delivery ") && !strings.Contains(l, "MARKER") {
			dups = append(dups, l)
		}
	}
	if !slices.Equal(dups, []string{"duplicate delivery " + id}) {
		t.Errorf("the handler's duplicate lines: %q, want one for %s only", dups, id)
	}
}

// postHook POSTs body to the handler with the signature sig (none when empty) and returns
// its answer.
func postHook(t *testing.T, hookURL string, body []byte, sig string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, hookURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(webhook.HeaderSignature, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, reply
}

// testClients runs siobridge in front of the handler and two socket.io-client clients (see
// clientsScript): client 1 chats, client 2 gets the chat, client 1 gets only the marker the
// test emits after that through siobridge's API.
func testClients(t *testing.T, siobridge, hookURL, clientsJS, nodePath string) {
	sb := start(t, "siobridge", []string{siobridge},
		"SIOBRIDGE_SERVER_LISTEN=127.0.0.1:0",
		"SIOBRIDGE_API_LISTEN=127.0.0.1:0",
		"SIOBRIDGE_WEBHOOK_URL="+hookURL,
		"SIOBRIDGE_WEBHOOK_SECRET="+secret,
	)
	m := sb.stderr.waitMatch(t, regexp.MustCompile(`msg="siobridge serving" .*\bpublic=(\S+) .*\bapi=(\S+)`), "its startup line")
	public, api := "http://"+m[1], "http://"+m[2]

	clients := start(t, "clients.js", []string{"node", clientsJS, public}, "NODE_PATH="+nodePath)
	var ids [3]string // by client number
	for n := 1; n <= 2; n++ {
		line := clients.stdout.waitMatch(t, regexp.MustCompile(fmt.Sprintf(`^\{"client":%d,"(connected|connect_error)":"(.*)"\}$`, n)), fmt.Sprintf("client %d connecting", n))
		if line[1] == "connect_error" {
			t.Fatalf("client %d was refused: %s", n, line[2])
		}
		ids[n] = line[2]
	}

	// The connect reply's data and join apply before the client is told it is connected.
	var list struct{ Sockets []socketInfo }
	apiCall(t, http.MethodGet, api+"/sockets?namespace=/", nil, &list)
	for n := 1; n <= 2; n++ {
		i := slices.IndexFunc(list.Sockets, func(s socketInfo) bool { return s.ID == ids[n] })
		if i < 0 {
			t.Fatalf("GET /sockets has no client %d (%s): %+v", n, ids[n], list.Sockets)
		}
		if s := list.Sockets[i]; !slices.Contains(s.Rooms, "lobby") || !jsonEqual(s.Data, []byte(`{"name":"guest"}`)) {
			t.Errorf("client %d: rooms %v, data %s; want lobby among the rooms and data {\"name\":\"guest\"}", n, s.Rooms, s.Data)
		}
	}

	clients.stdout.waitMatch(t, regexp.MustCompile(`^\{"client":1,"ack":\["ok"\]\}$`), `client 1's ack "ok"`)
	clients.stdout.waitMatch(t, regexp.MustCompile(`^\{"client":2,"event":"chat",`), "client 2 getting the chat")
	// Had client 1 been sent its own chat, that would be queued before this marker.
	var emitted struct{ Sockets int }
	apiCall(t, http.MethodPost, api+"/emit", map[string]any{"event": "marker", "args": []string{"after the chat"}}, &emitted)
	if emitted.Sockets != 2 {
		t.Errorf("POST /emit reached %d sockets, want 2", emitted.Sockets)
	}
	if err := clients.wait(t); err != nil {
		t.Fatalf("clients.js: %v", err)
	}

	events := map[int][]string{}
	for _, line := range clients.stdout.all() {
		var o struct {
			Client int
			Event  string
			Args   json.RawMessage
		}
		if json.Unmarshal([]byte(line), &o) == nil && o.Event != "" {
			events[o.Client] = append(events[o.Client], o.Event+" "+string(o.Args))
		}
	}
	want := map[int][]string{
		1: {`marker ["after the chat"]`},
		2: {`chat ["hello",{"n":1}]`, `marker ["after the chat"]`},
	}
	if !reflect.DeepEqual(events, want) {
		t.Errorf("events the clients got: %v\nwant: %v", events, want)
	}
}

// socketInfo is the part of a GET /sockets item the test checks.
type socketInfo struct {
	ID    string
	Rooms []string
	Data  json.RawMessage
}

// clientsScript connects two socket.io-client clients to the URL in argv and prints one JSON
// line per observation. Once both are in, client 1 emits chat with an ack callback. It exits 0
// when both clients got "marker", which the test emits through the API.
const clientsScript = `"use strict";
const { io } = require("socket.io-client");
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
setTimeout(() => { console.error("clients.js: gave up after 20s"); process.exit(2); }, 20000).unref();

let connected = 0;
const marked = new Set();
const clients = [1, 2].map((n) => {
  const s = io(process.argv[2], { reconnection: false });
  s.on("connect", () => {
    out({ client: n, connected: s.id });
    if (++connected === 2) clients[0].emit("chat", "hello", { n: 1 }, (...args) => out({ client: 1, ack: args }));
  });
  s.on("connect_error", (err) => { out({ client: n, connect_error: err.message }); process.exit(1); });
  s.on("disconnect", (reason) => { if (marked.size < 2) { console.error("client " + n + " disconnected: " + reason); process.exit(1); } });
  s.onAny((event, ...args) => {
    out({ client: n, event, args });
    if (event === "marker" && marked.add(n).size === 2) clients.forEach((c) => c.close());
  });
  return s;
});
`

// buildSiobridge builds the siobridge binary into a temporary directory.
func buildSiobridge(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "siobridge")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/siobridge/siobridge/cmd/siobridge").CombinedOutput()
	if err != nil {
		t.Fatalf("go build siobridge: %v\n%s", err, out)
	}
	return bin
}

// apiCall sends body (when not nil) as JSON to siobridge's API and decodes the 200 answer
// into out.
func apiCall(t *testing.T, method, url string, body, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", method, url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, url, err, b)
	}
}

// flipLast changes the last character of a hex signature.
func flipLast(sig string) string {
	last := "0"
	if strings.HasSuffix(sig, "0") {
		last = "1"
	}
	return sig[:len(sig)-1] + last
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// process is a child process whose output the test reads line by line as it comes.
type process struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *lines
	done           chan struct{} // closed when the process has exited
	err            error         // cmd.Wait's, once done is closed
}

// start runs argv in examples/handlers with the test's environment plus env, and stops it
// (SIGTERM, then SIGKILL) when the test ends, logging its output if the test failed.
func start(t *testing.T, name string, argv []string, env ...string) *process {
	t.Helper()
	p := &process{name: name, stdout: newLines(), stderr: newLines(), done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(baseEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.WaitDelay = 5 * time.Second // do not wait for grandchildren holding the pipes
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v\n%s", name, err, depsHint)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.stdout.close()
		p.stderr.close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(stopWait):
				t.Errorf("%s did not stop within %v of SIGTERM: killed", name, stopWait)
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("%s (%v) stdout:\n%s\nstderr:\n%s", name, p.err, p.stdout, p.stderr)
		}
	})
	return p
}

// wait waits for the process to exit by itself.
func (p *process) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(waitFor):
		return fmt.Errorf("still running after %v", waitFor)
	}
}

// baseEnv is the test's environment without settings that would change siobridge's
// configuration or send loopback traffic to a proxy.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SIOBRIDGE_") || strings.HasSuffix(strings.ToUpper(name), "_PROXY") ||
			slices.Contains([]string{"PORT", "NODE_PATH", "NODE_OPTIONS", "PYTHONPATH", "PYTHONHOME"}, name) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NO_PROXY=*", "PYTHONDONTWRITEBYTECODE=1")
}

// lines collects what a process writes, split into lines, and wakes whoever waits for one.
type lines struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	closed  bool
	changed chan struct{} // closed and replaced on every new line, and at close
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, strings.TrimRight(string(l.partial[:i]), "\r"))
		l.partial = l.partial[i+1:]
		l.notify()
	}
	return len(p), nil
}

func (l *lines) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.lines = append(l.lines, string(l.partial))
		l.partial = nil
	}
	l.closed = true
	l.notify()
}

func (l *lines) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (l *lines) String() string { return strings.Join(l.all(), "\n") }

// waitMatch waits for a line that re matches and returns its submatches; the test fails if
// none comes within waitFor or before the process exits.
func (l *lines) waitMatch(t *testing.T, re *regexp.Regexp, what string) []string {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for seen := 0; ; {
		l.mu.Lock()
		for ; seen < len(l.lines); seen++ {
			if m := re.FindStringSubmatch(l.lines[seen]); m != nil {
				l.mu.Unlock()
				return m
			}
		}
		closed, changed := l.closed, l.changed
		l.mu.Unlock()
		if closed {
			t.Fatalf("waiting for %s: the process exited", what)
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("waiting for %s: nothing after %v", what, waitFor)
		}
	}
}
