package main

// End-to-end tests of durable delivery and shutdown: the real binary with a spool killed with
// SIGKILL and started again; a graceful stop under load; and an app that fails in every way
// an app fails (5xx, hangs, refused connections) before it recovers.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// eventSeq returns the number n of an event "e<n>", or 0.
func eventSeq(d delivery) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(d.Payload.Event, "e"))
	return n
}

// handledEvents returns, per socket, the event deliveries the app handled (answered 2xx, or
// handled and answered too late), in arrival order.
func handledEvents(a *app) map[string][]delivery {
	out := make(map[string][]delivery)
	for _, d := range a.all() {
		if d.Kind == "event" && d.Status >= 200 && d.Status <= 299 {
			out[d.Payload.Socket.ID] = append(out[d.Payload.Socket.ID], d)
		}
	}
	return out
}

// checkOnceInOrder checks one socket's handled events: after dropping repeats of a delivery
// id, they are e1..en, in order. It returns the number of repeats dropped.
func checkOnceInOrder(t *testing.T, sid string, ds []delivery, n int) (dups int) {
	t.Helper()
	return checkOnceInOrderRange(t, sid, ds, 1, n)
}

// checkOnceInOrderRange is checkOnceInOrder for the events e<from>..e<to>.
func checkOnceInOrderRange(t *testing.T, sid string, ds []delivery, from, to int) (dups int) {
	t.Helper()
	seen := make(map[string]int) // id -> event number
	next := from
	for _, d := range ds {
		k := eventSeq(d)
		if prev, ok := seen[d.ID]; ok {
			if prev != k {
				t.Errorf("socket %s: delivery id %s carries e%d and e%d", sid, d.ID, prev, k)
			}
			if k != next-1 {
				t.Errorf("socket %s: e%d came again after e%d", sid, k, next-1)
			}
			dups++
			continue
		}
		seen[d.ID] = k
		if k != next {
			t.Errorf("socket %s: e%d arrived where e%d was due", sid, k, next)
			return dups
		}
		next++
	}
	if next != to+1 {
		t.Errorf("socket %s: %d of the %d events e%d..e%d arrived", sid, next-from, to-from+1, from, to)
	}
	return dups
}

// TestE2ESpoolSurvivesKill: with a spool, events an app has not taken (it answered 503, then
// its port closed) survive kill -9,
// and the next siobridge on the same spool delivers every one, in order per socket, with the
// same delivery ids and body bytes.
func TestE2ESpoolSurvivesKill(t *testing.T) {
	t.Parallel()
	const clients, perClient = 5, 20
	a := startApp(t)
	var up atomic.Bool
	a.setReply(func(ctx context.Context, d delivery) (int, any) {
		if d.Kind == "event" && !up.Load() {
			return http.StatusServiceUnavailable, `{"error":"down for maintenance"}`
		}
		return http.StatusOK, nil
	})
	spool := filepath.Join(t.TempDir(), "spool")
	env := []string{
		"SIOBRIDGE_WEBHOOK_SPOOL_DIR=" + spool,
		"SIOBRIDGE_SOCKETIO_NAMESPACES=/,/sync",
		"SIOBRIDGE_LIMITS_EVENTS_PER_SECOND_PER_SOCKET=0",
	}
	b1 := startBridge(t, a, env...)
	sids := sendNumbered(t, b1, clients, perClient)
	waitUntil(t, "every socket's e1 refused once", &a.seen, func() bool {
		refused := make(map[string]bool)
		for _, d := range a.all() {
			if d.Kind == "event" && d.Payload.Event == "e1" && d.Status == http.StatusServiceUnavailable {
				refused[d.Payload.Socket.ID] = true
			}
		}
		return len(refused) == clients
	}, b1.Exited(), func() string { return "siobridge exited" })
	// Then the app goes down altogether: siobridge's attempts are refused when it is killed.
	a.down(t)
	b1.AwaitLog(t, "a refused connection", func(log string) bool { return strings.Contains(log, "connection refused") })
	b1.Kill(t)
	firstTry := make(map[string]delivery) // the first attempt of each socket's e1, refused
	for _, d := range a.all() {
		if d.Kind == "event" && d.Payload.Event == "e1" {
			if _, ok := firstTry[d.Payload.Socket.ID]; !ok {
				firstTry[d.Payload.Socket.ID] = d
			}
		}
	}

	up.Store(true)
	a.up(t)
	b2 := startBridge(t, a, env...)
	waitUntil(t, "every spooled event at the app", &a.seen, func() bool {
		h := handledEvents(a)
		for _, sid := range sids {
			if len(h[sid]) < perClient {
				return false
			}
		}
		return true
	}, b2.Exited(), func() string { return "siobridge exited" })

	h := handledEvents(a)
	dups := 0
	for _, sid := range sids {
		dups += checkOnceInOrder(t, sid, h[sid], perClient)
		if first, ok := firstTry[sid]; !ok {
			t.Errorf("socket %s: the app saw no attempt of e1 before the kill", sid)
		} else if got := h[sid][0]; got.ID != first.ID || string(got.Body) != string(first.Body) {
			t.Errorf("socket %s: e1 after the restart is %s %s, before it was %s %s: want the same id and bytes",
				sid, got.ID, got.Body, first.ID, first.Body)
		}
	}
	if !strings.Contains(b2.Log(), fmt.Sprintf("will be delivered\" count=%d", clients*perClient)) {
		t.Errorf("the second siobridge does not log the %d webhooks it found in the spool:\n%s", clients*perClient, b2.Log())
	}
	if n := b2.metric(t, "siobridge_webhook_spool_pending"); n != 0 {
		t.Errorf("siobridge_webhook_spool_pending = %v once everything was delivered", n)
	}
	t.Logf("kill -9 with %d events spooled: all %d delivered after the restart, in order, %d duplicates", clients*perClient, clients*perClient, dups)
}

