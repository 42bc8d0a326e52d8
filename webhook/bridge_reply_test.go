package webhook

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// replyHarness is a Socket.IO server bridged to an app whose replies a test chooses.
type replyHarness struct {
	srv     *socketio.Server
	ts      *httptest.Server
	metrics *Metrics
	log     *testkit.Lines
}

// newReplyHarness bridges a server to url (the app's, or any address), with a debug log,
// sending the webhooks of kinds (all of them when none are given).
func newReplyHarness(t *testing.T, url string, opts DelivererOptions, kinds ...Kind) *replyHarness {
	if len(kinds) == 0 {
		kinds = []Kind{KindConnect, KindEvent, KindDisconnect}
	}
	h := &replyHarness{metrics: NewMetrics(prometheus.NewRegistry()), log: &testkit.Lines{}}
	opts.URL, opts.Metrics = url, h.metrics
	d := newDeliverer(t, opts)
	h.srv = socketio.NewServer(socketio.Options{})
	NewBridge(BridgeOptions{
		Server: h.srv, Deliverer: d, Kinds: kinds,
		Metrics: h.metrics, Logger: slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	h.ts = httptest.NewServer(h.srv)
	t.Cleanup(func() {
		h.srv.Close()
		h.ts.Close()
	})
	return h
}

// replyApp answers each webhook with what reply returns for its payload: a status and a body.
func replyApp(t *testing.T, reply func(p Payload) (int, string)) *httptest.Server {
	return newApp(t, func(w http.ResponseWriter, r *http.Request) {
		var p Payload
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("webhook body %q: %v", body, err)
		}
		status, out := reply(p)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, out)
	})
}

func (h *replyHarness) counter(c *prometheus.CounterVec, kind Kind) float64 {
	return testutil.ToFloat64(c.WithLabelValues(string(kind)))
}

