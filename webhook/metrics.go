package webhook

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the webhook package's Prometheus collectors: those of a [Deliverer] and
// those of a [Bridge]. One Metrics may serve several deliverers; their counts add up. A nil
// *Metrics is valid and records nothing.
type Metrics struct {
	// EventsIn counts the events received from Socket.IO clients, by namespace
	// (siobridge_events_in_total).
	EventsIn *prometheus.CounterVec
	// EventsOut counts the events emitted to Socket.IO clients, once per socket reached, by
	// namespace (siobridge_events_out_total).
	EventsOut *prometheus.CounterVec

	deliveries *prometheus.CounterVec
	attempts   *prometheus.CounterVec
	retries    *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	givenUp    *prometheus.CounterVec
	replyErrs  *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	pending    prometheus.Gauge

	// kinds holds the series of the known kinds, resolved once: a delivery then records
	// without a label lookup.
	kinds map[Kind]*kindMetrics
}

type kindMetrics struct {
	ok, refused, failed prometheus.Counter
	givenUp, replyErrs  prometheus.Counter
	attempts, retries   prometheus.Counter
	duration            prometheus.Observer
}

// The outcome label of siobridge_webhook_deliveries_total.
const (
	outcomeOK      = "ok"      // a 2xx reply
	outcomeRefused = "refused" // a final 4xx reply
	outcomeFailed  = "failed"  // Result.Err != nil
)

// The outcome label of siobridge_webhook_dropped_total: what became of a client's action whose
// webhook found its socket's queue full, or the webhooks stopped ([Bridge.Close]).
const (
	DropDisconnected = "disconnected" // the socket was disconnected ([webhook] queue_full = "disconnect")
	DropRejected     = "rejected"     // the event was refused, its ack answered with an error ("reject")
	DropDropped      = "dropped"      // a connect or disconnect webhook was not sent, or an event after Close
)

// NewMetrics makes the collectors and registers them with reg (none when reg is nil). The
// series of the three kinds start at 0. It panics, as prometheus.MustRegister does, if reg
// holds a different collector of the same name; a collector with the same name, labels and
// help already in reg is shared rather than registered twice.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siobridge_events_in_total",
			Help: "Events received from Socket.IO clients, by namespace.",
		}, []string{"namespace"}),
		EventsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siobridge_events_out_total",
			Help: "Events emitted to Socket.IO clients, counted once per socket reached, by namespace.",
		}, []string{"namespace"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siobridge_webhook_deliveries_total",
			Help: "Webhook deliveries settled, by kind and outcome: ok (a 2xx reply), refused (a final 4xx reply) or failed (no final reply: unreachable app, timeouts, 5xx after the retries, cancelled at shutdown).",
		}, []string{"kind", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siobridge_webhook_attempts_total",
			Help: "Webhook HTTP requests sent, first attempts and retries, by kind.",
		}, []string{"kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siobridge_webhook_retries_total",
			Help: "Webhook HTTP requests that were retries of an earlier attempt, by kind.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siobridge_webhook_dropped_total",
			Help: "Webhooks not sent because their socket's queue was full, by kind and outcome: disconnected (the socket was disconnected), rejected (the event was refused, its ack answered with an error), dropped (a connect or disconnect webhook not sent).",
		}, []string{"kind", "outcome"}),
		givenUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siobridge_webhook_given_up_total",
			Help: "Webhooks given up without a final reply from the app (unreachable, timeouts, 5xx once webhook.retry_for or webhook.retries ran out, cancelled at shutdown and not kept in the spool), by kind.",
		}, []string{"kind"}),
		replyErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siobridge_webhook_reply_errors_total",
			Help: "Webhook replies with an error in their actions (unreadable JSON, an unknown key, a wrong type), by kind; the valid actions of a readable reply still apply.",
		}, []string{"kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "siobridge_webhook_duration_seconds",
			Help: "Time from a webhook's first attempt to its settlement, retries and their waits included, by kind.",
			// From a fast local app (5ms) to a delivery that waited out its retries.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"kind"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "siobridge_webhook_pending",
			Help: "Webhooks queued or in flight.",
		}),
	}
	if reg != nil {
		m.EventsIn = registerShared(reg, m.EventsIn)
		m.EventsOut = registerShared(reg, m.EventsOut)
		reg.MustRegister(m.deliveries, m.attempts, m.retries, m.dropped, m.givenUp, m.replyErrs, m.duration, m.pending)
	}
	m.kinds = make(map[Kind]*kindMetrics, 3)
	for _, k := range []Kind{KindConnect, KindEvent, KindDisconnect} {
		m.kinds[k] = m.resolve(k)
	}
	// The series that can happen start at 0, so a rate() over them works from the start.
	m.dropped.WithLabelValues(string(KindEvent), DropDisconnected)
	m.dropped.WithLabelValues(string(KindEvent), DropRejected)
	m.dropped.WithLabelValues(string(KindConnect), DropDropped)
	return m
}

// registerShared registers c, or returns the identical collector reg already holds:
// siobridge_events_out_total may be registered by another package of the same binary too.
func registerShared(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing
		}
	}
	panic(err)
}

func (m *Metrics) resolve(k Kind) *kindMetrics {
	l := string(k)
	return &kindMetrics{
		ok:        m.deliveries.WithLabelValues(l, outcomeOK),
		refused:   m.deliveries.WithLabelValues(l, outcomeRefused),
		failed:    m.deliveries.WithLabelValues(l, outcomeFailed),
		givenUp:   m.givenUp.WithLabelValues(l),
		replyErrs: m.replyErrs.WithLabelValues(l),
		attempts:  m.attempts.WithLabelValues(l),
		retries:   m.retries.WithLabelValues(l),
		duration:  m.duration.WithLabelValues(l),
	}
}

// kind returns k's series, nil when m is nil.
func (m *Metrics) kind(k Kind) *kindMetrics {
	if m == nil {
		return nil
	}
	if km, ok := m.kinds[k]; ok {
		return km
	}
	return m.resolve(k)
}

func (m *Metrics) attempt(k Kind, retry bool) {
	if km := m.kind(k); km != nil {
		km.attempts.Inc()
		if retry {
			km.retries.Inc()
		}
	}
}

// Dropped counts a webhook of kind k not sent because its queue was full, with what became of
// the client's action: one of the Drop* outcomes.
func (m *Metrics) Dropped(k Kind, outcome string) {
	if m != nil {
		m.dropped.WithLabelValues(string(k), outcome).Inc()
	}
}

func (m *Metrics) settled(r *Result) {
	km := m.kind(r.Delivery.Kind)
	if km == nil {
		return
	}
	switch {
	case r.Err != nil:
		km.failed.Inc()
		if !r.Kept {
			km.givenUp.Inc()
		}
	case r.StatusCode >= 200 && r.StatusCode <= 299:
		km.ok.Inc()
	default:
		km.refused.Inc()
	}
	if r.Attempts > 0 {
		km.duration.Observe(r.Duration.Seconds())
	}
}

// replyError counts a reply of a kind-k webhook with an error in its actions.
func (m *Metrics) replyError(k Kind) {
	if km := m.kind(k); km != nil {
		km.replyErrs.Inc()
	}
}

func (m *Metrics) addPending(n int) {
	if m != nil {
		m.pending.Add(float64(n))
	}
}