// loadClient is one raw Engine.IO/Socket.IO client on its own goroutines, emitting "e<n>"
// events as fast as a ticker lets it until the server closes it.
type loadClient struct {
	conn        *websocket.Conn
	writeMu     sync.Mutex
	sid         string
	sent        atomic.Int64
	sawEIOClose atomic.Bool   // the server's Engine.IO close packet ("1") came
	done        chan struct{} // closed when the connection has ended
}

// dialLoad opens a WebSocket session and joins "/"; it reports errors rather than failing
// the test, so that it may run on any goroutine.
func dialLoad(base string) (*loadClient, error) {
	d := websocket.Dialer{HandshakeTimeout: e2eWait, Proxy: nil}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		return nil, err
	}
	c := &loadClient{conn: conn, done: make(chan struct{})}
	_ = conn.SetReadDeadline(time.Now().Add(e2eWait))
	if _, open, err := conn.ReadMessage(); err != nil || open[0] != '0' {
		conn.Close()
		return nil, fmt.Errorf("open packet: %q %v", open, err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		conn.Close()
		return nil, err
	}
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			return nil, err
		}
		if string(msg) == "2" {
			_ = conn.WriteMessage(websocket.TextMessage, []byte("3"))
			continue
		}
		sid, ok := strings.CutPrefix(string(msg), `40{"sid":"`)
		if !ok {
			conn.Close()
			return nil, fmt.Errorf("CONNECT answer %q", msg)
		}
		c.sid = strings.TrimSuffix(sid, `"}`)
		break
	}
	_ = conn.SetReadDeadline(time.Time{})
	go c.read()
	return c, nil
}

func (c *loadClient) write(msg string) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(e2eWait))
	return c.conn.WriteMessage(websocket.TextMessage, []byte(msg))
}

// read answers pings and notes the close packet until the connection ends.
func (c *loadClient) read() {
	defer close(c.done)
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		switch string(msg) {
		case "2":
			_ = c.write("3")
		case "1":
			c.sawEIOClose.Store(true)
		}
	}
}

// emit sends events every period until a write fails or max are sent.
func (c *loadClient) emit(period time.Duration, max int) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for n := 1; n <= max; n++ {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		if c.write(fmt.Sprintf(`42["e%d",%d]`, n, n)) != nil {
			return
		}
		c.sent.Store(int64(n))
	}
}

