package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/gorilla/websocket"
)

// clientFrame builds a client's frame: masked with key, FIN as told, the shortest length form.
func clientFrame(fin bool, op byte, payload []byte, key [4]byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i&3])
	}
	return f
}

var testKey = [4]byte{0x12, 0x34, 0x56, 0x78}

// feed gives the reader data in chunks of at most step bytes (all at once when step is 0)
// and returns the events in order, and the error that stopped it, if any.
func feed(r *Reader, data []byte, step int) ([]Event, error) {
	var evs []Event
	for len(data) > 0 {
		chunk := data
		if step > 0 && len(chunk) > step {
			chunk = chunk[:step]
		}
		data = data[len(chunk):]
		for len(chunk) > 0 {
			n, ev, err := r.Next(chunk)
			if n == 0 && err == nil && ev.Op == 0 {
				return evs, errors.New("the reader consumed nothing")
			}
			chunk = chunk[n:]
			if err != nil {
				return evs, err
			}
			if ev.Op != 0 {
				// A control frame's payload is valid until the next call: keep a copy.
				ev.Data = append([]byte{}, ev.Data...)
				evs = append(evs, ev)
			}
		}
	}
	return evs, nil
}

func describe(evs []Event) string {
	var b bytes.Buffer
	for _, ev := range evs {
		fmt.Fprintf(&b, "[%d %q]", ev.Op, ev.Data)
	}
	return b.String()
}

// A stream with every length form, a fragmented message with control frames between its
// fragments, and empty frames, read whole, in chunks, and byte by byte, gives the same events.
func TestReaderStream(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789"), 7000) // 70000 bytes: the 64-bit length form
	mid := bytes.Repeat([]byte("x"), 300)            // the 16-bit form
	var stream []byte
	add := func(f []byte) { stream = append(stream, f...) }
	add(clientFrame(true, OpText, []byte("4hello"), testKey))
	add(clientFrame(true, OpBinary, mid, testKey))
	add(clientFrame(false, OpText, []byte("4frag"), testKey))
	add(clientFrame(true, OpPing, []byte("ping between fragments"), testKey))
	add(clientFrame(false, OpContinuation, []byte("-ment"), testKey))
	add(clientFrame(true, OpPong, nil, testKey))
	add(clientFrame(false, OpContinuation, nil, testKey))
	add(clientFrame(true, OpContinuation, []byte("ed"), testKey))
	add(clientFrame(true, OpBinary, long, [4]byte{0xff, 0, 0xa5, 1}))
	add(clientFrame(true, OpBinary, nil, testKey))
	want := []Event{
		{OpText, []byte("4hello")},
		{OpBinary, mid},
		{OpPing, []byte("ping between fragments")},
		{OpPong, []byte{}},
		{OpText, []byte("4frag-mented")},
		{OpBinary, long},
		{OpBinary, []byte{}},
	}
	for _, step := range []int{0, 1, 2, 3, 7, 13, 100, 4096} {
		r := NewReader(1 << 20)
		got, err := feed(&r, stream, step)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if describe(got) != describe(want) {
			t.Fatalf("step %d: events differ:\n got %.300s\nwant %.300s", step, describe(got), describe(want))
		}
		if !r.Idle() || r.msg != nil || r.ctl != nil {
			t.Fatalf("step %d: the reader holds state after whole frames: %+v", step, r)
		}
	}
}

// Between reads, the reader keeps a partial frame's bytes only: a header in its array, a
// payload in a buffer that grows with what arrived, never past the announced size.
func TestReaderPartialState(t *testing.T) {
	payload := bytes.Repeat([]byte("y"), 1000)
	f := clientFrame(true, OpText, payload, testKey)
	r := NewReader(1 << 20)
	if evs, err := feed(&r, f[:3], 0); err != nil || len(evs) != 0 {
		t.Fatal(evs, err)
	}
	if r.hdrLen != 3 || r.msg != nil {
		t.Fatalf("after 3 header bytes: hdrLen %d, msg %d bytes", r.hdrLen, len(r.msg))
	}
	if evs, err := feed(&r, f[3:500], 0); err != nil || len(evs) != 0 {
		t.Fatal(evs, err)
	}
	if got := 500 - 8; len(r.msg) != got || cap(r.msg) > len(payload) {
		t.Fatalf("during the payload: message buffer %d/%d bytes, want %d of at most %d", len(r.msg), cap(r.msg), got, len(payload))
	}
	evs, err := feed(&r, f[500:], 0)
	if err != nil || len(evs) != 1 || !bytes.Equal(evs[0].Data, payload) {
		t.Fatalf("%v %v", describe(evs), err)
	}
	if !r.Idle() || r.msg != nil {
		t.Fatal("the reader holds state after the frame")
	}
	// A header announcing the largest message allowed costs nothing until its bytes come.
	r = NewReader(1 << 20)
	if _, err := feed(&r, clientFrame(true, OpBinary, make([]byte, 1<<20), testKey)[:14], 0); err != nil {
		t.Fatal(err)
	}
	if !r.inFrame || r.msg != nil {
		t.Fatalf("after a header alone: inFrame %v, message buffer of %d bytes", r.inFrame, cap(r.msg))
	}
}

