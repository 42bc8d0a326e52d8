package redisadapter

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// benchAdapters are the engines BenchmarkBroadcastAcrossNodes compares, by name: each is one
// of the package's factories with the Options it is given.
var benchAdapters = []struct {
	name     string
	factory  func(Options) socketio.ClusterFactory
	recovery time.Duration // [socketio.RecoveryOptions].MaxDisconnection, 0 for off
}{
	{"classic", New, 0},
	{"sharded", NewSharded, 0},
	{"streams", NewStreams, 0},
	// With recovery on, each broadcast is stored: its entry id is its offset, and this
	// node's own receivers get it when it is read back from the stream.
	{"streams-recovery", NewStreams, time.Minute},
}

// BenchmarkBroadcastAcrossNodes measures broadcasts from node A of a two-node cluster on a real
// redis-server to the receivers on node B, each a WebSocket client that reads every message:
// what one broadcast costs end to end through each adapter (A's encode and publish, Redis, B's
// decode and its deliveries). It reports deliveries/s (receivers × broadcasts per second of
// wall time). Broadcasts go out in windows of 100 that B's receivers must all have read
// before the next, so that the publisher's queue never fills (a plain Emit only queues).
func BenchmarkBroadcastAcrossNodes(b *testing.B) {
	const receivers = 100
	const window = 100
	for _, ad := range benchAdapters {
		b.Run(fmt.Sprintf("%s/receivers=%d", ad.name, receivers), func(b *testing.B) {
			r := testkit.StartRedis(b)
			a := newBenchNode(b, r, ad.factory, ad.recovery)
			other := newBenchNode(b, r, ad.factory, ad.recovery)
			testkit.Poll(b, 10*time.Second, "both adapters to reach Redis", func() bool {
				return a.ns().ClusterHealth() == nil && other.ns().ClusterHealth() == nil
			})
			rc := startReceivers(b, other, receivers)
			// The first broadcast also tells that B hears A (a sharded or streams node may
			// take a moment to subscribe or to read from the stream's end).
			testkit.Poll(b, 10*time.Second, "node B to hear node A", func() bool {
				if _, err := a.ns().Emit("news", "warm-up"); err != nil {
					b.Fatal(err)
				}
				return rc.awaitEach(1, 200*time.Millisecond)
			})
			rc.reset()

			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			sent := 0
			for sent < b.N {
				n := min(window, b.N-sent)
				for range n {
					if _, err := a.ns().Emit("news", "hello from node A", sent); err != nil {
						b.Fatal(err)
					}
					sent++
				}
				if !rc.awaitEach(int64(sent), 30*time.Second) {
					b.Fatalf("after %d broadcasts, a receiver on node B has only %d", sent, rc.least())
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(receivers*b.N)/elapsed.Seconds(), "deliveries/s")
		})
	}
}

// newBenchNode is a node of the factory's engine, with recovery on for a window > 0.
func newBenchNode(b *testing.B, r *testkit.Redis, factory func(Options) socketio.ClusterFactory, recovery time.Duration) *node {
	b.Helper()
	return startNode(b, redis.NewClient(&redis.Options{Addr: r.Addr(), DialTimeout: time.Second}), factory, Options{},
		socketio.Options{Recovery: socketio.RecoveryOptions{MaxDisconnection: recovery}})
}

// receivers are WebSocket clients of one node, each counting the events it reads on a
// goroutine of its own.
type receivers struct {
	counts []atomic.Int64
	target atomic.Int64 // a reader whose count reaches it wakes awaitEach
	mu     sync.Mutex
	cond   *sync.Cond
	errs   atomic.Value // the first read error, a string
}

func startReceivers(b *testing.B, n *node, count int) *receivers {
	b.Helper()
	rc := &receivers{counts: make([]atomic.Int64, count)}
	rc.cond = sync.NewCond(&rc.mu)
	var wg sync.WaitGroup
	var conns []*websocket.Conn
	for i := range count {
		c := socketiotest.Dial(b, n.ts.URL, "")
		c.ConnectFields("") // not Connect, which wants the answer of a namespace without recovery
		conns = append(conns, c.Conn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, msg, err := c.Conn.ReadMessage()
				if err != nil {
					rc.errs.CompareAndSwap(nil, err.Error())
					rc.wake()
					return
				}
				switch {
				case len(msg) == 1 && msg[0] == '2': // a ping
					_ = c.Conn.WriteMessage(websocket.TextMessage, []byte("3"))
				case bytes.HasPrefix(msg, []byte(`42["news"`)):
					if rc.counts[i].Add(1) == rc.target.Load() {
						rc.wake()
					}
				}
			}
		}()
	}
	// The readers end with their connections, before the servers' cleanup (registered
	// earlier, so run later).
	b.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	})
	return rc
}

func (rc *receivers) wake() {
	rc.mu.Lock()
	rc.cond.Broadcast()
	rc.mu.Unlock()
}

func (rc *receivers) least() int64 {
	least := int64(-1)
	for i := range rc.counts {
		if n := rc.counts[i].Load(); least < 0 || n < least {
			least = n
		}
	}
	return least
}

func (rc *receivers) reset() {
	for i := range rc.counts {
		rc.counts[i].Store(0)
	}
}

// awaitEach waits at most d until every receiver has read at least n events, and reports
// whether they did.
func (rc *receivers) awaitEach(n int64, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	stop := context.AfterFunc(ctx, rc.wake)
	defer stop()
	rc.target.Store(n)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for rc.least() < n {
		if ctx.Err() != nil || rc.errs.Load() != nil {
			return false
		}
		rc.cond.Wait()
	}
	return true
}
