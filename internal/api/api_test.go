package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
	"github.com/siobridge/siobridge/webhook"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/proxy"
)

// apiHarness is a Socket.IO server with real clients and the REST API in front of it, each on
// its own loopback listener.
type apiHarness struct {
	*sioServer
	api    *httptest.Server
	client *http.Client
	token  string
}

func newAPIHarness(t *testing.T, sopts socketio.Options, aopts Options) *apiHarness {
	t.Helper()
	s := newSIOServer(t, sopts)
	aopts.Server = s.srv
	api := httptest.NewServer(New(aopts))
	t.Cleanup(api.Close)
	return &apiHarness{sioServer: s, api: api, client: api.Client(), token: aopts.Token}
}

// call sends a request to the API with the harness's token and checks that the answer is
// JSON.
func (h *apiHarness) call(t *testing.T, method, path, body string) response {
	t.Helper()
	header := http.Header{}
	if h.token != "" {
		header.Set("Authorization", "Bearer "+h.token)
	}
	res := do(t, h.client, method, h.api.URL+path, body, header)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" && path != "/metrics" {
		t.Fatalf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return res
}

// want checks an answer's status and exact JSON.
func (r response) want(t *testing.T, status int, body string) {
	t.Helper()
	if r.Status != status || strings.TrimSpace(r.Body) != body {
		t.Fatalf("got %d %s\nwant %d %s", r.Status, strings.TrimSpace(r.Body), status, body)
	}
}

func TestEmitSelections(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{Namespaces: []string{"/chat"}}, Options{})
	a, aID := h.connect(t, "/")
	b, bID := h.connect(t, "/")
	c, cID := h.connect(t, "/")
	d, _ := h.connect(t, "/chat")
	for _, id := range []string{aID, bID} {
		h.srv.Of("/").Socket(id).Join("r")
	}
	clients := []*socketiotest.Client{a, b, c}

	tests := []struct {
		name      string
		body      string
		want      string
		packet    string
		receivers []int // indexes into clients
	}{
		{"everyone", `{"event":"news","args":[1,"x",{"a":true},null]}`, `{"sockets":3}`,
			`42["news",1,"x",{"a":true},null]`, []int{0, 1, 2}},
		{"room", `{"event":"ev","to":["r"]}`, `{"sockets":2}`, `42["ev"]`, []int{0, 1}},
		{"socket id", `{"event":"ev","to":["` + cID + `"],"args":["only you"]}`, `{"sockets":1}`,
			`42["ev","only you"]`, []int{2}},
		{"room except", `{"event":"ev","to":["r"],"except":["` + aID + `"]}`, `{"sockets":1}`,
			`42["ev"]`, []int{1}},
		{"except room", `{"event":"ev","except":["r"]}`, `{"sockets":1}`, `42["ev"]`, []int{2}},
		{"empty room", `{"event":"ev","to":["nobody"]}`, `{"sockets":0}`, "", nil},
		{"volatile", `{"event":"ev","to":["` + bID + `"],"volatile":true}`, `{"sockets":1}`,
			`42["ev"]`, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.call(t, "POST", "/emit", tt.body).want(t, 200, tt.want)
			for _, i := range tt.receivers {
				clients[i].Expect(tt.packet)
			}
			h.probe(t, clients...)
		})
	}

	t.Run("namespace", func(t *testing.T) {
		h.call(t, "POST", "/emit", `{"namespace":"/chat","event":"hi","args":["there"]}`).want(t, 200, `{"sockets":1}`)
		d.Expect(`42/chat,["hi","there"]`)
		h.probe(t, clients...)
	})
}

// ackID parses an event packet that asks for an ack, such as 4212["ev"], and returns its
// id.
func ackID(t *testing.T, packet, event string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(packet, "42")
	i := strings.IndexByte(rest, '[')
	if !ok || i <= 0 || !strings.HasPrefix(rest[i:], `["`+event+`"`) {
		t.Fatalf("want an event %q with an ack id, got %q", event, packet)
	}
	return rest[:i]
}

