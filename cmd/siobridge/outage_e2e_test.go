package main

// End-to-end tests of an app outage with every webhook setting at its default: the app
// answers 503 for 5 s, then refuses connections for 10 s, then comes back and loses every
// 25th reply on the way. Nothing the clients emitted may be lost, in memory or with a spool
// and a kill -9 in the middle.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	outageClients  = 20
	outageEvents   = 50
	outageFailing  = 5 * time.Second  // the app answers 503
	outageRefusing = 10 * time.Second // then its port is closed
	// outageDrain bounds the wait for every event once the app is back: the longest retry
	// wait (retry_wait_max, 5 s) and the queues' drain, with room for a loaded machine.
	outageDrain = 60 * time.Second
)

// webhookDefaults undoes startBridge's short retry waits: with them every webhook setting is
// at its default.
var webhookDefaults = []string{"SIOBRIDGE_WEBHOOK_RETRY_WAIT_MIN=100ms", "SIOBRIDGE_WEBHOOK_RETRY_WAIT_MAX=5s"}

// outageApp is an app going through an outage: while failing it answers every event webhook
// 503; once back it handles each, but every 25th reply is lost on the way (siobridge sends
// that webhook again).
type outageApp struct {
	*app
	failing atomic.Bool
	replies atomic.Int64
}

func startOutageApp(t *testing.T) *outageApp {
	o := &outageApp{app: startApp(t)}
	o.failing.Store(true)
	o.setReply(func(_ context.Context, d delivery) (int, any) {
		switch {
		case d.Kind != "event":
			return http.StatusOK, nil
		case o.failing.Load():
			return http.StatusServiceUnavailable, `{"error":"down for maintenance"}`
		case o.replies.Add(1)%25 == 0:
			return statusLost, nil
		}
		return http.StatusOK, nil
	})
	return o
}

// eventsOf returns the event deliveries of socket sid, every attempt, in arrival order.
func (a *app) eventsOf(sid string) []delivery {
	var out []delivery
	for _, d := range a.all() {
		if d.Kind == "event" && d.Payload.Socket.ID == sid {
			out = append(out, d)
		}
	}
	return out
}

// refusedOnce reports whether each socket of sids has had an event webhook answered 503.
func (a *app) refusedOnce(sids []string) bool {
	refused := make(map[string]bool)
	for _, d := range a.all() {
		if d.Kind == "event" && d.Status == http.StatusServiceUnavailable {
			refused[d.Payload.Socket.ID] = true
		}
	}
	for _, sid := range sids {
		if !refused[sid] {
			return false
		}
	}
	return true
}

// handledAll reports whether the app has handled (answered 2xx at least once) n distinct
// event deliveries of each socket of sids.
func (a *app) handledAll(sids []string, n int) bool {
	ids := make(map[string]map[string]bool)
	for _, d := range a.all() {
		if d.Kind == "event" && d.Status >= 200 && d.Status <= 299 {
			if ids[d.Payload.Socket.ID] == nil {
				ids[d.Payload.Socket.ID] = make(map[string]bool)
			}
			ids[d.Payload.Socket.ID][d.ID] = true
		}
	}
	for _, sid := range sids {
		if len(ids[sid]) < n {
			return false
		}
	}
	return true
}

// dialOutageClients opens n raw clients on b.
func dialOutageClients(t *testing.T, b *bridge, n int) []*loadClient {
	t.Helper()
	cs := make([]*loadClient, n)
	for i := range cs {
		c, err := dialLoad(b.url())
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(func() { c.conn.Close() })
		cs[i] = c
	}
	return cs
}

func sidsOf(cs []*loadClient) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.sid
	}
	return out
}

