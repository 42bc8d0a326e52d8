package socketio_test

// Interoperability tests: the server against the real clients, socket.io-client 4.8 under Node
// (testdata/interop/client.js) and python-socketio 5.7 (testdata/interop/client.py), and the
// Engine.IO server against cases of the protocol's official test suite run with ws and fetch
// (testdata/interop/enginesuite.js, interop_engine_test.go).
//
// Each test starts a server configured for its scenario, runs a client script (argv: URL,
// scenario, optional argument), and asserts on three things: the script's exit code (it checks
// what it received itself and fails fast), the JSON lines it printed (one per observation), and
// what the server's handlers recorded. The Node and Python dependencies are installed by
// `make deps` (.ci/install-deps); when they are missing the tests fail saying so.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siobridge/siobridge/engineio"
	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
)

const (
	// interopProcTimeout bounds one client process (the scripts give up after 20s themselves).
	interopProcTimeout = 60 * time.Second
	// interopWait bounds one wait for something the server should observe.
	interopWait = 20 * time.Second
	// interopGrace is how long a wait goes on once the client process has exited.
	interopGrace = 3 * time.Second
)

// Values shared with client.js and client.py.
const (
	interopTricky   = "é☃😀 \"quoted\" back\\slash\nnew\tline\u0000nul\u2028ls\u2029ps </script>"
	interopQuestion = "6×7?"
)

func interopNested() map[string]any {
	return map[string]any{"a": []any{1, 2, map[string]any{"b": "é☃😀"}}, "n": nil, "t": true, "f": 1.5}
}

func interopNestedBin() map[string]any {
	return map[string]any{
		"label": "nested",
		"inner": map[string]any{"buf": []byte("héllo")},
		"list":  []any{1, []byte{42}, []byte{}},
	}
}

var (
	interopBuf1   = []byte{0, 1, 2, 127, 128, 254, 255}
	interopAll256 = func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}()
)

// ---- what the server observed ----

// record is one thing a server handler observed.
type record struct {
	Kind      string // connect, event, disconnect, auth, ackResult, dropping
	NS        string
	SocketID  string
	Name      string // event name
	Args      socketio.Args
	WantsAck  bool
	Transport string
	Reason    string
	Data      any
	Auth      json.RawMessage
	Rooms     []string
	Err       error
}

func (r record) String() string {
	s := fmt.Sprintf("%s ns=%s sid=%s", r.Kind, r.NS, r.SocketID)
	if r.Name != "" {
		s += fmt.Sprintf(" name=%s args=%s atts=%d", r.Name, r.Args.Raw, len(r.Args.Attachments))
	}
	if r.Transport != "" {
		s += " transport=" + r.Transport
	}
	if r.Reason != "" {
		s += " reason=" + r.Reason
	}
	if r.Auth != nil {
		s += " auth=" + string(r.Auth)
	}
	if r.Err != nil {
		s += " err=" + r.Err.Error()
	}
	return s
}

// recorder collects records from handlers (which must not block) for the test to await.
type recorder struct {
	mu      sync.Mutex
	recs    []record
	changed chan struct{} // closed and replaced on every add
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) add(rec record) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) all() []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

// waitFor waits until pred holds for the records and returns them. It fails the test after
// interopWait, or interopGrace after exited is closed (the client has gone: whatever it caused
// is on its way by then). exited may be nil.
func (r *recorder) waitFor(t *testing.T, exited <-chan struct{}, what string, pred func([]record) bool) []record {
	t.Helper()
	deadline := time.Now().Add(interopWait)
	for {
		r.mu.Lock()
		recs := slices.Clone(r.recs)
		changed := r.changed
		r.mu.Unlock()
		if pred(recs) {
			return recs
		}
		timer := time.NewTimer(time.Until(deadline))
		select {
		case <-changed:
		case <-exited:
			exited = nil
			if d := time.Now().Add(interopGrace); d.Before(deadline) {
				deadline = d
			}
		case <-timer.C:
			timer.Stop()
			t.Fatalf("server: gave up waiting for %s; records:\n%s", what, dumpRecords(recs))
		}
		timer.Stop()
	}
}

func dumpRecords(recs []record) string {
	var b strings.Builder
	for i, r := range recs {
		fmt.Fprintf(&b, "  %d: %s\n", i, r)
	}
	return b.String()
}

func filterRecords(recs []record, kind, name string) []record {
	var out []record
	for _, r := range recs {
		if r.Kind == kind && (name == "" || r.Name == name) {
			out = append(out, r)
		}
	}
	return out
}

func countRecords(kind, name string, n int) func([]record) bool {
	return func(recs []record) bool { return len(filterRecords(recs, kind, name)) >= n }
}

// ---- the server ----

type interopServer struct {
	URL string
	Srv *socketio.Server
	Rec *recorder

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // goroutines started by handlers
	logs   testkit.Lines
}

