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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// openSpool opens a spool in dir, closed when the test ends (a second Close is harmless).
func openSpool(t testing.TB, opts SpoolOptions) *Spool {
	t.Helper()
	s, err := OpenSpool(opts)
	if err != nil {
		t.Fatalf("OpenSpool: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func spoolBody(key string, seq int) []byte {
	return fmt.Appendf(nil, `{"key":%q,"seq":%d,"pad":"%s"}`, key, seq, strings.Repeat("x", seq%7*10))
}

// replayed returns what a reopened spool hands the next deliverer, as key/id/kind/body lines.
func replayLines(s *Spool) []string {
	var out []string
	for _, e := range s.takeReplay() {
		out = append(out, e.key+" "+e.dl.ID+" "+string(e.dl.Kind)+" "+string(e.dl.Body))
	}
	return out
}

func TestSpoolReplaysPendingInOrder(t *testing.T) {
	for _, policy := range []FsyncPolicy{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, SpoolOptions{Dir: dir, Fsync: policy, SegmentBytes: 1024, FsyncInterval: time.Millisecond})
			var want []string
			keys := []string{"a", "b", "c"}
			for i := range 60 {
				key := keys[i%3]
				dl := &Delivery{ID: fmt.Sprintf("id-%02d", i), Kind: KindEvent, Body: spoolBody(key, i)}
				seq, writes, err := s.append(key, dl)
				if err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
				if err := s.sync(writes); err != nil {
					t.Fatalf("sync: %v", err)
				}
				if i%4 == 0 {
					s.markDone(seq) // settled: not replayed
					continue
				}
				want = append(want, key+" "+dl.ID+" event "+string(dl.Body))
			}
			if s.Segments() < 3 {
				t.Fatalf("%d segments, want several of 1 KiB", s.Segments())
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s2 := openSpool(t, SpoolOptions{Dir: dir, Fsync: policy})
			if got := replayLines(s2); !slices.Equal(got, want) {
				t.Errorf("replayed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if n := s2.Pending(); n != len(want) {
				t.Errorf("Pending = %d, want %d", n, len(want))
			}
		})
	}
}

func TestSpoolCompaction(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, SpoolOptions{Dir: dir, SegmentBytes: 2048})
	stuck, _, err := s.append("stuck", &Delivery{ID: "stuck-1", Kind: KindEvent, Body: []byte(`{"stuck":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		seq, _, err := s.append("k", &Delivery{ID: fmt.Sprint(i), Kind: KindEvent, Body: spoolBody("k", i)})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		s.markDone(seq)
	}
	// Everything but one delivery is settled: the segments behind the first were removed as
	// they emptied, and the first was compacted, its one pending record moved forward.
	if n := s.Segments(); n > 2 {
		t.Errorf("%d segments after 500 settled deliveries, want at most 2", n)
	}
	if b := s.Bytes(); b > 2*2048+512 {
		t.Errorf("spool holds %d bytes, want at most two segments' worth", b)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	var onDisk int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		onDisk += fi.Size()
	}
	if onDisk != s.Bytes() {
		t.Errorf("segment files hold %d bytes, Bytes() says %d", onDisk, s.Bytes())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSpool(t, SpoolOptions{Dir: dir, SegmentBytes: 2048})
	got := s2.takeReplay()
	if len(got) != 1 || got[0].seq != stuck || got[0].dl.ID != "stuck-1" || string(got[0].dl.Body) != `{"stuck":true}` {
		t.Fatalf("replayed %d deliveries (%v), want only the stuck one", len(got), got)
	}
	s2.markDone(stuck)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openSpool(t, SpoolOptions{Dir: dir})
	if n := len(s3.takeReplay()); n != 0 {
		t.Errorf("%d deliveries replayed after all were settled", n)
	}
	if n := s3.Segments(); n != 1 {
		t.Errorf("%d segments once everything is settled, want 1 (the new active one)", n)
	}
}

// TestSpoolFullCompacts fills a spool whose oldest segment is mostly pending, so that only a
// full spool compacts it: the append that found the spool full is then written, and both it
// and the moved delivery read back intact.
func TestSpoolFullCompacts(t *testing.T) {
	dir := t.TempDir()
	opts := SpoolOptions{Dir: dir, MaxBytes: 4000, SegmentBytes: 1000}
	s := openSpool(t, opts)
	stuckBody := bytes.Repeat([]byte("s"), 600)
	stuck, _, err := s.append("stuck", &Delivery{ID: "stuck", Kind: KindEvent, Body: stuckBody})
	if err != nil {
		t.Fatal(err)
	}
	// Settled deliveries behind it, until the spool is nearly full: they cannot be removed
	// while the first segment, more than half pending, stays.
	for i := 0; s.Bytes() < 3500; i++ {
		if i > 100 {
			t.Fatalf("spool at %d bytes after 100 appends", s.Bytes())
		}
		seq, _, err := s.append("k", &Delivery{ID: fmt.Sprint("done", i), Kind: KindEvent, Body: bytes.Repeat([]byte("d"), 200)})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		s.markDone(seq)
	}
	segsBefore := s.Segments()
	lastBody := bytes.Repeat([]byte("L"), 700)
	if _, _, err := s.append("k", &Delivery{ID: "last", Kind: KindEvent, Body: lastBody}); err != nil {
		t.Fatalf("append into a full spool that compaction can free: %v", err)
	}
	if s.Segments() >= segsBefore {
		t.Errorf("%d segments after compacting, %d before", s.Segments(), segsBefore)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := openSpool(t, opts).takeReplay()
	if len(got) != 2 || got[0].seq != stuck || got[0].dl.ID != "stuck" || !bytes.Equal(got[0].dl.Body, stuckBody) ||
		got[1].dl.ID != "last" || !bytes.Equal(got[1].dl.Body, lastBody) {
		t.Fatalf("replayed %d deliveries, want the stuck one and the last, intact", len(got))
	}
}

// TestSpoolTornRecords damages the log as a crash or a bad disk would: each case keeps the
// records before the damage, logs a warning, and the spool goes on working.
func TestSpoolTornRecords(t *testing.T) {
	cases := []struct {
		name   string
		damage func(data []byte, offsets []int) []byte // offsets: where each record starts
		want   int                                     // records still read
	}{
		{"tail cut mid-record", func(d []byte, off []int) []byte { return d[:off[4]+5] }, 4},
		{"tail cut mid-head", func(d []byte, off []int) []byte { return d[:off[4]+3] }, 4},
		{"flipped body byte", func(d []byte, off []int) []byte { d[off[2]+20] ^= 0x40; return d }, 2},
		{"huge length", func(d []byte, off []int) []byte { copy(d[off[3]:], []byte{0xff, 0xff, 0xff, 0x7f}); return d }, 3},
		{"zeroed tail", func(d []byte, off []int) []byte { clear(d[off[1]:]); return d }, 1},
		{"header only", func(d []byte, off []int) []byte { return d[:len(spoolMagic)] }, 0},
		{"empty file", func(d []byte, off []int) []byte { return d[:0] }, 0},
		{"not a segment", func(d []byte, off []int) []byte { return []byte("hello, world") }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, SpoolOptions{Dir: dir})
			offsets := []int{len(spoolMagic)}
			for i := range 5 {
				dl := &Delivery{ID: fmt.Sprint("id", i), Kind: KindEvent, Body: spoolBody("k", i+10)}
				if _, _, err := s.append("k", dl); err != nil {
					t.Fatal(err)
				}
				offsets = append(offsets, offsets[i]+spoolRecordHead+len(encodeAppend(nil, uint64(i+1), "k", dl)))
			}
			path := s.segs[0].path
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) != offsets[5] {
				t.Fatalf("segment of %d bytes, want %d", len(data), offsets[5])
			}
			if err := os.WriteFile(path, tc.damage(data, offsets), 0o600); err != nil {
				t.Fatal(err)
			}

			var log syncBuffer
			s2 := openSpool(t, SpoolOptions{Dir: dir, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			got := s2.takeReplay()
			if len(got) != tc.want {
				t.Fatalf("%d records read back, want %d", len(got), tc.want)
			}
			for i, e := range got {
				if e.dl.ID != fmt.Sprint("id", i) || !bytes.Equal(e.dl.Body, spoolBody("k", i+10)) {
					t.Errorf("record %d read back as %s %s", i, e.dl.ID, e.dl.Body)
				}
			}
			if tc.name != "empty file" && tc.name != "header only" && !strings.Contains(log.String(), "skipping the unreadable end of a segment") {
				t.Errorf("no warning logged:\n%s", log.String())
			}
			// The spool goes on: a new delivery is kept after the survivors.
			if _, _, err := s2.append("k", &Delivery{ID: "after", Kind: KindEvent, Body: []byte("{}")}); err != nil {
				t.Fatal(err)
			}
			if err := s2.Close(); err != nil {
				t.Fatal(err)
			}
			s3 := openSpool(t, SpoolOptions{Dir: dir})
			again := s3.takeReplay()
			if len(again) != tc.want+1 || again[len(again)-1].dl.ID != "after" {
				t.Errorf("after reopening: %d records, want %d ending with the new one", len(again), tc.want+1)
			}
		})
	}
}

func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	openSpool(t, SpoolOptions{Dir: dir})
	_, err := OpenSpool(SpoolOptions{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second OpenSpool of one directory: %v, want it refused", err)
	}
}

// TestSpoolDeliversAfterRestart is a restart as siobridge does one: the app is down, the
// deliverer is closed at its deadline with everything undelivered, and the next deliverer on
// the same spool delivers it all, in order per key, with the same ids and bodies.
func TestSpoolDeliversAfterRestart(t *testing.T) {
	dir := t.TempDir()
	down := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	s := openSpool(t, SpoolOptions{Dir: dir, SegmentBytes: 4096})
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
	s2 := openSpool(t, SpoolOptions{Dir: dir, SegmentBytes: 4096})
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
	s := openSpool(t, SpoolOptions{Dir: t.TempDir(), MaxBytes: 2000, SegmentBytes: 1000})
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
	if !errors.Is(err, ErrSpoolFull) || accepted < 5 || accepted > 9 {
		t.Fatalf("Enqueue %d: %v, want ErrSpoolFull after 5 to 9 deliveries of 200 bytes in 2000", n, err)
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
	s := openSpool(t, SpoolOptions{Dir: t.TempDir(), MaxBytes: 3000, SegmentBytes: 1000})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Spool: s})
	g.openAtCleanup(t)
	var log syncBuffer
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
	for _, policy := range []FsyncPolicy{"off", FsyncNever, FsyncInterval, FsyncAlways} {
		b.Run(string(policy), func(b *testing.B) {
			app := newApp(b, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusNoContent)
			})
			var s *Spool
			if policy != "off" {
				s = openSpool(b, SpoolOptions{Dir: b.TempDir(), Fsync: policy})
			}
			d := newDeliverer(b, DelivererOptions{URL: app.URL, Secret: "s", Spool: s})
			keys := make([]string, 100)
			for i := range keys {
				keys[i] = fmt.Sprintf("socket-%d", i)
			}
			body := []byte(`{"type":"event","namespace":"/","socket":{"id":"abc"},"event":"chat","args":["hello"]}`)
			var wg sync.WaitGroup
			slots := make(chan struct{}, 1000)
			done := func(r Result) {
				if r.Err != nil {
					b.Error(r.Err)
				}
				<-slots
				wg.Done()
			}
			// Enqueuers on several goroutines, as clients' readers are: always shares fsyncs.
			b.ReportAllocs()
			b.ResetTimer()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					slots <- struct{}{}
					wg.Add(1)
					if err := d.Enqueue(keys[i%int64(len(keys))], &Delivery{Kind: KindEvent, Body: body}, done); err != nil {
						b.Error(err)
						return
					}
				}
			})
			wg.Wait()
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
