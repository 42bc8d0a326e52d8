package socketio

import (
	"testing"
	"time"
)

// TestBroadcastPace: a broadcast is part of a burst when it starts before the previous one
// has been over for as long as it took.
func TestBroadcastPace(t *testing.T) {
	ms := func(n int) int64 { return int64(time.Duration(n) * time.Millisecond) }
	var p broadcastPace
	if p.burst(ms(5)) {
		t.Fatal("the first broadcast is a burst")
	}
	p.ended(ms(0), ms(100)) // took 100 ms
	for _, tc := range []struct {
		start int
		burst bool
	}{{100, true}, {150, true}, {199, true}, {200, false}, {600, false}} {
		if got := p.burst(ms(tc.start)); got != tc.burst {
			t.Errorf("starting at %d ms after one of 100 ms ended at 100 ms: burst %v, want %v", tc.start, got, tc.burst)
		}
	}
	// A burst's broadcasts are quick (nothing is written on the way): the next one right
	// after is still a burst, one after a pause is not.
	p.ended(ms(100), ms(102))
	if !p.burst(ms(103)) {
		t.Error("a broadcast 1 ms after a 2 ms one is not a burst")
	}
	if p.burst(ms(500)) {
		t.Error("a broadcast 398 ms after a 2 ms one is a burst")
	}
}
