package socketio_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/siobridge/siobridge/engineio"
)

// engineEcho is the server of the official Engine.IO test suite: every message goes back to
// its session. It records messages (Data) and closes (Reason, Err) in order.
type engineEcho struct {
	sess *engineio.Session
	rec  *recorder
}

func (h *engineEcho) OnMessage(data []byte, binary bool) {
	h.rec.add(record{Kind: "message", SocketID: h.sess.ID(), Data: string(data)})
	_ = h.sess.Send(engineio.NewMessage(data, binary))
}

func (h *engineEcho) OnClose(reason string, err error) {
	h.rec.add(record{Kind: "close", SocketID: h.sess.ID(), Reason: reason, Err: err})
}

// startEngineSuiteServer starts an Engine.IO echo server on /socket.io/ with its polls held by
// the poller (hold, as siobridge runs by default) or waiting in their handlers, and the
// endpoint enginesuite.js orders its requests with: GET /pending?sid=ID answers 204 once that
// session has a GET pending (404 for no such session, 504 after 5 s).
func startEngineSuiteServer(t *testing.T, hold bool) (string, *engineio.Server, *recorder) {
	t.Helper()
	rec := newRecorder()
	handoff := engineio.NewHandoffListener(nil)
	// No ping in the middle of a case's messages.
	opts := engineio.Options{PingInterval: time.Minute, PingTimeout: time.Minute}
	if hold {
		opts.PollingHandoff, opts.PollingPath = handoff.Handoff, "/socket.io/"
	}
	eio := engineio.NewServer(opts, func(s *engineio.Session) engineio.SessionHandler {
		return &engineEcho{sess: s, rec: rec}
	})
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", eio)
	mux.HandleFunc("GET /pending", func(w http.ResponseWriter, r *http.Request) {
		sess := eio.Session(r.URL.Query().Get("sid"))
		if sess == nil {
			http.Error(w, "no such session", http.StatusNotFound)
			return
		}
		// SendVolatile with nothing to send reports whether the transport could write now:
		// for a polling session, whether a GET is pending. The server has no event for it.
		deadline := time.Now().Add(5 * time.Second)
		for !sess.SendVolatile() {
			if time.Now().After(deadline) {
				http.Error(w, "no GET pending after 5s", http.StatusGatewayTimeout)
				return
			}
			time.Sleep(time.Millisecond)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	hs := httptest.NewServer(mux)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Config.Serve(handoff)
	}()
	t.Cleanup(func() {
		eio.Close()
		hs.Close()
		handoff.Close()
		<-served
	})
	return hs.URL, eio, rec
}

// TestInteropEngineSuite runs the cases of the official Engine.IO test suite that need a real
// client (enginesuite.js, with ws and fetch) against the Engine.IO server, its polls held by
// the poller and waiting in their handlers.
func TestInteropEngineSuite(t *testing.T) {
	for _, path := range []struct {
		name string
		hold bool
	}{{"held", true}, {"handler", false}} {
		t.Run(path.name+"/forced-close", func(t *testing.T) {
			url, eio, rec := startEngineSuiteServer(t, path.hold)
			res := runClient(t, "node-engine", url, "forced-close")
			if p := res.step(t, "poll"); p["status"] != 200.0 || p["body"] != "6" {
				t.Errorf("the pending GET: %v, want 200 \"6\"", p)
			}
			if p := res.step(t, "next-poll"); p["status"] != 400.0 {
				t.Errorf("the next GET: %v, want 400", p)
			}
			recs := rec.waitFor(t, nil, "the session's close", countRecords("close", "", 1))
			if len(recs) != 1 || recs[0].Reason != engineio.ReasonTransportClose || recs[0].Err != nil {
				t.Errorf("server records:\n%s\nwant one close, %q without error", dumpRecords(recs), engineio.ReasonTransportClose)
			}
			if n := eio.Len(); n != 0 {
				t.Errorf("%d sessions open after the close", n)
			}
		})
		t.Run(path.name+"/second-websocket", func(t *testing.T) {
			url, _, rec := startEngineSuiteServer(t, path.hold)
			res := runClient(t, "node-engine", url, "second-websocket")
			second := res.step(t, "second")
			if second["opened"] != true || second["error"] != nil || second["code"] != 1005.0 || second["wasClean"] != true {
				t.Errorf("the second WebSocket: %v, want opened, then closed cleanly with 1005", second)
			}
			if a := res.step(t, "after"); a["echo"] != "4hello" {
				t.Errorf("the echo after the second WebSocket: %v", a)
			}
			// The session ends only when the client closes its WebSocket, after both messages.
			recs := rec.waitFor(t, nil, "the session's close", countRecords("close", "", 1))
			var got []string
			for _, r := range recs {
				if r.Kind == "message" {
					got = append(got, r.Data.(string))
				} else {
					got = append(got, r.Kind+" "+r.Reason)
				}
			}
			checkEqual(t, "server records", got, []string{"before", "hello", "close " + engineio.ReasonTransportClose})
		})
	}
}