// emitAll has every client emit e<from>..e<to>, one every period, all at once; it returns
// when all are written, with the write errors.
func emitAll(cs []*loadClient, from, to int, period time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		wg.Go(func() {
			tick := time.NewTicker(period)
			defer tick.Stop()
			for k := from; k <= to; k++ {
				if err := c.write(fmt.Sprintf(`42["e%d",%d]`, k, k)); err != nil {
					errs[i] = fmt.Errorf("socket %s: writing e%d: %w", c.sid, k, err)
					return
				}
				<-tick.C
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitLong waits, for at most limit, until cond holds, checking each time the app sees a
// webhook; it fails the test if b exits first.
func (a *app) waitLong(t *testing.T, what string, limit time.Duration, b *bridge, cond func() bool) {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		ch := a.seen.next()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-b.Exited():
			t.Fatalf("waiting for %s: siobridge exited:\n%s", what, b.Log())
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
	}
}

// waitMetric polls b's metric series until it is want, for at most e2eWait.
func (b *bridge) waitMetric(t *testing.T, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		got := b.metric(t, series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after %v, want %v", series, got, e2eWait, want)
		}
		select {
		case <-b.Exited():
			t.Fatalf("waiting for %s = %v: siobridge exited", series, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkNothingGivenUp checks that b gave up no webhook, in its metrics and in its log.
func checkNothingGivenUp(t *testing.T, b *bridge) {
	t.Helper()
	for _, kind := range []string{"connect", "event", "disconnect"} {
		if n := b.metric(t, `siobridge_webhook_given_up_total{kind="`+kind+`"}`); n != 0 {
			t.Errorf("siobridge_webhook_given_up_total{kind=%q} = %v, want 0", kind, n)
		}
	}
	if log := b.Log(); strings.Contains(log, "given up") {
		t.Errorf("siobridge's log shows a webhook given up:\n%s", log)
	}
}

// TestE2EOutageDefaults: 20 sockets emit 50 events each across the whole outage; every event
// reaches the app, in order per socket, each with one delivery id.
func TestE2EOutageDefaults(t *testing.T) {
	t.Parallel()
	a := startOutageApp(t)
	b := startBridge(t, a.app, webhookDefaults...)
	cs := dialOutageClients(t, b, outageClients)
	sids := sidsOf(cs)

	// The events are spread over the outage and past its end.
	period := (outageFailing + outageRefusing + 2*time.Second) / outageEvents
	emitted := make(chan error, 1)
	go func() { emitted <- emitAll(cs, 1, outageEvents, period) }()

	start := time.Now()
	a.waitLong(t, "every socket's first event answered 503", outageFailing+e2eWait, b, func() bool { return a.refusedOnce(sids) })
	time.Sleep(time.Until(start.Add(outageFailing))) // the outage's first part lasts its time
	a.down(t)
	b.AwaitLog(t, "a refused connection", func(log string) bool { return strings.Contains(log, "connection refused") })
	time.Sleep(time.Until(start.Add(outageFailing + outageRefusing)))
	a.failing.Store(false)
	a.up(t)

	if err := <-emitted; err != nil {
		t.Fatal(err)
	}
	a.waitLong(t, "every event handled", outageDrain, b, func() bool { return a.handledAll(sids, outageEvents) })

	lost := 0
	for _, sid := range sids {
		ds := a.eventsOf(sid)
		checkDeliveredRange(t, ds, 1, outageEvents)
		for _, d := range ds {
			if d.Status == statusLost {
				lost++
			}
		}
	}
	if lost == 0 {
		t.Error("no reply was lost: the test did not exercise a lost reply")
	}
	checkNothingGivenUp(t, b)
	t.Logf("%d sockets × %d events through 503 for %v and refused connections for %v: all handled in order; %d replies lost and sent again; %d requests in all",
		outageClients, outageEvents, outageFailing, outageRefusing, lost, len(a.all()))
}

// TestE2EOutageSpoolKill is the same outage with a spool: siobridge is killed with SIGKILL
// while the app refuses connections, and the next siobridge on the spool delivers what the
// first took; the clients come back to it and emit the rest.
func TestE2EOutageSpoolKill(t *testing.T) {
	t.Parallel()
	const beforeKill = 30 // each socket's events e1..e30 go to the first siobridge
	a := startOutageApp(t)
	env := append([]string{"SIOBRIDGE_WEBHOOK_SPOOL_DIR=" + filepath.Join(t.TempDir(), "spool")}, webhookDefaults...)
	b1 := startBridge(t, a.app, env...)
	cs := dialOutageClients(t, b1, outageClients)
	oldSIDs := sidsOf(cs)

	start := time.Now()
	if err := emitAll(cs, 1, 20, outageFailing/20); err != nil {
		t.Fatal(err)
	}
	a.waitLong(t, "every socket's first event answered 503", e2eWait, b1, func() bool { return a.refusedOnce(oldSIDs) })
	time.Sleep(time.Until(start.Add(outageFailing)))
	a.down(t)
	if err := emitAll(cs, 21, beforeKill, 250*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Every event is in the spool once the gauge counts them: none could be delivered.
	b1.waitMetric(t, "siobridge_webhook_spool_pending", outageClients*beforeKill)
	b1.Kill(t)

	b2 := startBridge(t, a.app, env...)
	time.Sleep(time.Until(start.Add(outageFailing + outageRefusing)))
	a.failing.Store(false)
	a.up(t)
	// The clients come back (a connect needs the app) and emit the rest.
	cs2 := dialOutageClients(t, b2, outageClients)
	newSIDs := sidsOf(cs2)
	if err := emitAll(cs2, beforeKill+1, outageEvents, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}

	a.waitLong(t, "every event handled", outageDrain, b2, func() bool {
		return a.handledAll(oldSIDs, beforeKill) && a.handledAll(newSIDs, outageEvents-beforeKill)
	})
	h := handledEvents(a.app)
	dups := 0
	for i := range cs {
		dups += checkOnceInOrderRange(t, oldSIDs[i], h[oldSIDs[i]], 1, beforeKill)
		dups += checkOnceInOrderRange(t, newSIDs[i], h[newSIDs[i]], beforeKill+1, outageEvents)
	}
	checkNothingGivenUp(t, b2)
	if !strings.Contains(b2.Log(), fmt.Sprintf("will be delivered\" count=%d", outageClients*beforeKill)) {
		t.Errorf("the second siobridge does not log the %d webhooks it found in the spool:\n%s", outageClients*beforeKill, b2.Log())
	}
	t.Logf("kill -9 mid-outage with %d events spooled: all %d events handled in order, %d duplicates dropped by id",
		outageClients*beforeKill, outageClients*outageEvents, dups)
}

// TestE2EAckErrors: a real socket.io-client's ack callback fires with an error when its event
// is given up, refused (4xx) or answered unreadably; a reply with an unknown key still
// applies its valid actions. The log and the metrics show each case.
func TestE2EAckErrors(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	a.setReply(func(_ context.Context, d delivery) (int, any) {
		switch d.Payload.Event {
		case "down":
			return http.StatusServiceUnavailable, nil
		case "refused":
			return http.StatusForbidden, `{"message":"not in this room"}`
		case "garbled":
			return http.StatusOK, `{"ack":["saved"`
		case "misspelt":
			return http.StatusOK, `{"ack":["saved"],"jion":["lobby"],"join":["hall"]}`
		}
		return http.StatusOK, nil
	})
	b := startBridge(t, a, "SIOBRIDGE_WEBHOOK_RETRY_FOR=500ms")
	c := startNode(t).connect(t, b.url(), nil)

	for _, tt := range []struct{ event, ack string }{
		{"down", `[{"error":"the application failed"}]`},
		{"refused", `[{"error":"not in this room"}]`},
		{"garbled", `[{"error":"the application's reply could not be read"}]`},
		{"misspelt", `["saved"]`},
	} {
		ref := c.emitAck(t, tt.event)
		assertJSON(t, "the ack of "+tt.event, c.expectAck(t, ref).Args, tt.ack)
	}
	if s, ok := b.sockets(t, "hall")[c.id]; !ok {
		t.Errorf("GET /sockets?room=hall: %+v: the valid join of the misspelt reply did not apply", s)
	}
	for series, want := range map[string]float64{
		`siobridge_webhook_given_up_total{kind="event"}`:                     1,
		`siobridge_webhook_deliveries_total{kind="event",outcome="refused"}`: 1,
		`siobridge_webhook_reply_errors_total{kind="event"}`:                 2,
	} {
		if got := b.metric(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	log := b.Log()
	for _, want := range []string{
		`level=ERROR msg="webhook: event given up"`,
		`event=down attempts=`,
		`msg="webhook: event refused by the app"`,
		`msg="webhook: reply unreadable: its actions are not applied"`,
		`unknown key \"jion\": did you mean \"join\"?`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("siobridge's log lacks %q:\n%s", want, log)
		}
	}
	b.marker(t, c)
	c.close(t)
}
