package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siobridge/siobridge/internal/spool"
	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// openSpool opens a spool in dir, closed when the test ends (a second Close is harmless).
func openSpool(t testing.TB, opts spool.Options) *spool.Spool {
	t.Helper()
	s, err := spool.Open(opts)
	if err != nil {
		t.Fatalf("spool.Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func spoolBody(key string, seq int) []byte {
	return fmt.Appendf(nil, `{"key":%q,"seq":%d,"pad":"%s"}`, key, seq, strings.Repeat("x", seq%7*10))
}

// TestSpoolDeliversAfterRestart is a restart as siobridge does one: the app is down, the
// deliverer is closed at its deadline with everything undelivered, and the next deliverer on
// the same spool delivers it all, in order per key, with the same ids and bodies.
func TestSpoolDeliversAfterRestart(t *testing.T) {
	dir := t.TempDir()
	down := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	s := openSpool(t, spool.Options{Dir: dir, SegmentBytes: 4096})
	d := NewDeliverer(DelivererOptions{URL: down.URL, Spool: s, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, MaxAttempts: 2})
	const keys, perKey = 5, 40
	type sent struct{ key, id, body string }
	var all []sent
	var kept, notKept atomic.Int64
	settled := func(r Result) {
		if r.Kept && errors.Is(r.Err, ErrClosed) {
			kept.Add(1)
		} else {
			notKept.Add(1)
		}
	}
	for i := range perKey {
		for k := range keys {
			key := fmt.Sprint("socket", k)
			// As the Bridge writes them: the delivery id first in the body.
			id := NewDeliveryID()
			dl := &Delivery{ID: id, Kind: KindEvent, Body: withBodyID(spoolBody(key, i), id)}
			if err := d.Enqueue(key, dl, settled); err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			all = append(all, sent{key, dl.ID, string(dl.Body)})
		}
	}
	// A connect is never spooled.
	if err := d.Enqueue("socket0", &Delivery{Kind: KindConnect, Body: []byte("{}")}, settled); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n := d.Close(ctx); n != keys*perKey+1 {
		t.Errorf("Close cancelled %d deliveries, want %d (the app is down; Retries does not bound spooled ones)", n, keys*perKey+1)
	}
	if n := d.Kept(); n != keys*perKey {
		t.Errorf("Kept = %d, want %d", n, keys*perKey)
	}
	if kept.Load() != keys*perKey || notKept.Load() != 1 {
		t.Errorf("%d results Kept, %d not, want %d and 1 (the connect)", kept.Load(), notKept.Load(), keys*perKey)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	got := map[string][]sent{}
	allIn := make(chan struct{})
	up := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct{ Key string }
		_ = json.Unmarshal(body, &p)
		mu.Lock()
		defer mu.Unlock()
		got[p.Key] = append(got[p.Key], sent{p.Key, r.Header.Get(HeaderDelivery), string(body)})
		if n := len(got[p.Key]); n == perKey && len(got) == keys {
			done := true
			for _, g := range got {
				done = done && len(g) >= perKey
			}
			if done {
				close(allIn)
			}
		}
	})
	s2 := openSpool(t, spool.Options{Dir: dir, SegmentBytes: 4096})
	if n := s2.Pending(); n != keys*perKey {
		t.Fatalf("reopened spool holds %d pending, want %d", n, keys*perKey)
	}
	d2 := newDeliverer(t, DelivererOptions{URL: up.URL, Spool: s2})
	receive(t, allIn, "every spooled delivery at the app")
	ctx2, cancel2 := context.WithTimeout(context.Background(), waitLimit)
	defer cancel2()
	if n := d2.Close(ctx2); n != 0 {
		t.Errorf("the second deliverer cancelled %d deliveries", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for k := range keys {
		key := fmt.Sprint("socket", k)
		var want []sent
		for _, s := range all {
			if s.key == key {
				want = append(want, s)
			}
		}
		if !slices.Equal(got[key], want) {
			t.Errorf("%s: the app got %d deliveries, want %d, the same ids and bodies in order", key, len(got[key]), len(want))
		}
	}
	if n := s2.Pending(); n != 0 {
		t.Errorf("spool still holds %d pending once all were delivered", n)
	}
	if n := s2.Segments(); n != 1 {
		t.Errorf("%d segments once all were delivered, want 1", n)
	}
}

// TestSpoolFull fills a small spool while the app holds the first webhook: the next event
// that does not fit gets the queue_full policy (here reject), though its queue has room.
func TestSpoolFull(t *testing.T) {
	g := newGate()
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) { g.wait(r) })
	s := openSpool(t, spool.Options{Dir: t.TempDir(), MaxBytes: 2000, SegmentBytes: 1000})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Spool: s})
	g.openAtCleanup(t)

	results := make(chan Result, 128)
	settled := func(r Result) { results <- r }
	var err error
	n := 0
	for ; n < 100 && err == nil; n++ {
		err = d.Enqueue("k", &Delivery{Kind: KindEvent, Body: bytes.Repeat([]byte("x"), 200)}, settled)
	}
	accepted := n - 1
	if !errors.Is(err, spool.ErrFull) || accepted < 5 || accepted > 9 {
		t.Fatalf("Enqueue %d: %v, want spool.ErrFull after 5 to 9 deliveries of 200 bytes in 2000", n, err)
	}
	if b := s.Bytes(); b > 2000 {
		t.Errorf("spool holds %d bytes, past its MaxBytes of 2000", b)
	}
	// A key's last delivery is still queued, in memory only.
	if err := d.EnqueueLast("k", &Delivery{Kind: KindDisconnect, Body: []byte("{}")}, settled); err != nil {
		t.Errorf("EnqueueLast with the spool full: %v, want it queued in memory", err)
	}
	// Once the app answers, the spool drains and takes deliveries again.
	g.open()
	for range accepted + 1 {
		if r := receive(t, results, "the queued deliveries' results"); r.Err != nil {
			t.Errorf("result: %v", r.Err)
		}
	}
	if n := s.Pending(); n != 0 {
		t.Errorf("spool holds %d pending after every delivery was settled", n)
	}
	if r := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: []byte("{}")}); r.Err != nil || r.StatusCode != http.StatusOK {
		t.Errorf("the delivery after the spool drained: %+v", r)
	}
}