func TestReaderRefuses(t *testing.T) {
	unmasked := []byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}
	for _, tt := range []struct {
		name   string
		stream []byte
		limit  bool // websocket.ErrReadLimit rather than a protocol error
	}{
		{"unmasked frame", unmasked, false},
		{"unmasked after a good frame", append(clientFrame(true, OpText, []byte("4a"), testKey), unmasked...), false},
		{"reserved bit", append([]byte{0xc1}, clientFrame(true, OpText, []byte("4a"), testKey)[1:]...), false},
		{"reserved opcode", clientFrame(true, 0x3, nil, testKey), false},
		{"reserved control opcode", clientFrame(true, 0xb, nil, testKey), false},
		{"control frame over 125 bytes", clientFrame(true, OpPing, make([]byte, 126), testKey), false},
		{"fragmented control frame", clientFrame(false, OpPing, nil, testKey), false},
		{"orphan continuation", clientFrame(true, OpContinuation, []byte("x"), testKey), false},
		{"new message inside a fragmented one", append(clientFrame(false, OpText, []byte("4a"), testKey),
			clientFrame(true, OpText, []byte("4b"), testKey)...), false},
		{"close with an invalid status", clientFrame(true, OpClose, []byte{0x03, 0xed}, testKey), false}, // 1005
		{"close with invalid UTF-8", clientFrame(true, OpClose, []byte{0x03, 0xe8, 0xff}, testKey), false},
		{"message over maxPayload", clientFrame(true, OpBinary, make([]byte, 101), testKey), true},
		{"fragments over maxPayload", append(clientFrame(false, OpBinary, make([]byte, 60), testKey),
			clientFrame(true, OpContinuation, make([]byte, 41), testKey)...), true},
		{"length with its top bit set", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, true},
		// As gorilla refuses it: once the length is read, without waiting for the mask key.
		{"length with its top bit set, before the mask key", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, step := range []int{0, 1} {
				r := NewReader(100)
				_, err := feed(&r, tt.stream, step)
				var pe *ProtocolError
				switch {
				case tt.limit && !errors.Is(err, websocket.ErrReadLimit):
					t.Fatalf("step %d: %v, want ErrReadLimit", step, err)
				case !tt.limit && !errors.As(err, &pe):
					t.Fatalf("step %d: %v, want a protocol error", step, err)
				}
				payload, ok := CloseReply(err)
				code := websocket.CloseProtocolError
				if tt.limit {
					code = websocket.CloseMessageTooBig
				}
				if !ok || len(payload) < 2 || int(binary.BigEndian.Uint16(payload)) != code {
					t.Fatalf("close reply %q, want status %d", payload, code)
				}
			}
		})
	}
	// An unmasked frame is refused on its first two bytes, before its length is read.
	r := NewReader(100)
	if _, _, err := r.Next([]byte{0x82, 0x7f}); err == nil {
		t.Fatal("an unmasked frame's first two bytes were accepted")
	}
}

// FuzzFrameReader: any input, read in chunks of any size, gives the same events and the same
// outcome as read whole, never a message over the limit, and the reader never stalls.
func FuzzFrameReader(f *testing.F) {
	f.Add(clientFrame(true, OpText, []byte("4hello"), testKey), uint8(1))
	f.Add(append(clientFrame(false, OpText, []byte("4a"), testKey), clientFrame(true, OpContinuation, []byte("b"), testKey)...), uint8(3))
	f.Add(clientFrame(true, OpPing, []byte("p"), testKey), uint8(2))
	f.Add(clientFrame(true, OpClose, []byte{0x03, 0xe8, 'x'}, testKey), uint8(5))
	f.Add(clientFrame(true, OpBinary, make([]byte, 300), testKey), uint8(7))
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		const limit = 1000
		whole := NewReader(limit)
		want, werr := feed(&whole, data, 0)
		parts := NewReader(limit)
		got, gerr := feed(&parts, data, int(step)+1)
		if describe(got) != describe(want) {
			t.Fatalf("events differ by chunking:\n%s\n%s", describe(got), describe(want))
		}
		if fmt.Sprint(gerr) != fmt.Sprint(werr) {
			t.Fatalf("errors differ by chunking: %v / %v", gerr, werr)
		}
		for _, ev := range got {
			if len(ev.Data) > limit {
				t.Fatalf("a %d-byte message passed the %d-byte limit", len(ev.Data), limit)
			}
		}
	})
}

// BenchmarkFrameReader parses client WebSocket frames as engineio's poller reads them: a buffer
// holding many masked text messages of size bytes, read at once.
func BenchmarkFrameReader(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			msg := append([]byte("4"), bytes.Repeat([]byte("x"), size-1)...)
			frame := clientFrame(true, OpText, msg, testKey)
			const perRead = 16
			buf := bytes.Repeat(frame, perRead)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				fr := NewReader(1 << 20)
				data := buf
				got := 0
				for len(data) > 0 {
					n, ev, err := fr.Next(data)
					if err != nil {
						b.Fatal(err)
					}
					data = data[n:]
					if ev.Op == OpText {
						got++
					}
				}
				if got != perRead {
					b.Fatalf("%d messages, want %d", got, perRead)
				}
			}
		})
	}
}
