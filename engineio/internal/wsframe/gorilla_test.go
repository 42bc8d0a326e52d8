package wsframe

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// FuzzReaderVsGorilla feeds the same client byte stream, cut into the same reads (split gives
// their sizes in turn, each byte b a read of b+1 bytes; none: the stream at once), to a Reader
// and to gorilla's server-side reader (a *websocket.Conn from Upgrader.Upgrade, read with
// ReadMessage until it fails), both limited to maxPayload = limit+1 bytes, and requires the
// same transcript of each (see transcript):
//
//   - the same whole messages, text or binary, with the same bytes, in the same order as the
//     pings answered and the pongs received between them: a ping's answer is the pong gorilla
//     writes with its default handler, and for the Reader the OpPing event, which engineio
//     answers with a pong of the same data; a received pong is gorilla's pong handler called,
//     and the Reader's OpPong event;
//   - the same end: the stream used up (the Reader returned no error; gorilla's close error
//     1006, which engineio reports for the Reader too), the same close status and text for a
//     close frame, websocket.ErrReadLimit from both, or a protocol error with the same text;
//   - the same close frame written in answer (gorilla's, and CloseReply's), or none from
//     either.
//
// What differs legitimately, and so is not compared:
//
//   - gorilla hands a message's data out as it arrives, and ReadMessage returns the part it
//     had read with an error that cut the message short; the Reader returns whole messages
//     only. Data that ended in an error is left out of both transcripts.
//   - gorilla refuses a data frame whose 64-bit length has its top bit set, or whose length
//     added to the message's so far overflows an int64, with ErrReadLimit and no close frame
//     (a check made before the read limit's, which sends 1009); the Reader answers every
//     message over its limit with 1009, these too (gorillaSilentOnLimit).
//
// Whether each side reads the stream the same cut into other reads is FuzzFrameReader's part.
func FuzzReaderVsGorilla(f *testing.F) {
	key := [4]byte{0xa1, 0x00, 0x5c, 0xff}
	frames := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	f.Add(clientFrame(true, OpText, []byte("hello"), key), []byte(nil), uint16(1000))
	f.Add(frames(
		clientFrame(false, OpBinary, []byte{0, 1, 2}, key),
		clientFrame(true, OpPing, []byte("p"), key),
		clientFrame(true, OpContinuation, []byte{3}, key),
		clientFrame(true, OpClose, []byte{0x03, 0xe8, 'o', 'k'}, key),
	), []byte{0, 3, 1}, uint16(10))
	f.Fuzz(func(t *testing.T, stream, split []byte, limit uint16) {
		maxPayload := int64(limit) + 1
		want := gorillaTranscript(t, stream, split, maxPayload)
		got := readerTranscript(t, stream, split, maxPayload)
		if slices.Equal(got.events, want.events) && got.end == want.end && got.reply == want.reply {
			return
		}
		if slices.Equal(got.events, want.events) && got.end == want.end && got.end == endReadLimit &&
			want.reply == noReply && got.reply == tooBigReply && gorillaSilentOnLimit(stream, maxPayload) {
			return
		}
		t.Fatalf("stream %x in reads of %v, limit %d:\nwsframe: %s\ngorilla: %s", stream, split, maxPayload, got, want)
	})
}

// transcript is what a server reading a client's stream does, as FuzzReaderVsGorilla
// compares it.
type transcript struct {
	// events are the whole messages ("text", "binary"), the pongs written in answer to pings
	// ("wrote pong") and the pongs received ("pong"), in order, each with its data quoted.
	events []string
	// end is how reading ended: endOfStream, endReadLimit, "close <code> <text>" or the
	// protocol error's text.
	end string
	// reply is the close frame written in answer, its payload quoted, or noReply.
	reply string
}

const (
	endOfStream  = "end of stream"
	endReadLimit = "read limit"
	noReply      = "no close frame"
)

var tooBigReply = closeFrame([]byte{0x03, 0xf1}) // 1009

func closeFrame(payload []byte) string { return fmt.Sprintf("close frame %q", payload) }

func (tr transcript) String() string {
	return fmt.Sprintf("%s; %s; %s", strings.Join(tr.events, ", "), tr.end, tr.reply)
}

// end names how reading ended with err: what both readers mean by it reads the same.
func end(err error) string {
	var ce *websocket.CloseError
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return endReadLimit
	case errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure:
		return endOfStream // gorilla's io.ErrUnexpectedEOF, as engineio's errWSEOF
	case errors.As(err, &ce):
		return fmt.Sprintf("close %d %q", ce.Code, ce.Text)
	}
	return err.Error()
}

// readerTranscript reads stream with a Reader, as engineio's poller does: each read's bytes
// through Next until they are used up, a pong written for each ping, and the close frame of
// CloseReply once Next fails.
func readerTranscript(t *testing.T, stream, split []byte, maxPayload int64) transcript {
	var tr transcript
	r := NewReader(maxPayload)
	for _, chunk := range chunks(stream, split) {
		for len(chunk) > 0 {
			n, ev, err := r.Next(chunk)
			if n == 0 && ev.Op == 0 && err == nil {
				t.Fatalf("the reader consumed nothing of %x", chunk)
			}
			chunk = chunk[n:]
			if err != nil {
				tr.end, tr.reply = end(err), noReply
				if payload, ok := CloseReply(err); ok {
					tr.reply = closeFrame(payload)
				}
				return tr
			}
			switch ev.Op {
			case 0:
			case OpText:
				tr.events = append(tr.events, fmt.Sprintf("text %q", ev.Data))
			case OpBinary:
				tr.events = append(tr.events, fmt.Sprintf("binary %q", ev.Data))
			case OpPing:
				tr.events = append(tr.events, fmt.Sprintf("wrote pong %q", ev.Data))
			case OpPong:
				tr.events = append(tr.events, fmt.Sprintf("pong %q", ev.Data))
			default:
				t.Fatalf("event with opcode %d", ev.Op)
			}
			if (ev.Op == OpText || ev.Op == OpBinary) && int64(len(ev.Data)) > maxPayload {
				t.Fatalf("a %d-byte message passed the %d-byte limit", len(ev.Data), maxPayload)
			}
		}
	}
	tr.end, tr.reply = endOfStream, noReply
	return tr
}

