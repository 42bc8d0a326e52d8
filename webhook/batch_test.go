package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/siobridge/siobridge/internal/spool"
)

// batchItem is what the batch tests' deliveries carry.
type batchItem struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

// readBatch reads a batch's body as the app would, failing the test when it is not one.
func readBatch(t testing.TB, body []byte) []batchItem {
	t.Helper()
	var items []batchItem
	if err := json.Unmarshal(body, &items); err != nil {
		t.Errorf("batch body %q: %v", body, err)
	}
	return items
}

// holdFirst enqueues a connect on key "hold" that the app holds until g opens, so that with
// Concurrency 1 what the test enqueues next waits and forms one batch.
func holdFirst(t *testing.T, d *Deliverer) {
	t.Helper()
	if err := d.Enqueue("hold", &Delivery{Kind: KindConnect, Body: []byte(`{"key":"hold"}`)}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestBatchShapeAndSignature: events of two keys go as one POST, a JSON array of their
// bodies in order per key, typed "batch", with its size and its own delivery id, signed as
// one body; each event gets its own part of the reply array.
func TestBatchShapeAndSignature(t *testing.T) {
	g := newGate()
	reqs := make(chan request, 4)
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderType) == string(KindConnect) {
			g.wait(r)
			return
		}
		req := readRequest(r)
		reqs <- req
		var out []string
		for _, it := range readBatch(t, req.body) {
			out = append(out, fmt.Sprintf(`{"ack":[%q,%d]}`, it.Key, it.Seq))
		}
		_, _ = io.WriteString(w, "["+strings.Join(out, ",")+"]")
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Secret: "s3cret", Concurrency: 1, BatchMax: 4, BatchWait: waitLimit})
	g.openAtCleanup(t)
	holdFirst(t, d)

	results := make(chan Result, 4)
	var bodies [][]byte
	for _, it := range []batchItem{{"a", 0}, {"b", 0}, {"a", 1}, {"b", 1}} {
		dl := &Delivery{Kind: KindEvent, Body: fmt.Appendf(nil, `{"key":%q,"seq":%d}`, it.Key, it.Seq)}
		if err := d.Enqueue(it.Key, dl, func(r Result) { results <- r }); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, dl.Body)
	}
	g.open()
	req := receive(t, reqs, "the batch")
	want := "[" + string(bytes.Join([][]byte{bodies[0], bodies[2], bodies[1], bodies[3]}, []byte(","))) + "]"
	if string(req.body) != want {
		t.Errorf("batch body\n%s\nwant (key a's events, then key b's)\n%s", req.body, want)
	}
	if got := req.header.Get(HeaderType); got != "batch" {
		t.Errorf("%s = %q, want batch", HeaderType, got)
	}
	if got := req.header.Get(HeaderBatchSize); got != "4" {
		t.Errorf("%s = %q, want 4", HeaderBatchSize, got)
	}
	if err := Verify("s3cret", req.header.Get(HeaderSignature), req.body, time.Now(), 0); err != nil {
		t.Errorf("the batch's signature does not verify over its body: %v", err)
	}
	batchID := req.header.Get(HeaderDelivery)
	for range 4 {
		r := receive(t, results, "each event's result")
		var it batchItem
		_ = json.Unmarshal(r.Delivery.Body, &it)
		if wantBody := fmt.Sprintf(`{"ack":[%q,%d]}`, it.Key, it.Seq); string(r.Body) != wantBody {
			t.Errorf("%s #%d got the reply %s, want %s", it.Key, it.Seq, r.Body, wantBody)
		}
		if r.Err != nil || r.StatusCode != 200 || r.Attempts != 1 || r.Batch != batchID || r.Batch == "" || r.Batch == r.Delivery.ID {
			t.Errorf("%s #%d: Result %+v: want a 200 after 1 attempt, Batch %q", it.Key, it.Seq, r, batchID)
		}
	}
}