// goFunc runs fn on a goroutine the cleanup waits for (handlers must not block).
func (s *interopServer) goFunc(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// recordConnect records a new socket and its disconnect.
func (s *interopServer) recordConnect(sock *socketio.Socket) {
	s.Rec.add(record{
		Kind: "connect", NS: sock.Namespace().Name(), SocketID: sock.ID(), Transport: sock.Transport(),
		Data: sock.Data(), Auth: sock.Handshake().Auth, Rooms: sock.Rooms(),
	})
	sock.OnDisconnect(func(reason string) {
		s.Rec.add(record{Kind: "disconnect", NS: sock.Namespace().Name(), SocketID: sock.ID(), Reason: reason})
	})
}

func (s *interopServer) recordEvent(e *socketio.Event) {
	sock := e.Socket()
	s.Rec.add(record{
		Kind: "event", NS: sock.Namespace().Name(), SocketID: sock.ID(), Name: e.Name,
		Args: e.Args, WantsAck: e.WantsAck(), Transport: sock.Transport(),
	})
}

// startInteropServer starts a server with opts on 127.0.0.1, lets setup install the scenario's
// handlers, and returns it with its cleanup, which closes the server and waits for everything
// it started.
func startInteropServer(t *testing.T, opts socketio.Options, setup func(*interopServer)) (*interopServer, func()) {
	t.Helper()
	s := &interopServer{Rec: newRecorder()}
	opts.Logger = slog.New(slog.NewTextHandler(&s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s.Srv = socketio.NewServer(opts)
	if setup != nil {
		setup(s)
	}
	hs := httptest.NewServer(s.Srv)
	s.URL = hs.URL
	var once sync.Once
	cleanup := func() {
		once.Do(func() {
			s.Srv.Close()
			hs.Close()
			s.mu.Lock()
			s.closed = true
			s.mu.Unlock()
			s.wg.Wait()
			if t.Failed() {
				if recs := s.Rec.all(); len(recs) > 0 {
					t.Logf("server records:\n%s", dumpRecords(recs))
				}
				if logs := s.logs.String(); logs != "" {
					t.Logf("server log:\n%s", logs)
				}
			}
		})
	}
	t.Cleanup(cleanup)
	return s, cleanup
}

// coreHandlers are the "/" handlers of the core scenario (see client.js and client.py).
func coreHandlers(s *interopServer) {
	s.Srv.Of("/").OnConnect(func(sock *socketio.Socket) {
		s.recordConnect(sock)
		sock.On("json", func(e *socketio.Event) {
			s.recordEvent(e)
			_ = sock.Emit("json", interopNested(), interopTricky, 42)
		})
		sock.On("bin", func(e *socketio.Event) {
			s.recordEvent(e)
			_ = sock.Emit("bin", interopBuf1, interopNestedBin(), interopAll256)
		})
		sock.On("ack", func(e *socketio.Event) {
			s.recordEvent(e)
			_ = e.Ack("ok", interopNested(), []byte{1, 2, 3})
		})
		sock.On("echo", func(e *socketio.Event) {
			s.recordEvent(e)
			_ = e.AckRaw(e.Args)
		})
		sock.On("ask", func(e *socketio.Event) {
			s.recordEvent(e)
			s.goFunc(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				args, err := sock.EmitWithAck(ctx, "question", interopQuestion, []byte{6, 7})
				s.Rec.add(record{Kind: "ackResult", NS: "/", SocketID: sock.ID(), Name: "question", Args: args, Err: err})
				if err != nil {
					_ = sock.Emit("answered", "EmitWithAck failed: "+err.Error())
					return
				}
				decoded, err := args.Decode()
				if err != nil {
					_ = sock.Emit("answered", "Decode failed: "+err.Error())
					return
				}
				_ = sock.Emit("answered", decoded...)
			})
		})
	})
}

// ---- the clients ----

type clientResult struct {
	Lines  []map[string]any
	Stdout string
	Stderr string
	Err    error // from the process: nil when it exited 0
}

type clientProc struct {
	desc     string
	done     chan struct{}
	res      clientResult
	reported bool // wait has shown the output already
}

func interopDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "interop"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// The clients' programs, looked for once: each lookup fails every test that needs it.
var (
	// nodeClient is node, once it loads socket.io-client from testdata/interop (enginesuite.js's
	// ws comes with it: engine.io-client depends on it).
	nodeClient = sync.OnceValues(func() (string, error) {
		node, err := testkit.LookTool("node")
		if err != nil {
			return "", err
		}
		if _, err := testkit.LookNodeModules(testkit.InteropNode, "socket.io-client"); err != nil {
			return "", err
		}
		ctx, cancel := context.WithTimeout(context.Background(), interopProcTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "-e", `require("socket.io-client")`)
		cmd.Dir = filepath.Join("testdata", "interop")
		cmd.Env = testkit.Env()
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("node cannot load socket.io-client from %s: %v: %s", testkit.InteropNode, err, bytes.TrimSpace(out))
		}
		return node, nil
	})
	// pythonClient is Debian's python3, once it imports what client.py does.
	pythonClient = sync.OnceValues(func() (string, error) {
		return testkit.LookPython("socketio", "engineio", "websocket", "requests")
	})
)

// requireClient returns the program that runs lang's client, failing the test with what to
// install when it cannot run here.
func requireClient(t *testing.T, lang string) string {
	t.Helper()
	var (
		prog string
		err  error
	)
	switch lang {
	case "node", "node-engine":
		prog, err = nodeClient()
	case "python":
		prog, err = pythonClient()
	default:
		err = fmt.Errorf("unknown client language %q", lang)
	}
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// startClient runs a client script in the background; wait for it with wait (the test's cleanup
// does too).
func startClient(t *testing.T, lang, url, scenario string, args ...string) *clientProc {
	t.Helper()
	name := requireClient(t, lang)
	dir := interopDir(t)
	argv := append([]string{url, scenario}, args...)
	switch lang {
	case "node":
		argv = append([]string{"client.js"}, argv...)
	case "node-engine":
		argv = append([]string{"enginesuite.js"}, argv...)
	case "python":
		argv = append([]string{"client.py"}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), interopProcTimeout)
	cmd := exec.CommandContext(ctx, name, argv...)
	cmd.Dir = dir
	cmd.Env = testkit.Env()
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	p := &clientProc{desc: lang + " " + scenario + " " + strings.Join(args, " "), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", p.desc, err)
	}
	go func() {
		defer close(p.done)
		defer cancel()
		err := cmd.Wait()
		if ctx.Err() != nil {
			err = fmt.Errorf("killed after %v: %w", interopProcTimeout, err)
		}
		p.res = clientResult{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
		sc := bufio.NewScanner(strings.NewReader(p.res.Stdout))
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			var m map[string]any
			if jerr := json.Unmarshal([]byte(line), &m); jerr != nil {
				p.res.Err = errors.Join(p.res.Err, fmt.Errorf("stdout line is not a JSON object: %q", line))
				continue
			}
			p.res.Lines = append(p.res.Lines, m)
		}
	}()
	t.Cleanup(func() {
		<-p.done
		if t.Failed() && !p.reported {
			t.Logf("client %s stderr:\n%s\nstdout:\n%s", p.desc, p.res.Stderr, p.res.Stdout)
		}
	})
	return p
}

// wait waits for the process and fails the test unless it exited 0 having printed its "done"
// line.
func (p *clientProc) wait(t *testing.T) clientResult {
	t.Helper()
	<-p.done
	if p.res.Err == nil && (len(p.res.Lines) == 0 || p.res.Lines[len(p.res.Lines)-1]["step"] != "done") {
		p.res.Err = errors.New(`the last line is not {"step":"done"}`)
	}
	if p.res.Err != nil {
		p.reported = true
		t.Fatalf("client %s failed: %v\nstderr:\n%s\nstdout:\n%s", p.desc, p.res.Err, p.res.Stderr, p.res.Stdout)
	}
	return p.res
}

// runClient runs a client script to its end and returns what it printed.
func runClient(t *testing.T, lang, url, scenario string, args ...string) clientResult {
	t.Helper()
	return startClient(t, lang, url, scenario, args...).wait(t)
}

// step returns the first line printed for step, failing the test if there is none.
func (r clientResult) step(t *testing.T, step string) map[string]any {
	t.Helper()
	for _, l := range r.Lines {
		if l["step"] == step {
			return l
		}
	}
	t.Fatalf("client printed no %q step; stdout:\n%s", step, r.Stdout)
	return nil
}

func (r clientResult) steps(step string) []map[string]any {
	var out []map[string]any
	for _, l := range r.Lines {
		if l["step"] == step {
			out = append(out, l)
		}
	}
	return out
}

// ---- comparing values ----

// canon gives Go values the form the client scripts print: numbers as float64, binary as
// {"$bin": hex}.
func canon(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return string(x)
		}
		return f
	case int:
		return float64(x)
	case []byte:
		return map[string]any{"$bin": hex.EncodeToString(x)}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = canon(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = canon(e)
		}
		return out
	case json.RawMessage:
		var d any
		if err := json.Unmarshal(x, &d); err != nil {
			return "invalid JSON: " + string(x)
		}
		return d
	}
	return v
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

func checkEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if g, w := canon(got), canon(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, jsonString(g), jsonString(w))
	}
}

