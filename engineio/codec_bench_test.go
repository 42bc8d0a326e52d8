package engineio

import (
	"fmt"
	"testing"
)

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
