package redisadapter

import (
	"context"
	"testing"
	"time"

	"github.com/siobridge/siobridge/socketio"
)

// BenchmarkEmitAcrossNodes measures a counted broadcast (EmitContext, what POST /emit uses)
// from node A of a two-node cluster on a real redis-server: a PUBSUB NUMSUB, the PUBLISH, and
// B's answer with its count. "serial" is one caller's latency, "parallel" the throughput of
// concurrent callers. (A plain Emit only queues for the publisher; run flat out it measures the
// queue filling up, not Redis.)
func BenchmarkEmitAcrossNodes(b *testing.B) {
	r := startRedis(b)
	a := newNode(b, r, Options{})
	other := newNode(b, r, Options{})
	waitHealthy(b, a, other)

	b.Run("serial", func(b *testing.B) {
		op := a.ns().To("room")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			ctx, reach := socketio.WithReach(ctx)
			if _, _, err := op.EmitContext(ctx, "news", "hello"); err != nil {
				b.Fatal(err)
			}
			if nodes, replied, _ := reach.Get(); nodes != 2 || replied != 2 {
				b.Fatalf("reach = %d nodes, %d replied; want 2, 2", nodes, replied)
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
				if _, _, err := op.EmitContext(ctx, "news", "hello"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