func decodeArgs(t *testing.T, what string, a socketio.Args) []any {
	t.Helper()
	v, err := a.Decode()
	if err != nil {
		t.Fatalf("%s: Decode(%s): %v", what, a.Raw, err)
	}
	return v
}

// ---- the tests ----

// TestInteropCore runs events with nested JSON and Unicode, binary and acks both ways over each
// transport setup of each client.
func TestInteropCore(t *testing.T) {
	cases := []struct {
		lang, transport string
		// connectTransport is the transport the socket is admitted over ("" when it may be
		// either: over the default setup the upgrade can finish before the CONNECT answer);
		// finalTransport the one it ends on.
		connectTransport, finalTransport string
	}{
		{"node", "polling", "polling", "polling"},
		{"node", "websocket", "websocket", "websocket"},
		{"node", "default", "", "websocket"},
		{"python", "polling", "polling", "polling"},
		{"python", "websocket", "websocket", "websocket"},
	}
	for _, tc := range cases {
		t.Run(tc.lang+"/"+tc.transport, func(t *testing.T) {
			opts := socketio.Options{Engine: engineio.Options{
				// Heartbeats run during the exchange.
				PingInterval: 300 * time.Millisecond,
				PingTimeout:  5 * time.Second,
			}}
			srv, cleanup := startInteropServer(t, opts, coreHandlers)
			defer cleanup()
			res := runClient(t, tc.lang, srv.URL, "core", tc.transport)
			recs := srv.Rec.waitFor(t, nil, "the answered ack", countRecords("ackResult", "", 1))

			// The client's side.
			conn := res.step(t, "connect")
			if tc.connectTransport != "" && conn["transport"] != tc.connectTransport {
				t.Errorf("client connected over %v, want %s", conn["transport"], tc.connectTransport)
			}
			wantJSON := []any{interopNested(), interopTricky, 42}
			checkEqual(t, "json the client got", res.step(t, "json")["value"], wantJSON)
			bin := res.step(t, "bin")
			checkEqual(t, "bin the client got", bin["value"], []any{interopBuf1, interopNestedBin(), interopAll256})
			wantType := map[string]string{"node": "Buffer", "python": "bytes"}[tc.lang]
			checkEqual(t, "types of the binaries the client got", bin["types"],
				[]any{wantType, wantType, wantType, wantType, wantType})
			checkEqual(t, "ack the client got", res.step(t, "ack")["value"], []any{"ok", interopNested(), []byte{1, 2, 3}})
			checkEqual(t, "echo the client got", res.step(t, "echo")["value"],
				[]any{map[string]any{"x": []byte{9, 9}, "y": []any{interopTricky, nil}}, "s", interopBuf1})
			checkEqual(t, "answered", res.step(t, "answered")["value"],
				[]any{map[string]any{"answer": 42, "q": interopQuestion}, []byte{4, 2}})
			if tc.transport == "default" {
				if up := res.step(t, "upgrade"); up["transport"] != "websocket" {
					t.Errorf("transport after the upgrade event: %v, want websocket", up["transport"])
				}
			}
			if got := res.step(t, "final")["transport"]; got != tc.finalTransport {
				t.Errorf("client's final transport %v, want %s", got, tc.finalTransport)
			}

			// The server's side.
			conns := filterRecords(recs, "connect", "")
			if len(conns) != 1 {
				t.Fatalf("server saw %d connections, want 1:\n%s", len(conns), dumpRecords(recs))
			}
			if tc.connectTransport != "" && conns[0].Transport != tc.connectTransport {
				t.Errorf("server admitted the socket over %s, want %s", conns[0].Transport, tc.connectTransport)
			}
			if conns[0].SocketID != conn["id"] {
				t.Errorf("socket id: server %s, client %v", conns[0].SocketID, conn["id"])
			}
			if string(conns[0].Auth) != "{}" {
				t.Errorf("handshake auth without one: %s, want {}", conns[0].Auth)
			}
			events := filterRecords(recs, "event", "")
			var names []string
			for _, e := range events {
				names = append(names, e.Name)
				if e.SocketID != conns[0].SocketID {
					t.Errorf("event %s from socket %s, want %s", e.Name, e.SocketID, conns[0].SocketID)
				}
				// Over the default setup the exchange after "json" waits for the upgrade.
				if want := tc.finalTransport; e.Name != "json" && e.Transport != want {
					t.Errorf("event %s arrived over %s, want %s", e.Name, e.Transport, want)
				}
			}
			if want := []string{"json", "bin", "ack", "echo", "ask"}; !slices.Equal(names, want) {
				t.Fatalf("server got events %v, want %v", names, want)
			}

			jsonEv := events[0]
			checkEqual(t, "json args the server got", decodeArgs(t, "json", jsonEv.Args), wantJSON)
			if len(jsonEv.Args.Attachments) != 0 || jsonEv.WantsAck {
				t.Errorf("json event: %d attachments, wants ack %v", len(jsonEv.Args.Attachments), jsonEv.WantsAck)
			}
			if tc.lang == "node" {
				// socket.io-client sends JSON.stringify's bytes: the server must hand them over
				// untouched.
				if raw := res.step(t, "sent-json")["raw"]; string(jsonEv.Args.Raw) != raw {
					t.Errorf("json Args.Raw:\n got %s\nwant %s", jsonEv.Args.Raw, raw)
				}
			}

			binEv := events[1]
			wantAtts := [][]byte{interopBuf1, interopAll256, []byte("héllo"), {42}, {}}
			if len(binEv.Args.Attachments) != len(wantAtts) {
				t.Errorf("bin event has %d attachments, want %d", len(binEv.Args.Attachments), len(wantAtts))
			} else {
				for i, want := range wantAtts {
					if !bytes.Equal(binEv.Args.Attachments[i], want) {
						t.Errorf("bin attachment %d: %x, want %x", i, binEv.Args.Attachments[i], want)
					}
				}
			}
			binArgs := decodeArgs(t, "bin", binEv.Args)
			checkEqual(t, "bin args the server got", binArgs, []any{interopBuf1, interopAll256, interopNestedBin()})
			if len(binArgs) == 3 {
				// The ArrayBuffer (node) and the bytes nested in an object are []byte.
				if _, ok := binArgs[1].([]byte); !ok {
					t.Errorf("bin arg 1 decoded as %T, want []byte", binArgs[1])
				}
				inner, _ := binArgs[2].(map[string]any)["inner"].(map[string]any)
				if _, ok := inner["buf"].([]byte); !ok {
					t.Errorf("nested bin arg decoded as %T, want []byte", inner["buf"])
				}
			}

			ackEv := events[2]
			if !ackEv.WantsAck {
				t.Error("ack event: WantsAck false")
			}
			checkEqual(t, "ack args the server got", decodeArgs(t, "ack", ackEv.Args), []any{interopNested(), interopBuf1})

			ar := filterRecords(recs, "ackResult", "")[0]
			if ar.Err != nil {
				t.Fatalf("EmitWithAck: %v", ar.Err)
			}
			checkEqual(t, "the client's answer to EmitWithAck", decodeArgs(t, "question ack", ar.Args),
				[]any{map[string]any{"answer": 42, "q": interopQuestion}, []byte{4, 2}})
			if len(ar.Args.Attachments) != 1 {
				t.Errorf("the answer has %d attachments, want 1", len(ar.Args.Attachments))
			}

			// The client disconnected at its end.
			recs = srv.Rec.waitFor(t, nil, "the disconnect", countRecords("disconnect", "", 1))
			reason := filterRecords(recs, "disconnect", "")[0].Reason
			want := socketio.ReasonClientNamespaceDisconnect
			if tc.lang == "python" && res.step(t, "disconnected")["sent_disconnect"] != true {
				// python-socketio 5.7 queues its DISCONNECT and ends the transport without
				// waiting for it to be sent (client.py's _watch_disconnect): when the close
				// frame goes first the DISCONNECT after it is ignored, and over polling the
				// client just goes quiet, which only the heartbeat notices.
				want = map[string]string{
					"websocket": engineio.ReasonTransportClose,
					"polling":   engineio.ReasonPingTimeout,
				}[tc.transport]
			}
			if reason != want {
				t.Errorf("disconnect reason %q, want %q", reason, want)
			}
		})
	}
}

