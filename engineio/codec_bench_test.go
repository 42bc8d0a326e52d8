package engineio

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkFrameReader parses client WebSocket frames as the poller's readers do: a buffer
// holding many masked text messages of size bytes, read at once.
func BenchmarkFrameReader(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			msg := append([]byte("4"), bytes.Repeat([]byte("x"), size-1)...)
			frame := clientFrame(true, opText, msg, testKey)
			const perRead = 16
			buf := bytes.Repeat(frame, perRead)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				fr := newWSFrameReader(1 << 20)
				data := buf
				got := 0
				for len(data) > 0 {
					n, ev, err := fr.next(data)
					if err != nil {
						b.Fatal(err)
					}
					data = data[n:]
					if ev.op == opText {
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

// BenchmarkDecodePayload splits a long-polling POST body of 16 packets, as a client sends
// when it has several messages queued.
func BenchmarkDecodePayload(b *testing.B) {
	var body []byte
	for i := range 16 {
		if i > 0 {
			body = append(body, 0x1e)
		}
		body = fmt.Appendf(body, `442["chat",{"n":%d,"text":"hello there"}]`, i)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ps, err := decodePayload(body)
		if err != nil || len(ps) != 16 {
			b.Fatalf("%d packets, %v", len(ps), err)
		}
	}
}
