package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// waitLimit bounds every wait of these tests for something to happen.
const waitLimit = 10 * time.Second

// newApp starts the app a test delivers to, on loopback.
func newApp(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newDeliverer makes a deliverer with fast retries, closed when the test ends (before
// its app, whose cleanup was registered first).
func newDeliverer(t testing.TB, opts DelivererOptions) *Deliverer {
	t.Helper()
	if opts.RetryWaitMin == 0 {
		opts.RetryWaitMin = time.Millisecond
	}
	if opts.RetryWaitMax == 0 {
		opts.RetryWaitMax = 10 * time.Millisecond
	}
	d := NewDeliverer(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		d.Close(ctx)
	})
	return d
}

// gate holds the app's handlers until it is opened, or until the client gives up.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) wait(r *http.Request) {
	select {
	case <-g.ch:
	case <-r.Context().Done():
	}
}

// openAtCleanup opens g when the test ends; call it after newDeliverer, so that g opens
// before the deliverer is closed.
func (g *gate) openAtCleanup(t testing.TB) { t.Cleanup(g.open) }

func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// deliver enqueues dl and waits for its result.
func deliver(t testing.TB, d *Deliverer, key string, dl *Delivery) Result {
	t.Helper()
	ch := make(chan Result, 1)
	if err := d.Enqueue(key, dl, func(r Result) { ch <- r }); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return receive(t, ch, "the delivery's result")
}

// request is what the app received.
type request struct {
	header http.Header
	body   []byte
}

func readRequest(r *http.Request) request {
	body, _ := io.ReadAll(r.Body)
	return request{header: r.Header.Clone(), body: body}
}

func TestDeliveryHeadersAndSignature(t *testing.T) {
	const secret = "s3cret"
	got := make(chan request, 10)
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		got <- readRequest(r)
		io.WriteString(w, `{"join":["room"]}`)
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Secret: secret})

	urlSafe := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	bodies := [][]byte{[]byte(`{"type":"event","n":1}`), []byte(`{"type":"connect","n":2}`)}
	kinds := []Kind{KindEvent, KindConnect}
	ids := map[string]bool{}
	for i, body := range bodies {
		res := deliver(t, d, "sock", &Delivery{Kind: kinds[i], Body: body})
		if res.Err != nil || res.StatusCode != 200 || string(res.Body) != `{"join":["room"]}` || res.Attempts != 1 {
			t.Fatalf("result %d: %+v", i, res)
		}
		req := receive(t, got, "the request")
		h := req.header
		for name, want := range map[string]string{
			"Content-Type":   "application/json",
			"User-Agent":     "siobridge",
			HeaderType:       string(kinds[i]),
			HeaderAttempt:    "1",
			HeaderDelivery:   res.Delivery.ID,
			"Content-Length": fmt.Sprint(len(body)),
		} {
			if h.Get(name) != want {
				t.Errorf("%s = %q, want %q", name, h.Get(name), want)
			}
		}
		if string(req.body) != string(body) {
			t.Errorf("body = %q, want %q", req.body, body)
		}
		id := h.Get(HeaderDelivery)
		if len(id) < 20 || !urlSafe.MatchString(id) || ids[id] {
			t.Errorf("delivery id %q: want ≥ 20 URL-safe characters, unique", id)
		}
		ids[id] = true

		sig := h.Get(HeaderSignature)
		if err := Verify(secret, sig, req.body, time.Now(), time.Minute); err != nil {
			t.Errorf("Verify(%q): %v", sig, err)
		}
		// The same check as an app in another language would write.
		ts, v1, ok := strings.Cut(strings.TrimPrefix(sig, "t="), ",v1=")
		if !ok {
			t.Fatalf("signature %q: want t=<seconds>,v1=<hex>", sig)
		}
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(ts + "." + string(req.body)))
		if want := hex.EncodeToString(m.Sum(nil)); !hmac.Equal([]byte(v1), []byte(want)) {
			t.Errorf("v1 = %s, want %s", v1, want)
		}
	}

	res := deliver(t, d, "sock", &Delivery{ID: "given-id", Kind: KindDisconnect, Body: []byte(`{}`)})
	if res.Err != nil || res.Delivery.ID != "given-id" {
		t.Fatalf("result: %+v", res)
	}
	if id := receive(t, got, "the request").header.Get(HeaderDelivery); id != "given-id" {
		t.Errorf("%s = %q, want the one given", HeaderDelivery, id)
	}
}