// TestInteropNamespaces connects to a custom namespace and exchanges events there; an unknown
// namespace is refused with "Invalid namespace".
func TestInteropNamespaces(t *testing.T) {
	for _, lang := range []string{"node", "python"} {
		t.Run(lang, func(t *testing.T) {
			srv, cleanup := startInteropServer(t, socketio.Options{Namespaces: []string{"/custom"}}, func(s *interopServer) {
				s.Srv.Of("/").OnConnect(s.recordConnect)
				s.Srv.Of("/custom").OnConnect(func(sock *socketio.Socket) {
					s.recordConnect(sock)
					_ = sock.Emit("welcome", sock.Namespace().Name(), sock.ID())
					sock.On("hello", func(e *socketio.Event) {
						s.recordEvent(e)
						args := decodeArgsOr(e.Args)
						_ = e.Ack(append([]any{"hi", sock.Namespace().Name()}, args...)...)
					})
				})
			})
			defer cleanup()
			res := runClient(t, lang, srv.URL, "namespaces")

			cc := res.step(t, "custom-connect")
			checkEqual(t, "hello ack", res.step(t, "hello")["value"], []any{"hi", "/custom", "from custom"})
			checkEqual(t, "hello ack after /nope", res.step(t, "hello-again")["value"], []any{"hi", "/custom", "again"})
			nope := res.step(t, "nope")
			switch lang {
			case "node":
				if nope["message"] != "Invalid namespace" {
					t.Errorf("/nope connect_error message %v, want Invalid namespace", nope["message"])
				}
			case "python":
				checkEqual(t, "/nope connect_error", nope["error"], []any{map[string]any{"message": "Invalid namespace"}})
			}

			recs := srv.Rec.waitFor(t, nil, "the /custom disconnect", countRecords("disconnect", "", 1))
			conns := filterRecords(recs, "connect", "")
			if len(conns) != 1 || conns[0].NS != "/custom" || conns[0].SocketID != cc["id"] {
				t.Errorf("server connections: want one to /custom with id %v:\n%s", cc["id"], dumpRecords(recs))
			}
			hellos := filterRecords(recs, "event", "hello")
			if len(hellos) != 2 {
				t.Errorf("server got %d hello events, want 2", len(hellos))
			}
			for _, h := range hellos {
				if h.NS != "/custom" {
					t.Errorf("hello event in %s, want /custom", h.NS)
				}
			}
			var nsNames []string
			for _, ns := range srv.Srv.Namespaces() {
				nsNames = append(nsNames, ns.Name())
			}
			if want := []string{"/", "/custom"}; !slices.Equal(nsNames, want) {
				t.Errorf("namespaces after the run: %v, want %v", nsNames, want)
			}
		})
	}
}