// TestBatchReplies: how a 2xx reply to a batch of three splits into each event's reply.
func TestBatchReplies(t *testing.T) {
	for _, tt := range []struct {
		name, reply string
		want        []string // each event's Body; nil with wantErr
		wantErr     string
	}{
		{"array", `[{"ack":[1]}, null ,{"ack":[3]}]`, []string{`{"ack":[1]}`, `null`, `{"ack":[3]}`}, ""},
		{"one object for all", `{"ack":["ok"]}`, []string{`{"ack":["ok"]}`, `{"ack":["ok"]}`, `{"ack":["ok"]}`}, ""},
		{"empty", ``, []string{``, ``, ``}, ""},
		{"short array", `[{},{}]`, nil, "the batch's reply is an array of 2 values for 3 events"},
		{"garbled", `[{"ack":[1]`, nil, "the batch's reply is not valid JSON"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate()
			app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get(HeaderType) == string(KindConnect) {
					g.wait(r)
					return
				}
				_, _ = io.WriteString(w, tt.reply)
			})
			d := newDeliverer(t, DelivererOptions{URL: app.URL, Concurrency: 1, BatchMax: 3, BatchWait: waitLimit})
			g.openAtCleanup(t)
			holdFirst(t, d)
			results := make(chan Result, 3)
			for i := range 3 {
				if err := d.Enqueue("k", &Delivery{Kind: KindEvent, Body: fmt.Appendf(nil, `{"seq":%d}`, i)}, func(r Result) { results <- r }); err != nil {
					t.Fatal(err)
				}
			}
			g.open()
			for i := range 3 {
				r := receive(t, results, "each event's result")
				if r.Err != nil || r.StatusCode != 200 {
					t.Fatalf("Result %+v", r)
				}
				if tt.wantErr != "" {
					if r.ReplyErr == nil || !strings.Contains(r.ReplyErr.Error(), tt.wantErr) || r.Body != nil {
						t.Errorf("event %d: ReplyErr %v, Body %q: want %q and no body", i, r.ReplyErr, r.Body, tt.wantErr)
					}
					continue
				}
				if r.ReplyErr != nil || string(r.Body) != tt.want[i] {
					t.Errorf("event %d: Body %q, ReplyErr %v: want %q", i, r.Body, r.ReplyErr, tt.want[i])
				}
			}
		})
	}
}

// TestBatchOrderPerKey: many keys sending many events, with batches of at most 16 and
// several in flight: each key's events reach the app in order, a key never has two batches
// in flight, and no batch is larger than BatchMax.
func TestBatchOrderPerKey(t *testing.T) {
	const keys, perKey, batchMax = 40, 60, 16
	var mu sync.Mutex
	seqs := map[string][]int{}
	inFlight := map[string]bool{}
	var problems []string
	var batches, items atomic.Int64
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := readBatch(t, body)
		batches.Add(1)
		items.Add(int64(len(got)))
		mu.Lock()
		if len(got) > batchMax || r.Header.Get(HeaderBatchSize) != strconv.Itoa(len(got)) {
			problems = append(problems, fmt.Sprintf("a batch of %d, %s %q", len(got), HeaderBatchSize, r.Header.Get(HeaderBatchSize)))
		}
		mine := map[string]bool{}
		for _, it := range got {
			if inFlight[it.Key] && !mine[it.Key] {
				problems = append(problems, it.Key+" in two batches in flight at once")
			}
			inFlight[it.Key], mine[it.Key] = true, true
			seqs[it.Key] = append(seqs[it.Key], it.Seq)
		}
		mu.Unlock()
		time.Sleep(time.Millisecond) // the app's work, while other batches go
		mu.Lock()
		for k := range mine {
			delete(inFlight, k)
		}
		mu.Unlock()
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Concurrency: 8, BatchMax: batchMax, BatchWait: time.Millisecond})
	var settled sync.WaitGroup
	settled.Add(keys * perKey)
	var wg sync.WaitGroup
	for k := range keys {
		wg.Add(1)
		go func() { // each key's events come from its own goroutine, as a socket's reader
			defer wg.Done()
			key := fmt.Sprintf("key%02d", k)
			for seq := range perKey {
				err := d.Enqueue(key, &Delivery{Kind: KindEvent, Body: fmt.Appendf(nil, `{"key":%q,"seq":%d}`, key, seq)}, func(r Result) {
					if r.Err != nil || r.StatusCode != 200 {
						t.Errorf("%s #%d: %+v", key, seq, r)
					}
					settled.Done()
				})
				if err != nil {
					t.Errorf("Enqueue: %v", err)
					settled.Done()
				}
			}
		}()
	}
	wg.Wait()
	allSettled := make(chan struct{})
	go func() { settled.Wait(); close(allSettled) }()
	receive(t, allSettled, "every event settled")

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	want := make([]int, perKey)
	for i := range want {
		want[i] = i
	}
	for k := range keys {
		key := fmt.Sprintf("key%02d", k)
		if !slices.Equal(seqs[key], want) {
			t.Errorf("%s arrived in the order %v", key, seqs[key])
		}
	}
	if items.Load() != keys*perKey || batches.Load() >= keys*perKey {
		t.Errorf("%d events in %d batches: want %d events, in fewer batches", items.Load(), batches.Load(), keys*perKey)
	}
}