func TestDeliveryUnsigned(t *testing.T) {
	got := make(chan request, 1)
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		got <- readRequest(r)
		w.WriteHeader(http.StatusNoContent)
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, UserAgent: "siobridge/1.2.3"})
	if res := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: []byte(`[]`)}); res.Err != nil || res.StatusCode != 204 || len(res.Body) != 0 {
		t.Fatalf("result: %+v", res)
	}
	h := receive(t, got, "the request").header
	if v, ok := h[HeaderSignature]; ok {
		t.Errorf("%s = %q without a secret, want none", HeaderSignature, v)
	}
	if ua := h.Get("User-Agent"); ua != "siobridge/1.2.3" {
		t.Errorf("User-Agent = %q", ua)
	}
}

func TestRetryKeepsIDAndSignsAfresh(t *testing.T) {
	const secret = "s"
	got := make(chan request, 10)
	var n atomic.Int32
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		got <- readRequest(r)
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Secret: secret, MaxAttempts: 6})
	body := []byte(`{"type":"event"}`)
	res := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: body})
	if res.Err != nil || res.Attempts != 3 || res.StatusCode != 200 {
		t.Fatalf("result: %+v", res)
	}
	for i := range 3 {
		req := receive(t, got, "a request")
		if id := req.header.Get(HeaderDelivery); id != res.Delivery.ID {
			t.Errorf("attempt %d: %s = %q, want %q", i+1, HeaderDelivery, id, res.Delivery.ID)
		}
		if a := req.header.Get(HeaderAttempt); a != fmt.Sprint(i+1) {
			t.Errorf("attempt %d: %s = %q", i+1, HeaderAttempt, a)
		}
		if string(req.body) != string(body) {
			t.Errorf("attempt %d: body %q", i+1, req.body)
		}
		if err := Verify(secret, req.header.Get(HeaderSignature), req.body, time.Now(), time.Minute); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
	}
}