func decodeArgsOr(a socketio.Args) []any {
	v, err := a.Decode()
	if err != nil {
		return []any{"decode error: " + err.Error()}
	}
	return v
}

// TestInteropAuth admits the client with the good token, with the Admission's data and rooms,
// and refuses the bad one with a ConnectError whose message and data reach the client.
func TestInteropAuth(t *testing.T) {
	wantData := map[string]any{"user": "alice", "level": 7}
	for _, lang := range []string{"node", "python"} {
		t.Run(lang, func(t *testing.T) {
			srv, cleanup := startInteropServer(t, socketio.Options{}, func(s *interopServer) {
				ns := s.Srv.Of("/")
				ns.Authorize(func(ctx context.Context, req *socketio.ConnectRequest) (*socketio.Admission, error) {
					s.Rec.add(record{Kind: "auth", NS: req.Namespace, SocketID: req.SocketID, Auth: req.Handshake.Auth})
					var a struct{ Token string }
					if err := json.Unmarshal(req.Handshake.Auth, &a); err == nil && a.Token == "good" {
						return &socketio.Admission{Data: wantData, Rooms: []string{"vip"}}, nil
					}
					return nil, &socketio.ConnectError{Message: "not allowed", Data: map[string]any{"code": 42}}
				})
				ns.OnConnect(func(sock *socketio.Socket) {
					s.recordConnect(sock)
					sock.On("whoami", func(e *socketio.Event) {
						s.recordEvent(e)
						_ = e.Ack(sock.Data(), sock.Handshake().Auth)
					})
				})
			})
			defer cleanup()
			res := runClient(t, lang, srv.URL, "auth")

			good := res.step(t, "good")
			checkEqual(t, "whoami ack", good["whoami"], []any{wantData, map[string]any{"token": "good"}})
			bad := res.step(t, "bad")
			switch lang {
			case "node":
				if bad["message"] != "not allowed" {
					t.Errorf("connect_error message %v, want not allowed", bad["message"])
				}
				checkEqual(t, "connect_error data", bad["data"], map[string]any{"code": 42})
			case "python":
				checkEqual(t, "connect_error handler args", bad["error"],
					[]any{map[string]any{"message": "not allowed", "data": map[string]any{"code": 42}}})
				if bad["exceptionType"] != "ConnectionError" {
					t.Errorf("connect raised %v, want ConnectionError", bad["exceptionType"])
				}
			}

			recs := srv.Rec.waitFor(t, nil, "the good client's disconnect", countRecords("disconnect", "", 1))
			auths := filterRecords(recs, "auth", "")
			var gotAuth []string
			for _, a := range auths {
				gotAuth = append(gotAuth, string(a.Auth))
			}
			if want := []string{`{"token":"good"}`, `{"token":"bad"}`}; !slices.Equal(gotAuth, want) {
				t.Errorf("auth payloads the authorizer saw: %q, want %q", gotAuth, want)
			}
			conns := filterRecords(recs, "connect", "")
			if len(conns) != 1 {
				t.Fatalf("server admitted %d sockets, want 1:\n%s", len(conns), dumpRecords(recs))
			}
			c := conns[0]
			if c.SocketID != good["id"] || len(auths) == 0 || c.SocketID != auths[0].SocketID {
				t.Errorf("admitted socket %s: client says %v, authorizer was asked for %v", c.SocketID, good["id"], auths)
			}
			if !reflect.DeepEqual(c.Data, wantData) {
				t.Errorf("s.Data() = %#v, want %#v", c.Data, wantData)
			}
			if string(c.Auth) != `{"token":"good"}` {
				t.Errorf("s.Handshake().Auth = %s", c.Auth)
			}
			if !slices.Contains(c.Rooms, "vip") || !slices.Contains(c.Rooms, c.SocketID) {
				t.Errorf("rooms at connect %v, want the socket's id and vip", c.Rooms)
			}
		})
	}
}