// TestSpoolFullAppliesQueueFullPolicy: through a Bridge, an event that the spool cannot hold
// is refused with the queue_full policy's error ack, and the log says why.
func TestSpoolFullAppliesQueueFullPolicy(t *testing.T) {
	g := newGate()
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) { g.wait(r) })
	s := openSpool(t, spool.Options{Dir: t.TempDir(), MaxBytes: 3000, SegmentBytes: 1000})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Spool: s})
	g.openAtCleanup(t)
	var log testkit.Lines
	srv := socketio.NewServer(socketio.Options{})
	NewBridge(BridgeOptions{Server: srv, Deliverer: d, Kinds: []Kind{KindEvent, KindDisconnect}, QueueFull: QueueFullReject,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		g.open()
		srv.Close()
		ts.Close()
	})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Connect("/", "")
	for i := 1; i <= 20; i++ {
		c.Write(fmt.Sprintf(`42%d["e",%d]`, i, i))
	}
	// The accepted events wait for the app, which holds them: the first answer is the ack of
	// the first event refused.
	reply := c.Read()
	var k int
	if _, err := fmt.Sscanf(reply, `43%d[{"error":"webhook queue full"}]`, &k); err != nil || !strings.HasSuffix(reply, `[{"error":"webhook queue full"}]`) || k < 3 || k > 15 {
		t.Fatalf("first answer %q, want the error ack of an event from the 3rd to the 15th (the spool holds a few)", reply)
	}
	if b := s.Bytes(); b > 3000 {
		t.Errorf("spool holds %d bytes, past its MaxBytes of 3000", b)
	}
	if !strings.Contains(log.String(), "the webhook spool is full") {
		t.Errorf("log:\n%s\nwant the rejection explained", log.String())
	}
}

// BenchmarkDeliverSpooled is BenchmarkDeliver with enqueuers on parallel goroutines, without
// a spool ("off") and with one under each fsync policy: every delivery is appended,
// delivered, and marked done.
func BenchmarkDeliverSpooled(b *testing.B) {
	for _, policy := range []spool.FsyncPolicy{"off", spool.FsyncNever, spool.FsyncInterval, spool.FsyncAlways} {
		b.Run(string(policy), func(b *testing.B) {
			app := newApp(b, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusNoContent)
			})
			var s *spool.Spool
			if policy != "off" {
				s = openSpool(b, spool.Options{Dir: b.TempDir(), Fsync: policy})
			}
			d := newDeliverer(b, DelivererOptions{URL: app.URL, Secret: "s", Spool: s})
			load := newBenchLoad(b)
			// Enqueuers on several goroutines, as clients' readers are: always shares fsyncs.
			b.ReportAllocs()
			b.ResetTimer()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := load.enqueue(d, int(next.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			load.wait()
			b.StopTimer()
			if s != nil {
				b.ReportMetric(float64(s.Bytes()), "spool-bytes-at-end")
			}
		})
	}
}

func TestWithBodyID(t *testing.T) {
	for _, tc := range []struct{ body, id, want string }{
		{`{"type":"event"}`, "MZXW6", `{"id":"MZXW6","type":"event"}`},
		{`{}`, "MZXW6", `{"id":"MZXW6"}`},
		{`{"id":"A","type":"event"}`, "B", `{"id":"A","type":"event"}`},
		// Not an id siobridge makes, but still written as a JSON string (Go's quoting is not JSON).
		{`{}`, "é\x01\x7f\u2028", `{"id":"é\u0001` + "\x7f" + `\u2028"}`},
	} {
		got := withBodyID([]byte(tc.body), tc.id)
		if string(got) != tc.want || !json.Valid(got) {
			t.Errorf("withBodyID(%s, %q) = %s, want %s", tc.body, tc.id, got, tc.want)
		}
	}
}