// reply is one answer of a scripted app.
type reply struct {
	status     int
	retryAfter string
	location   string
	body       string
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name         string
		replies      []reply // the last one repeats
		retries      int
		wantAttempts int
		wantStatus   int
		wantBody     string
		wantErr      string // "" for none
		wantOutcome  string
	}{
		{
			name:    "500, 503, 429, then 200",
			replies: []reply{{status: 500}, {status: 503, retryAfter: "0"}, {status: 429}, {status: 200, body: `{"ok":1}`}},
			retries: 5, wantAttempts: 4, wantStatus: 200, wantBody: `{"ok":1}`, wantOutcome: outcomeOK,
		},
		{
			name:    "408 is retried",
			replies: []reply{{status: 408}, {status: 204}},
			retries: 1, wantAttempts: 2, wantStatus: 204, wantOutcome: outcomeOK,
		},
		{
			name:    "400 is a final answer",
			replies: []reply{{status: 400, body: `{"message":"not you"}`}},
			retries: 5, wantAttempts: 1, wantStatus: 400, wantBody: `{"message":"not you"}`, wantOutcome: outcomeRefused,
		},
		{
			name:    "403 is a final answer",
			replies: []reply{{status: 403}},
			retries: 5, wantAttempts: 1, wantStatus: 403, wantOutcome: outcomeRefused,
		},
		{
			name:    "501 is not retried",
			replies: []reply{{status: 501, body: "no"}},
			retries: 5, wantAttempts: 1, wantStatus: 501, wantBody: "no", wantOutcome: outcomeFailed,
			wantErr: ": 501 Not Implemented after 1 attempt",
		},
		{
			name:    "503 until the retries are spent",
			replies: []reply{{status: 503, body: "down"}},
			retries: 2, wantAttempts: 3, wantStatus: 503, wantBody: "down", wantOutcome: outcomeFailed,
			wantErr: ": 503 Service Unavailable after 3 attempts",
		},
		{
			name:    "429 until the retries are spent",
			replies: []reply{{status: 429, retryAfter: "0"}},
			retries: 1, wantAttempts: 2, wantStatus: 429, wantOutcome: outcomeFailed,
			wantErr: ": 429 Too Many Requests after 2 attempts",
		},
		{
			name:    "no retries",
			replies: []reply{{status: 500}},
			retries: 0, wantAttempts: 1, wantStatus: 500, wantOutcome: outcomeFailed,
			wantErr: ": 500 Internal Server Error after 1 attempt",
		},
		{
			name:    "a redirect is not followed",
			replies: []reply{{status: 302, location: "/elsewhere"}},
			retries: 3, wantAttempts: 1, wantStatus: 302, wantOutcome: outcomeFailed,
			wantErr: ": 302 Found after 1 attempt (redirects are not followed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				rep := tt.replies[min(i, len(tt.replies)-1)]
				if rep.retryAfter != "" {
					w.Header().Set("Retry-After", rep.retryAfter)
				}
				if rep.location != "" {
					w.Header().Set("Location", rep.location)
				}
				w.WriteHeader(rep.status)
				io.WriteString(w, rep.body)
			})
			m := NewMetrics(prometheus.NewRegistry())
			d := newDeliverer(t, DelivererOptions{URL: app.URL, MaxAttempts: tt.retries + 1, Metrics: m})

			res := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: []byte(`{}`)})
			if res.Attempts != tt.wantAttempts || int(n.Load()) != tt.wantAttempts {
				t.Errorf("Attempts = %d, app saw %d, want %d", res.Attempts, n.Load(), tt.wantAttempts)
			}
			if res.StatusCode != tt.wantStatus || string(res.Body) != tt.wantBody {
				t.Errorf("reply %d %q, want %d %q", res.StatusCode, res.Body, tt.wantStatus, tt.wantBody)
			}
			switch {
			case tt.wantErr == "" && res.Err != nil:
				t.Errorf("Err = %v, want nil", res.Err)
			case tt.wantErr != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), "webhook: POST "+app.URL+tt.wantErr)):
				t.Errorf("Err = %v, want one containing %q", res.Err, tt.wantErr)
			}
			if res.Duration <= 0 {
				t.Errorf("Duration = %v", res.Duration)
			}
			for _, c := range []struct {
				name string
				c    prometheus.Collector
				want int
			}{
				{"deliveries " + tt.wantOutcome, m.deliveries.WithLabelValues("event", tt.wantOutcome), 1},
				{"attempts", m.attempts.WithLabelValues("event"), tt.wantAttempts},
				{"retries", m.retries.WithLabelValues("event"), tt.wantAttempts - 1},
			} {
				if got := testutil.ToFloat64(c.c); got != float64(c.want) {
					t.Errorf("metric %s = %v, want %d", c.name, got, c.want)
				}
			}
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d := newDeliverer(t, DelivererOptions{URL: "http://siobridge:pa55word@" + addr + "/hook", MaxAttempts: 3})

	res := deliver(t, d, "k", &Delivery{Kind: KindConnect, Body: []byte(`{}`)})
	if res.Attempts != 3 || res.StatusCode != 0 {
		t.Errorf("Attempts %d, StatusCode %d, want 3, 0", res.Attempts, res.StatusCode)
	}
	if !errors.Is(res.Err, syscall.ECONNREFUSED) || !strings.HasSuffix(res.Err.Error(), "after 3 attempts") ||
		!strings.HasPrefix(res.Err.Error(), "webhook: POST http://siobridge:xxxxx@"+addr+"/hook: ") {
		t.Errorf("Err = %v, want connection refused after 3 attempts, the password hidden", res.Err)
	}
}

func TestAttemptTimeout(t *testing.T) {
	var hits atomic.Int32
	g := newGate()
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		g.wait(r)
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Timeout: 50 * time.Millisecond, MaxAttempts: 2})
	g.openAtCleanup(t)

	res := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: []byte(`{}`)})
	var ne net.Error
	if !errors.As(res.Err, &ne) || !ne.Timeout() {
		t.Errorf("Err = %v, want a timeout", res.Err)
	}
	if res.Attempts != 2 || hits.Load() != 2 {
		t.Errorf("Attempts = %d, app saw %d, want 2 (the timeout is retried)", res.Attempts, hits.Load())
	}
}