// TestInteropRooms broadcasts to a room that two of three clients joined.
func TestInteropRooms(t *testing.T) {
	for _, lang := range []string{"node", "python"} {
		t.Run(lang, func(t *testing.T) {
			srv, cleanup := startInteropServer(t, socketio.Options{}, func(s *interopServer) {
				s.Srv.Of("/").OnConnect(func(sock *socketio.Socket) {
					s.recordConnect(sock)
					sock.On("join", func(e *socketio.Event) {
						var room string
						if args := decodeArgsOr(e.Args); len(args) > 0 {
							room, _ = args[0].(string)
						}
						sock.Join(room)
						s.recordEvent(e)
						_ = e.Ack("joined", room)
					})
					sock.On("gotRoom", s.recordEvent)
				})
			})
			defer cleanup()
			ns := srv.Srv.Of("/")
			p := startClient(t, lang, srv.URL, "rooms")

			recs := srv.Rec.waitFor(t, p.done, "3 connections and 2 joins", func(recs []record) bool {
				return len(filterRecords(recs, "connect", "")) == 3 && len(filterRecords(recs, "event", "join")) == 2
			})
			names := map[string]string{} // socket id -> client name
			for _, c := range filterRecords(recs, "connect", "") {
				var a struct{ Name string }
				_ = json.Unmarshal(c.Auth, &a)
				names[c.SocketID] = a.Name
			}
			var joined []string
			for _, j := range filterRecords(recs, "event", "join") {
				joined = append(joined, names[j.SocketID])
			}
			slices.Sort(joined)
			if !slices.Equal(joined, []string{"a", "b"}) {
				t.Fatalf("clients that joined r: %v, want [a b]", joined)
			}

			n, err := ns.To("r").Emit("roomMsg", "for r only", []byte{1, 2, 3})
			if err != nil || n != 2 {
				t.Fatalf("To(r).Emit = %d, %v; want 2, nil", n, err)
			}
			recs = srv.Rec.waitFor(t, p.done, "2 gotRoom receipts", countRecords("event", "gotRoom", 2))
			var receivers []string
			for _, g := range filterRecords(recs, "event", "gotRoom") {
				receivers = append(receivers, names[g.SocketID])
			}
			slices.Sort(receivers)
			if !slices.Equal(receivers, []string{"a", "b"}) {
				t.Errorf("roomMsg receipts from %v, want [a b]", receivers)
			}
			if m, err := ns.Emit("marker", "all"); err != nil || m != 3 {
				t.Errorf("Emit(marker) = %d, %v; want 3, nil", m, err)
			}
			res := p.wait(t)

			want := map[string][]any{
				"a": {map[string]any{"event": "roomMsg", "args": []any{"for r only", []byte{1, 2, 3}}}, map[string]any{"event": "marker", "args": []any{"all"}}},
				"b": {map[string]any{"event": "roomMsg", "args": []any{"for r only", []byte{1, 2, 3}}}, map[string]any{"event": "marker", "args": []any{"all"}}},
				"c": {map[string]any{"event": "marker", "args": []any{"all"}}},
			}
			got := res.steps("events")
			if len(got) != 3 {
				t.Fatalf("client printed %d event lists, want 3:\n%s", len(got), res.Stdout)
			}
			for _, g := range got {
				name, _ := g["client"].(string)
				checkEqual(t, "events received by "+name, g["events"], want[name])
				if id, _ := g["id"].(string); names[id] != name {
					t.Errorf("client %s has socket id %v, which the server knows as %q", name, g["id"], names[id])
				}
			}
		})
	}
}

