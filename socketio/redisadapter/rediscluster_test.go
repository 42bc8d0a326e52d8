package redisadapter

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// newRedisClusterNode is a siobridge node whose adapter (New or NewSharded) reaches a Redis
// Cluster through a go-redis cluster client.
func newRedisClusterNode(t testing.TB, rc *testkit.RedisCluster, factory func(Options) socketio.ClusterFactory, opts Options) *node {
	t.Helper()
	return startNode(t, redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs(), DialTimeout: time.Second}), factory, opts, socketio.Options{})
}

// clusterAdmin talks to each master of a test's Redis Cluster on a connection of its own.
type clusterAdmin struct {
	t       testing.TB
	masters map[string]*redis.Client // by address
}

func newClusterAdmin(t testing.TB, rc *testkit.RedisCluster) *clusterAdmin {
	ca := &clusterAdmin{t: t, masters: map[string]*redis.Client{}}
	for _, addr := range rc.Addrs() {
		c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second})
		t.Cleanup(func() { _ = c.Close() })
		ca.masters[addr] = c
	}
	return ca
}

// owner is the address of the master that serves slot, as the master at any address says.
func (ca *clusterAdmin) owner(slot int) string {
	ca.t.Helper()
	for _, c := range ca.masters {
		addr, err := slotMaster(c, slot)
		if err != nil {
			ca.t.Fatal(err)
		}
		return addr
	}
	return ""
}

// slotMaster is the address of the master that serves slot, as CLUSTER SHARDS on c says.
func slotMaster(c *redis.Client, slot int) (string, error) {
	shards, err := c.ClusterShards(context.Background()).Result()
	if err != nil {
		return "", err
	}
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if int(r.Start) <= slot && slot <= int(r.End) {
				for _, n := range sh.Nodes {
					if n.Role == "master" {
						return fmt.Sprintf("%s:%d", n.IP, n.Port), nil
					}
				}
			}
		}
	}
	return "", fmt.Errorf("no master serves slot %d", slot)
}

// channelOwner is the master of channel's slot, checking keySlot against Redis' own.
func (ca *clusterAdmin) channelOwner(channel string) string {
	ca.t.Helper()
	for _, c := range ca.masters {
		slot, err := c.ClusterKeySlot(context.Background(), channel).Result()
		if err != nil || int(slot) != keySlot(channel) {
			ca.t.Fatalf("CLUSTER KEYSLOT %s = %d, %v; keySlot says %d", channel, slot, err, keySlot(channel))
		}
		break
	}
	return ca.owner(keySlot(channel))
}

// shardSubscribers is PUBSUB SHARDNUMSUB of channel on each master, by address.
func (ca *clusterAdmin) shardSubscribers(channel string) map[string]int64 {
	ca.t.Helper()
	counts := map[string]int64{}
	for addr, c := range ca.masters {
		m, err := c.PubSubShardNumSub(context.Background(), channel).Result()
		if err != nil {
			ca.t.Fatal(err)
		}
		counts[addr] = m[channel]
	}
	return counts
}

// waitShardSubscribers waits until channel has want subscribers on its owner and none
// elsewhere.
func (ca *clusterAdmin) waitShardSubscribers(channel string, want int64) {
	ca.t.Helper()
	testkit.Poll(ca.t, 10*time.Second, fmt.Sprintf("%d subscribers of %s on its master only", want, channel), func() bool {
		owner := ca.channelOwner(channel)
		for addr, n := range ca.shardSubscribers(channel) {
			if (addr == owner && n != want) || (addr != owner && n != 0) {
				return false
			}
		}
		return true
	})
}

// roomOnAnotherMaster returns a room name whose channel in "/" sits on another master than
// the namespace's channel, and that master.
func (ca *clusterAdmin) roomOnAnotherMaster(prefix string) (string, string) {
	ca.t.Helper()
	nsOwner := ca.channelOwner("socket.io#/#")
	for i := range 1000 {
		room := fmt.Sprintf("%s-%d", prefix, i)
		if o := ca.owner(keySlot("socket.io#/#" + room + "#")); o != nsOwner {
			return room, o
		}
	}
	ca.t.Fatal("no room name on another master in 1000 tries")
	return "", ""
}

