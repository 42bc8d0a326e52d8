package redisadapter

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// newShardedNode is newNode with the sharded adapter.
func newShardedNode(t testing.TB, r *testkit.Redis, opts Options) *node {
	t.Helper()
	return startNode(t, redis.NewClient(&redis.Options{Addr: r.Addr(), DialTimeout: time.Second}), NewSharded, opts, socketio.Options{})
}

func (n *node) sharded() *ShardedAdapter { return n.ns().Cluster().(*ShardedAdapter) }

// waitShardCount waits until PUBSUB SHARDNUMSUB of channel is want.
func waitShardCount(t testing.TB, rdb *redis.Client, channel string, want int64) {
	t.Helper()
	testkit.Poll(t, 10*time.Second, fmt.Sprintf("%d subscribers of %s", want, channel), func() bool {
		m, err := rdb.PubSubShardNumSub(context.Background(), channel).Result()
		return err == nil && m[channel] == want
	})
}

// TestShardedTwoNodes runs two siobridge nodes on the sharded adapter: broadcasts (to all, to
// a room on its own channel, with except), counts, socket queries and acks cross between them.
func TestShardedTwoNodes(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newShardedNode(t, r, Options{RequestTimeout: 5 * time.Second})
	b := newShardedNode(t, r, Options{RequestTimeout: 5 * time.Second})
	ac, asid := a.client()
	bc, bsid := b.client()
	testkit.Poll(t, 10*time.Second, "the adapters to subscribe", func() bool {
		return a.ns().ClusterHealth() == nil && b.ns().ClusterHealth() == nil
	})
	waitShardCount(t, a.rdb, "socket.io#/#", 2)
	ctx := ctxTimeout(t, 30*time.Second)
	if uid := a.sharded().UID(); len(uid) != 16 {
		t.Fatalf("uid %q, want 16 hex characters", uid)
	}

	t.Run("emit to all", func(t *testing.T) {
		if _, err := a.ns().Emit("hello", 1, []byte{7}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*socketiotest.Client{ac, bc} {
			expect(t, c, `451-["hello",1,{"_placeholder":true,"num":0}]`)
			expect(t, c, "bin:\x07")
		}
	})

	t.Run("a room's channel is subscribed while the room exists here", func(t *testing.T) {
		b.socket(bsid).Join("room-x")
		waitShardCount(t, a.rdb, "socket.io#/#room-x#", 1)
		if _, err := a.ns().To("room-x").Emit("in-room"); err != nil {
			t.Fatal(err)
		}
		expect(t, bc, `42["in-room"]`)
		// A multi-room broadcast with except goes on the namespace channel.
		if _, err := a.ns().To("room-x", "other").Except(asid).Emit("multi"); err != nil {
			t.Fatal(err)
		}
		expect(t, bc, `42["multi"]`)
		if _, err := b.ns().Except("room-x").Emit("not-x"); err != nil {
			t.Fatal(err)
		}
		expect(t, ac, `42["not-x"]`)
		b.socket(bsid).Leave("room-x")
		waitShardCount(t, a.rdb, "socket.io#/#room-x#", 0)
	})

	testQueriesAcrossNodes(t, ctx, a, b, ac, bc, bsid)
}

// testQueriesAcrossNodes runs the subtests every engine passes with two nodes a and b, each
// with one client (ac on a; bc on b, whose socket is bsid), the client of b in no room: the
// counts and queries of a cover b's socket, a's acks come from b's client, and a disconnects
// it.
func testQueriesAcrossNodes(t *testing.T, ctx context.Context, a, b *node, ac, bc *socketiotest.Client, bsid string) {
	t.Run("counts and queries span both nodes", func(t *testing.T) {
		res, err := a.ns().All().EmitContext(ctx, "counted")
		if err != nil || res.Total != 2 || res.Local != 1 || res.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
			t.Fatalf("EmitContext = %+v, %v; want 2 sockets on 2 nodes", res, err)
		}
		expect(t, ac, `42["counted"]`)
		expect(t, bc, `42["counted"]`)
		joined, err := a.ns().To(bsid).SocketsJoin(ctx, "j")
		if err != nil || joined.Total != 1 || joined.Local != 0 {
			t.Fatalf("SocketsJoin = %+v, %v", joined, err)
		}
		testkit.Poll(t, 5*time.Second, "the remote join", func() bool {
			return slices.Contains(b.socket(bsid).Rooms(), "j")
		})
		all, reach, err := a.ns().All().FetchSockets(ctx)
		if err != nil || len(all) != 2 || reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
			t.Fatalf("FetchSockets = %+v, %+v, %v", all, reach, err)
		}
		for _, s := range all {
			if s.ID == bsid && !slices.Equal(s.Rooms, sortedCopy([]string{bsid, "j"})) {
				t.Fatalf("the other node's socket: %+v", s)
			}
		}
		rooms, _, err := b.ns().Rooms(ctx)
		if err != nil || !slices.Equal(rooms, []socketio.RoomInfo{{Name: "j", Sockets: 1}}) {
			t.Fatalf("Rooms = %+v, %v", rooms, err)
		}
	})

	t.Run("acks from the other node", func(t *testing.T) {
		type result struct {
			res *socketio.AckResults
			err error
		}
		done := make(chan result, 1)
		go func() {
			ackCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			res, err := a.ns().To(bsid).EmitWithAck(ackCtx, "ask")
			done <- result{res, err}
		}()
		msg := bc.Read()
		id, ok := strings.CutSuffix(strings.TrimPrefix(msg, "42"), `["ask"]`)
		if !ok || id == "" {
			t.Fatalf("got %q", msg)
		}
		bc.Write("43" + id + `["yes",2]`)
		got := recvResult(t, done)
		if got.err != nil || got.res.Sockets != 1 || len(got.res.Acks) != 1 ||
			got.res.Acks[0].SocketID != bsid || string(got.res.Acks[0].Args.Raw) != `["yes",2]` {
			t.Fatalf("EmitWithAck = %+v, %v", got.res, got.err)
		}
	})

	t.Run("disconnect on the other node", func(t *testing.T) {
		n, err := a.ns().To(bsid).DisconnectSockets(ctx, false)
		if err != nil || n.Total != 1 {
			t.Fatalf("DisconnectSockets = %+v, %v", n, err)
		}
		readUntil(t, bc, "41", 5)
	})
}