// TestInteropReconnect drops the client's connection from the server; socket.io-client comes
// back with a new socket on a new Engine.IO session.
func TestInteropReconnect(t *testing.T) {
	cases := []struct {
		name string
		// drop ends the first connection.
		drop         func(t *testing.T, srv *interopServer, first record, engineID string)
		clientReason string // the client's disconnect reason
		serverReason string // the first socket's OnDisconnect reason
	}{
		{
			// Closing the Engine.IO session: the client reconnects on its own.
			name: "engine-session-close",
			drop: func(t *testing.T, srv *interopServer, _ record, engineID string) {
				sess := srv.Srv.Engine().Session(engineID)
				if sess == nil {
					t.Fatalf("no Engine.IO session %q", engineID)
				}
				sess.Close()
			},
			clientReason: "transport close",
			serverReason: engineio.ReasonForcedClose,
		},
		{
			// s.Disconnect(true) sends DISCONNECT first: to socket.io-client that is "io server
			// disconnect", after which it does not reconnect by itself (as with Node's server);
			// client.js reconnects by hand, as socket.io's docs tell.
			name: "socket-disconnect-true",
			drop: func(t *testing.T, srv *interopServer, first record, _ string) {
				sock := srv.Srv.Of("/").Socket(first.SocketID)
				if sock == nil {
					t.Fatalf("no socket %s", first.SocketID)
				}
				sock.Disconnect(true)
			},
			clientReason: "io server disconnect",
			serverReason: socketio.ReasonServerNamespaceDisconnect,
		},
	}
	for _, tc := range cases {
		t.Run("node/"+tc.name, func(t *testing.T) {
			srv, cleanup := startInteropServer(t, socketio.Options{}, func(s *interopServer) {
				s.Srv.Of("/").OnConnect(func(sock *socketio.Socket) {
					s.recordConnect(sock)
					sock.On("eid", s.recordEvent)
					sock.On("ping2", func(e *socketio.Event) {
						s.recordEvent(e)
						_ = e.Ack(append([]any{"pong2"}, decodeArgsOr(e.Args)...)...)
					})
				})
			})
			defer cleanup()
			p := startClient(t, "node", srv.URL, "reconnect")

			recs := srv.Rec.waitFor(t, p.done, "the engine id", countRecords("event", "eid", 1))
			first := filterRecords(recs, "connect", "")[0]
			eidArgs := decodeArgs(t, "eid", filterRecords(recs, "event", "eid")[0].Args)
			engineID, _ := eidArgs[0].(string)
			tc.drop(t, srv, first, engineID)

			recs = srv.Rec.waitFor(t, p.done, "a second connection", countRecords("connect", "", 2))
			second := filterRecords(recs, "connect", "")[1]
			if second.SocketID == first.SocketID {
				t.Errorf("the second connection has the first one's socket id %s", first.SocketID)
			}
			recs = srv.Rec.waitFor(t, p.done, "ping2 on the new socket", countRecords("event", "ping2", 1))
			if ping := filterRecords(recs, "event", "ping2")[0]; ping.SocketID != second.SocketID {
				t.Errorf("ping2 came from %s, want the new socket %s", ping.SocketID, second.SocketID)
			}
			res := p.wait(t)

			if f := res.step(t, "first"); f["id"] != first.SocketID || f["engine"] != engineID {
				t.Errorf("client's first connection %v, server's socket %s engine %s", f, first.SocketID, engineID)
			}
			if d := res.step(t, "disconnect"); d["reason"] != tc.clientReason {
				t.Errorf("client's disconnect reason %v, want %s", d["reason"], tc.clientReason)
			}
			re := res.step(t, "reconnected")
			if re["id"] != second.SocketID || re["engine"] == engineID {
				t.Errorf("client reconnected as %v (engine %v); server's second socket %s, first engine %s",
					re["id"], re["engine"], second.SocketID, engineID)
			}
			checkEqual(t, "ping2 ack", re["pong"], []any{"pong2", "after reconnect"})

			recs = srv.Rec.waitFor(t, nil, "both disconnects", countRecords("disconnect", "", 2))
			for _, d := range filterRecords(recs, "disconnect", "") {
				if d.SocketID == first.SocketID && d.Reason != tc.serverReason {
					t.Errorf("first socket's disconnect reason %q, want %q", d.Reason, tc.serverReason)
				}
			}
		})
	}
}

// TestInteropDisconnectDuringUpgrade drops a socket with s.Disconnect(true) while its
// connection is upgrading from polling to WebSocket: the DISCONNECT packet queued meanwhile must
// still reach the client (over the new transport, as Node's engine.io does), so socket.io-client
// sees "io server disconnect" (and would not reconnect) rather than a lost transport.
func TestInteropDisconnectDuringUpgrade(t *testing.T) {
	srv, cleanup := startInteropServer(t, socketio.Options{}, func(s *interopServer) {
		ns := s.Srv.Of("/")
		ns.OnConnect(func(sock *socketio.Socket) {
			s.recordConnect(sock)
			sock.On("drop", func(e *socketio.Event) {
				s.recordEvent(e)
				var id string
				if args := decodeArgsOr(e.Args); len(args) > 0 {
					id, _ = args[0].(string)
				}
				victim := ns.Socket(id)
				if victim == nil {
					_ = e.Ack("no such socket", id)
					return
				}
				s.Rec.add(record{Kind: "dropping", NS: "/", SocketID: id, Transport: victim.Transport()})
				victim.Disconnect(true)
				_ = e.Ack("dropped", id)
			})
		})
	})
	defer cleanup()
	res := runClient(t, "node", srv.URL, "dropduringupgrade")
	recs := srv.Rec.waitFor(t, nil, "both disconnects", countRecords("disconnect", "", 2))

	paused := res.step(t, "main-paused")
	dropping := filterRecords(recs, "dropping", "")
	if len(dropping) != 1 || dropping[0].SocketID != paused["id"] {
		t.Fatalf("the server dropped %v, want the main socket %v", dropping, paused["id"])
	}
	if dropping[0].Transport != engineio.TransportPolling {
		t.Errorf("the main socket was on %s when dropped, want polling (mid-upgrade)", dropping[0].Transport)
	}
	for _, d := range filterRecords(recs, "disconnect", "") {
		if d.SocketID == dropping[0].SocketID && d.Reason != socketio.ReasonServerNamespaceDisconnect {
			t.Errorf("main socket's disconnect reason on the server %q, want %q", d.Reason, socketio.ReasonServerNamespaceDisconnect)
		}
	}
	if got := res.step(t, "main-disconnect")["reason"]; got != "io server disconnect" {
		t.Errorf("the client saw its socket end with %q, want \"io server disconnect\": the DISCONNECT packet "+
			"queued while the upgrade was in progress was not delivered", got)
	}
}