// moveSlot moves an empty slot to the master at addr, as redis-cli --cluster reshard does:
// IMPORTING on the new owner, MIGRATING on the old one, then SETSLOT NODE on every master.
func (ca *clusterAdmin) moveSlot(slot int, addr string) {
	ca.t.Helper()
	ctx := context.Background()
	ids := map[string]string{}
	for a, c := range ca.masters {
		id, err := c.ClusterMyID(ctx).Result()
		if err != nil {
			ca.t.Fatal(err)
		}
		ids[a] = id
	}
	from := ca.owner(slot)
	do := func(at string, args ...any) {
		ca.t.Helper()
		if err := ca.masters[at].Do(ctx, append([]any{"cluster", "setslot", slot}, args...)...).Err(); err != nil {
			ca.t.Fatalf("CLUSTER SETSLOT %d %v on %s: %v", slot, args, at, err)
		}
	}
	do(addr, "importing", ids[from])
	do(from, "migrating", ids[addr])
	do(addr, "node", ids[addr])
	do(from, "node", ids[addr])
	for a := range ca.masters {
		if a != addr && a != from {
			do(a, "node", ids[addr])
		}
	}
	testkit.Poll(ca.t, 10*time.Second, fmt.Sprintf("every master to see slot %d on %s", slot, addr), func() bool {
		for _, c := range ca.masters {
			if at, err := slotMaster(c, slot); err != nil || at != addr {
				return false
			}
		}
		return true
	})
}

