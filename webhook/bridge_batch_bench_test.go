package webhook

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/siobridge/siobridge/socketio"
)

// BenchmarkEventWebhookBatched is BenchmarkEventWebhook with event webhooks in batches: the
// same round trips (a client's EVENT with an ack id, the webhook, the reply's ack back to the
// client), clients sockets at once, one event at a time each, so that a batch holds at
// most one event per socket. batch=1 is today's single webhooks, for comparison. The app
// answers each batch with one object, the ack for all. Beside ns/op and allocs/op, each of
// which is per event, it reports the CPU time of the whole process (the app's included)
// per event, and the events per POST.
func BenchmarkEventWebhookBatched(b *testing.B) {
	for _, clients := range []int{50, 200} {
		for _, batchMax := range []int{1, 32, 128} {
			b.Run(fmt.Sprintf("clients=%d/batch=%d", clients, batchMax), func(b *testing.B) {
				benchEventWebhook(b, clients, batchMax)
			})
		}
	}
}

func benchEventWebhook(b *testing.B, clients, batchMax int) {
	var mu sync.Mutex
	posts := 0
	app := newApp(b, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		posts++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ack":[{"ok":true}]}`))
	})
	d := newDeliverer(b, DelivererOptions{URL: app.URL, Secret: "s", Metrics: NewMetrics(nil), BatchMax: batchMax, BatchWait: 2 * time.Millisecond})
	srv := socketio.NewServer(socketio.Options{})
	NewBridge(BridgeOptions{Server: srv, Deliverer: d, Kinds: []Kind{KindEvent}})
	ts := httptest.NewServer(srv)
	b.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		conns[i] = dialBrowserLike(b, ts.URL)
	}
	per := make([]int, clients)
	for i := 0; i < b.N; i++ {
		per[i%clients]++
	}
	mu.Lock()
	posts = 0
	mu.Unlock()
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns {
		wg.Add(1)
		go func(c *websocket.Conn, n int) {
			defer wg.Done()
			for j := range n {
				msg := fmt.Sprintf(`42%d["chat",{"room":"lobby","text":"hello there","n":%d}]`, j, j)
				if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					errs <- err
					return
				}
				if err := readAck(c, fmt.Sprintf(`43%d[{"ok":true}]`, j)); err != nil {
					errs <- err
					return
				}
			}
		}(c, per[i])
	}
	wg.Wait()
	b.StopTimer()
	cpu1, _ := processCPU()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/event")
	}
	mu.Lock()
	if posts > 0 {
		b.ReportMetric(float64(b.N)/float64(posts), "events/post")
	}
	mu.Unlock()
}
