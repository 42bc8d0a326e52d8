package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"reflect"
	"runtime/debug"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/siobridge/siobridge/internal/command"
	"github.com/siobridge/siobridge/internal/httpstat"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/webhook"
)

// DefaultMaxBodyBytes is the API's request body limit when Options.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 1 << 20

// Metrics counts what the API does; proxy.Metrics is one.
type Metrics interface {
	// APIRequest counts a request by route pattern ("unmatched" for unknown paths) and status.
	APIRequest(route string, code int)
	// EventsEmitted counts an emit's sockets reached on this node, by namespace.
	EventsEmitted(namespace string, sockets int)
}

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) APIRequest(string, int)    {}
func (noMetrics) EventsEmitted(string, int) {}

// Options configure the REST API handler made by [New].
type Options struct {
	// Server is the Socket.IO server the API acts on. Required.
	Server *socketio.Server
	// Token, when set, is required on every route but /healthz and /readyz as
	// "Authorization: Bearer <token>". Empty: no authentication (keep the listener on
	// loopback), and only requests whose Host is a loopback name or address are answered.
	Token string
	// MaxBodyBytes limits a request body, in bytes; a larger one gets 413. Default (0):
	// DefaultMaxBodyBytes, 1 MiB.
	MaxBodyBytes int64
	// HandshakeHeaders chooses the handshake headers GET /sockets shows, as the webhooks do.
	// Nil: all of them.
	HandshakeHeaders *webhook.HeaderFilter
	// Ready reports whether siobridge can serve; a non-nil error makes /readyz answer 503 with
	// it. Nil: always ready.
	Ready func() error
	// Gatherer is served at GET /metrics in the Prometheus text format. Nil: no /metrics route.
	Gatherer prometheus.Gatherer
	// Pprof serves the runtime profiles of net/http/pprof under /debug/pprof/ (behind Token
	// like every route): heap, goroutine, profile (CPU), trace and the rest. Default off.
	Pprof bool
	// Metrics counts API requests and emitted events. Nil: nothing is counted.
	Metrics Metrics
	// Logger receives request errors: 4xx at debug level, 5xx at error level. Default:
	// slog.Default().
	Logger *slog.Logger
}

// api serves the REST API; its routes are listed in routes.
type api struct {
	srv       *socketio.Server
	tokenHash *[sha256.Size]byte // nil: no authentication
	maxBody   int64
	headers   *webhook.HeaderFilter
	ready     func() error
	metrics   Metrics
	log       *slog.Logger
	// allowed maps each route's path to its methods, for 405 answers and metric labels.
	allowed map[string][]string
}

