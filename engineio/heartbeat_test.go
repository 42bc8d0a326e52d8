package engineio

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestSharedHeartbeat: with one timer for every session, each session is still pinged on its
// own schedule: of 20 WebSocket clients, those that answer pings stay connected through several
// intervals and those that do not are closed with "ping timeout", each on its own.
func TestSharedHeartbeat(t *testing.T) {
	// Pings come often; a pong may take pongWait, so that only the silent clients time out.
	ts := newTestServer(t, Options{PingInterval: 50 * time.Millisecond, PingTimeout: pongWait})
	const n, pings = 20, 3
	silent := map[string]bool{}
	var answering []*pingAnswerer
	for i := range n {
		c := dialWS(t, ts, "")
		_, open := readWS(t, c)
		sid := parseOpen(t, open).SID
		if i%2 == 0 {
			silent[sid] = true
			continue
		}
		answering = append(answering, answerPings(t, c, pings))
	}
	// Each answering client answers its pings as they come, on a goroutine of its own, until
	// the test ends; several have come once each has answered pings of them.
	for i, a := range answering {
		select {
		case <-a.answered:
		case err := <-a.failed:
			t.Fatalf("answering client %d: %v", i, err)
		case <-time.After(closeWait):
			t.Fatalf("answering client %d: no %d pings within %v", i, pings, closeWait)
		}
	}
	for range n / 2 {
		ev := ts.waitClose(t)
		if !silent[ev.sid] || ev.reason != ReasonPingTimeout {
			t.Fatalf("close %+v: want only the silent clients closed, with ping timeout", ev)
		}
		delete(silent, ev.sid)
	}
	if got := ts.eio.Len(); got != n/2 {
		t.Fatalf("%d sessions open, want the %d answering ones", got, n/2)
	}
	for i, a := range answering {
		select {
		case err := <-a.failed:
			t.Fatalf("answering client %d: %v", i, err)
		default:
		}
	}
}

// pingAnswerer answers every ping of a WebSocket session, on a goroutine that ends with the
// test (its connection is closed then).
type pingAnswerer struct {
	answered chan struct{} // closed once it has answered the first n pings
	failed   chan error    // what went wrong before the test ended, if anything
}

func answerPings(t *testing.T, c *websocket.Conn, n int) *pingAnswerer {
	a := &pingAnswerer{answered: make(chan struct{}), failed: make(chan error, 1)}
	ended := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			_ = c.SetReadDeadline(time.Time{})
			_, b, err := c.ReadMessage()
			if err == nil && string(b) != "2" {
				err = fmt.Errorf("message %d: want a ping, got %q", i, b)
			}
			if err == nil {
				err = c.WriteMessage(websocket.TextMessage, []byte("3"))
			}
			if err != nil {
				select {
				case <-ended: // the test closed the connection
				default:
					a.failed <- err
				}
				return
			}
			if i == n {
				close(a.answered)
			}
		}
	}()
	t.Cleanup(func() {
		close(ended)
		c.Close()
		wg.Wait()
	})
	return a
}
