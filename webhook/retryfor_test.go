package webhook

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRetryForBoundsTheRetries: with no cap on attempts, a delivery the app keeps failing is
// retried until RetryFor has passed, then given up, counted and reported with its attempts.
func TestRetryForBoundsTheRetries(t *testing.T) {
	var n atomic.Int32
	app := newApp(t, func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	m := NewMetrics(prometheus.NewRegistry())
	d := newDeliverer(t, DelivererOptions{URL: app.URL, RetryFor: 200 * time.Millisecond, Metrics: m})
	res := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: []byte(`{}`)})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "503 Service Unavailable after ") {
		t.Fatalf("Err = %v, want the 503 and the attempts", res.Err)
	}
	if res.Attempts < 3 || int(n.Load()) != res.Attempts {
		t.Errorf("Attempts = %d, app saw %d: want several, all seen", res.Attempts, n.Load())
	}
	if got := testutil.ToFloat64(m.givenUp.WithLabelValues("event")); got != 1 {
		t.Errorf("siobridge_webhook_given_up_total{kind=event} = %v, want 1", got)
	}
	if s := d.Settled(); s != (Settled{GivenUp: 1}) {
		t.Errorf("Settled = %+v, want one given up", s)
	}
}

// TestNoCapOnAttempts: MaxAttempts 0 retries as long as RetryFor allows, past any count.
func TestNoCapOnAttempts(t *testing.T) {
	const failures = 30
	var n atomic.Int32
	app := newApp(t, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) <= failures {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	res := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: []byte(`{}`)})
	if res.Err != nil || res.StatusCode != http.StatusOK || res.Attempts != failures+1 {
		t.Errorf("Result %d after %d attempts, err %v: want 200 after %d", res.StatusCode, res.Attempts, res.Err, failures+1)
	}
}

// TestConnectRetryForIsShort: a connect is given up after ConnectRetryFor while an event to
// the same failing app keeps being retried, and is delivered once the app is back.
func TestConnectRetryForIsShort(t *testing.T) {
	var up atomic.Bool
	app := newApp(t, func(w http.ResponseWriter, _ *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	m := NewMetrics(prometheus.NewRegistry())
	d := newDeliverer(t, DelivererOptions{URL: app.URL, ConnectRetryFor: 100 * time.Millisecond, Metrics: m})
	events := make(chan Result, 1)
	if err := d.Enqueue("event-key", &Delivery{Kind: KindEvent, Body: []byte(`{}`)}, func(r Result) { events <- r }); err != nil {
		t.Fatal(err)
	}
	res := deliver(t, d, "connect-key", &Delivery{Kind: KindConnect, Body: []byte(`{}`)})
	if res.Err == nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("connect: %d, %v: want given up on 503", res.StatusCode, res.Err)
	}
	select {
	case r := <-events:
		t.Fatalf("the event was settled with the connect (%d, %v): its retries last longer", r.StatusCode, r.Err)
	default:
	}
	up.Store(true)
	if r := receive(t, events, "the event"); r.Err != nil || r.StatusCode != http.StatusOK || r.Attempts < 2 {
		t.Errorf("event: %d after %d attempts, %v: want 200 after retries", r.StatusCode, r.Attempts, r.Err)
	}
	if got := testutil.ToFloat64(m.givenUp.WithLabelValues("connect")); got != 1 {
		t.Errorf("siobridge_webhook_given_up_total{kind=connect} = %v, want 1", got)
	}
	if s := d.Settled(); s != (Settled{Delivered: 1, GivenUp: 1}) {
		t.Errorf("Settled = %+v, want one delivered and one given up", s)
	}
}

// TestMaxAttemptsCaps: a cap on attempts gives up before RetryFor does.
func TestMaxAttemptsCaps(t *testing.T) {
	var n atomic.Int32
	app := newApp(t, func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, MaxAttempts: 3, RetryFor: time.Hour})
	res := deliver(t, d, "k", &Delivery{Kind: KindDisconnect, Body: []byte(`{}`)})
	if res.Attempts != 3 || n.Load() != 3 || res.Err == nil || !strings.HasSuffix(res.Err.Error(), "after 3 attempts") {
		t.Errorf("Attempts %d (app saw %d), Err %v: want given up after 3", res.Attempts, n.Load(), res.Err)
	}
}

// TestSettledCounts: Settled tells delivered, refused and given up apart.
func TestSettledCounts(t *testing.T) {
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get(HeaderType) {
		case "disconnect":
			w.WriteHeader(http.StatusForbidden)
		case "connect":
			w.WriteHeader(http.StatusNotImplemented)
		}
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL})
	for _, k := range []Kind{KindEvent, KindEvent, KindDisconnect, KindConnect} {
		deliver(t, d, "k", &Delivery{Kind: k, Body: []byte(`{}`)})
	}
	if s := d.Settled(); s != (Settled{Delivered: 2, Refused: 1, GivenUp: 1}) {
		t.Errorf("Settled = %+v, want 2 delivered, 1 refused, 1 given up", s)
	}
}
