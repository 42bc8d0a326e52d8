package engineio

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWebSocketFraming: the writer frames messages itself, several in one writev; every length
// form of the frame header (7-bit, 16-bit, 64-bit) reaches a standard client intact and in
// order, text and binary, also when many are queued at once.
func TestWebSocketFraming(t *testing.T) {
	ts := newTestServer(t, Options{MaxPayload: 1 << 20})
	c := dialWS(t, ts, "")
	_, open := readWS(t, c)
	sid := parseOpen(t, open).SID
	sess := ts.eio.Session(sid)
	if sess == nil {
		t.Fatal("no session")
	}
	var want []*Message
	for i, n := range []int{0, 1, 124, 125, 126, 127, 1000, 65535, 65536, 70000} {
		data := bytes.Repeat([]byte{byte('a' + i)}, n)
		want = append(want, NewMessage(data, false), NewMessage(data, true))
	}
	// More than framesPerWrite messages, queued in one Send: several writevs.
	for i := range 3 * framesPerWrite {
		want = append(want, NewMessage([]byte(strings.Repeat("z", i)), false))
	}
	if err := sess.Send(want...); err != nil {
		t.Fatal(err)
	}
	for i, m := range want {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		// A text message's frame is "4" and its data; a binary one's the bytes as they are.
		wantTyp, wantData := websocket.TextMessage, m.frame
		if m.binary {
			wantTyp = websocket.BinaryMessage
		}
		if typ != wantTyp || !bytes.Equal(got, wantData) {
			t.Fatalf("message %d: got type %d, %d bytes; want type %d, %d bytes", i, typ, len(got), wantTyp, len(wantData))
		}
	}
}

// TestWebSocketControlFrames: a client's ping is answered with a pong carrying its data, and
// a client's close frame is echoed before the connection ends, while the writer is idle.
func TestWebSocketControlFrames(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialWS(t, ts, "")
	readWS(t, c) // open
	pong := make(chan string, 1)
	c.SetPongHandler(func(data string) error {
		pong <- data
		return nil
	})
	if err := c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Pong handlers run inside a read; an echoed message makes the read return after it.
	_ = c.WriteMessage(websocket.TextMessage, []byte("4after"))
	if _, msg := readWS(t, c); msg != "4after" {
		t.Fatalf("echo %q", msg)
	}
	select {
	case data := <-pong:
		if data != "are you there" {
			t.Fatalf("pong %q", data)
		}
	default:
		t.Fatal("no pong before the next message")
	}

	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("after a close frame: %v, want the close echoed with code 1001", err)
	}
	if ev := ts.waitClose(t); ev.reason != ReasonTransportClose {
		t.Fatalf("close %+v", ev)
	}
}