// TestBatchSlowKeyHoldsOnlyItsOwn: while the app holds a batch with key x's event, key y's
// event goes in a batch of its own and is answered, and x's next event waits for x's batch.
func TestBatchSlowKeyHoldsOnlyItsOwn(t *testing.T) {
	g := newGate()
	seen := make(chan string, 4)
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		for _, it := range readBatch(t, body) {
			seen <- fmt.Sprint(it.Key, it.Seq)
			if it.Key == "x" && it.Seq == 0 {
				g.wait(r)
			}
		}
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, BatchMax: 32, BatchWait: time.Millisecond})
	g.openAtCleanup(t)
	results := make(chan string, 4)
	enqueue := func(key string, seq int) {
		t.Helper()
		err := d.Enqueue(key, &Delivery{Kind: KindEvent, Body: fmt.Appendf(nil, `{"key":%q,"seq":%d}`, key, seq)}, func(r Result) {
			if r.Err != nil {
				t.Errorf("%s%d: %v", key, seq, r.Err)
			}
			results <- fmt.Sprint(key, seq)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	enqueue("x", 0)
	if got := receive(t, seen, "x's first event at the app"); got != "x0" {
		t.Fatalf("the app got %s first, want x0", got)
	}
	enqueue("x", 1)
	enqueue("y", 0)
	if got := receive(t, seen, "y's event at the app"); got != "y0" {
		t.Fatalf("while x0 is held, the app got %s, want y0 (x1 waits for x0)", got)
	}
	if got := receive(t, results, "y's result"); got != "y0" {
		t.Fatalf("while x0 is held, %s was settled, want y0", got)
	}
	g.open()
	for _, want := range []string{"x0", "x1"} {
		if got := receive(t, results, "x's results"); got != want {
			t.Errorf("settled %s, want %s", got, want)
		}
	}
	if got := receive(t, seen, "x1 at the app"); got != "x1" {
		t.Errorf("the app got %s, want x1", got)
	}
}

// TestBatchRetriesAndGiveUp: a batch the app fails is retried whole, with the same body and
// batch id; given up, each of its events is given up, counted and reported; a 4xx refuses
// each of them.
func TestBatchRetriesAndGiveUp(t *testing.T) {
	var mu sync.Mutex
	var ids, bodies []string
	status := atomic.Int32{}
	status.Store(http.StatusServiceUnavailable)
	g := newGate()
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderType) == string(KindConnect) {
			g.wait(r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		ids, bodies = append(ids, r.Header.Get(HeaderDelivery)), append(bodies, string(body))
		mu.Unlock()
		w.WriteHeader(int(status.Load()))
		_, _ = io.WriteString(w, `{"message":"no"}`)
	})
	m := NewMetrics(prometheus.NewRegistry())
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Concurrency: 1, BatchMax: 3, BatchWait: waitLimit, MaxAttempts: 3, Metrics: m})
	g.openAtCleanup(t)

	send := func() []Result {
		t.Helper()
		g = newGate()
		holdFirst(t, d)
		results := make(chan Result, 3)
		for i := range 3 {
			if err := d.Enqueue(fmt.Sprint("k", i), &Delivery{Kind: KindEvent, Body: []byte(`{}`)}, func(r Result) { results <- r }); err != nil {
				t.Fatal(err)
			}
		}
		g.open()
		var out []Result
		for range 3 {
			out = append(out, receive(t, results, "each event's result"))
		}
		return out
	}
	for _, r := range send() {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "503 Service Unavailable after 3 attempts") || r.Attempts != 3 || r.StatusCode != 503 {
			t.Errorf("Result %+v: want given up after 3 attempts with the 503", r)
		}
	}
	mu.Lock()
	if len(ids) != 3 || ids[0] != ids[1] || ids[1] != ids[2] || bodies[0] != bodies[1] || bodies[1] != bodies[2] {
		t.Errorf("the app got %d attempts, ids %v: want 3 of the same batch", len(ids), ids)
	}
	mu.Unlock()
	if got := testutil.ToFloat64(m.givenUp.WithLabelValues("event")); got != 3 {
		t.Errorf("siobridge_webhook_given_up_total{kind=event} = %v, want 3 (each event of the batch)", got)
	}
	if got := testutil.ToFloat64(m.attempts.WithLabelValues("event")); got != 3 {
		t.Errorf("siobridge_webhook_attempts_total{kind=event} = %v, want 3 (requests)", got)
	}

	status.Store(http.StatusForbidden)
	for _, r := range send() {
		if r.Err != nil || r.StatusCode != 403 || string(r.Body) != `{"message":"no"}` {
			t.Errorf("Result %+v: want each event refused with the reply", r)
		}
	}
	if s := d.Settled(); s != (Settled{Delivered: 2, Refused: 3, GivenUp: 3}) {
		t.Errorf("Settled = %+v, want the two held connects delivered, and each event given up, then refused", s)
	}
	if got := testutil.ToFloat64(m.deliveries.WithLabelValues("event", outcomeRefused)); got != 3 {
		t.Errorf("siobridge_webhook_deliveries_total{kind=event,outcome=refused} = %v, want 3", got)
	}
}