func TestReplyLimit(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		chunked bool
		wantErr bool
	}{
		{"1 MiB", maxReplySize, false, false},
		{"1 MiB chunked", maxReplySize, true, false},
		{"1 MiB + 1", maxReplySize + 1, false, true},
		{"1 MiB + 1 chunked", maxReplySize + 1, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
				if !tt.chunked {
					w.Header().Set("Content-Length", fmt.Sprint(tt.size))
				}
				w.Write(make([]byte, 10))
				w.(http.Flusher).Flush()
				w.Write(make([]byte, tt.size-10))
			})
			d := newDeliverer(t, DelivererOptions{URL: app.URL})
			res := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: []byte(`{}`)})
			if tt.wantErr {
				if !errors.Is(res.Err, ErrReplyTooLarge) || res.Body != nil || res.StatusCode != 200 {
					t.Errorf("Err %v, %d bytes kept, status %d; want ErrReplyTooLarge, none, 200", res.Err, len(res.Body), res.StatusCode)
				}
			} else if res.Err != nil || len(res.Body) != tt.size {
				t.Errorf("Err %v, %d bytes kept; want nil, %d", res.Err, len(res.Body), tt.size)
			}
		})
	}
}

func TestInvalidURL(t *testing.T) {
	for _, u := range []string{"localhost:3000", "/hook", "ftp://app/hook", ""} {
		d := newDeliverer(t, DelivererOptions{URL: u})
		res := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: []byte(`{}`)})
		if res.Err == nil || !strings.Contains(res.Err.Error(), "must be an absolute http(s) URL") || res.Attempts != 0 {
			t.Errorf("URL %q: %+v, want an error and no attempt", u, res)
		}
	}
}

func TestEnqueueNil(t *testing.T) {
	d := newDeliverer(t, DelivererOptions{URL: "http://127.0.0.1:1"})
	if err := d.Enqueue("k", nil, nil); err == nil {
		t.Error("Enqueue(nil) succeeded")
	}
}

// ordered is an app that checks the per-key guarantees: it reads {"key":..,"seq":..}
// bodies and records each key's order and how many keys are in flight.
type ordered struct {
	mu         sync.Mutex
	inFlight   map[string]bool
	seqs       map[string][]int
	overlaps   []string // keys seen twice in flight at once
	maxKeys    int      // most keys in flight at once
	maxLatency time.Duration
}

