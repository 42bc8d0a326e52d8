package socketio

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/siobridge/siobridge/engineio"
)

// TestChurn connects thousands of clients that each join, emit, get their ack and vanish
// without a close: most drop their TCP connection, the others go silent and are ended by the
// ping timeout. Afterwards the server holds nothing: no session, no goroutine, no memory to
// speak of. (goleak checks once more when the package's tests end.)
func TestChurn(t *testing.T) {
	const (
		clients = 2000
		batch   = 100
	)
	// Short enough that the silent clients are dropped within the test, long enough that a
	// client starved of CPU while 100 others handshake still answers its ping in time.
	srv, ts := newTestServer(t, Options{Engine: engineio.Options{
		PingInterval: 300 * time.Millisecond,
		PingTimeout:  2 * time.Second,
	}})
	var events atomic.Int64
	srv.Of("/").OnConnect(func(s *Socket) {
		s.On("x", func(e *Event) {
			events.Add(1)
			_ = e.Ack("ok")
		})
	})

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	baseline := runtime.NumGoroutine()

	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
	start := time.Now()
	var (
		mu     sync.Mutex
		silent []*websocket.Conn
		failed []error
	)
	for b := 0; b < clients/batch; b++ {
		var wg sync.WaitGroup
		for i := range batch {
			wg.Add(1)
			go func(n int) {
				defer wg.Done()
				conn, err := churnClient(u)
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
					return
				}
				if n%3 == 0 {
					// Silent: the connection stays open, nothing is read or answered.
					mu.Lock()
					silent = append(silent, conn)
					mu.Unlock()
					return
				}
				conn.NetConn().Close() // vanish: no close frame, no Engine.IO close packet
			}(b*batch + i)
		}
		wg.Wait()
	}
	if len(failed) > 0 {
		t.Fatalf("%d clients failed, the first: %v", len(failed), failed[0])
	}
	churned := time.Since(start)
	if n := events.Load(); n != clients {
		t.Errorf("%d events handled, want %d", n, clients)
	}

	// Every session ends: dropped ones at once, silent ones after the ping timeout.
	waitUntil(t, 10*time.Second, "every session closed", func() bool { return srv.Engine().Len() == 0 })
	drained := time.Since(start)
	for _, c := range silent {
		c.Close()
	}
	if n := srv.Of("/").Len(); n != 0 {
		t.Errorf("%d sockets left in the namespace", n)
	}
	if rooms, _, _ := srv.Of("/").Rooms(t.Context()); len(rooms) != 0 {
		t.Errorf("%d rooms left in the adapter", len(rooms))
	}
	// The server's goroutines (readers, writers, the test server's connection handlers) end.
	var goroutines int
	waitUntil(t, 10*time.Second, "goroutines back to the baseline", func() bool {
		goroutines = runtime.NumGoroutine()
		return goroutines <= baseline+2
	})
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d clients in %v, all sessions gone after %v; goroutines %d -> %d; heap in use %.1f MiB -> %.1f MiB",
		clients, churned.Round(time.Millisecond), drained.Round(time.Millisecond), baseline, goroutines,
		float64(before.HeapInuse)/(1<<20), float64(after.HeapInuse)/(1<<20))
	if grew > 8<<20 {
		t.Errorf("heap in use grew by %.1f MiB over the churn, want it back near the start", float64(grew)/(1<<20))
	}
}

// churnClient opens a session, joins "/", emits one event with an ack and waits for the ack.
func churnClient(u string) (*websocket.Conn, error) {
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	next := func() (string, error) {
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return "", err
			}
			if string(b) == "2" {
				if err := conn.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
					return "", err
				}
				continue
			}
			return string(b), nil
		}
	}
	for _, step := range []struct{ send, want string }{{"", "0{"}, {"40", "40{"}, {`421["x",1]`, `431["ok"]`}} {
		if step.send != "" {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(step.send)); err != nil {
				conn.Close()
				return nil, err
			}
		}
		got, err := next()
		if err != nil || !strings.HasPrefix(got, step.want) {
			conn.Close()
			return nil, fmt.Errorf("got %q (%v), want %s...", got, err, step.want)
		}
	}
	return conn, nil
}

// waitUntil polls cond every 10ms until it holds, failing the test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
