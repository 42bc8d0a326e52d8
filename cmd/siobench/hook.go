package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// hookServer is the app side of the benchmark: it receives the servers' webhooks, admits
// every connect, answers events with an ack, and measures how long an event took from the
// client's send to its arrival here.
type hookServer struct {
	srv  *http.Server
	url  string
	base time.Time // the clock events carry their send time on (nanoseconds since base)

	step     atomic.Int64             // events of this step are counted; others are only answered
	received atomic.Int64             // events of the current step
	latency  atomic.Pointer[recorder] // send → webhook of the current step's events

	connects    atomic.Int64
	events      atomic.Int64
	disconnects atomic.Int64
	batches     atomic.Int64 // POSTs of batched event webhooks
	bufs        sync.Pool

	// outOfOrder counts benchmark events that came after a later one of their socket: each
	// client sends its events with increasing sequence numbers.
	outOfOrder atomic.Int64
	orderMu    sync.Mutex
	lastSeq    map[string]int64 // socket id → the highest sequence number seen
}

func startHook(base time.Time) (*hookServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &hookServer{url: "http://" + ln.Addr().String() + "/hook", base: base, lastSeq: make(map[string]int64)}
	h.latency.Store(newRecorder())
	h.step.Store(-1)
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = h.srv.Serve(ln) }()
	return h, nil
}

func (h *hookServer) close() { _ = h.srv.Close() }

// startStep counts and times the events of step s from now on.
func (h *hookServer) startStep(s int64) {
	h.received.Store(0)
	h.latency.Store(newRecorder())
	h.step.Store(s)
}

// hookPayload is the part of a webhook the benchmark reads.
type hookPayload struct {
	Type   string  `json:"type"`
	Event  string  `json:"event"`
	Args   []int64 `json:"args"` // benchmark events: [step, seq, sent-ns]
	Ack    bool    `json:"ack"`
	Socket struct {
		ID string `json:"id"`
	} `json:"socket"`
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf, _ := h.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer h.bufs.Put(buf)
	buf.Reset()
	if _, err := io.Copy(buf, r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("X-Siobridge-Type") == "batch" {
		// An array of event webhooks; the reply is an array of their replies, in order.
		var ps []hookPayload
		if err := json.Unmarshal(buf.Bytes(), &ps); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.batches.Add(1)
		out := make([]byte, 0, 16+64*len(ps))
		out = append(out, '[')
		for i := range ps {
			if i > 0 {
				out = append(out, ',')
			}
			out = h.handle(&ps[i], out)
		}
		_, _ = w.Write(append(out, ']'))
		return
	}
	var p hookPayload
	if err := json.Unmarshal(buf.Bytes(), &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, _ = w.Write(h.handle(&p, make([]byte, 0, 64)))
}

// handle counts one webhook and appends its reply to out.
func (h *hookServer) handle(p *hookPayload, out []byte) []byte {
	switch p.Type {
	case "connect":
		h.connects.Add(1)
	case "disconnect":
		h.disconnects.Add(1)
	case "event":
		h.events.Add(1)
		if p.Event == "ev" && len(p.Args) == 3 {
			h.checkOrder(p.Socket.ID, p.Args[1])
			if p.Args[0] == h.step.Load() {
				h.latency.Load().add(time.Since(h.base).Nanoseconds() - p.Args[2])
				h.received.Add(1)
			}
			if p.Ack {
				out = append(out, `{"ack":[`...)
				out = strconv.AppendInt(out, p.Args[0], 10)
				out = append(out, ',')
				out = strconv.AppendInt(out, p.Args[1], 10)
				out = append(out, ',')
				out = strconv.AppendInt(out, p.Args[2], 10)
				return append(out, "]}"...)
			}
		}
	}
	return append(out, "{}"...)
}

// checkOrder counts an event that comes after a later one of its socket. The same sequence
// number again is a redelivery (delivery is at least once), not a disorder.
func (h *hookServer) checkOrder(socket string, seq int64) {
	h.orderMu.Lock()
	defer h.orderMu.Unlock()
	last, ok := h.lastSeq[socket]
	switch {
	case ok && seq < last:
		h.outOfOrder.Add(1)
	case seq > last:
		h.lastSeq[socket] = seq
	}
}