func (o *ordered) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Key string `json:"key"`
		Seq int    `json:"seq"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	if o.inFlight[b.Key] {
		o.overlaps = append(o.overlaps, b.Key)
	}
	o.inFlight[b.Key] = true
	o.maxKeys = max(o.maxKeys, len(o.inFlight))
	o.seqs[b.Key] = append(o.seqs[b.Key], b.Seq)
	o.mu.Unlock()

	if o.maxLatency > 0 {
		time.Sleep(rand.N(o.maxLatency)) // the app's work
	}

	o.mu.Lock()
	delete(o.inFlight, b.Key)
	o.mu.Unlock()
}

func orderedBody(key string, seq int) []byte {
	return fmt.Appendf(nil, `{"key":%q,"seq":%d}`, key, seq)
}

func TestOrderPerKeyParallelAcrossKeys(t *testing.T) {
	const keys, perKey, concurrency = 20, 50, 8
	o := &ordered{inFlight: map[string]bool{}, seqs: map[string][]int{}, maxLatency: 2 * time.Millisecond}
	app := newApp(t, o.ServeHTTP)
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Concurrency: concurrency})

	type settled struct {
		key string
		seq int
		res Result
	}
	results := make(chan settled, keys*perKey)
	for seq := range perKey {
		for k := range keys {
			key := fmt.Sprintf("key%02d", k)
			err := d.Enqueue(key, &Delivery{Kind: KindEvent, Body: orderedBody(key, seq)}, func(r Result) {
				results <- settled{key, seq, r}
			})
			if err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
		}
	}
	doneOrder := map[string][]int{}
	for range keys * perKey {
		s := receive(t, results, "every result")
		if s.res.Err != nil || s.res.StatusCode != 200 {
			t.Fatalf("%s #%d: %+v", s.key, s.seq, s.res)
		}
		doneOrder[s.key] = append(doneOrder[s.key], s.seq)
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	want := make([]int, perKey)
	for i := range want {
		want[i] = i
	}
	for k := range keys {
		key := fmt.Sprintf("key%02d", k)
		if !slices.Equal(o.seqs[key], want) {
			t.Errorf("%s arrived in the order %v", key, o.seqs[key])
		}
		if !slices.Equal(doneOrder[key], want) {
			t.Errorf("%s settled in the order %v", key, doneOrder[key])
		}
	}
	if len(o.overlaps) > 0 {
		t.Errorf("two deliveries of one key in flight at once, for keys %v", o.overlaps)
	}
	if o.maxKeys < 2 || o.maxKeys > concurrency {
		t.Errorf("at most %d keys in flight at once, want from 2 to %d", o.maxKeys, concurrency)
	}
}

func TestFailingKeyHoldsOnlyItsOwn(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	badAttempts := make(chan struct{}, 1)
	o := &ordered{inFlight: map[string]bool{}, seqs: map[string][]int{}}
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if failing.Load() && strings.Contains(string(body), `"bad"`) {
			select {
			case badAttempts <- struct{}{}:
			default:
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		o.ServeHTTP(w, r)
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Concurrency: 4, MaxAttempts: 1000001, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond})

	bad := make(chan Result, 2)
	for seq := range 2 {
		if err := d.Enqueue("bad", &Delivery{Kind: KindEvent, Body: orderedBody("bad", seq)}, func(r Result) { bad <- r }); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // bad #0 is being retried
		receive(t, badAttempts, "bad #0's attempts")
	}
	good := make(chan Result, 30)
	for k := range 10 {
		for seq := range 3 {
			key := fmt.Sprintf("good%d", k)
			if err := d.Enqueue(key, &Delivery{Kind: KindEvent, Body: orderedBody(key, seq)}, func(r Result) { good <- r }); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 30 {
		if r := receive(t, good, "the other keys' results"); r.Err != nil {
			t.Fatalf("good: %+v", r)
		}
	}
	select {
	case r := <-bad:
		t.Fatalf("bad settled while its app failed: %+v", r)
	default:
	}
	o.mu.Lock()
	if s := o.seqs["bad"]; len(s) > 0 {
		t.Errorf("bad #%d reached the app while bad #0 was failing", s[0])
	}
	o.mu.Unlock()

	failing.Store(false)
	r0, r1 := receive(t, bad, "bad #0"), receive(t, bad, "bad #1")
	if r0.Err != nil || r0.Attempts < 4 || r1.Err != nil || r1.Attempts != 1 {
		t.Errorf("bad #0: %+v\nbad #1: %+v", r0, r1)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := o.seqs["bad"]; !slices.Equal(s, []int{0, 1}) {
		t.Errorf("bad arrived in the order %v", s)
	}
}

func TestConcurrencyBound(t *testing.T) {
	const concurrency = 4
	var inFlight, most atomic.Int32
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(time.Millisecond) // the app's work
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Concurrency: concurrency})

	const keys, perKey = 40, 5
	results := make(chan Result, keys*perKey)
	for seq := range perKey {
		for k := range keys {
			if err := d.Enqueue(fmt.Sprint(k), &Delivery{Kind: KindEvent, Body: orderedBody("", seq)}, func(r Result) { results <- r }); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range keys * perKey {
		if r := receive(t, results, "every result"); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if m := most.Load(); m > concurrency || m < 2 {
		t.Errorf("%d requests in flight at once, want from 2 to %d", m, concurrency)
	}
}

func TestQueueFull(t *testing.T) {
	arrived := make(chan struct{}, 10)
	g := newGate()
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		g.wait(r)
	})
	m := NewMetrics(prometheus.NewRegistry())
	d := newDeliverer(t, DelivererOptions{URL: app.URL, QueueSize: 2, Metrics: m})
	g.openAtCleanup(t)

	results := make(chan Result, 10)
	enqueue := func(key string) error {
		return d.Enqueue(key, &Delivery{Kind: KindEvent, Body: []byte(`{}`)}, func(r Result) { results <- r })
	}
	if err := enqueue("k"); err != nil {
		t.Fatal(err)
	}
	receive(t, arrived, "k #0 at the app")
	for i := 1; i <= 2; i++ {
		if err := enqueue("k"); err != nil {
			t.Fatalf("k #%d: %v, want it queued behind the one in flight", i, err)
		}
	}
	if err := enqueue("k"); err != ErrQueueFull {
		t.Fatalf("k #3: %v, want ErrQueueFull", err)
	}
	if err := enqueue("other"); err != nil {
		t.Fatalf("another key: %v", err)
	}
	if n := d.Pending(); n != 4 {
		t.Errorf("Pending = %d, want 4", n)
	}
	if n := testutil.ToFloat64(m.dropped.WithLabelValues("event", DropRejected)); n != 0 {
		t.Errorf("siobridge_webhook_dropped_total{kind=event} = %v, want 0: the caller counts what it does about a full queue", n)
	}
	if n := testutil.ToFloat64(m.pending); n != 4 {
		t.Errorf("siobridge_webhook_pending = %v, want 4", n)
	}

	g.open()
	for range 4 {
		if r := receive(t, results, "the queued deliveries"); r.Err != nil {
			t.Error(r.Err)
		}
	}
}

func TestQueueBytes(t *testing.T) {
	arrived := make(chan struct{}, 10)
	gates := []*gate{newGate(), newGate()} // hold the first and the second request
	var requests atomic.Int32
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		i := int(requests.Add(1)) - 1
		arrived <- struct{}{}
		if i < len(gates) {
			gates[i].wait(r)
		}
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, QueueSize: 100, QueueBytes: 100})
	for _, g := range gates {
		g.openAtCleanup(t)
	}

	results := make(chan Result, 10)
	enqueue := func(size int) error {
		body := []byte(`"` + strings.Repeat("x", size-2) + `"`)
		return d.Enqueue("k", &Delivery{Kind: KindEvent, Body: body}, func(r Result) { results <- r })
	}
	// The one in flight does not count, and a single delivery larger than the bound is
	// taken when nothing waits.
	if err := enqueue(500); err != nil {
		t.Fatal(err)
	}
	receive(t, arrived, "the first delivery at the app")
	if err := enqueue(150); err != nil {
		t.Fatalf("150 bytes with nothing waiting: %v, want it queued", err)
	}
	if err := enqueue(10); err != ErrQueueFull {
		t.Fatalf("10 more bytes behind 150 waiting (bound 100): %v, want ErrQueueFull", err)
	}
	// Once the waiting one is in flight, its bytes no longer count.
	gates[0].open()
	receive(t, results, "the first result")
	receive(t, arrived, "the 150-byte delivery at the app")
	for i, size := range []int{60, 40} {
		if err := enqueue(size); err != nil {
			t.Fatalf("#%d (%d bytes, %d waiting): %v", i, size, []int{0, 60}[i], err)
		}
	}
	if err := enqueue(2); err != ErrQueueFull {
		t.Fatalf("2 bytes behind 100 waiting: %v, want ErrQueueFull", err)
	}
	gates[1].open()
	for range 3 {
		if r := receive(t, results, "the queued deliveries"); r.Err != nil {
			t.Error(r.Err)
		}
	}
}

func TestCloseDeliversPending(t *testing.T) {
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond) // the app's work
	})
	d := NewDeliverer(DelivererOptions{URL: app.URL, Concurrency: 2})
	var delivered atomic.Int32
	for i := range 30 {
		err := d.Enqueue(fmt.Sprint(i%3), &Delivery{Kind: KindEvent, Body: []byte(`{}`)}, func(r Result) {
			if r.Err == nil {
				delivered.Add(1)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if n := d.Close(ctx); n != 0 {
		t.Errorf("Close cancelled %d deliveries, want 0", n)
	}
	if n := delivered.Load(); n != 30 {
		t.Errorf("%d deliveries delivered when Close returned, want 30", n)
	}
	if n := d.Pending(); n != 0 {
		t.Errorf("Pending = %d after Close", n)
	}
	if err := d.Enqueue("k", &Delivery{Kind: KindEvent}, nil); err != ErrClosed {
		t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
	}
}

func TestCloseCancelsWhatRemains(t *testing.T) {
	arrived := make(chan struct{}, 10)
	g := newGate()
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		g.wait(r)
	})
	m := NewMetrics(prometheus.NewRegistry())
	d := NewDeliverer(DelivererOptions{URL: app.URL, Concurrency: 2, Metrics: m})
	g.openAtCleanup(t)

	var mu sync.Mutex
	calls := map[string]int{}
	var order []string
	var results []Result
	for i, key := range []string{"a", "a", "a", "a", "a", "b", "b", "b"} {
		dl := &Delivery{ID: fmt.Sprintf("%s%d", key, i), Kind: KindEvent, Body: []byte(`{}`)}
		err := d.Enqueue(key, dl, func(r Result) {
			mu.Lock()
			defer mu.Unlock()
			calls[r.Delivery.ID]++
			order = append(order, r.Delivery.ID)
			results = append(results, r)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	receive(t, arrived, "a's first delivery")
	receive(t, arrived, "b's first delivery")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n := d.Close(ctx); n != 8 {
		t.Errorf("Close cancelled %d deliveries, want 8", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 8 {
		t.Errorf("done called for %d deliveries, want 8", len(calls))
	}
	for id, n := range calls {
		if n != 1 {
			t.Errorf("done called %d times for %s", n, id)
		}
	}
	var aOrder, bOrder []string
	for _, id := range order {
		if id[0] == 'a' {
			aOrder = append(aOrder, id)
		} else {
			bOrder = append(bOrder, id)
		}
	}
	if !slices.Equal(aOrder, []string{"a0", "a1", "a2", "a3", "a4"}) || !slices.Equal(bOrder, []string{"b5", "b6", "b7"}) {
		t.Errorf("settled in the order %v", order)
	}
	for _, r := range results {
		if !errors.Is(r.Err, ErrClosed) {
			t.Errorf("%s: Err = %v, want ErrClosed", r.Delivery.ID, r.Err)
		}
		wantAttempts := 0
		if r.Delivery.ID == "a0" || r.Delivery.ID == "b5" {
			wantAttempts = 1
		}
		if r.Attempts != wantAttempts {
			t.Errorf("%s: %d attempts, want %d", r.Delivery.ID, r.Attempts, wantAttempts)
		}
	}
	if n := d.Pending(); n != 0 {
		t.Errorf("Pending = %d after Close", n)
	}
	if n := testutil.ToFloat64(m.deliveries.WithLabelValues("event", outcomeFailed)); n != 8 {
		t.Errorf("failed deliveries = %v, want 8", n)
	}
	if n := testutil.ToFloat64(m.pending); n != 0 {
		t.Errorf("siobridge_webhook_pending = %v, want 0", n)
	}
	if err := d.Enqueue("a", &Delivery{Kind: KindEvent}, nil); err != ErrClosed {
		t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
	}
	if n := d.Close(context.Background()); n != 8 {
		t.Errorf("a second Close returned %d, want 8", n)
	}
}

// replied is a transport that tells when a reply has come.
type replied struct {
	rt *http.Transport
	ch chan int
}

func (r replied) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err == nil {
		r.ch <- resp.StatusCode
	}
	return resp, err
}

func TestCloseDuringRetryWait(t *testing.T) {
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	tr := replied{rt: &http.Transport{}, ch: make(chan int, 10)}
	t.Cleanup(tr.rt.CloseIdleConnections)
	d := NewDeliverer(DelivererOptions{URL: app.URL, MaxAttempts: 4, Transport: tr})
	results := make(chan Result, 1)
	if err := d.Enqueue("k", &Delivery{Kind: KindEvent, Body: []byte(`{}`)}, func(r Result) { results <- r }); err != nil {
		t.Fatal(err)
	}
	receive(t, tr.ch, "the first reply")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n := d.Close(ctx); n != 1 {
		t.Errorf("Close cancelled %d deliveries, want 1", n)
	}
	r := receive(t, results, "the result")
	if !errors.Is(r.Err, ErrClosed) || r.Attempts != 1 || r.StatusCode != 503 {
		t.Errorf("result %+v, want ErrClosed after 1 attempt answered 503", r)
	}
}

func TestBackoff(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	in30s := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		attempt    int
		min, max   time.Duration
	}{
		{"429 Retry-After seconds", 429, "2", 0, 2 * time.Second, 2 * time.Second},
		{"503 Retry-After capped at 60s", 503, "3600", 0, time.Minute, time.Minute},
		{"503 Retry-After date", 503, in30s, 0, 28 * time.Second, 30 * time.Second},
		{"429 Retry-After date past", 429, past, 3, 0, 0},
		{"429 Retry-After 0", 429, "0", 3, 0, 0},
		{"500 Retry-After ignored", 500, "30", 0, lo, lo},
		{"429 Retry-After unreadable", 429, "soon", 0, lo, lo},
		{"first retry", 503, "", 0, lo, lo},
		{"fourth retry", 502, "", 3, 400 * time.Millisecond, 800 * time.Millisecond},
		{"capped at the maximum", 502, "", 20, hi / 2, hi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
			if tt.retryAfter != "" {
				resp.Header.Set("Retry-After", tt.retryAfter)
			}
			for range 20 { // jitter
				if got := backoff(lo, hi, tt.attempt, resp); got < tt.min || got > tt.max {
					t.Fatalf("backoff = %v, want from %v to %v", got, tt.min, tt.max)
				}
			}
		})
	}
	if got := backoff(lo, hi, 0, nil); got != lo {
		t.Errorf("backoff after a connection error = %v, want %v", got, lo)
	}
}

func TestDebugLog(t *testing.T) {
	var n atomic.Int32
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := newDeliverer(t, DelivererOptions{URL: app.URL, MaxAttempts: 2, Logger: log})
	if res := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: []byte(`{}`)}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if out := buf.String(); !strings.Contains(out, "level=DEBUG msg=\"webhook: retrying request\"") || strings.Contains(out, "level=ERROR") {
		t.Errorf("log:\n%s\nwant retryablehttp's lines at debug level", out)
	}
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.attempt(KindEvent, true)
	m.Dropped(KindEvent, DropRejected)
	m.settled(&Result{Delivery: &Delivery{Kind: KindEvent}})
	m.addPending(1)
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	// Another package of the binary counts emits in the same series.
	shared := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "siobridge_events_out_total",
		Help: "Events emitted to Socket.IO clients, counted once per socket reached, by namespace.",
	}, []string{"namespace"})
	reg.MustRegister(shared)
	m := NewMetrics(reg)
	if m.EventsOut != shared {
		t.Error("EventsOut is not the collector already registered")
	}
	m.EventsIn.WithLabelValues("/").Inc()
	m.EventsOut.WithLabelValues("/").Add(3)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{
		"siobridge_webhook_deliveries_total", "siobridge_webhook_attempts_total", "siobridge_webhook_retries_total",
		"siobridge_webhook_duration_seconds", "siobridge_webhook_pending", "siobridge_webhook_dropped_total",
		"siobridge_events_in_total", "siobridge_events_out_total",
	} {
		if !names[n] {
			t.Errorf("%s not gathered", n)
		}
	}
}

func BenchmarkDeliver(b *testing.B) {
	app := newApp(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	d := newDeliverer(b, DelivererOptions{URL: app.URL, Secret: "s", Metrics: NewMetrics(nil)})
	load := newBenchLoad(b)
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	for i := range b.N {
		if err := load.enqueue(d, i); err != nil {
			b.Fatal(err)
		}
	}
	load.wait()
	b.StopTimer()
	if cpu1, _ := processCPU(); cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
}

// benchLoad is what the delivery benchmarks enqueue: an event webhook for each of 100 sockets
// in turn, with at most 1000 deliveries waiting at once, like a real load.
type benchLoad struct {
	b     *testing.B
	keys  []string
	body  []byte
	wg    sync.WaitGroup
	slots chan struct{}
}

func newBenchLoad(b *testing.B) *benchLoad {
	l := &benchLoad{
		b:     b,
		keys:  make([]string, 100),
		body:  []byte(`{"type":"event","namespace":"/","socket":{"id":"abc"},"event":"chat","args":["hello"]}`),
		slots: make(chan struct{}, 1000),
	}
	for i := range l.keys {
		l.keys[i] = fmt.Sprintf("socket-%d", i)
	}
	return l
}

// enqueue enqueues delivery i on d once fewer than 1000 wait; safe on any goroutine.
func (l *benchLoad) enqueue(d *Deliverer, i int) error {
	l.slots <- struct{}{}
	l.wg.Add(1)
	return d.Enqueue(l.keys[i%len(l.keys)], &Delivery{Kind: KindEvent, Body: l.body}, l.done)
}

func (l *benchLoad) done(r Result) {
	if r.Err != nil {
		l.b.Error(r.Err)
	}
	<-l.slots
	l.wg.Done()
}

// wait waits until every delivery enqueued is done.
func (l *benchLoad) wait() { l.wg.Wait() }