func TestEmitWithAck(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{}, Options{})
	a, aID := h.connect(t, "/")
	b, bID := h.connect(t, "/")

	t.Run("one answers, one times out", func(t *testing.T) {
		// b never answers, so the answer comes after all of ack_timeout_ms: a's ack must come
		// within it, on a loaded machine too.
		done := make(chan response, 1)
		go func() {
			res, err := testkit.Fetch(h.client, "POST", h.api.URL+"/emit", `{"event":"q","args":[1],"ack_timeout_ms":3000}`, nil)
			if err != nil {
				res.Body = err.Error()
			}
			done <- response(res)
		}()
		id := ackID(t, a.Read(), "q")
		if got := b.Read(); got != "42"+id+`["q",1]` {
			t.Fatalf("b got %q", got)
		}
		a.Write("43" + id + `["yes",{"n":2}]`)
		testkit.Recv(t, done).want(t, 200, fmt.Sprintf(`{"sockets":2,"acks":[{"socket":%q,"args":["yes",{"n":2}]}],"timed_out":[%q]}`, aID, bID))
	})

	t.Run("all answer", func(t *testing.T) {
		done := make(chan response, 1)
		go func() {
			res, err := testkit.Fetch(h.client, "POST", h.api.URL+"/emit", `{"event":"q","to":["`+bID+`"],"ack_timeout_ms":60000}`, nil)
			if err != nil {
				res.Body = err.Error()
			}
			done <- response(res)
		}()
		id := ackID(t, b.Read(), "q")
		b.Write("43" + id + `[]`)
		testkit.Recv(t, done).want(t, 200, fmt.Sprintf(`{"sockets":1,"acks":[{"socket":%q,"args":[]}],"timed_out":[]}`, bID))
		h.probe(t, a, b)
	})
}

func TestEmitBinary(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{}, Options{})
	c, _ := h.connect(t, "/")
	h.call(t, "POST", "/emit", `{"event":"file","args":[{"$binary":"aGVsbG8="},"name.txt"]}`).want(t, 200, `{"sockets":1}`)
	c.Expect(`451-["file",{"_placeholder":true,"num":0},"name.txt"]`)
	c.Expect("bin:hello")
}

func TestEmitBatch(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{Namespaces: []string{"/chat"}}, Options{})
	a, aID := h.connect(t, "/")
	b, _ := h.connect(t, "/")

	t.Run("applied in order", func(t *testing.T) {
		h.call(t, "POST", "/emit", ` [{"event":"one","args":[1]},{"event":"two","to":["`+aID+`"]},{"event":"three"}]`).
			want(t, 200, `[{"sockets":2},{"sockets":1},{"sockets":2}]`)
		a.Expect(`42["one",1]`)
		a.Expect(`42["two"]`)
		a.Expect(`42["three"]`)
		b.Expect(`42["one",1]`)
		b.Expect(`42["three"]`)
		h.probe(t, a, b)
	})

	invalid := []struct {
		name, body, want string
		status           int
	}{
		{"reserved event", `[{"event":"ok"},{"event":"connect"},{"event":"ok2"}]`,
			`{"error":"emit[1]: invalid request: event \"connect\" is reserved (nothing was emitted)"}`, 400},
		{"unknown namespace", `[{"event":"ok"},{"event":"ok"},{"namespace":"/nope","event":"x"}]`,
			`{"error":"emit[2]: unknown namespace \"/nope\": the namespaces served are those of socketio.namespaces (\"*\" there allows any) (nothing was emitted)"}`, 400},
		{"unknown field", `[{"evnet":"ok"}]`,
			`{"error":"emit[0]: unknown field \"evnet\" (known fields: namespace, to, except, event, args, volatile, ack_timeout_ms)"}`, 400},
		{"bad binary", `[{"event":"ok"},{"event":"x","args":[{"$binary":"%%"}]}]`,
			`{"error":"emit[1]: invalid request: args[0]: \"$binary\": invalid base64: illegal base64 data at input byte 0 (nothing was emitted)"}`, 400},
		{"empty room", `[{"event":"ok","to":[""]}]`,
			`{"error":"emit[0]: invalid request: room names and socket ids must not be empty (nothing was emitted)"}`, 400},
		{"not an object", `[{"event":"ok"},3]`,
			`{"error":"emit[1]: each item must be an object, got JSON number"}`, 400},
		{"empty", `[]`, `{"error":"the emit batch is empty: send at least one request"}`, 400},
		{"malformed", `[{"event":"ok"},]`,
			`{"error":"malformed JSON at byte offset 17: invalid character ']' looking for beginning of value"}`, 400},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			h.call(t, "POST", "/emit", tt.body).want(t, tt.status, tt.want)
			h.probe(t, a, b)
		})
	}
}