// New returns the REST API the app calls on siobridge's private listener:
//
//	POST /emit        command.EmitRequest, or a JSON array of them → command.EmitResult (or an array)
//	POST /join        command.RoomsRequest → {"sockets":N}
//	POST /leave       command.RoomsRequest → {"sockets":N}
//	POST /disconnect  command.DisconnectRequest → {"sockets":N}
//	GET  /sockets     ?namespace=/&room=r → {"sockets":[...]}
//	GET  /rooms       ?namespace=/ → {"rooms":[...]}
//	GET  /healthz     {"status":"ok"}
//	GET  /readyz      {"status":"ready"}, or 503 {"status":"unavailable","error":"..."}
//	GET  /metrics     Prometheus text format (with APIOptions.Gatherer)
//
// Every answer is JSON (/metrics aside); errors are {"error":"..."} with status 400 (malformed
// or invalid request), 401 (bearer token), 403 (a browser's request: see below), 404 (unknown
// namespace or route), 405, 413 (body too large), 500 or 503. An emit with ack_timeout_ms
// answers both "acks" and "timed_out", empty lists included. A batch is checked in full before
// any of it is applied: one invalid item gets 400 naming its index ("emit[2]: ...") and nothing
// is emitted.
//
// The API is for the app's servers, never for browsers: any request with an Origin header,
// which a browser adds to every POST a web page makes, is refused with 403 on every route.
// Without opts.Token, so is a request whose Host is not localhost, 127.0.0.0/8 or [::1]
// (a page that rebinds its own name to 127.0.0.1 sends that name).
//
// It panics without opts.Server.
func New(opts Options) http.Handler {
	if opts.Server == nil {
		panic("api: Options.Server is required")
	}
	a := &api{
		srv:     opts.Server,
		maxBody: opts.MaxBodyBytes,
		headers: opts.HandshakeHeaders,
		ready:   opts.Ready,
		metrics: opts.Metrics,
		log:     opts.Logger,
		allowed: make(map[string][]string),
	}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	if a.metrics == nil {
		a.metrics = noMetrics{}
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if opts.Token != "" {
		h := sha256.Sum256([]byte(opts.Token))
		a.tokenHash = &h
	}

	r := chi.NewRouter()
	r.Use(a.instrument, a.refuseBrowsers, a.checkHost, a.authenticate)
	type route struct {
		method, path string
		h            http.Handler
	}
	routes := []route{
		{http.MethodPost, "/emit", a.handle(a.emit)},
		{http.MethodPost, "/join", a.handle(a.join)},
		{http.MethodPost, "/leave", a.handle(a.leave)},
		{http.MethodPost, "/disconnect", a.handle(a.disconnect)},
		{http.MethodGet, "/sockets", a.handle(a.sockets)},
		{http.MethodGet, "/rooms", a.handle(a.rooms)},
		{http.MethodGet, "/healthz", http.HandlerFunc(a.healthz)},
		{http.MethodGet, "/readyz", http.HandlerFunc(a.readyz)},
	}
	if opts.Gatherer != nil {
		routes = append(routes, route{http.MethodGet, "/metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelError),
		})})
	}
	if opts.Pprof {
		routes = append(routes,
			route{http.MethodGet, "/debug/pprof/", http.HandlerFunc(pprof.Index)},
			route{http.MethodGet, "/debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline)},
			route{http.MethodGet, "/debug/pprof/profile", http.HandlerFunc(pprof.Profile)},
			route{http.MethodGet, "/debug/pprof/symbol", http.HandlerFunc(pprof.Symbol)},
			route{http.MethodGet, "/debug/pprof/trace", http.HandlerFunc(pprof.Trace)},
		)
		for _, name := range []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"} {
			routes = append(routes, route{http.MethodGet, "/debug/pprof/" + name, pprof.Handler(name)})
		}
	}
	for _, rt := range routes {
		r.Method(rt.method, rt.path, rt.h)
		a.allowed[rt.path] = append(a.allowed[rt.path], rt.method)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, &httpError{http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		methods := a.allowed[r.URL.Path]
		if len(methods) == 0 { // a method chi does not know, on a path that is not a route
			a.fail(w, r, &httpError{http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
			return
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		a.fail(w, r, &httpError{http.StatusMethodNotAllowed,
			fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(methods, " or "))})
	})
	return r
}

// httpError is an error answered with its own status and message.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// errorBody is every error answer's JSON.
type errorBody struct {
	Error string `json:"error"`
}

// handle adapts an API function to a handler: its result is answered with 200, its error
// mapped to a status by fail.
func (a *api) handle(fn func(w http.ResponseWriter, r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(w, r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// namespacesHint follows an unknown namespace's error: the setting that lists the namespaces.
const namespacesHint = `the namespaces served are those of socketio.namespaces ("*" there allows any)`

// fail answers err as {"error":"..."} with the status its kind calls for, and logs it.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := answer(err)
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelError
	}
	a.log.Log(r.Context(), level, "api: request failed",
		"method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	writeJSON(w, status, errorBody{msg})
}

// answer is the status and message that answer err.
func answer(err error) (status int, msg string) {
	status, msg = http.StatusInternalServerError, "internal error: "+err.Error()
	var he *httpError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		status, msg = he.status, he.msg
	case errors.As(err, &tooLarge):
		status, msg = http.StatusRequestEntityTooLarge,
			fmt.Sprintf("request body too large: the limit is %d bytes (api.max_body_bytes)", tooLarge.Limit)
	case errors.Is(err, command.ErrInvalid):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, command.ErrUnknownNamespace):
		status, msg = http.StatusNotFound, err.Error()+": "+namespacesHint
	case errors.Is(err, socketio.ErrClusterUnavailable):
		status, msg = http.StatusServiceUnavailable, err.Error()
	}
	return status, msg
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = enc.Encode(errorBody{"internal error: encoding the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// instrument counts every request by route and status and turns a handler panic into a 500.
func (a *api) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &httpstat.Writer{ResponseWriter: w}
		defer func() {
			p := recover()
			if p != nil && p != http.ErrAbortHandler {
				a.log.Error("api: handler panicked", "method", r.Method, "path", r.URL.Path,
					"panic", p, "stack", string(debug.Stack()))
				if sw.Code == 0 {
					writeJSON(sw, http.StatusInternalServerError, errorBody{"internal error"})
				}
			}
			route := "unmatched"
			if _, ok := a.allowed[r.URL.Path]; ok {
				route = r.URL.Path
			}
			a.metrics.APIRequest(route, sw.Status())
			if p == http.ErrAbortHandler {
				panic(p) // the server's own way to abort a response; it logs nothing
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// refuseBrowsers answers 403 to every request that carries an Origin header, health checks
// included. Browsers send one with every POST, even the cross-site form or text/plain fetch
// that needs no CORS preflight, by which any web page its user opens could otherwise emit to
// every client; curl, probes and server-side HTTP clients send none.
func (a *api) refuseBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Origin"]; ok {
			a.fail(w, r, &httpError{http.StatusForbidden,
				"the API does not serve browsers: a request with an Origin header is refused"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkHost, without a token, answers 403 to a request whose Host is not a loopback name or
// address. A web page can rebind its own host name to 127.0.0.1 (DNS rebinding): its
// browser's requests are then same-origin, carry no Origin, and could read every socket's
// handshake, but their Host is still the page's name. With a token no page has it, and the
// API may be reached under any name.
func (a *api) checkHost(next http.Handler) http.Handler {
	if a.tokenHash != nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopbackHost(r.Host) {
			a.fail(w, r, &httpError{http.StatusForbidden, fmt.Sprintf(
				"Host %q is not a loopback address: without a bearer token the API answers only requests to localhost, 127.0.0.0/8 or [::1]", r.Host)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isLoopbackHost reports whether host, a request's Host with or without a port, is
// "localhost" (in any case) or an address in 127.0.0.0/8 or ::1. Names under .localhost and a
// trailing dot are not: nothing needs them, and a resolver may not keep them local.
func isLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// authenticate requires the bearer token on every route but the health checks, which
// orchestrators call without credentials.
func (a *api) authenticate(next http.Handler) http.Handler {
	if a.tokenHash == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || a.authorized(r) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", "Bearer")
		a.fail(w, r, &httpError{http.StatusUnauthorized, "missing or invalid bearer token: send the header \"Authorization: Bearer <api.token>\""})
	})
}

// authorized compares hashes of the tokens, so that neither the content nor the length of the
// expected token shows in the comparison's timing.
func (a *api) authorized(r *http.Request) bool {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	return subtle.ConstantTimeCompare(got[:], a.tokenHash[:]) == 1
}

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	if a.ready != nil {
		if err := a.ready(); err != nil {
			a.log.Debug("api: not ready", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// emitAckResult is the answer to an emit with ack_timeout_ms: unlike command.EmitResult it
// always carries both lists, so that the app can tell "none answered" from "all answered"
// without checking which key is missing.
type emitAckResult struct {
	Sockets  int               `json:"sockets"`
	Acks     []command.AckJSON `json:"acks"`
	TimedOut []string          `json:"timed_out"`
	Cluster  *command.Cluster  `json:"cluster,omitempty"`
}

func (a *api) emit(w http.ResponseWriter, r *http.Request) (any, error) {
	body, err := a.readBody(w, r)
	if err != nil {
		return nil, err
	}
	if firstByte(body) == '[' {
		return a.emitBatch(r.Context(), body)
	}
	var req command.EmitRequest
	if err := decodeStrict(body, &req, "the request body"); err != nil {
		return nil, err
	}
	return a.emitOne(r.Context(), &req)
}

// emitBatch checks every request before applying any, then applies them in order.
func (a *api) emitBatch(ctx context.Context, body []byte) (any, error) {
	var items []json.RawMessage
	if err := decodeStrict(body, &items, "the request body"); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, &httpError{http.StatusBadRequest, "the emit batch is empty: send at least one request"}
	}
	reqs := make([]command.EmitRequest, len(items))
	for i, item := range items {
		if err := decodeStrict(item, &reqs[i], "each item"); err != nil {
			return nil, &httpError{http.StatusBadRequest, fmt.Sprintf("emit[%d]: %v", i, err)}
		}
		if err := reqs[i].Check(a.srv); err != nil {
			_, msg := answer(err)
			return nil, &httpError{http.StatusBadRequest, fmt.Sprintf("emit[%d]: %s (nothing was emitted)", i, msg)}
		}
	}
	out := make([]any, 0, len(reqs))
	for i := range reqs {
		res, err := a.emitOne(ctx, &reqs[i])
		if err != nil {
			applied := "none of the batch was applied"
			if i > 0 {
				applied = fmt.Sprintf("emit[0] to emit[%d] were applied", i-1)
			}
			return nil, fmt.Errorf("emit[%d] (%s): %w", i, applied, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func (a *api) emitOne(ctx context.Context, req *command.EmitRequest) (any, error) {
	res, err := command.Emit(ctx, a.srv, req)
	if err != nil {
		return nil, err
	}
	a.metrics.EventsEmitted(res.Namespace, res.Local)
	if req.AckTimeoutMS <= 0 {
		return res, nil
	}
	out := emitAckResult{Sockets: res.Sockets, Acks: res.Acks, TimedOut: res.TimedOut, Cluster: res.Cluster}
	if out.Acks == nil {
		out.Acks = []command.AckJSON{}
	}
	if out.TimedOut == nil {
		out.TimedOut = []string{}
	}
	return out, nil
}

func (a *api) join(w http.ResponseWriter, r *http.Request) (any, error) {
	var req command.RoomsRequest
	if err := a.decode(w, r, &req); err != nil {
		return nil, err
	}
	return command.Join(r.Context(), a.srv, &req)
}

func (a *api) leave(w http.ResponseWriter, r *http.Request) (any, error) {
	var req command.RoomsRequest
	if err := a.decode(w, r, &req); err != nil {
		return nil, err
	}
	return command.Leave(r.Context(), a.srv, &req)
}

func (a *api) disconnect(w http.ResponseWriter, r *http.Request) (any, error) {
	var req command.DisconnectRequest
	if err := a.decode(w, r, &req); err != nil {
		return nil, err
	}
	return command.Disconnect(r.Context(), a.srv, &req)
}

func (a *api) sockets(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	res, err := command.Sockets(r.Context(), a.srv, q.Get("namespace"), q.Get("room"))
	if err != nil {
		return nil, err
	}
	if res.Sockets == nil {
		res.Sockets = []socketio.SocketInfo{}
	}
	for i := range res.Sockets {
		if res.Sockets[i].Rooms == nil {
			res.Sockets[i].Rooms = []string{}
		}
		res.Sockets[i].Handshake = a.headers.Apply(res.Sockets[i].Handshake)
	}
	return res, nil
}

func (a *api) rooms(_ http.ResponseWriter, r *http.Request) (any, error) {
	res, err := command.Rooms(r.Context(), a.srv, r.URL.Query().Get("namespace"))
	if err != nil {
		return nil, err
	}
	if res.Rooms == nil {
		res.Rooms = []socketio.RoomInfo{}
	}
	return res, nil
}

// readBody reads the whole body, at most maxBody bytes; an empty one is an error.
func (a *api) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, &httpError{http.StatusBadRequest, "reading the request body: " + err.Error()}
	}
	if firstByte(body) == 0 {
		return nil, &httpError{http.StatusBadRequest, "the request body is empty: send a JSON object"}
	}
	return body, nil
}

// decode reads the body and decodes it strictly into v.
func (a *api) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict(body, v, "the request body")
}

// firstByte returns the first byte of data that is not JSON whitespace, or 0.
func firstByte(data []byte) byte {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return c
		}
	}
	return 0
}

// decodeStrict decodes exactly one JSON value into v: unknown fields and trailing data are
// errors, and every error says where the problem is. what names data in messages.
func decodeStrict(data []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &httpError{http.StatusBadRequest, describeJSONError(err, v, what)}
	}
	off := dec.InputOffset()
	if firstByte(data[off:]) != 0 {
		return &httpError{http.StatusBadRequest,
			fmt.Sprintf("malformed JSON: unexpected data after the JSON value at byte offset %d", off)}
	}
	return nil
}

func describeJSONError(err error, v any, what string) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte offset %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("%s must be %s, got JSON %s", what, command.JSONKind(typ.Type), typ.Value)
		}
		return fmt.Sprintf("field %q: expected %s, got JSON %s (byte offset %d)",
			jsonPath(typ.Field, reflect.TypeOf(v)), command.JSONKind(typ.Type), typ.Value, typ.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: the body ends in the middle of the JSON value"
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return fmt.Sprintf("%s (known fields: %s)", msg, strings.Join(jsonFields(reflect.TypeOf(v)), ", "))
	}
	return "malformed JSON: " + msg
}

// jsonPath removes from a decoding error's field path the Go names of embedded structs, which
// encoding/json includes ("Selection.to") though they are not in the JSON.
func jsonPath(field string, t reflect.Type) string {
	embedded := make(map[string]bool)
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for f := range t.Fields() {
			if f.Anonymous && f.Tag.Get("json") == "" {
				embedded[f.Name] = true
				walk(f.Type)
			}
		}
	}
	walk(t)
	parts := strings.Split(field, ".")
	out := parts[:0]
	for _, p := range parts {
		if !embedded[p] {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}

// jsonFields lists the JSON names of a struct's fields, those of embedded structs included.
func jsonFields(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "":
			out = append(out, jsonFields(f.Type)...)
		case !f.IsExported():
		case name == "":
			out = append(out, f.Name)
		default:
			out = append(out, name)
		}
	}
	return out
}