// TestShardedOnRedisCluster runs two siobridge nodes on the sharded adapter over a 3-master
// Redis Cluster, with a room whose channel lives on another master than the namespace's:
// broadcasts, rooms, except, counts and queries cross between the nodes both ways, and the
// room's channel follows its slot when the slot moves to another master, and comes back when
// that master restarts.
func TestShardedOnRedisCluster(t *testing.T) {
	rc := testkit.StartRedisCluster(t, 3)
	ca := newClusterAdmin(t, rc)
	room, roomOwner := ca.roomOnAnotherMaster("room")
	nsOwner := ca.channelOwner("socket.io#/#")
	roomChannel := "socket.io#/#" + room + "#"
	t.Logf("namespace channel on %s, %s on %s", nsOwner, roomChannel, roomOwner)

	a := newRedisClusterNode(t, rc, NewSharded, Options{RequestTimeout: 5 * time.Second})
	b := newRedisClusterNode(t, rc, NewSharded, Options{RequestTimeout: 5 * time.Second})
	ac, asid := a.client()
	bc, bsid := b.client()
	healthy := func() bool { return a.ns().ClusterHealth() == nil && b.ns().ClusterHealth() == nil }
	testkit.Poll(t, 10*time.Second, "the adapters to subscribe", healthy)
	ca.waitShardSubscribers("socket.io#/#", 2)
	ctx := ctxTimeout(t, 60*time.Second)

	t.Run("emit to all", func(t *testing.T) {
		if _, err := a.ns().Emit("hello", 1, []byte{7}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*socketiotest.Client{ac, bc} {
			expect(t, c, `451-["hello",1,{"_placeholder":true,"num":0}]`)
			expect(t, c, "bin:\x07")
		}
		if _, err := b.ns().Emit("back"); err != nil {
			t.Fatal(err)
		}
		expect(t, ac, `42["back"]`)
		expect(t, bc, `42["back"]`)
	})

	t.Run("a room on another master", func(t *testing.T) {
		b.socket(bsid).Join(room)
		ca.waitShardSubscribers(roomChannel, 1)
		if _, err := a.ns().To(room).Emit("in-room"); err != nil {
			t.Fatal(err)
		}
		expect(t, bc, `42["in-room"]`)
		a.socket(asid).Join(room)
		ca.waitShardSubscribers(roomChannel, 2)
		if _, err := b.ns().To(room).Except(bsid).Emit("room-but-b"); err != nil {
			t.Fatal(err)
		}
		expect(t, ac, `42["room-but-b"]`)
		if _, err := a.ns().Except(room).Emit("not-in-room"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.ns().Emit("marker"); err != nil {
			t.Fatal(err)
		}
		expect(t, ac, `42["marker"]`)
		expect(t, bc, `42["marker"]`)
		a.socket(asid).Leave(room)
		ca.waitShardSubscribers(roomChannel, 1)
	})

	t.Run("counts and queries both ways", func(t *testing.T) {
		for _, from := range []*node{a, b} {
			res, err := from.ns().All().EmitContext(ctx, "counted")
			if err != nil || res.Total != 2 || res.Local != 1 || res.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
				t.Fatalf("EmitContext = %+v, %v; want 2 sockets on 2 nodes", res, err)
			}
			expect(t, ac, `42["counted"]`)
			expect(t, bc, `42["counted"]`)
			res, err = from.ns().To(room).EmitContext(ctx, "room-counted")
			if err != nil || res.Total != 1 || res.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
				t.Fatalf("EmitContext to %s = %+v, %v; want 1 socket", room, res, err)
			}
			expect(t, bc, `42["room-counted"]`)
			all, reach, err := from.ns().All().FetchSockets(ctx)
			if err != nil || len(all) != 2 || reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
				t.Fatalf("FetchSockets = %+v, %+v, %v", all, reach, err)
			}
			for _, s := range all {
				if s.ID == bsid && !slices.Equal(s.Rooms, sortedCopy([]string{bsid, room})) {
					t.Fatalf("b's socket: %+v", s)
				}
			}
		}
		joined, err := a.ns().To(bsid).SocketsJoin(ctx, "j")
		if err != nil || joined.Total != 1 || joined.Local != 0 {
			t.Fatalf("SocketsJoin = %+v, %v", joined, err)
		}
		testkit.Poll(t, 5*time.Second, "the remote join", func() bool {
			return slices.Contains(b.socket(bsid).Rooms(), "j")
		})
		left, err := b.ns().To(asid).SocketsLeave(ctx, asid)
		if err != nil || left.Total != 1 || left.Local != 0 {
			t.Fatalf("SocketsLeave = %+v, %v", left, err)
		}
	})

	t.Run("a room's channel follows its slot to another master", func(t *testing.T) {
		slot := keySlot(roomChannel)
		var to string
		for addr := range ca.masters {
			if addr != roomOwner {
				to = addr
				break
			}
		}
		ca.moveSlot(slot, to)
		ca.waitShardSubscribers(roomChannel, 1)
		if got := ca.shardSubscribers(roomChannel)[to]; got != 1 {
			t.Fatalf("%s has %d subscribers on its new master %s", roomChannel, got, to)
		}
		testkit.Poll(t, 10*time.Second, "the adapters to be healthy again", healthy)
		if _, err := a.ns().To(room).Emit("moved"); err != nil {
			t.Fatal(err)
		}
		expect(t, bc, `42["moved"]`)
		res, err := a.ns().To(room).EmitContext(ctx, "moved-counted")
		if err != nil || res.Total != 1 || res.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
			t.Fatalf("EmitContext after the move = %+v, %v", res, err)
		}
		expect(t, bc, `42["moved-counted"]`)

		// Its master restarts (keeping its slots): the node's connection to it fails, and the
		// node subscribes again once it is back.
		var master *testkit.Redis
		for _, n := range rc.Nodes {
			if n.Addr() == to {
				master = n
			}
		}
		master.Kill(t)
		testkit.Poll(t, 10*time.Second, "node b to see the room's master gone", func() bool {
			return b.ns().ClusterHealth() != nil
		})
		master.Restart(t)
		for _, n := range rc.Nodes {
			testkit.Poll(t, 15*time.Second, "Redis Cluster node "+n.Addr()+" to report cluster_state:ok", func() bool {
				info, err := n.ClusterInfo()
				return err == nil && info["cluster_state"] == "ok"
			})
		}
		testkit.Poll(t, 15*time.Second, "the adapters to be healthy after the restart", healthy)
		ca.waitShardSubscribers(roomChannel, 1)
		if _, err := a.ns().To(room).Emit("restarted"); err != nil {
			t.Fatal(err)
		}
		expect(t, bc, `42["restarted"]`)
	})
}

