package testkit

import (
	"testing"
	"time"
)

// Wait bounds each Recv.
const Wait = 10 * time.Second

// Recv returns the next value of ch, failing the test after Wait.
func Recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(Wait)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatal("timed out waiting")
		var zero T
		return zero
	}
}

// pollEvery spaces Poll's checks.
const pollEvery = 10 * time.Millisecond

// Poll checks cond every 10ms until it holds, failing the test after within. It is for state
// that nothing announces (a port that accepts, a server's /readyz, a count in another
// process); what a test can be told of, it awaits on a channel or a process's Lines instead.
func Poll(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", within, what)
		}
		<-tick.C
	}
}
