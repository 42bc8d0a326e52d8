package webhook

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// batchApp answers each batch of event webhooks with what reply returns for its payloads: a
// status and a body. Other webhooks get an empty 200.
func batchApp(t *testing.T, reply func(r *http.Request, ps []Payload) (int, string)) string {
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderType) != "batch" {
			return
		}
		body, _ := io.ReadAll(r.Body)
		var ps []Payload
		if err := json.Unmarshal(body, &ps); err != nil {
			t.Errorf("batch body %q: %v", body, err)
		}
		status, out := reply(r, ps)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, out)
	})
	return app.URL
}

// batchOf3 is a deliverer's options that send a socket's three events in one batch: the
// batch waits for them.
var batchOf3 = DelivererOptions{BatchMax: 3, BatchWait: waitLimit, RetryFor: 50 * time.Millisecond}

// sendThree has c emit three events asking for acks, e 1, e 2 and e 3.
func sendThree(c *socketiotest.Client) {
	for i := 1; i <= 3; i++ {
		c.Write(fmt.Sprintf(`42%d["e",%d]`, i, i))
	}
}

// TestBatchReplyArrayAppliesInOrder: each item of the reply array is the reply to the event
// at its place, and their actions apply in the batch's order.
func TestBatchReplyArrayAppliesInOrder(t *testing.T) {
	url := batchApp(t, func(_ *http.Request, ps []Payload) (int, string) {
		var out []string
		for _, p := range ps {
			var args []int
			_ = json.Unmarshal(p.Args, &args)
			out = append(out, fmt.Sprintf(`{"ack":[%d],"emit":[{"event":"n","args":[%d],"to":[%q]}]}`, args[0]*10, args[0], p.Socket.ID))
		}
		return http.StatusOK, "[" + strings.Join(out, ",") + "]"
	})
	h := newReplyHarness(t, url, batchOf3, KindEvent)
	c := socketiotest.Dial(t, h.ts.URL, "")
	c.Connect("/", "")
	sendThree(c)
	for i := 1; i <= 3; i++ {
		c.Expect(fmt.Sprintf(`43%d[%d]`, i, i*10))
		c.Expect(fmt.Sprintf(`42["n",%d]`, i))
	}
	if got := h.counter(h.metrics.replyErrs, KindEvent); got != 0 {
		t.Errorf("siobridge_webhook_reply_errors_total{kind=event} = %v, want 0", got)
	}
}

// TestBatchReplyOneObjectForAll: a reply that is one object applies to every event of the
// batch.
func TestBatchReplyOneObjectForAll(t *testing.T) {
	url := batchApp(t, func(*http.Request, []Payload) (int, string) { return http.StatusOK, `{"ack":["all"]}` })
	h := newReplyHarness(t, url, batchOf3, KindEvent)
	c := socketiotest.Dial(t, h.ts.URL, "")
	c.Connect("/", "")
	sendThree(c)
	for i := 1; i <= 3; i++ {
		c.Expect(fmt.Sprintf(`43%d["all"]`, i))
	}
}

// TestBatchReplyErrors: a reply array of the wrong length, a refusal and a batch given up
// answer each event's ack with an error, and the log and the metrics count each event.
func TestBatchReplyErrors(t *testing.T) {
	for _, tt := range []struct {
		name, ack  string
		status     int
		reply, log string
		replyErrs  float64
		givenUp    float64
	}{
		{"wrong length", `[{"error":"the application's reply could not be read"}]`, 200, `[{"ack":[1]}]`,
			`level=WARN msg="webhook: reply unreadable: its actions are not applied" delivery=`, 3, 0},
		{"refused", `[{"error":"not now"}]`, 403, `{"message":"not now"}`,
			`level=WARN msg="webhook: event refused by the app" delivery=`, 0, 0},
		{"given up", `[{"error":"the application failed"}]`, 503, ``,
			`level=ERROR msg="webhook: event given up" delivery=`, 0, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var batchID string
			url := batchApp(t, func(r *http.Request, _ []Payload) (int, string) {
				batchID = r.Header.Get(HeaderDelivery)
				return tt.status, tt.reply
			})
			h := newReplyHarness(t, url, batchOf3, KindEvent)
			c := socketiotest.Dial(t, h.ts.URL, "")
			c.Connect("/", "")
			sendThree(c)
			for i := 1; i <= 3; i++ {
				c.Expect(fmt.Sprintf(`43%d%s`, i, tt.ack))
			}
			if got := h.counter(h.metrics.replyErrs, KindEvent); got != tt.replyErrs {
				t.Errorf("siobridge_webhook_reply_errors_total{kind=event} = %v, want %v", got, tt.replyErrs)
			}
			if got := h.counter(h.metrics.givenUp, KindEvent); got != tt.givenUp {
				t.Errorf("siobridge_webhook_given_up_total{kind=event} = %v, want %v", got, tt.givenUp)
			}
			lines := 0
			for _, l := range h.log.All() {
				if strings.Contains(l, tt.log) && strings.Contains(l, "batch="+batchID) {
					lines++
				}
			}
			if lines != 3 {
				t.Errorf("%d log lines %q with batch=%s, want one per event:\n%s", lines, tt.log, batchID, h.log.String())
			}
		})
	}
}

// TestBatchSlowSocketHoldsOnlyItsOwn: while the app holds the batch with socket x's event,
// socket y's event is sent and acked; x's ack comes once the app lets its batch go.
func TestBatchSlowSocketHoldsOnlyItsOwn(t *testing.T) {
	g := newGate()
	held := make(chan struct{}, 1)
	url := batchApp(t, func(r *http.Request, ps []Payload) (int, string) {
		if ps[0].Event == "slow" {
			held <- struct{}{}
			g.wait(r)
		}
		return http.StatusOK, `{"ack":["done"]}`
	})
	h := newReplyHarness(t, url, DelivererOptions{BatchMax: 32, BatchWait: time.Millisecond}, KindEvent)
	g.openAtCleanup(t)
	x := socketiotest.Dial(t, h.ts.URL, "")
	x.Connect("/", "")
	y := socketiotest.Dial(t, h.ts.URL, "")
	y.Connect("/", "")
	x.Write(`421["slow"]`)
	receive(t, held, "x's batch at the app")
	y.Write(`421["fast"]`)
	y.Expect(`431["done"]`)
	g.open()
	x.Expect(`431["done"]`)
}