// TestClassicOnRedisCluster runs two siobridge nodes on the classic adapter over a 3-master
// Redis Cluster: PUBLISH reaches every node's subscribers, and PUBSUB NUMSUB, which each
// node counts for itself, is summed over the cluster, so counts see both nodes and only
// siobridge nodes.
func TestClassicOnRedisCluster(t *testing.T) {
	rc := testkit.StartRedisCluster(t, 3)
	a := newRedisClusterNode(t, rc, New, Options{RequestTimeout: 5 * time.Second})
	b := newRedisClusterNode(t, rc, New, Options{RequestTimeout: 5 * time.Second})
	ac, asid := a.client()
	bc, bsid := b.client()
	waitHealthy(t, a, b)
	ctx := ctxTimeout(t, 30*time.Second)

	all, siobridge, err := a.adapter().nodeCounts(ctx)
	if err != nil || all != 2 || siobridge != 2 {
		t.Fatalf("nodeCounts = %d, %d, %v; want 2 nodes, both siobridge's", all, siobridge, err)
	}
	if _, err := a.ns().Emit("hello", 1); err != nil {
		t.Fatal(err)
	}
	expect(t, ac, `42["hello",1]`)
	expect(t, bc, `42["hello",1]`)
	b.socket(bsid).Join("room")
	if _, err := a.ns().To("room").Emit("in-room"); err != nil {
		t.Fatal(err)
	}
	expect(t, bc, `42["in-room"]`)
	for _, from := range []*node{a, b} {
		res, err := from.ns().All().EmitContext(ctx, "counted")
		if err != nil || res.Total != 2 || res.Local != 1 || res.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
			t.Fatalf("EmitContext = %+v, %v; want 2 sockets on 2 nodes", res, err)
		}
		expect(t, ac, `42["counted"]`)
		expect(t, bc, `42["counted"]`)
		socks, reach, err := from.ns().All().FetchSockets(ctx)
		if err != nil || len(socks) != 2 || reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
			t.Fatalf("FetchSockets = %+v, %+v, %v", socks, reach, err)
		}
	}
	joined, err := b.ns().To(asid).SocketsJoin(ctx, "j")
	if err != nil || joined.Total != 1 || joined.Local != 0 {
		t.Fatalf("SocketsJoin = %+v, %v", joined, err)
	}
}