// gorillaTranscript reads stream with gorilla's server-side reader, upgraded from a request
// on a connection whose reads are stream in the reads split gives, and whose writes are
// recorded. Its handlers are gorilla's own but for the pong handler, which only records.
func gorillaTranscript(t *testing.T, stream, split []byte, maxPayload int64) transcript {
	var tr transcript
	nc := &scriptedConn{reads: chunks(stream, split)}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	// engineio's upgrader's reading side: a 256-byte read buffer, no compression.
	up := websocket.Upgrader{ReadBufferSize: 256}
	conn, err := up.Upgrade(&hijackWriter{conn: nc}, req, nil)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	nc.onWrite = func(frame []byte) {
		// The server's frames: unmasked control frames, one per write.
		if len(frame) < 2 || int(frame[1]) != len(frame)-2 {
			t.Fatalf("gorilla wrote %x, not one unmasked control frame", frame)
		}
		switch payload := frame[2:]; frame[0] {
		case 0x80 | OpPong:
			tr.events = append(tr.events, fmt.Sprintf("wrote pong %q", payload))
		case 0x80 | OpClose:
			if tr.reply != "" {
				t.Fatalf("gorilla wrote a second close frame %x", frame)
			}
			tr.reply = closeFrame(payload)
		default:
			t.Fatalf("gorilla wrote %x", frame)
		}
	}
	conn.SetReadLimit(maxPayload)
	conn.SetPongHandler(func(data string) error {
		tr.events = append(tr.events, fmt.Sprintf("pong %q", data))
		return nil
	})
	for {
		op, data, err := conn.ReadMessage()
		if err != nil {
			tr.end = end(err)
			break
		}
		switch op {
		case websocket.TextMessage:
			tr.events = append(tr.events, fmt.Sprintf("text %q", data))
		case websocket.BinaryMessage:
			tr.events = append(tr.events, fmt.Sprintf("binary %q", data))
		}
	}
	if tr.reply == "" {
		tr.reply = noReply
	}
	return tr
}

// gorillaSilentOnLimit reports whether gorilla refuses the first message of stream over
// maxPayload without a close frame: when the data frame that takes it over has a 64-bit
// length with its top bit set, or one that, added to the message's length so far, overflows
// an int64. The frames before it are valid, masked frames (both readers read them).
func gorillaSilentOnLimit(stream []byte, maxPayload int64) bool {
	var msgLen uint64
	for len(stream) >= 2 {
		fin, op := stream[0]&0x80 != 0, stream[0]&0x0f
		h, size := 2, uint64(stream[1]&0x7f)
		switch size {
		case 126:
			if len(stream) < 4 {
				return false
			}
			h, size = 4, uint64(stream[2])<<8|uint64(stream[3])
		case 127:
			if len(stream) < 10 {
				return false
			}
			h, size = 10, 0
			for _, b := range stream[2:10] {
				size = size<<8 | uint64(b)
			}
		}
		if op < OpClose {
			if size > math.MaxInt64 || msgLen+size > math.MaxInt64 {
				return true
			}
			if msgLen+size > uint64(maxPayload) {
				return false
			}
			msgLen += size
			if fin {
				msgLen = 0
			}
		}
		h += 4 // the mask key
		if len(stream) < h || uint64(len(stream)-h) < size {
			return false
		}
		stream = stream[h+int(size):]
	}
	return false
}

// chunks cuts stream into reads whose sizes split gives in turn (b: b+1 bytes), or leaves it
// whole.
func chunks(stream, split []byte) [][]byte {
	if len(split) == 0 {
		if len(stream) == 0 {
			return nil
		}
		return [][]byte{stream}
	}
	var cs [][]byte
	for i := 0; len(stream) > 0; i++ {
		n := min(int(split[i%len(split)])+1, len(stream))
		cs = append(cs, stream[:n])
		stream = stream[n:]
	}
	return cs
}

// scriptedConn is a client connection without a network: its reads return reads in turn,
// then io.EOF; its writes after the handshake go to onWrite.
type scriptedConn struct {
	reads   [][]byte
	onWrite func([]byte)
}

func (c *scriptedConn) Read(p []byte) (int, error) {
	if len(c.reads) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.reads[0])
	if c.reads[0] = c.reads[0][n:]; len(c.reads[0]) == 0 {
		c.reads = c.reads[1:]
	}
	return n, nil
}

func (c *scriptedConn) Write(p []byte) (int, error) {
	if c.onWrite != nil { // nil during the handshake, whose response is not recorded
		c.onWrite(bytes.Clone(p))
	}
	return len(p), nil
}

func (c *scriptedConn) Close() error                     { return nil }
func (c *scriptedConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptedConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptedConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptedConn) SetWriteDeadline(time.Time) error { return nil }

// hijackWriter is the http.ResponseWriter of an upgrade: it hands over conn when hijacked.
type hijackWriter struct {
	conn   net.Conn
	header http.Header
}

func (w *hijackWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *hijackWriter) Write([]byte) (int, error) {
	return 0, errors.New("hijackWriter: the upgrade answered with a body")
}

func (w *hijackWriter) WriteHeader(int) {}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}
