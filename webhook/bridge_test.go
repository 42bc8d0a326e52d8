package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// queueFullHarness is a Socket.IO server bridged to an app that holds every event webhook
// until its gate opens, with room for two webhooks per socket behind the one in flight.
type queueFullHarness struct {
	client      *socketiotest.Client
	arrived     chan string // the kind of each webhook reaching the app
	disconnects chan Payload
	metrics     *Metrics
	log         *testkit.Lines
	release     func() // lets the app answer the events it holds, and all later ones
}

func newQueueFullHarness(t *testing.T, policy QueueFullPolicy) *queueFullHarness {
	h := &queueFullHarness{arrived: make(chan string, 16), disconnects: make(chan Payload, 4), log: &testkit.Lines{}}
	g := newGate()
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		var p Payload
		_ = json.NewDecoder(r.Body).Decode(&p)
		h.arrived <- string(p.Type)
		if p.Type == KindDisconnect {
			h.disconnects <- p
			return
		}
		g.wait(r)
	})
	h.metrics = NewMetrics(prometheus.NewRegistry())
	d := newDeliverer(t, DelivererOptions{URL: app.URL, QueueSize: 2, Metrics: h.metrics})
	g.openAtCleanup(t)
	h.release = g.open
	srv := socketio.NewServer(socketio.Options{})
	NewBridge(BridgeOptions{
		Server: srv, Deliverer: d, Kinds: []Kind{KindEvent, KindDisconnect}, QueueFull: policy,
		Metrics: h.metrics, Logger: slog.New(slog.NewTextHandler(h.log, nil)),
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		g.open()
		srv.Close()
		ts.Close()
	})
	h.client = socketiotest.Dial(t, ts.URL, "")
	h.client.Connect("/", "")
	// The first event is in flight, held by the app; two more fill the socket's queue.
	h.client.Write(`42["e",1]`)
	if k := receive(t, h.arrived, "the first event at the app"); k != "event" {
		t.Fatalf("the app got a %s webhook", k)
	}
	h.client.Write(`422["e",2]`)
	h.client.Write(`42["e",3]`)
	return h
}

func TestQueueFullReject(t *testing.T) {
	h := newQueueFullHarness(t, QueueFullReject)
	h.client.Write(`424["e",4]`)
	h.client.Expect(`434[{"error":"webhook queue full"}]`)
	h.client.Write(`42["e",5]`) // no ack asked: refused all the same
	h.client.Write(`426["e",6]`)
	h.client.Expect(`436[{"error":"webhook queue full"}]`)
	if n := testutil.ToFloat64(h.metrics.dropped.WithLabelValues("event", DropRejected)); n != 3 {
		t.Errorf("siobridge_webhook_dropped_total{kind=event,outcome=rejected} = %v, want 3", n)
	}
	if n := testutil.ToFloat64(h.metrics.dropped.WithLabelValues("event", DropDisconnected)); n != 0 {
		t.Errorf("disconnected = %v, want 0", n)
	}
	if log := h.log.String(); strings.Count(log, "webhook queue is full") != 3 {
		t.Errorf("log:\n%s\nwant a warning per rejected event", log)
	}
	// The socket is still connected and still answered.
	h.client.Write(`429["e",9]`)
	h.client.Expect(`439[{"error":"webhook queue full"}]`)
}

func TestQueueFullDisconnect(t *testing.T) {
	h := newQueueFullHarness(t, QueueFullDisconnect)
	h.client.Write(`424["e",4]`)
	h.client.Expect(`41`) // the server disconnects the socket: the client's "io server disconnect"
	if n := testutil.ToFloat64(h.metrics.dropped.WithLabelValues("event", DropDisconnected)); n != 1 {
		t.Errorf("siobridge_webhook_dropped_total{kind=event,outcome=disconnected} = %v, want 1", n)
	}
	if log := h.log.String(); !strings.Contains(log, "disconnecting socket: its webhook queue is full") {
		t.Errorf("log:\n%s\nwant the disconnect explained", log)
	}
	// The disconnect webhook is queued past the full queue: once the app catches up it
	// learns of the disconnect, after the events it had.
	h.release()
	var kinds []string
	for range 3 { // events 2 and 3, then the disconnect
		kinds = append(kinds, receive(t, h.arrived, "the queued webhooks"))
	}
	if strings.Join(kinds, ",") != "event,event,disconnect" {
		t.Errorf("the app got %v, want the two queued events, then the disconnect", kinds)
	}
	if p := receive(t, h.disconnects, "the disconnect webhook"); p.Reason != socketio.ReasonServerNamespaceDisconnect {
		t.Errorf("disconnect reason %q", p.Reason)
	}
}

