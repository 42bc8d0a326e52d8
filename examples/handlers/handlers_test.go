// Package handlers_test runs the example webhook handlers (python/handler.py, node/handler.js)
// behind the real siobridge binary, with two real socket.io-client clients, and checks what a
// user of each handler would see: the clients get in, a chat is acknowledged and reaches the
// other client but not its sender, and a request with a bad signature is refused.
//
// It needs /usr/bin/python3, node, and socket.io-client installed by `make deps`.
package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/webhook"
)

const (
	secret = "handlers-test-secret"
	// waitFor bounds every wait for a process to do something.
	waitFor = 20 * time.Second
)

// siobridge is the binary in front of the handlers, built once.
var siobridge testkit.Binary

func TestMain(m *testing.M) { os.Exit(siobridge.Run(m)) }

// handlers are the example handlers, each started with PORT=0 so that it picks a free port
// and prints it ("listening on <port>").
var handlers = []struct {
	name   string
	tool   string // Debian's python3 (the python3 on PATH may be a pyenv one), or node
	script string // relative to examples/handlers
}{
	{"python", "python3", "python/handler.py"},
	{"node", "node", "node/handler.js"},
}

func TestHandlers(t *testing.T) {
	node := testkit.RequireTool(t, "node")
	nodePath := testkit.RequireNodeModules(t, testkit.InteropNode, "socket.io-client")
	tools := map[string]string{"node": node, "python3": testkit.RequireTool(t, "python3")}
	bin := siobridge.Path(t)
	clientsJS := filepath.Join(t.TempDir(), "clients.js")
	if err := os.WriteFile(clientsJS, []byte(clientsScript), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, h := range handlers {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			handler := testkit.Start(t, testkit.Command{
				Name: h.name + " handler",
				Args: []string{tools[h.tool], h.script},
				Env:  []string{"PORT=0", "SIOBRIDGE_WEBHOOK_SECRET=" + secret},
			})
			m := handler.Stdout.Match(t, regexp.MustCompile(`^listening on (\d+)$`), "its `listening on <port>` line")
			hookURL := "http://127.0.0.1:" + m[1] + "/siobridge"

			t.Run("signature", func(t *testing.T) { testSignature(t, hookURL) })
			t.Run("repeated delivery", func(t *testing.T) { testRepeated(t, hookURL, handler.Stdout) })
			t.Run("clients", func(t *testing.T) { testClients(t, bin, hookURL, node, clientsJS, nodePath) })
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
func testRepeated(t *testing.T, hookURL string, stdout *testkit.Lines) {
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
	stdout.Match(t, regexp.MustCompile(`^duplicate delivery `+id+`$`), "the handler noting the repeated delivery")
	other := bytes.Replace(chat, []byte(id), []byte("ANOTHERCHATDELIVERY0000000"), 1)
	if status, body := postHook(t, hookURL, other, webhook.Sign(secret, time.Now(), other)); status != 200 || !jsonEqual(body, []byte(want)) {
		t.Fatalf("another id: %d %s, want 200 %s", status, body, want)
	}
	// A line for the first attempt, or for the other id, would have come before the marker.
	marker := bytes.Replace(chat, []byte(id), []byte("MARKERDELIVERY000000000000"), 1)
	for range 2 {
		postHook(t, hookURL, marker, webhook.Sign(secret, time.Now(), marker))
	}
	stdout.Match(t, regexp.MustCompile(`^duplicate delivery MARKERDELIVERY0+$`), "the marker's duplicate line")
	var dups []string
	for _, l := range stdout.All() {
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
func testClients(t *testing.T, bin, hookURL, node, clientsJS, nodePath string) {
	sb := testkit.StartSiobridge(t, testkit.Command{
		Args: []string{bin},
		Env:  []string{"SIOBRIDGE_WEBHOOK_URL=" + hookURL, "SIOBRIDGE_WEBHOOK_SECRET=" + secret},
	})
	public, api := "http://"+sb.Public, "http://"+sb.API

	clients := testkit.Start(t, testkit.Command{
		Name: "clients.js",
		Args: []string{node, clientsJS, public},
		Env:  []string{"NODE_PATH=" + nodePath},
	})
	var ids [3]string // by client number
	for n := 1; n <= 2; n++ {
		line := clients.Stdout.Match(t, regexp.MustCompile(fmt.Sprintf(`^\{"client":%d,"(connected|connect_error)":"(.*)"\}$`, n)), fmt.Sprintf("client %d connecting", n))
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

	clients.Stdout.Match(t, regexp.MustCompile(`^\{"client":1,"ack":\["ok"\]\}$`), `client 1's ack "ok"`)
	clients.Stdout.Match(t, regexp.MustCompile(`^\{"client":2,"event":"chat",`), "client 2 getting the chat")
	// Had client 1 been sent its own chat, that would be queued before this marker.
	var emitted struct{ Sockets int }
	apiCall(t, http.MethodPost, api+"/emit", map[string]any{"event": "marker", "args": []string{"after the chat"}}, &emitted)
	if emitted.Sockets != 2 {
		t.Errorf("POST /emit reached %d sockets, want 2", emitted.Sockets)
	}
	if err := clients.Wait(waitFor); err != nil {
		t.Fatalf("clients.js: %v", err)
	}

	events := map[int][]string{}
	for _, line := range clients.Stdout.All() {
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
