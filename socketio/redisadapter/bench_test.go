package redisadapter

import (
	"context"
	"testing"
	"time"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
)

// BenchmarkEmitAcrossNodes measures a counted broadcast (EmitContext, what POST /emit uses)
// from node A of a two-node cluster on a real redis-server: a PUBSUB NUMSUB, the PUBLISH, and
// B's answer with its count. "serial" is one caller's latency, "parallel" the throughput of
// concurrent callers. (A plain Emit only queues for the publisher; run flat out it measures the
// queue filling up, not Redis.)
func BenchmarkEmitAcrossNodes(b *testing.B) {
	r := testkit.StartRedis(b)
	a := newNode(b, r, Options{})
	other := newNode(b, r, Options{})
	waitHealthy(b, a, other)

	b.Run("serial", func(b *testing.B) {
		op := a.ns().To("room")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			r, err := op.EmitContext(ctx, "news", "hello")
			if err != nil {
				b.Fatal(err)
			}
			if r.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
				b.Fatalf("reach = %+v; want 2 nodes, 2 replied", r.Reach)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		op := a.ns().To("room")
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for pb.Next() {
				if _, err := op.EmitContext(ctx, "news", "hello"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkPacketFromWire measures turning a broadcast from another node (already decoded from
// msgpack) into the Socket.IO JSON its local receivers get: the JSON writing every broadcast
// from a Node.js or siobridge node goes through once per receiving node.
func BenchmarkPacketFromWire(b *testing.B) {
	for _, bc := range []struct{ name, data string }{
		{"text", `["chat",{"room":"lobby","text":"hello there, how are you?","user":"bob","n":42,"ratio":0.25,"tags":["a","b"]}]`},
		{"binary", `["upload",{"name":"a.png","size":1024,"data":{"_placeholder":true,"num":0}}]`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var atts [][]byte
			if bc.name == "binary" {
				atts = [][]byte{make([]byte, 1024)}
			}
			w, err := packetToWire(&socketio.Packet{Type: socketio.PacketBinaryEvent, Namespace: "/", Data: []byte(bc.data), Attachments: atts})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				p, err := packetFromWire(w, "/")
				if err != nil {
					b.Fatal(err)
				}
				benchPacket = p
			}
		})
	}
}

var benchPacket *socketio.Packet