// TestE2EShutdownUnderLoad stops siobridge with SIGTERM while many clients emit and the app
// is busy: it exits 0 before shutdown_timeout, every client gets an Engine.IO close, and
// every socket's events and then its disconnect webhook ("server shutting down") reach the
// app, none lost or out of order.
func TestE2EShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	const clients = 40
	// Generous: the race-built binary on a busy 2-core machine drains a few thousand webhooks.
	const timeout = 20 * time.Second
	a := startApp(t)
	a.setReply(func(ctx context.Context, d delivery) (int, any) {
		if d.Kind == "event" {
			select { // the app's work
			case <-time.After(2 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		return http.StatusOK, nil
	})
	b := startBridge(t, a,
		"SIOBRIDGE_SERVER_SHUTDOWN_TIMEOUT="+timeout.String(),
		"SIOBRIDGE_LIMITS_EVENTS_PER_SECOND_PER_SOCKET=0",
		"SIOBRIDGE_LOG_LEVEL=info",
	)
	cs := make([]*loadClient, clients)
	for i := range cs {
		c, err := dialLoad(b.url())
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		cs[i] = c
		t.Cleanup(func() { c.conn.Close() })
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.emit(50*time.Millisecond, 5000)
		}()
	}
	// Under way: a thousand events sent, and the app busy with them (each webhook it gets
	// wakes this wait).
	waitUntil(t, "1000 events sent and 100 at the app", &a.seen, func() bool {
		var sent int64
		for _, c := range cs {
			sent += c.sent.Load()
		}
		n := 0
		for _, d := range a.all() {
			if d.Kind == "event" {
				n++
			}
		}
		return sent >= 1000 && n >= 100
	}, nil, nil)

	start := time.Now()
	b.Terminate(t)
	select {
	case <-b.Exited():
	case <-time.After(timeout + 5*time.Second):
		t.Fatalf("siobridge still running %v after SIGTERM, with shutdown_timeout %v", time.Since(start), timeout)
	}
	took := time.Since(start)
	if code := b.ExitCode(); code != 0 {
		t.Errorf("siobridge exited with status %d, want 0", code)
	}
	wg.Wait() // each emitter ends when its connection does
	for _, c := range cs {
		select {
		case <-c.done:
		case <-time.After(e2eWait):
			t.Fatalf("client %s still connected after siobridge exited", c.sid)
		}
	}

	bySocket := make(map[string][]delivery)
	for _, d := range a.all() {
		bySocket[d.Payload.Socket.ID] = append(bySocket[d.Payload.Socket.ID], d)
	}
	events, sent := 0, int64(0)
	for _, c := range cs {
		sent += c.sent.Load()
		if !c.sawEIOClose.Load() {
			t.Errorf("client %s: no Engine.IO close packet before its connection ended", c.sid)
		}
		ds := bySocket[c.sid]
		if len(ds) < 2 || ds[0].Kind != "connect" || ds[len(ds)-1].Kind != "disconnect" {
			var tail []string
			for _, d := range ds[max(0, len(ds)-4):] {
				tail = append(tail, d.Kind+" "+d.Payload.Event+" "+d.Payload.Reason)
			}
			t.Errorf("socket %s: %d webhooks, want its connect first and its disconnect last; the last ones: %q", c.sid, len(ds), tail)
			continue
		}
		last := ds[len(ds)-1]
		if last.Payload.Reason != "server shutting down" || last.Status != http.StatusOK || last.Attempt != 1 {
			t.Errorf("socket %s: disconnect reason %q, status %d, attempt %d; want \"server shutting down\", 200, 1", c.sid, last.Payload.Reason, last.Status, last.Attempt)
		}
		evs := ds[1 : len(ds)-1]
		for i, d := range evs {
			if d.Kind != "event" || eventSeq(d) != i+1 || d.Status != http.StatusOK {
				t.Errorf("socket %s: webhook %d is %s %q (status %d), want e%d answered 200", c.sid, i+2, d.Kind, d.Payload.Event, d.Status, i+1)
				break
			}
		}
		if int64(len(evs)) > c.sent.Load() {
			t.Errorf("socket %s: %d events at the app, %d sent", c.sid, len(evs), c.sent.Load())
		}
		events += len(evs)
	}
	log := b.Log()
	if strings.Contains(log, "shutdown_timeout passed") || strings.Contains(log, "given up") || !strings.Contains(log, `webhooks settled before stopping" delivered=`) ||
		!strings.Contains(log, "refused=0 given_up=0") {
		t.Errorf("siobridge's log does not show every webhook delivered before the stop:\n%s", log)
	}
	pending := "?"
	if m := regexp.MustCompile(`webhooks settled before stopping" delivered=(\d+)`).FindStringSubmatch(log); m != nil {
		pending = m[1]
	}
	t.Logf("SIGTERM under load: %d clients, %d events sent, %d delivered (the rest were sent after the close), %d disconnects; %s webhooks queued or in flight at the stop, all delivered; exit 0 after %v (shutdown_timeout %v)",
		clients, sent, events, clients, pending, took.Round(time.Millisecond), timeout)
}

// TestE2EWebhookFaults puts siobridge in front of an app that fails every way an app fails:
// 500s, requests it handles but answers too late (siobridge times out and retries), then a
// closed port (connections refused), then recovery. Every event reaches the app, once after
// dropping repeated delivery ids, in order per socket. The figures are logged for
// docs/reliability.md.
func TestE2EWebhookFaults(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"memory", "spool"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			const clients, perClient = 10, 30
			a := startApp(t)
			var (
				requests, errs500, lates atomic.Int64
				healthy                  atomic.Bool
			)
			a.setReply(func(ctx context.Context, d delivery) (int, any) {
				if d.Kind != "event" || healthy.Load() {
					return http.StatusOK, nil
				}
				switch requests.Add(1) % 4 {
				case 0:
					errs500.Add(1)
					return http.StatusInternalServerError, `{"error":"boom"}`
				case 2:
					// Handled, but answered after siobridge's timeout: it sends it again.
					lates.Add(1)
					<-ctx.Done()
					return http.StatusOK, nil
				}
				return http.StatusOK, nil
			})
			env := []string{
				"SIOBRIDGE_WEBHOOK_TIMEOUT=300ms",
				"SIOBRIDGE_WEBHOOK_RETRIES=100",
				"SIOBRIDGE_LIMITS_EVENTS_PER_SECOND_PER_SOCKET=0",
			}
			if mode == "spool" {
				env = append(env, "SIOBRIDGE_WEBHOOK_SPOOL_DIR="+filepath.Join(t.TempDir(), "spool"), "SIOBRIDGE_WEBHOOK_SPOOL_FSYNC=always")
			}
			b := startBridge(t, a, env...)
			cs := make([]*socketiotest.Client, clients)
			sids := make([]string, clients)
			for i := range cs {
				cs[i] = socketiotest.Dial(t, b.url(), "")
				sids[i] = cs[i].Connect("/", "")
			}
			emit := func(from, to int) {
				for k := from; k <= to; k++ {
					for _, c := range cs {
						c.Write(fmt.Sprintf(`42["e%d",%d]`, k, k))
					}
				}
			}
			// Flaky: a 500 and a late answer in every four requests.
			emit(1, perClient/2)
			waitUntil(t, "40 flaky requests", &a.seen, func() bool { return requests.Load() >= 40 }, b.Exited(), func() string { return "siobridge exited" })

			// Down: the port is closed while the rest of the events come.
			a.down(t)
			refusedBefore := strings.Count(b.Log(), "connection refused")
			emit(perClient/2+1, perClient)
			b.AwaitLog(t, "20 refused connections", func(log string) bool {
				return strings.Count(log, "connection refused")-refusedBefore >= 20
			})
			refused := strings.Count(b.Log(), "connection refused") - refusedBefore
			a.up(t)

			// Flaky again for 40 requests, then healthy.
			upAt := requests.Load()
			waitUntil(t, "40 more flaky requests", &a.seen, func() bool { return requests.Load() >= upAt+40 }, b.Exited(), func() string { return "siobridge exited" })
			healthy.Store(true)
			waitUntil(t, "every event handled", &a.seen, func() bool {
				h := handledEvents(a)
				for _, sid := range sids {
					ids := make(map[string]bool)
					for _, d := range h[sid] {
						ids[d.ID] = true
					}
					if len(ids) < perClient {
						return false
					}
				}
				return true
			}, b.Exited(), func() string { return "siobridge exited" })

			h := handledEvents(a)
			dups, handled := 0, 0
			for _, sid := range sids {
				dups += checkOnceInOrder(t, sid, h[sid], perClient)
				handled += len(h[sid])
			}
			attempts := 0
			for _, d := range a.all() {
				if d.Kind == "event" {
					attempts++
				}
			}
			if got := b.metric(t, `siobridge_webhook_deliveries_total{kind="event",outcome="failed"}`); got != 0 {
				t.Errorf("%v event deliveries failed for good", got)
			}
			if lates.Load() > 0 && dups == 0 {
				t.Errorf("%d requests were handled too late, yet no delivery id came twice", lates.Load())
			}
			t.Logf("%s: faults injected: %d 500s, %d late answers (timeouts), %d refused connections; events sent %d, delivered %d (unique ids), duplicates dropped %d, requests reaching the app %d",
				mode, errs500.Load(), lates.Load(), refused, clients*perClient, handled-dups, dups, attempts)
		})
	}
}

