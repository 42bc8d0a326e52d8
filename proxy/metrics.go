package proxy

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/siobridge/siobridge/engineio"
	"github.com/siobridge/siobridge/socketio"
)

// Metrics holds siobridge's Prometheus collectors for the API, the reverse proxy and the
// Socket.IO server. A nil *Metrics is valid and records nothing.
type Metrics struct {
	apiRequests   *prometheus.CounterVec
	eventsOut     *prometheus.CounterVec
	proxyRequests *prometheus.CounterVec
	proxyErrors   prometheus.Counter
	limitHits     *prometheus.CounterVec
}

// limitSettings maps the limits engineio and socketio report to the names of the settings
// that set them, which siobridge_limit_hits_total is labelled with.
var limitSettings = map[string]string{
	engineio.LimitSessions:          "max_connections",
	engineio.LimitSessionsPerAddr:   "max_connections_per_ip",
	engineio.LimitHandshakeRate:     "handshakes_per_second_per_ip",
	engineio.LimitSendQueue:         "max_queued_messages",
	engineio.LimitPayload:           "max_payload",
	engineio.LimitOrigin:            "cors_origins",
	socketio.LimitEventRate:         "events_per_second_per_socket",
	socketio.LimitRooms:             "max_rooms_per_socket",
	socketio.LimitNamespaces:        "max_namespaces_per_connection",
	socketio.LimitDynamicNamespaces: "max_dynamic_namespaces",
	socketio.LimitAttachments:       "max_attachments",
}

// LimitNames lists the settings siobridge_limit_hits_total counts hits of: their series start
// at 0.
var LimitNames = func() []string {
	names := make([]string, 0, len(limitSettings))
	for _, setting := range limitSettings {
		names = append(names, setting)
	}
	slices.Sort(names)
	return names
}()

// NewMetrics makes the collectors and registers them with reg (none when reg is nil). With
// srv, the connection gauges are read from srv at each scrape, so they cost nothing between
// scrapes. It panics if reg already holds collectors of the same names, as
// prometheus.MustRegister does.
func NewMetrics(reg prometheus.Registerer, srv *socketio.Server) *Metrics {
	m := &Metrics{
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siobridge_api_requests_total",
			Help: "REST API requests, by route pattern (\"unmatched\" for unknown paths) and HTTP status code.",
		}, []string{"route", "code"}),
		eventsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siobridge_events_out_total",
			Help: "Events emitted to Socket.IO clients, counted once per socket reached, by namespace.",
		}, []string{"namespace"}),
		proxyRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siobridge_proxy_requests_total",
			Help: "Requests reverse-proxied to the app, by HTTP status code (101 for WebSocket upgrades).",
		}, []string{"code"}),
		proxyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "siobridge_proxy_errors_total",
			Help: "Requests the reverse proxy could not complete: the app unreachable, timed out or broke the connection.",
		}),
	}
	m.limitHits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "siobridge_limit_hits_total",
		Help: "Times a client ran into a limit, by limit (the [limits] or [socketio] setting's name): a handshake refused, a connection closed (max_queued_messages: a client too slow to read; max_payload, max_attachments), an event dropped, a room or namespace refused.",
	}, []string{"limit"})
	for _, l := range LimitNames {
		m.limitHits.WithLabelValues(l)
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.apiRequests, m.eventsOut, m.proxyRequests, m.proxyErrors, m.limitHits)
	if srv != nil {
		reg.MustRegister(&connectionCollector{srv: srv})
	}
	return m
}

// LimitHit counts a client running into limit, under the name of the setting that sets it;
// it fits engineio.Options.OnLimit and socketio.Options.OnLimit, and takes the names of the
// limits internal/edge reports, which are already settings' names.
func (m *Metrics) LimitHit(limit string) {
	if m == nil {
		return
	}
	if setting, ok := limitSettings[limit]; ok {
		limit = setting
	}
	m.limitHits.WithLabelValues(limit).Inc()
}

// APIRequest counts an API request by route pattern and status code.
func (m *Metrics) APIRequest(route string, code int) {
	if m != nil {
		m.apiRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	}
}

// EventsEmitted counts an emit's sockets reached on this node, by namespace.
func (m *Metrics) EventsEmitted(namespace string, sockets int) {
	if m != nil && sockets > 0 {
		m.eventsOut.WithLabelValues(namespace).Add(float64(sockets))
	}
}

func (m *Metrics) proxyRequest(code int) {
	if m != nil {
		m.proxyRequests.WithLabelValues(strconv.Itoa(code)).Inc()
	}
}

func (m *Metrics) proxyError() {
	if m != nil {
		m.proxyErrors.Inc()
	}
}

var (
	connectionsDesc = prometheus.NewDesc("siobridge_connections",
		"Socket.IO sockets connected to this node, by namespace, current Engine.IO transport and Engine.IO protocol version (3: socket.io-client 2.x).",
		[]string{"namespace", "transport", "protocol"}, nil)
	sessionsDesc = prometheus.NewDesc("siobridge_engineio_sessions",
		"Open Engine.IO sessions (client connections) on this node.", nil, nil)
)

// connectionCollector reads the server's sockets at scrape time instead of tracking every
// connect and disconnect.
type connectionCollector struct {
	srv *socketio.Server
}

// Describe implements prometheus.Collector.
func (c *connectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connectionsDesc
	ch <- sessionsDesc
}

// Collect implements prometheus.Collector. Both transports and both protocol versions are
// reported for every namespace, zeros included, so that the series do not come and go with
// the clients.
func (c *connectionCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		transport string
		protocol  int
	}
	for _, ns := range c.srv.Namespaces() {
		counts := map[key]int{}
		for _, transport := range []string{engineio.TransportPolling, engineio.TransportWebSocket} {
			for _, protocol := range []int{3, 4} {
				counts[key{transport, protocol}] = 0
			}
		}
		for _, s := range ns.Sockets() {
			counts[key{s.Transport(), s.Protocol()}]++
		}
		for k, n := range counts {
			ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(n), ns.Name(), k.transport, strconv.Itoa(k.protocol))
		}
	}
	ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(c.srv.Engine().Len()))
}
