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
	bufs        sync.Pool
}

func startHook(base time.Time) (*hookServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &hookServer{url: "http://" + ln.Addr().String() + "/hook", base: base}
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
	Type  string  `json:"type"`
	Event string  `json:"event"`
	Args  []int64 `json:"args"` // benchmark events: [step, seq, sent-ns]
	Ack   bool    `json:"ack"`
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
	var p hookPayload
	if err := json.Unmarshal(buf.Bytes(), &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch p.Type {
	case "connect":
		h.connects.Add(1)
	case "disconnect":
		h.disconnects.Add(1)
	case "event":
		h.events.Add(1)
		if p.Event == "ev" && len(p.Args) == 3 {
			if p.Args[0] == h.step.Load() {
				h.latency.Load().add(time.Since(h.base).Nanoseconds() - p.Args[2])
				h.received.Add(1)
			}
			if p.Ack {
				out := make([]byte, 0, 64)
				out = append(out, `{"ack":[`...)
				out = strconv.AppendInt(out, p.Args[0], 10)
				out = append(out, ',')
				out = strconv.AppendInt(out, p.Args[1], 10)
				out = append(out, ',')
				out = strconv.AppendInt(out, p.Args[2], 10)
				out = append(out, "]}"...)
				_, _ = w.Write(out)
				return
			}
		}
	}
	_, _ = w.Write([]byte("{}"))
}