// TestE2EShutdownDeadlineKeepsSpool: an app that does not answer holds the webhooks past
// shutdown_timeout; siobridge exits 0 at the deadline, logs what it left in the spool, and the
// next start delivers it, the disconnects included.
func TestE2EShutdownDeadlineKeepsSpool(t *testing.T) {
	t.Parallel()
	const clients, perClient = 3, 5
	a := startApp(t)
	var hang atomic.Bool
	hang.Store(true)
	a.setReply(func(ctx context.Context, d delivery) (int, any) {
		if d.Kind != "connect" && hang.Load() {
			<-ctx.Done() // siobridge gives up the attempt: at its timeout, or at the deadline
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	env := []string{
		"SIOBRIDGE_WEBHOOK_SPOOL_DIR=" + filepath.Join(t.TempDir(), "spool"),
		"SIOBRIDGE_SERVER_SHUTDOWN_TIMEOUT=1s",
		"SIOBRIDGE_WEBHOOK_TIMEOUT=30s",
		"SIOBRIDGE_SOCKETIO_NAMESPACES=/,/sync",
	}
	b1 := startBridge(t, a, env...)
	sids := sendNumbered(t, b1, clients, perClient)
	waitUntil(t, "every socket's e1 at the app", &a.seen, func() bool {
		n := 0
		for _, d := range a.all() {
			if d.Kind == "event" && d.Payload.Event == "e1" {
				n++
			}
		}
		return n == clients
	}, b1.Exited(), func() string { return "siobridge exited" })
	start := time.Now()
	b1.Terminate(t)
	// While it waits for the app, siobridge takes no new connection.
	b1.AwaitLog(t, "the clients closed", func(log string) bool {
		return strings.Contains(log, `msg="clients disconnected; delivering the queued webhooks"`)
	})
	if conn, err := net.DialTimeout("tcp", b1.Public, e2eWait); err == nil {
		conn.Close()
		t.Error("a new connection to the public port was accepted while siobridge was stopping")
	}
	if code := b1.Stop(t); code != 0 {
		t.Errorf("siobridge exited with status %d at the deadline, want 0", code)
	}
	took := time.Since(start)
	// Each socket's events, and the disconnects of its two namespaces.
	want := fmt.Sprintf("given_up=0 kept_in_spool=%d", clients*(perClient+2))
	if log := b1.Log(); !strings.Contains(log, `msg="shutdown_timeout passed with webhooks undelivered" timeout=1s`) || !strings.Contains(log, want) ||
		strings.Contains(log, "undelivered\" socket=") {
		t.Errorf("siobridge's log does not say what it left (%s):\n%s", want, log)
	}

	hang.Store(false)
	b2 := startBridge(t, a, env...)
	waitUntil(t, "every socket's events and disconnect", &a.seen, func() bool {
		n := 0
		for _, d := range a.all() {
			if d.Kind == "disconnect" && d.Status == http.StatusOK {
				n++
			}
		}
		return n == 2*clients
	}, b2.Exited(), func() string { return "siobridge exited" })
	h := handledEvents(a)
	for _, sid := range sids {
		checkOnceInOrder(t, sid, h[sid], perClient)
		var last delivery
		for _, d := range a.all() {
			if d.Payload.Socket.ID == sid && d.Status == http.StatusOK && d.Kind != "connect" {
				last = d
			}
		}
		if last.Kind != "disconnect" || last.Payload.Reason != "server shutting down" {
			t.Errorf("socket %s: the last webhook handled is %s %q, want its disconnect", sid, last.Kind, last.Payload.Reason)
		}
	}
	t.Logf("shutdown at the deadline: exit 0 after %v (shutdown_timeout 1s), %d webhooks kept in the spool and delivered by the next start", took.Round(time.Millisecond), clients*(perClient+2))
}

// sendNumbered connects clients sockets to b's "/" and has each send events e1 ... e<perClient>
// (e<k> with the argument k); it returns once b has every one of them in its queue (or spool),
// and the sockets' ids. The socket's packets are handled in order: once its connect to /sync is
// answered (b's namespaces must include it), every event before it is queued.
func sendNumbered(t *testing.T, b *bridge, clients, perClient int) []string {
	t.Helper()
	sids := make([]string, clients)
	for i := range clients {
		c := socketiotest.Dial(t, b.url(), "")
		sids[i] = c.Connect("/", "")
		for k := 1; k <= perClient; k++ {
			c.Write(fmt.Sprintf(`42["e%d",%d]`, k, k))
		}
		c.Connect("/sync", "")
	}
	return sids
}