// TestShardedNodeJSInteropOnRedisCluster runs a siobridge node and a Node.js Socket.IO server
// (createShardedAdapter of @socket.io/redis-adapter 8.3 on node-redis cluster clients) on a
// 3-master Redis Cluster, with a room whose channel is on another master than the
// namespace's: emits, room emits and remote joins and leaves cross both ways, and both count
// the same servers.
func TestShardedNodeJSInteropOnRedisCluster(t *testing.T) {
	testkit.RequireNodeServer(t)
	rc := testkit.StartRedisCluster(t, 3)
	ca := newClusterAdmin(t, rc)
	room, _ := ca.roomOnAnotherMaster("room")
	roomChannel := "socket.io#/#" + room + "#"
	g := newRedisClusterNode(t, rc, NewSharded, Options{RequestTimeout: 5 * time.Second})
	js := testkit.StartShardedNodeServerOnCluster(t, rc, 5*time.Second)
	gc, gsid := g.client()
	n1 := js.Client(t, "n1")
	testkit.Poll(t, 10*time.Second, "the adapter to subscribe", func() bool { return g.ns().ClusterHealth() == nil })
	ca.waitShardSubscribers("socket.io#/#", 2)
	ctx := ctxTimeout(t, 60*time.Second)
	if got := js.Call(t, map[string]any{"cmd": "serverCount"})["count"]; string(got) != "2" {
		t.Fatalf("Node.js serverCount = %s, want 2", got)
	}

	t.Run("emit both ways", func(t *testing.T) {
		res, err := g.ns().All().EmitContext(ctx, "from-go", []byte{9})
		if err != nil || res.Total != 2 || res.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
			t.Fatalf("EmitContext = %+v, %v; want 2 sockets on 2 nodes", res, err)
		}
		if got := js.ClientEvent(t, "n1", "from-go"); got != `[{"$bin":"09"}]` {
			t.Fatalf("Node.js client got %s", got)
		}
		expect(t, gc, `451-["from-go",{"_placeholder":true,"num":0}]`)
		expect(t, gc, "bin:\x09")
		js.Call(t, map[string]any{"cmd": "emit", "event": "from-node", "args": []any{1}})
		expect(t, gc, `42["from-node",1]`)
		js.ClientEvent(t, "n1", "from-node")
	})

	t.Run("joins, room emits and leaves both ways on another master", func(t *testing.T) {
		joined, err := g.ns().To(n1).SocketsJoin(ctx, room)
		if err != nil || joined.Total != 1 || joined.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
			t.Fatalf("SocketsJoin of n1 = %+v, %v", joined, err)
		}
		testkit.Poll(t, 5*time.Second, "the Node.js socket to join "+room, func() bool {
			return slices.Contains(fetchSockets(t, js, map[string]any{"rooms": []string{n1}})[n1].Rooms, room)
		})
		ca.waitShardSubscribers(roomChannel, 1) // the Node.js server's
		js.Call(t, map[string]any{"cmd": "socketsJoin", "rooms": []string{gsid}, "join": room})
		testkit.Poll(t, 5*time.Second, "the siobridge socket to join "+room, func() bool {
			return slices.Contains(g.socket(gsid).Rooms(), room)
		})
		ca.waitShardSubscribers(roomChannel, 2)

		js.Call(t, map[string]any{"cmd": "emit", "rooms": []string{room}, "event": "room-from-node"})
		expect(t, gc, `42["room-from-node"]`)
		js.ClientEvent(t, "n1", "room-from-node")
		if _, err := g.ns().To(room).Emit("room-from-go"); err != nil {
			t.Fatal(err)
		}
		expect(t, gc, `42["room-from-go"]`)
		js.ClientEvent(t, "n1", "room-from-go")
		if _, err := g.ns().To(room).Except(gsid).Emit("room-but-go"); err != nil {
			t.Fatal(err)
		}
		js.ClientEvent(t, "n1", "room-but-go")
		js.Call(t, map[string]any{"cmd": "emit", "rooms": []string{room}, "except": []string{n1}, "event": "room-but-node"})
		expect(t, gc, `42["room-but-node"]`) // not room-but-go
		js.Call(t, map[string]any{"cmd": "emit", "event": "marker"})
		expect(t, gc, `42["marker"]`)
		js.ClientEvent(t, "n1", "marker")
		noClientEvent(t, js, "n1", "room-but-node")

		js.Call(t, map[string]any{"cmd": "socketsLeave", "rooms": []string{gsid}, "leave": room})
		testkit.Poll(t, 5*time.Second, "the siobridge socket to leave "+room, func() bool {
			return !slices.Contains(g.socket(gsid).Rooms(), room)
		})
		ca.waitShardSubscribers(roomChannel, 1)
		left, err := g.ns().To(room).SocketsLeave(ctx, room)
		if err != nil || left.Total != 1 {
			t.Fatalf("SocketsLeave = %+v, %v", left, err)
		}
		ca.waitShardSubscribers(roomChannel, 0)
	})
}