func TestJoinLeaveRoomsSockets(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{Namespaces: []string{"/chat"}}, Options{})
	_, aID := h.connect(t, "/")
	_, bID := h.connect(t, "/")

	h.call(t, "GET", "/rooms", "").want(t, 200, `{"rooms":[]}`)
	h.call(t, "POST", "/join", `{"to":["`+aID+`"],"rooms":["r1","r2"]}`).want(t, 200, `{"sockets":1}`)
	h.call(t, "POST", "/join", `{"rooms":["r1"]}`).want(t, 200, `{"sockets":2}`)
	h.call(t, "GET", "/rooms", "").want(t, 200, `{"rooms":[{"name":"r1","sockets":2},{"name":"r2","sockets":1}]}`)
	h.call(t, "GET", "/rooms?namespace=/", "").want(t, 200, `{"rooms":[{"name":"r1","sockets":2},{"name":"r2","sockets":1}]}`)

	type socketJSON struct {
		ID        string          `json:"id"`
		Namespace string          `json:"namespace"`
		Rooms     []string        `json:"rooms"`
		Data      any             `json:"data"`
		Handshake json.RawMessage `json:"handshake"`
	}
	sockets := func(query string) []socketJSON {
		t.Helper()
		res := h.call(t, "GET", "/sockets"+query, "")
		var body struct {
			Sockets []socketJSON `json:"sockets"`
		}
		dec := json.NewDecoder(strings.NewReader(res.Body))
		dec.DisallowUnknownFields()
		if res.Status != 200 || dec.Decode(&body) != nil || body.Sockets == nil {
			t.Fatalf("GET /sockets%s: %d %s", query, res.Status, res.Body)
		}
		return body.Sockets
	}
	got := sockets("?room=r2")
	if len(got) != 1 || got[0].ID != aID || got[0].Namespace != "/" ||
		!slices.Equal(got[0].Rooms, sorted(aID, "r1", "r2")) || !strings.Contains(string(got[0].Handshake), `"url":"/socket.io/?EIO=4&transport=websocket"`) {
		t.Fatalf("sockets in r2: %+v", got)
	}
	if got := sockets(""); len(got) != 2 || got[0].ID != min(aID, bID) || got[1].ID != max(aID, bID) {
		t.Fatalf("all sockets: %+v", got)
	}

	h.call(t, "POST", "/leave", `{"to":["`+aID+`"],"rooms":["r2","r1"]}`).want(t, 200, `{"sockets":1}`)
	h.call(t, "GET", "/rooms", "").want(t, 200, `{"rooms":[{"name":"r1","sockets":1}]}`)
	if got := sockets("?room=r1"); len(got) != 1 || got[0].ID != bID || !slices.Equal(got[0].Rooms, sorted(bID, "r1")) {
		t.Fatalf("sockets in r1: %+v", got)
	}
	h.call(t, "GET", "/sockets?room=r2", "").want(t, 200, `{"sockets":[]}`)
	h.call(t, "GET", "/sockets?namespace=/chat", "").want(t, 200, `{"sockets":[]}`)
	h.call(t, "GET", "/rooms?namespace=/chat", "").want(t, 200, `{"rooms":[]}`)
}

// TestAPIOnDynamicNamespaces: with "*", the API acts on namespaces that no client has made
// yet, and leaves none behind: a dynamic namespace lives while sockets are in it.
func TestAPIOnDynamicNamespaces(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{Namespaces: []string{"*"}}, Options{})
	h.srv.OnNamespace(func(ns *socketio.Namespace) {
		if ns.Dynamic() {
			ns.OnConnect(func(s *socketio.Socket) { h.connected <- s.ID() })
		}
	})
	gone := func(what string) {
		t.Helper()
		if ns := h.srv.Lookup("/dyn"); ns != nil {
			t.Fatalf("after %s: /dyn is still there", what)
		}
	}
	h.call(t, "POST", "/emit", `{"namespace":"/dyn","event":"hi"}`).want(t, 200, `{"sockets":0}`)
	gone("POST /emit")
	h.call(t, "POST", "/join", `{"namespace":"/dyn","rooms":["r"]}`).want(t, 200, `{"sockets":0}`)
	gone("POST /join")
	h.call(t, "GET", "/sockets?namespace=/dyn", "").want(t, 200, `{"sockets":[]}`)
	gone("GET /sockets")
	h.call(t, "GET", "/rooms?namespace=/dyn", "").want(t, 200, `{"rooms":[]}`)
	gone("GET /rooms")
	h.call(t, "POST", "/emit", `[{"namespace":"/dyn","event":"a"},{"namespace":"/dyn","event":"b"}]`).want(t, 200, `[{"sockets":0},{"sockets":0}]`)
	gone("a batch of POST /emit")

	c, id := h.connect(t, "/dyn")
	h.call(t, "POST", "/emit", `{"namespace":"/dyn","event":"hi"}`).want(t, 200, `{"sockets":1}`)
	c.Expect(`42/dyn,["hi"]`)
	h.call(t, "POST", "/disconnect", `{"namespace":"/dyn","to":["`+id+`"]}`).want(t, 200, `{"sockets":1}`)
	c.Expect(`41/dyn,`)
	// The socket's close releases the namespace after its DISCONNECT is written, and may
	// finish on the goroutine that admitted it (a close asked for while its connect handlers
	// ran), after the client has read the packet: the removal is awaited, within a bound.
	for deadline := time.Now().Add(5 * time.Second); h.srv.Lookup("/dyn") != nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			gone("its only socket was disconnected")
		}
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestDisconnect(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{}, Options{})
	a, aID := h.connect(t, "/")
	b, bID := h.connect(t, "/")

	h.call(t, "POST", "/disconnect", `{"to":["`+aID+`"]}`).want(t, 200, `{"sockets":1}`)
	a.Expect("41")
	h.call(t, "GET", "/sockets", "")
	if h.srv.Of("/").Socket(aID) != nil || h.srv.Engine().Len() != 2 {
		t.Fatal("without close: the socket must leave the namespace and the connection stay open")
	}

	h.call(t, "POST", "/disconnect", `{"to":["`+bID+`"],"close":true}`).want(t, 200, `{"sockets":1}`)
	b.Expect("41")
	b.ExpectClosed()
	h.call(t, "GET", "/sockets", "").want(t, 200, `{"sockets":[]}`)
	h.call(t, "POST", "/disconnect", `{}`).want(t, 200, `{"sockets":0}`)
}