func recvResult[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no result within 10s")
	}
	var zero T
	return zero
}

// TestShardedSurvivesRedisRestart: after Redis comes back, empty, a sharded node subscribes
// again to its namespace's channel and to its rooms' channels, so that a room broadcast from
// another node, which goes on the room's own channel, reaches it again.
func TestShardedSurvivesRedisRestart(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newShardedNode(t, r, Options{RequestTimeout: 5 * time.Second})
	b := newShardedNode(t, r, Options{RequestTimeout: 5 * time.Second})
	bc, bsid := b.client()
	b.socket(bsid).Join("room")
	healthy := func() bool { return a.ns().ClusterHealth() == nil && b.ns().ClusterHealth() == nil }
	testkit.Poll(t, 10*time.Second, "the adapters to subscribe", healthy)
	waitShardCount(t, a.rdb, "socket.io#/#room#", 1)

	r.Kill(t)
	// Both must see the loss before Redis is back: a node that has not read the end of its
	// subscription yet still counts itself subscribed, and misses what is published before it
	// subscribes again, as on any Redis pub/sub.
	testkit.Poll(t, 10*time.Second, "both nodes to see Redis gone", func() bool {
		return a.ns().ClusterHealth() != nil && b.ns().ClusterHealth() != nil
	})
	r.Restart(t)
	testkit.Poll(t, 15*time.Second, "the adapters to subscribe again", healthy)
	waitShardCount(t, a.rdb, "socket.io#/#", 2)
	waitShardCount(t, a.rdb, "socket.io#/#room#", 1)

	if _, err := a.ns().To("room").Emit("back", 1); err != nil {
		t.Fatal(err)
	}
	expect(t, bc, `42["back",1]`)
	if _, err := a.ns().Emit("all", 2); err != nil {
		t.Fatal(err)
	}
	expect(t, bc, `42["all",2]`)
}