// TestInteropMaxPayload disconnects a client that sends more than MaxPayload while another one
// connected at the same time goes on.
func TestInteropMaxPayload(t *testing.T) {
	for _, transport := range []string{"websocket", "polling"} {
		t.Run("node/"+transport, func(t *testing.T) {
			opts := socketio.Options{Engine: engineio.Options{MaxPayload: 10000}}
			srv, cleanup := startInteropServer(t, opts, func(s *interopServer) {
				s.Srv.Of("/").OnConnect(func(sock *socketio.Socket) {
					s.recordConnect(sock)
					sock.On("big", s.recordEvent)
					sock.On("echo", func(e *socketio.Event) {
						s.recordEvent(e)
						_ = e.AckRaw(e.Args)
					})
				})
			})
			defer cleanup()
			res := runClient(t, "node", srv.URL, "maxpayload", transport)
			recs := srv.Rec.waitFor(t, nil, "both disconnects", countRecords("disconnect", "", 2))

			switch r := res.step(t, "victim-disconnect")["reason"]; r {
			case "transport close", "transport error":
			default:
				t.Errorf("victim's disconnect reason %v, want transport close or transport error", r)
			}
			by := res.step(t, "bystander-ok")
			if by["transport"] != transport {
				t.Errorf("bystander's transport %v, want %s", by["transport"], transport)
			}

			names := map[string]string{}
			for _, c := range filterRecords(recs, "connect", "") {
				var a struct{ Name string }
				_ = json.Unmarshal(c.Auth, &a)
				names[c.SocketID] = a.Name
			}
			if len(names) != 2 {
				t.Fatalf("server saw %d connections, want 2:\n%s", len(names), dumpRecords(recs))
			}
			if big := filterRecords(recs, "event", "big"); len(big) != 0 {
				t.Errorf("the oversized event reached the handler: %v", big)
			}
			victimGone := -1
			echoesAfter := 0
			for i, r := range recs {
				switch {
				case r.Kind == "disconnect" && names[r.SocketID] == "victim":
					victimGone = i
					if r.Reason != engineio.ReasonTransportError {
						t.Errorf("victim's disconnect reason on the server %q, want %q", r.Reason, engineio.ReasonTransportError)
					}
				case r.Kind == "disconnect" && names[r.SocketID] == "bystander":
					if r.Reason != socketio.ReasonClientNamespaceDisconnect {
						t.Errorf("bystander's disconnect reason %q, want %q", r.Reason, socketio.ReasonClientNamespaceDisconnect)
					}
				case r.Kind == "event" && r.Name == "echo":
					if names[r.SocketID] != "bystander" {
						t.Errorf("echo from %s", names[r.SocketID])
					}
					if victimGone >= 0 {
						echoesAfter++
					}
				}
			}
			if victimGone < 0 || echoesAfter != 3 {
				t.Errorf("bystander echoes after the victim left: %d, want 3:\n%s", echoesAfter, dumpRecords(recs))
			}
			if by["id"] == "" || names[fmt.Sprint(by["id"])] != "bystander" {
				t.Errorf("bystander id %v unknown to the server", by["id"])
			}
		})
	}
}

// TestInteropRecovery: socket.io-client's connection state recovery against the server (see
// the recovery scenario of client.js). Within the window the client gets its socket back
// (socket.recovered, same id) and every event broadcast while it was away exactly once, in
// order, before the new ones; after the window it gets a fresh socket and only new events.
func TestInteropRecovery(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		window time.Duration
	}{
		{"within", time.Minute},
		{"auto", time.Minute},
		{"polling", time.Minute},
		{"expired", 200 * time.Millisecond},
	} {
		t.Run("node/"+tc.mode, func(t *testing.T) {
			opts := socketio.Options{Recovery: socketio.RecoveryOptions{MaxDisconnection: tc.window}}
			srv, cleanup := startInteropServer(t, opts, func(s *interopServer) {
				ns := s.Srv.Of("/")
				// The main socket joins "r" through its admission, before its CONNECT is
				// answered: joined in OnConnect, a broadcast the control socket asks for
				// at once could be handled before the join.
				ns.Authorize(func(_ context.Context, req *socketio.ConnectRequest) (*socketio.Admission, error) {
					var auth struct{ Ctl bool }
					_ = json.Unmarshal(req.Handshake.Auth, &auth)
					if auth.Ctl || req.Recovered {
						return nil, nil
					}
					return &socketio.Admission{Rooms: []string{"r"}}, nil
				})
				ns.OnConnect(func(sock *socketio.Socket) {
					s.recordConnect(sock)
					var auth struct{ Ctl bool }
					_ = json.Unmarshal(sock.Handshake().Auth, &auth)
					if !auth.Ctl {
						if sock.Recovered() {
							s.Rec.add(record{Kind: "recovered", NS: "/", SocketID: sock.ID(), Rooms: sock.Rooms()})
						}
						return
					}
					sock.On("send", func(e *socketio.Event) {
						var from, to int
						args, err := e.Decode()
						if err == nil && len(args) == 2 {
							f, _ := args[0].(json.Number).Int64()
							l, _ := args[1].(json.Number).Int64()
							from, to = int(f), int(l)
						}
						for i := from; i <= to; i++ {
							if _, err := ns.To("r").Emit("n", i); err != nil {
								s.Rec.add(record{Kind: "error", Err: err})
							}
						}
						_ = e.Ack()
					})
				})
			})
			defer cleanup()
			res := runClient(t, "node", srv.URL, "recovery", tc.mode)

			first, second := res.step(t, "first"), res.step(t, "second")
			recs := srv.Rec.all()
			recovered := filterRecords(recs, "recovered", "")
			if tc.mode != "expired" {
				if second["id"] != first["id"] || second["recovered"] != true {
					t.Errorf("within the window: first %v, second %v", first, second)
				}
				if len(recovered) != 1 || recovered[0].SocketID != first["id"] || !slices.Contains(recovered[0].Rooms, "r") {
					t.Errorf("server's recovered sockets: %v", recovered)
				}
			} else {
				if second["id"] == first["id"] || second["recovered"] != false || len(recovered) != 0 {
					t.Errorf("after the window: first %v, second %v, server recovered %v", first, second, recovered)
				}
			}
			// The first disconnect of the first id is the cut (a recovered socket keeps the id).
			for _, d := range filterRecords(recs, "disconnect", "") {
				if d.SocketID == first["id"] {
					if d.Reason != engineio.ReasonTransportClose {
						t.Errorf("the cut socket's disconnect reason %q", d.Reason)
					}
					break
				}
			}
			if errs := filterRecords(recs, "error", ""); len(errs) > 0 {
				t.Errorf("emit errors: %v", errs)
			}
		})
	}
}
