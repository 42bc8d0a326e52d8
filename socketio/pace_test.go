package socketio

import (
	"fmt"
	"testing"
	"time"

	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// TestBroadcastPace: a broadcast is part of a burst when it starts before the previous one
// has been over for as long as it took.
func TestBroadcastPace(t *testing.T) {
	ms := func(n int) int64 { return int64(time.Duration(n) * time.Millisecond) }
	var p broadcastPace
	if p.burst(ms(5)) {
		t.Fatal("the first broadcast is a burst")
	}
	p.ended(ms(0), ms(100), false) // took 100 ms
	for _, tc := range []struct {
		start int
		burst bool
	}{{100, true}, {150, true}, {199, true}, {200, false}, {600, false}} {
		if got := p.burst(ms(tc.start)); got != tc.burst {
			t.Errorf("starting at %d ms after one of 100 ms ended at 100 ms: burst %v, want %v", tc.start, got, tc.burst)
		}
	}
	// A burst's broadcasts are quick (nothing is written on the way) and do not shorten the
	// burst: the next one within what the last writing one took is still a burst, one after
	// a pause is not.
	p.ended(ms(100), ms(102), true)
	for _, tc := range []struct {
		start int
		burst bool
	}{{103, true}, {150, true}, {201, true}, {202, false}, {500, false}} {
		if got := p.burst(ms(tc.start)); got != tc.burst {
			t.Errorf("starting at %d ms after a burst's of 2 ms ended at 102 ms: burst %v, want %v", tc.start, got, tc.burst)
		}
	}
	// A broadcast that writes sets the pace again.
	p.ended(ms(500), ms(502), false)
	if p.burst(ms(505)) {
		t.Error("a broadcast 3 ms after one that wrote in 2 ms is a burst")
	}
}

// TestBroadcastBurstInOrder: broadcasts of a burst, whose receivers' writers are deferred and
// started by the burst's pause or by the engine's bound, reach every receiver whole and in
// order.
func TestBroadcastBurstInOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		took time.Duration // what the last broadcast that wrote took: the burst's pace
	}{
		{"flushed at the pause", time.Millisecond},
		{"flushed at the engine's bound", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, ts := newTestServer(t, Options{})
			ns := srv.Of("/")
			const receivers, emits = 10, 100
			clients := make([]*socketiotest.Client, receivers)
			for i := range clients {
				clients[i] = socketiotest.Dial(t, ts.URL, "")
				clients[i].Connect("/", "")
			}
			// Every emit below is one of a burst.
			srv.pace.lastTook.Store(int64(tc.took))
			srv.pace.lastEnd.Store(int64(time.Since(srv.pace.base)))
			for i := range emits {
				if n, err := ns.Emit("news", i); err != nil || n != receivers {
					t.Fatalf("emit %d reached %d: %v", i, n, err)
				}
			}
			for _, c := range clients {
				for i := range emits {
					c.Expect(fmt.Sprintf(`42["news",%d]`, i))
				}
			}
		})
	}
}