// TestEventAckErrors: whenever the app's answer cannot give an event its ack, the client's
// callback fires all the same, with an error saying why, and the log and metrics show it.
func TestEventAckErrors(t *testing.T) {
	app := replyApp(t, func(p Payload) (int, string) {
		switch p.Event {
		case "down":
			return http.StatusServiceUnavailable, ""
		case "forbidden":
			return http.StatusForbidden, `{"message":"not in this room"}`
		case "bad":
			return http.StatusBadRequest, ""
		case "garbled":
			return http.StatusOK, `{"ack":[1`
		case "array":
			return http.StatusOK, `[{"ack":[1]}]`
		case "wrong-type":
			return http.StatusOK, `{"ack":"yes"}`
		case "bad-binary":
			return http.StatusOK, `{"ack":[{"$binary":"%%%"}]}`
		}
		return http.StatusOK, `{"ack":["fine"]}`
	})
	h := newReplyHarness(t, app.URL, DelivererOptions{RetryFor: 50 * time.Millisecond})
	c := socketiotest.Dial(t, h.ts.URL, "")
	c.Connect("/", "")
	for i, tt := range []struct{ event, ack string }{
		{"ok", `["fine"]`},
		{"down", `[{"error":"the application failed"}]`},
		{"forbidden", `[{"error":"not in this room"}]`},
		{"bad", `[{"error":"the event was refused by the application"}]`},
		{"garbled", `[{"error":"the application's reply could not be read"}]`},
		{"array", `[{"error":"the application's reply could not be read"}]`},
		{"wrong-type", `[{"error":"the application's reply could not be read"}]`},
		{"bad-binary", `[{"error":"the application's reply could not be read"}]`},
	} {
		id := string(rune('1' + i))
		c.Write(`42` + id + `["` + tt.event + `"]`)
		c.Expect(`43` + id + tt.ack)
	}
	if got := h.counter(h.metrics.givenUp, KindEvent); got != 1 {
		t.Errorf("siobridge_webhook_given_up_total{kind=event} = %v, want 1 (down)", got)
	}
	if got := h.counter(h.metrics.replyErrs, KindEvent); got != 4 {
		t.Errorf("siobridge_webhook_reply_errors_total{kind=event} = %v, want 4 (garbled, array, wrong-type, bad-binary)", got)
	}
	log := h.log.String()
	for _, want := range []string{
		`level=ERROR msg="webhook: event given up" delivery=`,
		`event=down attempts=`,
		`msg="webhook: event refused by the app"`, `status=403 message="not in this room"`,
		`msg="webhook: reply unreadable: its actions are not applied"`,
		`the reply is a JSON array: it must be a JSON object of actions`,
		`errors="\"ack\": must be an array of the ack's arguments, such as [true], got a string"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestAckErrorUnreachable: an app that cannot be reached gives an event's ack, and a
// connect's refusal, their own error.
func TestAckErrorUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/hook"
	ln.Close() // nothing listens there: connections are refused
	opts := DelivererOptions{RetryFor: 50 * time.Millisecond, ConnectRetryFor: 50 * time.Millisecond}

	h := newReplyHarness(t, url, opts, KindEvent)
	c := socketiotest.Dial(t, h.ts.URL, "")
	c.Connect("/", "")
	c.Write(`421["e"]`)
	c.Expect(`431[{"error":"the application could not be reached"}]`)
	if log := h.log.String(); !strings.Contains(log, `msg="webhook: event given up"`) || !strings.Contains(log, "connection refused") {
		t.Errorf("log does not say the event was given up, and why:\n%s", log)
	}

	h = newReplyHarness(t, url, opts, KindConnect)
	c = socketiotest.Dial(t, h.ts.URL, "")
	c.Write("40")
	c.Expect(`44{"message":"Connection refused: the application could not be reached"}`)
	if log := h.log.String(); !strings.Contains(log, `msg="webhook: connect given up: the application could not be reached"`) ||
		!strings.Contains(log, "connection refused") {
		t.Errorf("log does not say the connect was given up, and why:\n%s", log)
	}
}

// TestReplyUnknownKeys: a reply's unknown keys and unreadable emit items are reported by
// name, with what was perhaps meant, and its valid actions still apply.
func TestReplyUnknownKeys(t *testing.T) {
	app := replyApp(t, func(p Payload) (int, string) {
		if p.Type != KindEvent {
			return http.StatusOK, ""
		}
		return http.StatusOK, `{"acks":[1],"ack":[true],"join":["r1"],"disconect":true,` +
			`"emit":[{"event":"x","argz":[1]},{"event":"y","args":[2]},{"event":"z","to":"r1"}]}`
	})
	h := newReplyHarness(t, app.URL, DelivererOptions{})
	c := socketiotest.Dial(t, h.ts.URL, "")
	sid := c.Connect("/", "")
	c.Write(`421["e"]`)
	c.Expect(`431[true]`)
	c.Expect(`42["y",2]`)
	if rooms := h.srv.Of("/").Socket(sid).Rooms(); !slices.Contains(rooms, "r1") {
		t.Errorf("socket rooms %v: the join did not apply", rooms)
	}
	if got := h.counter(h.metrics.replyErrs, KindEvent); got != 1 {
		t.Errorf("siobridge_webhook_reply_errors_total{kind=event} = %v, want 1", got)
	}
	log := h.log.String()
	for _, want := range []string{
		`msg="webhook: reply has errors: the other actions apply" delivery=`,
		`unknown key \"acks\": did you mean \"ack\"?`,
		`unknown key \"disconect\": did you mean \"disconnect\"?`,
		`unknown key \"emit\"[0].\"argz\": did you mean \"args\"?`,
		`\"emit\"[2]: \"to\" must be an array of strings, got a string`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	// The socket is still connected (the misspelt disconnect did not apply).
	c.Write(`422["e"]`)
	c.Expect(`432[true]`)
}

// TestConnectRefusals: a connect the app refuses is logged at info with the status, the
// message, the socket and the address; a 5xx is "the application failed", not "could not be
// reached".
func TestConnectRefusals(t *testing.T) {
	app := replyApp(t, func(p Payload) (int, string) {
		if p.Socket.Handshake != nil && strings.Contains(string(p.Socket.Handshake.Auth), "fail") {
			return http.StatusInternalServerError, ""
		}
		return http.StatusUnauthorized, `{"message":"bad signature"}`
	})
	h := newReplyHarness(t, app.URL, DelivererOptions{ConnectRetryFor: 50 * time.Millisecond})
	c := socketiotest.Dial(t, h.ts.URL, "")
	c.Write("40")
	c.Expect(`44{"message":"bad signature"}`)
	log := h.log.String()
	if !strings.Contains(log, `level=INFO msg="webhook: connect refused by the app" delivery=`) ||
		!strings.Contains(log, `address=127.0.0.1 status=401 message="bad signature"`) {
		t.Errorf("log does not show the refusal with its status, message and address:\n%s", log)
	}

	c.Write(`40{"mode":"fail"}`)
	c.Expect(`44{"message":"Connection refused: the application failed"}`)
	if log := h.log.String(); !strings.Contains(log, `msg="webhook: connect given up: the application failed"`) ||
		!strings.Contains(log, "status=500") {
		t.Errorf("log does not say the app failed the connect:\n%s", log)
	}
	if got := h.counter(h.metrics.givenUp, KindConnect); got != 1 {
		t.Errorf("siobridge_webhook_given_up_total{kind=connect} = %v, want 1", got)
	}
}
