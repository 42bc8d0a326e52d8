package group

import (
	"sync/atomic"
	"testing"
	"time"
)

// Wait returns only once every goroutine has ended, including one started while it waited.
func TestGroupWaitsForGoroutinesStartedWhileWaiting(t *testing.T) {
	var g Group
	var ended atomic.Int32
	release := make(chan struct{})
	g.Go(func() {
		<-release
		g.Go(func() { ended.Add(1) }) // started while Wait is blocked
		ended.Add(1)
	})
	waited := make(chan struct{})
	go func() {
		g.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		t.Fatal("Wait returned while a goroutine was running")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after the goroutines ended")
	}
	if n := ended.Load(); n != 2 {
		t.Fatalf("%d goroutines ended before Wait returned, want 2", n)
	}
	g.Wait() // an idle group's Wait returns at once
}