// After Bridge.Close, a client's event is not sent and its ack says why; a new socket's connect
// is refused with a message that says the server is stopping.
func TestBridgeClose(t *testing.T) {
	kinds := make(chan Kind, 8)
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		var p Payload
		_ = json.NewDecoder(r.Body).Decode(&p)
		kinds <- p.Type
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ack":["ok"]}`)
	})
	metrics := NewMetrics(prometheus.NewRegistry())
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Metrics: metrics})
	srv := socketio.NewServer(socketio.Options{})
	b := NewBridge(BridgeOptions{
		Server: srv, Deliverer: d, Kinds: []Kind{KindConnect, KindEvent, KindDisconnect},
		Metrics: metrics, Logger: slog.New(slog.DiscardHandler),
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Connect("/", "")
	if k := receive(t, kinds, "the connect webhook"); k != KindConnect {
		t.Fatalf("the app got a %s webhook, want connect", k)
	}
	c.Write(`421["e",1]`)
	c.Expect(`431["ok"]`)
	if k := receive(t, kinds, "the event webhook"); k != KindEvent {
		t.Fatalf("the app got a %s webhook, want event", k)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if n := b.Close(ctx); n != 0 {
		t.Fatalf("Close cancelled %d webhooks, want 0", n)
	}
	c.Write(`422["e",2]`)
	c.Expect(`432[{"error":"the server stopped before the application answered"}]`)
	if n := testutil.ToFloat64(metrics.dropped.WithLabelValues("event", DropDropped)); n != 1 {
		t.Errorf("siobridge_webhook_dropped_total{kind=event,outcome=dropped} = %v, want 1", n)
	}
	c2 := socketiotest.Dial(t, ts.URL, "")
	c2.Write("40")
	c2.Expect(`44{"message":"` + msgStopping + `"}`)
	select {
	case k := <-kinds:
		t.Fatalf("the app got a %s webhook after Close", k)
	default:
	}
}

// A socketState is kept per connected socket: past 48 bytes it takes the next size class,
// 16 bytes more for every idle connection.
func TestSocketStateSize(t *testing.T) {
	if n := unsafe.Sizeof(socketState{}); n > 48 {
		t.Errorf("socketState is %d bytes, over the 48-byte size class", n)
	}
}

// EventsIn counts each namespace's events, whichever of its sockets sent them: the counter is
// the namespace's, shared by its sockets.
func TestEventsInPerNamespace(t *testing.T) {
	arrived := make(chan string, 8)
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		var p Payload
		_ = json.NewDecoder(r.Body).Decode(&p)
		arrived <- p.Namespace
	})
	metrics := NewMetrics(prometheus.NewRegistry())
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Metrics: metrics})
	srv := socketio.NewServer(socketio.Options{Namespaces: []string{"/chat"}})
	NewBridge(BridgeOptions{Server: srv, Deliverer: d, Kinds: []Kind{KindEvent}, Metrics: metrics})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	for _, c := range []struct{ nsp, prefix string }{{"/", "42"}, {"/", "42"}, {"/chat", "42/chat,"}} {
		client := socketiotest.Dial(t, ts.URL, "")
		client.Connect(c.nsp, "")
		client.Write(c.prefix + `["e",1]`)
		client.Write(c.prefix + `["e",2]`)
	}
	for range 6 {
		receive(t, arrived, "the event webhooks")
	}
	for nsp, want := range map[string]float64{"/": 4, "/chat": 2} {
		if n := testutil.ToFloat64(metrics.EventsIn.WithLabelValues(nsp)); n != want {
			t.Errorf("events in %s: %v, want %v", nsp, n, want)
		}
	}
}
