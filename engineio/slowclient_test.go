package engineio

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// sessions returns the open sessions.
func (s *Server) sessionList() []*Session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess)
	}
	return out
}

// read returns the next message that is not a ping, answering pings.
func (w *wellBehaved) read() string {
	w.t.Helper()
	for {
		_, got := readWS(w.t, w.conn)
		if got != "2" {
			return got
		}
		_ = w.conn.WriteMessage(1, []byte("3"))
	}
}

func TestSlowReaderClosedOthersServed(t *testing.T) {
	var hits limitCounter
	const maxQueued = 64
	ts := newTestServer(t, Options{MaxQueuedMessages: maxQueued, OnLimit: hits.hook})

	// The slow client opens its session and then never reads again.
	slow := dialWS(t, ts, "")
	readWS(t, slow)
	good := newWellBehaved(t, ts)
	good.echo()

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	// Broadcast 16 KiB messages, each built afresh so that the slow client's backlog holds
	// real memory, until the slow client is closed; the good one reads along.
	payload := []byte(strings.Repeat("x", 16<<10))
	var peak uint64
	sent := 0
	for closed := false; !closed; sent++ {
		if sent == 100_000 {
			t.Fatal("the slow client was never closed")
		}
		msg := NewMessage(payload, false)
		for _, s := range ts.eio.sessionList() {
			_ = s.Send(msg)
		}
		if got := good.read(); got != "4"+string(payload) {
			t.Fatalf("the good client got %.20q...", got)
		}
		if sent%64 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		select {
		case ev := <-ts.closed:
			if !errors.Is(ev.err, ErrSendQueueFull) || ev.reason != ReasonTransportError {
				t.Fatalf("closed %+v, want the slow client closed for its full queue", ev)
			}
			closed = true
		default:
		}
	}
	t.Logf("the slow client was closed after %d messages of 16 KiB (%d queued, the rest in socket buffers)", sent, maxQueued)
	if n := hits.get(LimitSendQueue); n != 1 {
		t.Errorf("OnLimit(%s) called %d times, want 1", LimitSendQueue, n)
	}
	// Memory stayed bounded: the queue (64 x 16 KiB = 1 MiB) and the good client's garbage;
	// 32 MiB above the start leaves the collector its slack.
	if grew := int64(peak) - int64(before.HeapInuse); grew > 32<<20 {
		t.Errorf("heap in use grew by %d MiB while the slow client lagged", grew>>20)
	}
	for range 3 {
		good.echo()
	}
	if n := ts.eio.Len(); n != 1 {
		t.Errorf("%d sessions open, want the good one only", n)
	}
}