func TestAuth(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{}, Options{Token: "s3cret", Gatherer: prometheus.NewRegistry()})
	unauthorized := `{"error":"missing or invalid bearer token: send the header \"Authorization: Bearer <api.token>\""}`
	tests := []struct {
		name, method, path, auth string
		status                   int
	}{
		{"no header", "GET", "/rooms", "", 401},
		{"wrong token", "GET", "/rooms", "Bearer nope", 401},
		{"token prefix", "GET", "/rooms", "Bearer s3cre", 401},
		{"other scheme", "GET", "/rooms", "Basic s3cret", 401},
		{"bare token", "GET", "/rooms", "s3cret", 401},
		{"right token", "GET", "/rooms", "Bearer s3cret", 200},
		{"scheme is case-insensitive", "GET", "/rooms", "bearer s3cret", 200},
		{"emit", "POST", "/emit", "", 401},
		{"metrics", "GET", "/metrics", "", 401},
		{"metrics with token", "GET", "/metrics", "Bearer s3cret", 200},
		{"unknown route", "GET", "/nope", "", 401},
		{"healthz is open", "GET", "/healthz", "", 200},
		{"readyz is open", "GET", "/readyz", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := http.Header{}
			if tt.auth != "" {
				header.Set("Authorization", tt.auth)
			}
			res := do(t, h.client, tt.method, h.api.URL+tt.path, `{"event":"x"}`, header)
			if res.Status != tt.status {
				t.Fatalf("got %d %s, want %d", res.Status, res.Body, tt.status)
			}
			if tt.status == 401 {
				res.want(t, 401, unauthorized)
				if got := res.Header.Get("WWW-Authenticate"); got != "Bearer" {
					t.Fatalf("WWW-Authenticate %q", got)
				}
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{}, Options{})
	c, _ := h.connect(t, "/")
	tests := []struct {
		name, path, body, want string
	}{
		{"malformed", "/emit", `{"event":"x",}`,
			`malformed JSON at byte offset 14: invalid character '}' looking for beginning of object key string`},
		{"truncated", "/emit", `{"event":"x"`, `malformed JSON: the body ends in the middle of the JSON value`},
		{"unknown field", "/emit", `{"evnet":"x"}`,
			`unknown field \"evnet\" (known fields: namespace, to, except, event, args, volatile, ack_timeout_ms)`},
		{"missing event", "/emit", `{"args":[1]}`, `invalid request: \"event\" is required`},
		{"reserved event", "/emit", `{"event":"disconnect"}`, `invalid request: event \"disconnect\" is reserved`},
		{"wrong type", "/emit", `{"event":1}`, `field \"event\": expected a string, got JSON number (byte offset 10)`},
		{"wrong element type", "/emit", `{"event":"x","to":[1]}`, `field \"to\": expected a string, got JSON number (byte offset 20)`},
		{"trailing data", "/emit", `{"event":"x"} {"event":"y"}`,
			`malformed JSON: unexpected data after the JSON value at byte offset 13`},
		{"empty body", "/emit", ``, `the request body is empty: send a JSON object`},
		{"blank body", "/join", " \n\t", `the request body is empty: send a JSON object`},
		{"not an object", "/join", `[1]`, `the request body must be an object, got JSON array`},
		{"no rooms", "/join", `{"to":["a"]}`, `invalid request: \"rooms\" must list at least one room`},
		{"leave unknown field", "/leave", `{"rooms":["a"],"room":"b"}`,
			`unknown field \"room\" (known fields: namespace, to, except, rooms)`},
		{"disconnect unknown field", "/disconnect", `{"close":true,"all":true}`,
			`unknown field \"all\" (known fields: namespace, to, except, close)`},
		{"namespace without slash", "/emit", `{"namespace":"chat","event":"x"}`,
			`invalid request: namespace \"chat\" must start with \"/\"`},
		{"negative ack timeout", "/emit", `{"event":"x","ack_timeout_ms":-1}`,
			`invalid request: \"ack_timeout_ms\" must be between 0 and 300000`},
		{"bad binary", "/emit", `{"event":"x","args":[{"$binary":7}]}`,
			`invalid request: args[0]: \"$binary\" must be a base64 string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.call(t, "POST", tt.path, tt.body).want(t, 400, `{"error":"`+tt.want+`"}`)
		})
	}
	h.probe(t, c)
}

func TestNotFound(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{}, Options{})
	h.call(t, "POST", "/emit", `{"namespace":"/nope","event":"x"}`).want(t, 404, `{"error":"unknown namespace \"/nope\": the namespaces served are those of socketio.namespaces (\"*\" there allows any)"}`)
	h.call(t, "POST", "/join", `{"namespace":"/nope","rooms":["r"]}`).want(t, 404, `{"error":"unknown namespace \"/nope\": the namespaces served are those of socketio.namespaces (\"*\" there allows any)"}`)
	h.call(t, "GET", "/sockets?namespace=/nope", "").want(t, 404, `{"error":"unknown namespace \"/nope\": the namespaces served are those of socketio.namespaces (\"*\" there allows any)"}`)
	h.call(t, "GET", "/rooms?namespace=/nope", "").want(t, 404, `{"error":"unknown namespace \"/nope\": the namespaces served are those of socketio.namespaces (\"*\" there allows any)"}`)
	h.call(t, "GET", "/nope", "").want(t, 404, `{"error":"no route GET /nope"}`)
	h.call(t, "POST", "/emit/", `{}`).want(t, 404, `{"error":"no route POST /emit/"}`)
	h.call(t, "FETCH", "/nope", "").want(t, 404, `{"error":"no route FETCH /nope"}`)
	h.call(t, "FETCH", "/emit", "").want(t, 405, `{"error":"method FETCH is not allowed on /emit: use POST"}`)
	// No Gatherer: no /metrics route.
	h.call(t, "GET", "/metrics", "").want(t, 404, `{"error":"no route GET /metrics"}`)
}

func TestBodyTooLarge(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{}, Options{MaxBodyBytes: 64})
	c, _ := h.connect(t, "/")
	big := `{"event":"x","args":["` + strings.Repeat("a", 64) + `"]}`
	h.call(t, "POST", "/emit", big).want(t, 413, `{"error":"request body too large: the limit is 64 bytes (api.max_body_bytes)"}`)
	h.call(t, "POST", "/emit", `[`+big+`]`).want(t, 413, `{"error":"request body too large: the limit is 64 bytes (api.max_body_bytes)"}`)
	h.call(t, "POST", "/emit", `{"event":"x"}`).want(t, 200, `{"sockets":1}`)
	c.Expect(`42["x"]`)

	t.Run("default limit", func(t *testing.T) {
		h := newAPIHarness(t, socketio.Options{}, Options{})
		big := `{"event":"x","args":["` + strings.Repeat("a", DefaultMaxBodyBytes) + `"]}`
		h.call(t, "POST", "/emit", big).want(t, 413, `{"error":"request body too large: the limit is 1048576 bytes (api.max_body_bytes)"}`)
	})
}

func TestMethodNotAllowed(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{}, Options{})
	tests := []struct{ method, path, allow, want string }{
		{"GET", "/emit", "POST", `{"error":"method GET is not allowed on /emit: use POST"}`},
		{"DELETE", "/join", "POST", `{"error":"method DELETE is not allowed on /join: use POST"}`},
		{"POST", "/sockets", "GET", `{"error":"method POST is not allowed on /sockets: use GET"}`},
		{"POST", "/healthz", "GET", `{"error":"method POST is not allowed on /healthz: use GET"}`},
	}
	for _, tt := range tests {
		res := h.call(t, tt.method, tt.path, "")
		res.want(t, 405, tt.want)
		if got := res.Header.Get("Allow"); got != tt.allow {
			t.Fatalf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	var notReady atomic.Pointer[string]
	h := newAPIHarness(t, socketio.Options{}, Options{Ready: func() error {
		if msg := notReady.Load(); msg != nil {
			return errors.New(*msg)
		}
		return nil
	}})
	h.call(t, "GET", "/healthz", "").want(t, 200, `{"status":"ok"}`)
	h.call(t, "GET", "/readyz", "").want(t, 200, `{"status":"ready"}`)
	msg := "adapter: redis at 127.0.0.1:6379 unreachable"
	notReady.Store(&msg)
	h.call(t, "GET", "/readyz", "").want(t, 503, `{"error":"adapter: redis at 127.0.0.1:6379 unreachable","status":"unavailable"}`)
	h.call(t, "GET", "/healthz", "").want(t, 200, `{"status":"ok"}`)

	t.Run("nil Ready", func(t *testing.T) {
		h := newAPIHarness(t, socketio.Options{}, Options{})
		h.call(t, "GET", "/readyz", "").want(t, 200, `{"status":"ready"}`)
	})
}

func TestAPIMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := newSIOServer(t, socketio.Options{Namespaces: []string{"/chat"}})
	m := proxy.NewMetrics(reg, s.srv)
	api := httptest.NewServer(New(Options{Server: s.srv, Gatherer: reg, Metrics: m}))
	t.Cleanup(api.Close)
	h := &apiHarness{sioServer: s, api: api, client: api.Client()}
	a, _ := h.connect(t, "/")
	b, _ := h.connect(t, "/")

	h.call(t, "POST", "/emit", `{"event":"x"}`).want(t, 200, `{"sockets":2}`)
	h.call(t, "POST", "/emit", `{"event":"connect"}`)
	h.call(t, "GET", "/nope", "")
	a.Expect(`42["x"]`)
	b.Expect(`42["x"]`)

	res := h.call(t, "GET", "/metrics", "")
	for _, line := range []string{
		`siobridge_connections{namespace="/",protocol="4",transport="websocket"} 2`,
		`siobridge_connections{namespace="/",protocol="4",transport="polling"} 0`,
		`siobridge_connections{namespace="/",protocol="3",transport="websocket"} 0`,
		`siobridge_connections{namespace="/chat",protocol="4",transport="websocket"} 0`,
		`siobridge_engineio_sessions 2`,
		`siobridge_events_out_total{namespace="/"} 2`,
		`siobridge_api_requests_total{code="200",route="/emit"} 1`,
		`siobridge_api_requests_total{code="400",route="/emit"} 1`,
		`siobridge_api_requests_total{code="404",route="unmatched"} 1`,
	} {
		if !strings.Contains(res.Body, "\n"+line+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", line, res.Body)
		}
	}
}

func TestInternalErrors(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a := &api{log: slog.New(slog.DiscardHandler), metrics: proxy.NewMetrics(reg, nil), allowed: map[string][]string{"/emit": {"POST"}}}

	rec := httptest.NewRecorder()
	a.fail(rec, httptest.NewRequest("POST", "/emit", nil), fmt.Errorf("adapter: %w", errors.New("redis: connection lost")))
	if rec.Code != 500 || strings.TrimSpace(rec.Body.String()) != `{"error":"internal error: adapter: redis: connection lost"}` ||
		rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}

	rec = httptest.NewRecorder()
	a.instrument(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("bug") })).
		ServeHTTP(rec, httptest.NewRequest("POST", "/emit", nil))
	if rec.Code != 500 || strings.TrimSpace(rec.Body.String()) != `{"error":"internal error"}` {
		t.Fatalf("panic: got %d %q", rec.Code, rec.Body.String())
	}
	if m := testkit.Scrape(t, reg); !strings.Contains(m, `siobridge_api_requests_total{code="500",route="/emit"} 1`) {
		t.Fatalf("metrics:\n%s", m)
	}
}

func TestPprof(t *testing.T) {
	off := newAPIHarness(t, socketio.Options{}, Options{})
	off.call(t, "GET", "/debug/pprof/heap", "").want(t, 404, `{"error":"no route GET /debug/pprof/heap"}`)

	h := newAPIHarness(t, socketio.Options{}, Options{Token: "s3cret", Pprof: true})
	if res := do(t, h.client, "GET", h.api.URL+"/debug/pprof/heap", "", nil); res.Status != 401 {
		t.Fatalf("heap profile without the token: %d, want 401", res.Status)
	}
	auth := http.Header{"Authorization": {"Bearer s3cret"}}
	res := do(t, h.client, "GET", h.api.URL+"/debug/pprof/goroutine?debug=1", "", auth)
	if res.Status != 200 || !strings.Contains(res.Body, "goroutine profile:") {
		t.Fatalf("goroutine profile: %d %.200s", res.Status, res.Body)
	}
	res = do(t, h.client, "GET", h.api.URL+"/debug/pprof/", "", auth)
	if res.Status != 200 || !strings.Contains(res.Body, "heap") {
		t.Fatalf("pprof index: %d %.200s", res.Status, res.Body)
	}
}

// A web page can make a browser POST to the API (a form, or fetch with a text/plain body,
// which needs no CORS preflight); the browser then sends an Origin header, which curl and
// server-side HTTP clients do not. Every such request is refused before it acts.
func TestAPIRefusesBrowsers(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{}, Options{Gatherer: prometheus.NewRegistry()})
	c, _ := h.connect(t, "/")
	const refused = `{"error":"the API does not serve browsers: a request with an Origin header is refused"}`
	tests := []struct {
		name, method, path, origin, contentType, body string
	}{
		{"text/plain emit", "POST", "/emit", "https://attacker.example", "text/plain;charset=UTF-8", `{"event":"pwned","args":[1]}`},
		{"form emit", "POST", "/emit", "https://attacker.example", "application/x-www-form-urlencoded", `{"event":"pwned"}`},
		{"sandboxed page", "POST", "/emit", "null", "text/plain", `{"event":"pwned"}`},
		{"same host", "POST", "/emit", h.api.URL, "application/json", `{"event":"pwned"}`},
		{"join", "POST", "/join", "https://attacker.example", "text/plain", `{"rooms":["pwned"]}`},
		{"disconnect", "POST", "/disconnect", "https://attacker.example", "text/plain", `{"close":true}`},
		{"sockets", "GET", "/sockets", "https://attacker.example", "", ""},
		{"metrics", "GET", "/metrics", "https://attacker.example", "", ""},
		{"healthz", "GET", "/healthz", "https://attacker.example", "", ""},
		{"readyz", "GET", "/readyz", "https://attacker.example", "", ""},
		{"unknown route", "GET", "/nope", "https://attacker.example", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := http.Header{"Origin": {tt.origin}}
			if tt.contentType != "" {
				header.Set("Content-Type", tt.contentType)
			}
			do(t, h.client, tt.method, h.api.URL+tt.path, tt.body, header).want(t, 403, refused)
		})
	}
	// Nothing reached the client, and it is still connected and in no room.
	h.probe(t, c)
	h.call(t, "GET", "/rooms", "").want(t, 200, `{"rooms":[]}`)

	// The same emit without an Origin, as curl -d sends it, works.
	do(t, h.client, "POST", h.api.URL+"/emit", `{"event":"news","args":[1]}`,
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}).want(t, 200, `{"sockets":1}`)
	c.Expect(`42["news",1]`)
	h.call(t, "GET", "/healthz", "").want(t, 200, `{"status":"ok"}`)

	t.Run("with a token", func(t *testing.T) {
		h := newAPIHarness(t, socketio.Options{}, Options{Token: "s3cret"})
		header := http.Header{"Origin": {"https://attacker.example"}, "Authorization": {"Bearer s3cret"}}
		do(t, h.client, "POST", h.api.URL+"/emit", `{"event":"x"}`, header).want(t, 403, refused)
	})
}

// Without a token, a web page could still read the API through DNS rebinding: its own host
// name, resolved again to 127.0.0.1, makes the browser's requests same-origin and without an
// Origin header, but they carry that name in Host. The API answers only loopback names.
func TestAPILoopbackHost(t *testing.T) {
	h := newAPIHarness(t, socketio.Options{}, Options{})
	c, id := h.connect(t, "/")
	_, port, _ := strings.Cut(strings.TrimPrefix(h.api.URL, "http://"), ":")
	refused := func(host string) string {
		return fmt.Sprintf(`{"error":"Host \"%s\" is not a loopback address: without a bearer token the API answers only requests to localhost, 127.0.0.0/8 or [::1]"}`, host)
	}
	tests := []struct {
		host string
		ok   bool
	}{
		{"attacker.example", false},
		{"attacker.example:" + port, false},
		{"127.0.0.1.attacker.example:" + port, false},
		{"localhost.attacker.example", false},
		{"api.localhost:" + port, false},
		{"localhost.:" + port, false},
		{"0.0.0.0:" + port, false},
		{"10.0.0.1:" + port, false},
		{"[::]:" + port, false},
		{"127.0.0.1:" + port, true},
		{"127.0.0.1", true},
		{"127.8.9.10:" + port, true},
		{"localhost:" + port, true},
		{"LocalHost", true},
		{"[::1]:" + port, true},
		{"[::1]", true},
		{"[::ffff:127.0.0.1]:" + port, true},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			res := do(t, h.client, "GET", h.api.URL+"/sockets", "", http.Header{"Host": {tt.host}})
			if !tt.ok {
				res.want(t, 403, refused(tt.host))
				return
			}
			if res.Status != 200 || !strings.Contains(res.Body, `"id":"`+id+`"`) {
				t.Fatalf("got %d %s, want 200 with socket %s", res.Status, res.Body, id)
			}
		})
	}
	// A refused emit reaches nobody.
	do(t, h.client, "POST", h.api.URL+"/emit", `{"event":"pwned"}`, http.Header{"Host": {"attacker.example"}}).
		want(t, 403, refused("attacker.example"))
	h.probe(t, c)

	t.Run("with a token any host is fine", func(t *testing.T) {
		h := newAPIHarness(t, socketio.Options{}, Options{Token: "s3cret"})
		c, _ := h.connect(t, "/")
		header := http.Header{"Host": {"siobridge.internal:7897"}, "Authorization": {"Bearer s3cret"}}
		do(t, h.client, "POST", h.api.URL+"/emit", `{"event":"news"}`, header).want(t, 200, `{"sockets":1}`)
		c.Expect(`42["news"]`)
		header.Del("Authorization")
		do(t, h.client, "GET", h.api.URL+"/sockets", "", header).want(t, 401, `{"error":"missing or invalid bearer token: send the header \"Authorization: Bearer <api.token>\""}`)
	})
}

// GET /sockets shows the handshake headers that Options.HandshakeHeaders keeps, and by
// default all of them.
func TestSocketsHandshakeHeaders(t *testing.T) {
	sent := http.Header{"Cookie": {"session=s3cret"}, "User-Agent": {"test-agent"}}
	tests := []struct {
		name   string
		filter *webhook.HeaderFilter
		want   map[string]string
		exact  bool // only the headers in want; otherwise at least them
	}{
		{"default", nil, map[string]string{"cookie": "session=s3cret", "user-agent": "test-agent"}, false},
		{"user-agent", webhook.KeepHeaders("USER-AGENT"), map[string]string{"user-agent": "test-agent"}, true},
		{"none", webhook.KeepHeaders(), map[string]string{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newAPIHarness(t, socketio.Options{}, Options{HandshakeHeaders: tt.filter})
			c := socketiotest.DialHeader(t, h.ts.URL, "", sent)
			id := c.Connect("/", "")
			if got := testkit.Recv(t, h.connected); got != id {
				t.Fatalf("connected %q, want %q", got, id)
			}
			var body struct {
				Sockets []struct {
					ID        string
					Handshake struct{ Headers map[string]string }
				}
			}
			res := h.call(t, "GET", "/sockets", "")
			if err := json.Unmarshal([]byte(res.Body), &body); err != nil || res.Status != 200 || len(body.Sockets) != 1 {
				t.Fatalf("GET /sockets: %d %s", res.Status, res.Body)
			}
			got := body.Sockets[0].Handshake.Headers
			if tt.exact && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("handshake headers %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("handshake header %s %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// sioServer is a real Socket.IO server on a loopback listener. connected receives each
// socket's id once it is in its namespace and rooms, which the client's CONNECT reply alone
// does not guarantee.
type sioServer struct {
	srv       *socketio.Server
	ts        *httptest.Server
	connected chan string
}

func newSIOServer(t *testing.T, opts socketio.Options) *sioServer {
	t.Helper()
	s := &sioServer{srv: socketio.NewServer(opts), connected: make(chan string, 16)}
	names := []string{"/"}
	for _, n := range opts.Namespaces {
		if n != "*" {
			names = append(names, n)
		}
	}
	for _, n := range names {
		s.srv.Of(n).OnConnect(func(sock *socketio.Socket) { s.connected <- sock.ID() })
	}
	s.ts = httptest.NewServer(s.srv)
	t.Cleanup(func() {
		s.srv.Close()
		s.ts.Close()
	})
	return s
}

// connect dials and joins nsp, waiting until the server has the socket in the namespace.
func (s *sioServer) connect(t *testing.T, nsp string) (*socketiotest.Client, string) {
	t.Helper()
	c := socketiotest.Dial(t, s.ts.URL, "")
	sid := c.Connect(nsp, "")
	if got := testkit.Recv(t, s.connected); got != sid {
		t.Fatalf("connected socket %q, want %q", got, sid)
	}
	return c, sid
}

// probe emits a marker event to every socket of "/" and checks it is the next thing each
// client reads: nothing else reached them before it.
func (s *sioServer) probe(t *testing.T, clients ...*socketiotest.Client) {
	t.Helper()
	if _, err := s.srv.Of("/").Emit("probe"); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		c.Expect(`42["probe"]`)
	}
}

// response is an answer of the API, read in full.
type response testkit.Response

// do is testkit.Do, its answer a response.
func do(t *testing.T, client *http.Client, method, url, body string, header http.Header) response {
	t.Helper()
	return response(testkit.Do(t, client, method, url, body, header))
}