// TestBatchSpooled: with a spool, a batch's events are each in the spool; cancelled at
// Close, each stays there, and the next deliverer delivers them, batched, in order per key.
func TestBatchSpooled(t *testing.T) {
	dir := t.TempDir()
	down := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	s := openSpool(t, spool.Options{Dir: dir})
	d := NewDeliverer(DelivererOptions{URL: down.URL, Spool: s, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
		BatchMax: 8, BatchWait: time.Millisecond})
	const keys, perKey = 4, 10
	var kept atomic.Int64
	for i := range perKey {
		for k := range keys {
			key := fmt.Sprint("socket", k)
			err := d.Enqueue(key, &Delivery{Kind: KindEvent, Body: fmt.Appendf(nil, `{"key":%q,"seq":%d}`, key, i)}, func(r Result) {
				if r.Kept && errors.Is(r.Err, ErrClosed) && r.Batch != "" {
					kept.Add(1)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n := d.Close(ctx); n != keys*perKey {
		t.Errorf("Close cancelled %d deliveries, want %d", n, keys*perKey)
	}
	if n, k := d.Kept(), kept.Load(); n != keys*perKey || k != keys*perKey {
		t.Errorf("Kept = %d, %d results kept from a batch, want %d", n, k, keys*perKey)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seqs := map[string][]int{}
	total := 0
	allIn := make(chan struct{})
	up := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		for _, it := range readBatch(t, body) {
			seqs[it.Key] = append(seqs[it.Key], it.Seq)
			if total++; total == keys*perKey {
				close(allIn)
			}
		}
	})
	s2 := openSpool(t, spool.Options{Dir: dir})
	d2 := newDeliverer(t, DelivererOptions{URL: up.URL, Spool: s2, BatchMax: 8, BatchWait: time.Millisecond})
	receive(t, allIn, "every spooled event at the app")
	ctx2, cancel2 := context.WithTimeout(context.Background(), waitLimit)
	defer cancel2()
	if n := d2.Close(ctx2); n != 0 {
		t.Errorf("the second deliverer cancelled %d deliveries", n)
	}
	mu.Lock()
	defer mu.Unlock()
	want := make([]int, perKey)
	for i := range want {
		want[i] = i
	}
	for k := range keys {
		if key := fmt.Sprint("socket", k); !slices.Equal(seqs[key], want) {
			t.Errorf("%s: the app got %v, want %v", key, seqs[key], want)
		}
	}
	if n := s2.Pending(); n != 0 {
		t.Errorf("spool still holds %d pending once all were delivered", n)
	}
}

// TestBatchCloseSendsWhatIsFilling: Close does not wait for a batch's BatchWait: the batch
// being filled goes at once and is delivered before Close's deadline, far shorter than it.
func TestBatchCloseSendsWhatIsFilling(t *testing.T) {
	arrived := make(chan struct{}, 1)
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
	})
	d := NewDeliverer(DelivererOptions{URL: app.URL, BatchMax: 100, BatchWait: time.Hour})
	results := make(chan Result, 1)
	if err := d.Enqueue("k", &Delivery{Kind: KindEvent, Body: []byte(`{}`)}, func(r Result) { results <- r }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if n := d.Close(ctx); n != 0 {
		t.Errorf("Close cancelled %d deliveries, want 0: the batch goes when Close begins", n)
	}
	receive(t, arrived, "the batch at the app")
	if r := receive(t, results, "the event's result"); r.Err != nil || r.StatusCode != 200 {
		t.Errorf("Result %+v, want a 200", r)
	}
}
