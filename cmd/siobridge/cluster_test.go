package main

// Cluster tests: several siobridge processes (the real binary, built once for every test of
// the package) share one redis-server of the test's own with SIOBRIDGE_CLUSTER_ADAPTER=redis.
// The app is an httptest server that checks every webhook's signature and records which node
// sent it (each node posts to /hook/<its name>); the clients are raw Socket.IO clients
// (socketiotest) connected to different nodes, and, for interop, a Node.js socket.io 4.8
// server with @socket.io/redis-adapter (socketio/redisadapter/testdata/node/cluster.js) in the
// same cluster. Everything runs on 127.0.0.1. docs/cluster.md cites these tests.
//
// When the tests are built with -race, siobridge is too, and every node must exit 0 (a race
// report makes it exit 66).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/internal/config"
	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio/socketiotest"
	"github.com/siobridge/siobridge/webhook"
)

const (
	// clusterWait bounds one wait for something that should happen.
	clusterWait = 10 * time.Second
	// clusterRequestTimeout is every node's cluster request timeout. A hung node makes a
	// query wait all of it, and the nodes that answer must do so within it, on a loaded
	// machine too.
	clusterRequestTimeout = 5 * time.Second
	// clusterAckWait is the ack_timeout_ms of an emit that a silent socket makes wait all of
	// it; the sockets that answer must do so within it.
	clusterAckWait = 5 * time.Second
	// clusterAnswerWait bounds the wait for an API answer, which may come after
	// clusterRequestTimeout or clusterAckWait.
	clusterAnswerWait = clusterWait + clusterAckWait
	// clusterSecret signs the webhooks; the app refuses any whose signature does not verify.
	clusterSecret = "cluster-webhook-secret"
)

// TestCluster runs each scenario on a cluster of its own (its own Redis, app and nodes), in
// parallel, with the binary built once for all of them.
func TestCluster(t *testing.T) {
	bin := siobridge.Path(t)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, bin string)
	}{
		{"API", testClusterAPI},
		{"Webhooks", testClusterWebhooks},
		{"RedisRestart", testClusterRedisRestart},
		{"HungAndDeadNodes", testClusterHungAndDeadNodes},
		{"NodeJS", testClusterNodeJS},
		{"NodeJSCounts", testClusterNodeJSCounts},
		{"DynamicNamespaces", testClusterDynamicNamespaces},
		{"Sharded", testClusterSharded},
		{"KilledNode", testClusterKilledNode},
		{"RedisCluster", testClusterRedisCluster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, bin)
		})
	}
}

// testClusterSharded: with cluster.adapter = "redis-sharded", two siobridge nodes and a
// Node.js server on createShardedAdapter share one Redis: the API of one node counts, lists
// and reaches the sockets of all three, a room's emit included.
func testClusterSharded(t *testing.T, bin string) {
	testkit.RequireNodeServer(t)
	r := testkit.StartRedis(t)
	app := clusterStartApp(t)
	js := testkit.StartShardedNodeServer(t, r.URL(), clusterRequestTimeout)
	nodes := clusterStartNodes(t, bin, r, app, []string{"A", "B"}, "SIOBRIDGE_CLUSTER_ADAPTER=redis-sharded")
	a, b := nodes[0], nodes[1]
	a1, b1 := clusterConnect(t, a, "a1"), clusterConnect(t, b, "b1")
	for _, n := range nodes {
		n.AwaitReady(t, clusterWait, http.StatusOK)
	}
	n1 := js.Client(t, "n1")
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	testkit.Poll(t, clusterWait, "three subscribers of the namespace's shard channel", func() bool {
		m, err := rdb.PubSubShardNumSub(context.Background(), "socket.io#/#").Result()
		return err == nil && m["socket.io#/#"] == 3
	})

	a.emit(t, `{"event":"news","args":[{"$binary":"AQID"}]}`, 3) // a1, b1 and n1
	a1.expect(t, `451-["news",{"_placeholder":true,"num":0}]`, "bin:\x01\x02\x03")
	b1.expect(t, `451-["news",{"_placeholder":true,"num":0}]`, "bin:\x01\x02\x03")
	if got := js.ClientEvent(t, "n1", "news"); got != `[{"$bin":"010203"}]` {
		t.Fatalf("the Node.js client got %s", got)
	}
	if n := a.count(t, "/join", fmt.Sprintf(`{"to":[%q,%q],"rooms":["lobby"]}`, b1.sid, n1)); n != 2 {
		t.Fatalf("POST /join on A for sockets of B and Node.js = %d, want 2", n)
	}
	testkit.Poll(t, clusterWait, "GET /rooms on A to count lobby on both other servers", func() bool {
		return clusterMapEqual(a.rooms(t), map[string]int{"lobby": 2})
	})
	if got, want := clusterIDs(a.sockets(t, "")), clusterSorted(a1.sid, b1.sid, n1); !slices.Equal(got, want) {
		t.Fatalf("GET /sockets on A = %v, want %v", got, want)
	}
	a.emit(t, `{"event":"room-news","to":["lobby"]}`, 2)
	b1.expect(t, `42["room-news"]`)
	if got := js.ClientEvent(t, "n1", "room-news"); got != `[]` {
		t.Fatalf("the Node.js client got %s", got)
	}
	js.Call(t, map[string]any{"cmd": "emit", "rooms": []string{"lobby"}, "event": "from-node"})
	b1.expect(t, `42["from-node"]`)
	a.emit(t, `{"event":"marker"}`, 3)
	a1.expect(t, `42["marker"]`) // not room-news nor from-node
}

// testClusterRedisCluster: with cluster.redis_cluster naming a 3-master Redis Cluster and
// cluster.adapter = "redis-sharded", POST /emit on node A reaches a client of node B in a room
// whose channel is on another master than the namespace's.
func testClusterRedisCluster(t *testing.T, bin string) {
	rc := testkit.StartRedisCluster(t, 3)
	app := clusterStartApp(t)
	admin := redis.NewClient(&redis.Options{Addr: rc.Addrs()[0]})
	defer admin.Close()
	owner := func(channel string) string {
		t.Helper()
		ctx := context.Background()
		slot, err := admin.ClusterKeySlot(ctx, channel).Result()
		if err != nil {
			t.Fatal(err)
		}
		shards, err := admin.ClusterShards(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range shards {
			for _, r := range sh.Slots {
				for _, n := range sh.Nodes {
					if r.Start <= slot && slot <= r.End && n.Role == "master" {
						return net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
					}
				}
			}
		}
		t.Fatalf("no master serves %s (slot %d)", channel, slot)
		return ""
	}
	nsOwner := owner("socket.io#/#")
	room, roomOwner := "", ""
	for i := range 100 {
		room = fmt.Sprintf("room-%d", i)
		if roomOwner = owner("socket.io#/#" + room + "#"); roomOwner != nsOwner {
			break
		}
	}
	if roomOwner == nsOwner {
		t.Fatalf("no room channel on another master than %s", nsOwner)
	}

	// redis_url is set to its default: clusterStartNodes names a server there.
	nodes := clusterStartNodes(t, bin, rc.Nodes[0], app, []string{"A", "B"},
		"SIOBRIDGE_CLUSTER_ADAPTER=redis-sharded",
		"SIOBRIDGE_CLUSTER_REDIS_URL="+config.DefaultRedisURL,
		"SIOBRIDGE_CLUSTER_REDIS_CLUSTER="+strings.Join(rc.Addrs(), ","))
	a, b := nodes[0], nodes[1]
	a1, b1 := clusterConnect(t, a, "a1"), clusterConnect(t, b, "b1")
	for _, n := range nodes {
		n.AwaitReady(t, clusterWait, http.StatusOK)
	}
	if n := a.count(t, "/join", fmt.Sprintf(`{"to":[%q],"rooms":[%q]}`, b1.sid, room)); n != 1 {
		t.Fatalf("POST /join on A for B's socket = %d, want 1", n)
	}
	roomMaster := redis.NewClient(&redis.Options{Addr: roomOwner})
	defer roomMaster.Close()
	channel := "socket.io#/#" + room + "#"
	testkit.Poll(t, clusterWait, "node B to subscribe to "+channel+" on "+roomOwner, func() bool {
		m, err := roomMaster.PubSubShardNumSub(context.Background(), channel).Result()
		return err == nil && m[channel] == 1
	})
	a.emit(t, fmt.Sprintf(`{"event":"room-news","args":[1],"to":[%q]}`, room), 1)
	b1.expect(t, `42["room-news",1]`)
	a.emit(t, `{"event":"marker"}`, 2)
	a1.expect(t, `42["marker"]`) // not room-news
	b1.expect(t, `42["marker"]`)

	// The streams adapter on the same Redis Cluster: its stream is a key, on the master that
	// owns its slot; the sharded nodes' channels are none of its business.
	streams := clusterStartNodes(t, bin, rc.Nodes[0], app, []string{"C", "D"},
		"SIOBRIDGE_CLUSTER_ADAPTER=redis-streams",
		"SIOBRIDGE_CLUSTER_REDIS_URL="+config.DefaultRedisURL,
		"SIOBRIDGE_CLUSTER_REDIS_CLUSTER="+strings.Join(rc.Addrs(), ","))
	c, d := streams[0], streams[1]
	c1, d1 := clusterConnect(t, c, "c1"), clusterConnect(t, d, "d1")
	for _, n := range streams {
		n.AwaitReady(t, clusterWait, http.StatusOK)
	}
	testkit.Poll(t, clusterWait, "C and D to count each other", func() bool {
		_, rc := c.socketsReach(t)
		_, rd := d.socketsReach(t)
		return rc.Nodes == 2 && rd.Nodes == 2
	})
	if n := c.count(t, "/join", fmt.Sprintf(`{"to":[%q],"rooms":[%q]}`, d1.sid, room)); n != 1 {
		t.Fatalf("POST /join on C for D's socket = %d, want 1", n)
	}
	c.emit(t, fmt.Sprintf(`{"event":"room-news","args":[2],"to":[%q]}`, room), 1)
	d1.expect(t, `42["room-news",2]`)
	d.emit(t, `{"event":"marker"}`, 2)
	c1.expect(t, `42["marker"]`) // not room-news
	d1.expect(t, `42["marker"]`)
	// a1 and b1, on the sharded nodes, got neither.
	a.emit(t, `{"event":"sharded-only"}`, 2)
	a1.expect(t, `42["sharded-only"]`)
	b1.expect(t, `42["sharded-only"]`)
}

// testClusterAPI: the REST API of one node acts on the sockets of every node.
func testClusterAPI(t *testing.T, bin string) {
	r := testkit.StartRedis(t)
	app := clusterStartApp(t)
	const prefix = "siobridge-cluster-test"
	nodes := clusterStartNodes(t, bin, r, app, []string{"A", "B", "C"}, "SIOBRIDGE_CLUSTER_KEY_PREFIX="+prefix)
	a, b, c := nodes[0], nodes[1], nodes[2]
	// D shares the Redis but not the key prefix: it is a cluster of its own.
	d := clusterStartNodes(t, bin, r, app, []string{"D"})[0]
	a1, b1, b2, c1 := clusterConnect(t, a, "a1"), clusterConnect(t, b, "b1"), clusterConnect(t, b, "b2"), clusterConnect(t, c, "c1")
	d1 := clusterConnect(t, d, "d1")
	for _, n := range append(nodes, d) {
		n.AwaitReady(t, clusterWait, http.StatusOK)
	}

	t.Run("emit", func(t *testing.T) {
		// {"sockets":N} counts the sockets of every node: a1, b1, b2, c1.
		a.emit(t, `{"event":"news","args":[1,"x"]}`, 4)
		if n := a.count(t, "/join", fmt.Sprintf(`{"to":[%q,%q],"rooms":["lobby"]}`, b1.sid, c1.sid)); n != 2 {
			t.Fatalf("POST /join on A for sockets of B and C = %d, want 2", n)
		}
		a.emit(t, `{"event":"room-news","to":["lobby"]}`, 2)
		a.emit(t, fmt.Sprintf(`{"event":"direct","to":[%q]}`, c1.sid), 1)
		a.emit(t, fmt.Sprintf(`{"event":"except-one","to":["lobby"],"except":[%q]}`, b1.sid), 1)
		a.emit(t, `{"event":"except-room","except":["lobby"]}`, 2)
		a.emit(t, `{"event":"marker"}`, 4)
		// One publisher on A, one subscriber on each node: each client gets what was meant
		// for it, in order, and nothing else before the marker.
		a1.expect(t, `42["news",1,"x"]`, `42["except-room"]`, `42["marker"]`)
		b1.expect(t, `42["news",1,"x"]`, `42["room-news"]`, `42["marker"]`)
		b2.expect(t, `42["news",1,"x"]`, `42["except-room"]`, `42["marker"]`)
		c1.expect(t, `42["news",1,"x"]`, `42["room-news"]`, `42["direct"]`, `42["except-one"]`, `42["marker"]`)
	})

	t.Run("answers say how many nodes replied", func(t *testing.T) {
		for _, q := range []struct{ method, path, body string }{
			{http.MethodPost, "/emit", `{"event":"counted"}`},
			{http.MethodPost, "/emit", `[{"event":"counted"},{"event":"counted","to":["lobby"]}]`},
			{http.MethodPost, "/join", `{"to":["nobody"],"rooms":["r"]}`},
			{http.MethodPost, "/leave", `{"to":["nobody"],"rooms":["r"]}`},
			{http.MethodPost, "/disconnect", `{"to":["nobody"]}`},
			{http.MethodGet, "/sockets", ""},
			{http.MethodGet, "/rooms", ""},
		} {
			for _, got := range a.clusterReach(t, q.method, q.path, q.body) {
				if got != (clusterReach{Nodes: 3, Replied: 3}) {
					t.Errorf(`%s %s %s on A: "cluster" = %+v, want 3 nodes, 3 replied`, q.method, q.path, q.body, got)
				}
			}
		}
		// Two emits to all, then one to the lobby (b1 and c1).
		for _, cl := range []*clusterClient{a1, b2} {
			cl.expect(t, `42["counted"]`, `42["counted"]`)
		}
		for _, cl := range []*clusterClient{b1, c1} {
			cl.expect(t, `42["counted"]`, `42["counted"]`, `42["counted"]`)
		}
	})

	t.Run("sockets and rooms are cluster totals", func(t *testing.T) {
		for _, n := range nodes {
			all := n.sockets(t, "")
			if got, want := clusterIDs(all), clusterSorted(a1.sid, b1.sid, b2.sid, c1.sid); !slices.Equal(got, want) {
				t.Fatalf("GET /sockets on %s = %v, want %v", n.name, got, want)
			}
			if rooms := all[b1.sid].Rooms; !slices.Equal(clusterSorted(rooms...), clusterSorted(b1.sid, "lobby")) {
				t.Fatalf("GET /sockets on %s: b1 (on B) is in %v, want [%s lobby]", n.name, rooms, b1.sid)
			}
			if got, want := clusterIDs(n.sockets(t, "lobby")), clusterSorted(b1.sid, c1.sid); !slices.Equal(got, want) {
				t.Fatalf("GET /sockets?room=lobby on %s = %v, want %v", n.name, got, want)
			}
			if got := n.rooms(t); !clusterMapEqual(got, map[string]int{"lobby": 2}) {
				t.Fatalf("GET /rooms on %s = %v, want lobby: 2", n.name, got)
			}
		}
		if n := a.count(t, "/leave", fmt.Sprintf(`{"to":[%q],"rooms":["lobby"]}`, c1.sid)); n != 1 {
			t.Fatalf("POST /leave on A for a socket of C = %d, want 1", n)
		}
		if got := b.rooms(t); !clusterMapEqual(got, map[string]int{"lobby": 1}) {
			t.Fatalf("GET /rooms on B after c1 left = %v, want lobby: 1", got)
		}
		a.emit(t, `{"event":"after-leave","to":["lobby"]}`, 1)
		a.emit(t, fmt.Sprintf(`{"event":"marker2","to":[%q]}`, c1.sid), 1)
		b1.expect(t, `42["after-leave"]`)
		c1.expect(t, `42["marker2"]`)
	})

	t.Run("a key prefix is a cluster", func(t *testing.T) {
		if got := clusterIDs(d.sockets(t, "")); !slices.Equal(got, []string{d1.sid}) {
			t.Fatalf("GET /sockets on D (another key prefix) = %v, want only d1 %s", got, d1.sid)
		}
		if _, ok := a.sockets(t, "")[d1.sid]; ok {
			t.Fatalf("GET /sockets on A lists d1, a socket of a node with another key prefix")
		}
		d.emit(t, `{"event":"d-marker"}`, 1)
		d1.expect(t, `42["d-marker"]`) // none of A's emits came first
	})

	t.Run("emit with acks", func(t *testing.T) {
		// Every socket answers: the answer comes with the last ack, long before the timeout.
		done := a.emitAsync(`{"event":"ask","args":["q"],"ack_timeout_ms":30000}`)
		for _, cl := range []*clusterClient{a1, b1, b2, c1} {
			id := cl.expectAsk(t, `["ask","q"]`)
			cl.write(t, fmt.Sprintf(`43%s["yes from %s"]`, id, cl.name))
		}
		res := clusterAwait(t, "the answer to POST /emit with ack_timeout_ms", done)
		if res.Sockets != 4 || len(res.TimedOut) != 0 {
			t.Fatalf("emit with acks on A = %+v, want sockets 4 and nothing timed out", res)
		}
		acks := res.acks()
		for _, cl := range []*clusterClient{a1, b1, b2, c1} {
			if got, want := acks[cl.sid], fmt.Sprintf(`["yes from %s"]`, cl.name); got != want {
				t.Errorf("ack of %s (on %s) = %s, want %s; all: %v", cl.name, cl.node, got, want, acks)
			}
		}

		// a1 (on A) and c1 (on C) do not answer: both are counted in "sockets" and named in
		// "timed_out" (siobridge nodes name the sockets they reached).
		done = a.emitAsync(fmt.Sprintf(`{"event":"ask","args":["again"],"ack_timeout_ms":%d}`, clusterAckWait.Milliseconds()))
		a1.expectAsk(t, `["ask","again"]`)
		c1.expectAsk(t, `["ask","again"]`)
		for _, cl := range []*clusterClient{b1, b2} {
			id := cl.expectAsk(t, `["ask","again"]`)
			cl.write(t, fmt.Sprintf(`43%s["ok"]`, id))
		}
		res = clusterAwait(t, "the answer to POST /emit with ack_timeout_ms", done)
		acks = res.acks()
		if res.Sockets != 4 || len(acks) != 2 || acks[b1.sid] != `["ok"]` || acks[b2.sid] != `["ok"]` ||
			!slices.Equal(clusterSorted(res.TimedOut...), clusterSorted(a1.sid, c1.sid)) {
			t.Fatalf("emit with acks on A, a1 and c1 silent = %+v, want sockets 4, acks of b1 and b2, timed_out a1 %s and c1 %s", res, a1.sid, c1.sid)
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		if n := a.count(t, "/disconnect", fmt.Sprintf(`{"to":[%q]}`, b2.sid)); n != 1 {
			t.Fatalf("POST /disconnect on A for a socket of B = %d, want 1", n)
		}
		b2.expect(t, "41")
		got := app.waitFor(t, "the disconnect webhook of b2", func(d clusterDelivery) bool {
			return d.Kind == "disconnect" && d.Payload.Socket.ID == b2.sid
		})
		if got.Node != "B" || got.Payload.Reason != "server namespace disconnect" {
			t.Fatalf("disconnect webhook of b2 came from node %s with reason %q, want B and \"server namespace disconnect\"", got.Node, got.Payload.Reason)
		}
		if got, want := clusterIDs(c.sockets(t, "")), clusterSorted(a1.sid, b1.sid, c1.sid); !slices.Equal(got, want) {
			t.Fatalf("GET /sockets on C after b2's disconnect = %v, want %v", got, want)
		}
		if n := a.count(t, "/disconnect", fmt.Sprintf(`{"to":[%q],"close":true}`, c1.sid)); n != 1 {
			t.Fatalf("POST /disconnect with close on A for a socket of C = %d, want 1", n)
		}
		c1.expectClosed(t)
	})
}

// testClusterWebhooks: on each adapter, each client event reaches the app once, from the node
// holding the socket, and a reply's emit reaches the clients of every node.
func testClusterWebhooks(t *testing.T, bin string) {
	for _, adapter := range clusterAdapters {
		t.Run(adapter, func(t *testing.T) {
			t.Parallel()
			testClusterWebhooksOn(t, bin, adapter)
		})
	}
}

func testClusterWebhooksOn(t *testing.T, bin, adapter string) {
	r := testkit.StartRedis(t)
	app := clusterStartApp(t)
	app.setReply(func(d clusterDelivery) any {
		if d.Kind == "event" && d.Payload.Event == "chat" {
			return map[string]any{"emit": []any{map[string]any{
				"event": "chat", "args": d.Payload.Args, "except": []string{d.Payload.Socket.ID},
			}}}
		}
		return nil
	})
	nodes := clusterStartNodes(t, bin, r, app, []string{"A", "B", "C"}, "SIOBRIDGE_CLUSTER_ADAPTER="+adapter)
	clients := []*clusterClient{
		clusterConnect(t, nodes[0], "a1"), clusterConnect(t, nodes[0], "a2"),
		clusterConnect(t, nodes[1], "b1"), clusterConnect(t, nodes[2], "c1"),
	}
	for _, n := range nodes {
		n.AwaitReady(t, clusterWait, http.StatusOK)
	}

	const perClient = 10
	for i := range perClient {
		for _, cl := range clients {
			cl.write(t, fmt.Sprintf(`42["ev-%s-%d",%d]`, cl.name, i, i))
		}
	}
	for _, cl := range clients {
		cl.write(t, `42["done"]`) // after the others: one socket's webhooks are delivered in order
	}
	app.waitFor(t, "every client's done event", func(clusterDelivery) bool {
		seen := 0
		for _, d := range app.all() {
			if d.Kind == "event" && d.Payload.Event == "done" {
				seen++
			}
		}
		return seen >= len(clients)
	})

	byEvent := map[string][]clusterDelivery{}
	deliveryIDs := map[string]int{}
	connects := map[string][]clusterDelivery{}
	for _, d := range app.all() {
		deliveryIDs[d.ID]++
		switch d.Kind {
		case "event":
			byEvent[d.Payload.Event] = append(byEvent[d.Payload.Event], d)
		case "connect":
			connects[d.Payload.Socket.ID] = append(connects[d.Payload.Socket.ID], d)
		}
	}
	for id, n := range deliveryIDs {
		if n != 1 {
			t.Errorf("delivery %s reached the app %d times, want once", id, n)
		}
	}
	for _, cl := range clients {
		if ds := connects[cl.sid]; len(ds) != 1 || ds[0].Node != cl.node {
			t.Errorf("connect webhooks of %s (on %s): %d, from %v; want 1 from %s", cl.name, cl.node, len(ds), clusterNodesOf(ds), cl.node)
		}
		for i := range perClient {
			event := fmt.Sprintf("ev-%s-%d", cl.name, i)
			ds := byEvent[event]
			if len(ds) != 1 {
				t.Errorf("event %s of %s (on %s) reached the app %d times (from %v), want once", event, cl.name, cl.node, len(ds), clusterNodesOf(ds))
				continue
			}
			if d := ds[0]; d.Node != cl.node || d.Payload.Socket.ID != cl.sid || string(d.Payload.Args) != fmt.Sprintf("[%d]", i) {
				t.Errorf("event %s: from node %s for socket %s with args %s; want node %s, socket %s, args [%d]",
					event, d.Node, d.Payload.Socket.ID, d.Payload.Args, cl.node, cl.sid, i)
			}
		}
	}
	if ds := byEvent["done"]; len(ds) != len(clients) {
		t.Errorf("done events: %d, want %d", len(ds), len(clients))
	}

	// The app's reply to b1's chat event emits through node B to the clients of every node.
	b1 := clients[2]
	b1.write(t, `42["chat","hello from B"]`)
	for _, cl := range clients {
		if cl != b1 {
			cl.expect(t, `42["chat","hello from B"]`)
		}
	}
	nodes[1].emit(t, fmt.Sprintf(`{"event":"marker","to":[%q]}`, b1.sid), 1)
	b1.expect(t, `42["marker"]`) // the reply's except left b1 out
}

// testClusterRedisRestart: Redis goes away and comes back while the nodes keep running and A
// emits to b1 (on B) every few milliseconds. /readyz tells the truth all along: 503 on both
// nodes while Redis is down, and every emit A accepts while both nodes say 200 (before the
// outage, and once Redis is back) reaches b1, in order.
func testClusterRedisRestart(t *testing.T, bin string) {
	r := testkit.StartRedis(t)
	app := clusterStartApp(t)
	nodes := clusterStartNodes(t, bin, r, app, []string{"A", "B"})
	a, b := nodes[0], nodes[1]
	a1, b1 := clusterConnect(t, a, "a1"), clusterConnect(t, b, "b1")
	for _, n := range nodes {
		n.AwaitReady(t, clusterWait, http.StatusOK)
	}
	a.emit(t, fmt.Sprintf(`{"event":"before","to":[%q]}`, b1.sid), 1)
	b1.expect(t, `42["before"]`)

	received := b1.collect(`42["end"]`)
	stream := clusterStartStream(t, a, nodes, b1.sid)
	stream.await(t, "10 emits accepted while both nodes are ready", func(ticks []clusterTick) bool {
		return clusterCountReady(ticks) >= 10
	})

	r.Kill(t)
	for _, n := range nodes {
		n.AwaitReady(t, clusterWait, http.StatusServiceUnavailable)
		if st, _ := n.get("/healthz"); st != http.StatusOK {
			t.Fatalf("GET /healthz on %s with Redis down = %d, want 200", n.name, st)
		}
	}
	// Redis stays down while A makes 30 more emits: /readyz says so on both nodes all along.
	// From the emit after the one in flight (whose readiness may have been read before the
	// nodes noticed), no emit is accepted while ready until Redis is back.
	outage := stream.len() + 1
	stream.await(t, "30 emits while Redis is down, /readyz 503 on both nodes", func(ticks []clusterTick) bool {
		for _, n := range nodes {
			if st, body := n.get("/readyz"); st != http.StatusServiceUnavailable {
				t.Fatalf("GET /readyz on %s while Redis is down = %d %s, want 503", n.name, st, body)
			}
		}
		return len(ticks) >= outage+30
	})
	// Without Redis a node still serves its own clients, and every API call that needs the
	// other nodes answers 503 naming Redis: emits (which reach this node's sockets all the
	// same), queries, and join, leave and disconnect (which act on this node's sockets).
	for _, q := range []struct{ method, path, body string }{
		{http.MethodPost, "/emit", `{"event":"during"}`},
		{http.MethodPost, "/emit", `{"event":"ask","ack_timeout_ms":5000}`},
		{http.MethodGet, "/sockets", ""},
		{http.MethodGet, "/rooms", ""},
		{http.MethodPost, "/join", fmt.Sprintf(`{"to":[%q],"rooms":["joined-while-down"]}`, a1.sid)},
	} {
		st, body, err := a.do(q.method, q.path, q.body)
		if err != nil || st != http.StatusServiceUnavailable || !strings.Contains(string(body), "cluster unavailable") || !strings.Contains(string(body), "redis") {
			t.Errorf("%s %s on A while Redis is down = %d %s (%v), want 503 naming the cluster and Redis", q.method, q.path, st, body, err)
		}
	}
	a1.expect(t, `42["during"]`)
	a1.expectAsk(t, `["ask"]`)

	restarted := stream.len()
	r.Restart(t)
	for _, n := range nodes {
		n.AwaitReady(t, clusterWait, http.StatusOK)
	}
	back := stream.len()
	stream.await(t, "50 emits accepted while both nodes are ready, since Redis came back", func(ticks []clusterTick) bool {
		return clusterCountReady(ticks[back:]) >= 50
	})
	ticks := stream.stop(t)
	a.emit(t, fmt.Sprintf(`{"event":"end","to":[%q]}`, b1.sid), 1)
	msgs := clusterAwait(t, `b1 to get "end"`, received)

	// Between the moment both nodes said 503 and the restart, no emit was accepted while
	// both said 200.
	for _, tk := range ticks[outage:restarted] {
		if tk.Ready {
			t.Errorf("emit %d, made while Redis was down, was accepted with /readyz 200 on both nodes: %+v", tk.Seq, tk)
		}
	}
	// b1 gets the ticks in order: each one's first arrival after the one before. Those A
	// kept while Redis was down may arrive once it is back (if B subscribed first), and one
	// whose PUBLISH answer was lost with the connection may arrive twice.
	first := map[int]bool{}
	last := -1
	for _, m := range msgs {
		if m == `42["end"]` || m == `42["during"]` {
			continue
		}
		rest, ok := strings.CutPrefix(m, `42["tick",`)
		seq, err := strconv.Atoi(strings.TrimSuffix(rest, "]"))
		if !ok || err != nil || !strings.HasSuffix(rest, "]") {
			t.Fatalf("b1 got %q, want ticks, and at most \"during\" besides", m)
		}
		if first[seq] {
			continue
		}
		if seq < last {
			t.Fatalf("b1 got tick %d first after tick %d: out of order (all: %v)", seq, last, msgs)
		}
		first[seq], last = true, seq
	}
	// Every emit accepted while both nodes said ready reached b1, and counted it.
	for _, tk := range ticks {
		if tk.Undecodable != "" {
			t.Errorf("emit %d answered 200 with %s", tk.Seq, tk.Undecodable)
		}
		if !tk.Ready {
			continue
		}
		if !first[tk.Seq] {
			t.Errorf("emit %d was accepted while both nodes were ready (%+v) but b1 never got it", tk.Seq, tk)
		}
		if tk.Sockets != 1 || tk.Cluster == nil || *tk.Cluster != (clusterReach{Nodes: 2, Replied: 2}) {
			t.Errorf("emit %d, accepted while both nodes were ready, answered %d sockets, \"cluster\" %+v; want 1, 2 nodes, 2 replied", tk.Seq, tk.Sockets, tk.Cluster)
		}
	}
	t.Logf("%d emits: %d accepted while both nodes were ready (%d of them after Redis came back); b1 got %d ticks",
		len(ticks), clusterCountReady(ticks), clusterCountReady(ticks[back:]), len(first))

	all := b.sockets(t, "")
	if got, want := clusterIDs(all), clusterSorted(a1.sid, b1.sid); !slices.Equal(got, want) {
		t.Fatalf("GET /sockets on B after Redis came back = %v, want %v", got, want)
	}
	if rooms := all[a1.sid].Rooms; !slices.Contains(rooms, "joined-while-down") {
		t.Errorf("a1 is in %v: the POST /join made while Redis was down did not act on A's own socket", rooms)
	}
	for _, n := range nodes {
		select {
		case <-n.Exited():
			t.Fatalf("node %s exited during the Redis outage", n.name)
		default:
		}
		log := n.Log()
		lost := strings.Index(log, "redis adapter lost its subscription")
		if lost < 0 || !strings.Contains(log[lost:], "redis adapter subscribed") {
			t.Errorf("node %s did not log losing its subscription and getting it back", n.name)
		}
	}
}

// testClusterHungAndDeadNodes: a node that hangs is waited for the request timeout, then left
// out; a node that dies leaves the cluster at once. What the answers say (how many nodes were
// counted and how many replied) tells which happened, not how long they took.
func testClusterHungAndDeadNodes(t *testing.T, bin string) {
	r := testkit.StartRedis(t)
	app := clusterStartApp(t)
	nodes := clusterStartNodes(t, bin, r, app, []string{"A", "B", "C"})
	a, c := nodes[0], nodes[2]
	a1, b1, c1 := clusterConnect(t, a, "a1"), clusterConnect(t, nodes[1], "b1"), clusterConnect(t, c, "c1")
	for _, n := range nodes {
		n.AwaitReady(t, clusterWait, http.StatusOK)
	}
	var (
		ids   []string
		reach clusterReach
	)
	testkit.Poll(t, clusterWait, "GET /sockets on A to list all three sockets, every node replying", func() bool {
		ids, reach = a.socketsReach(t)
		return slices.Equal(ids, clusterSorted(a1.sid, b1.sid, c1.sid)) && reach == (clusterReach{Nodes: 3, Replied: 3})
	})

	// C hangs (SIGSTOP): still subscribed, so still counted, but it answers nothing.
	c.Signal(t, syscall.SIGSTOP)
	// The stop takes effect once every thread of C has taken the signal, not when kill
	// returns: until then C may still answer.
	testkit.Poll(t, clusterWait, "node C to be stopped", func() bool { return processStopped(c.Pid()) })
	// The answers say that one node of three did not reply, after the request timeout, and
	// count what the others have.
	start := time.Now()
	ids, reach = a.socketsReach(t)
	if took := time.Since(start); !slices.Equal(ids, clusterSorted(a1.sid, b1.sid)) || reach != (clusterReach{Nodes: 3, Replied: 2, Incomplete: true}) || took < clusterRequestTimeout {
		t.Fatalf(`GET /sockets on A with C hung = %v, "cluster" %+v after %v; want a1 and b1, 3 nodes, 2 replied, "complete":false, after the %v request timeout`, ids, reach, took, clusterRequestTimeout)
	}
	var emitted struct {
		Sockets int
		Cluster clusterReach
	}
	a.call(t, http.MethodPost, "/emit", `{"event":"while-c-hangs"}`, &emitted)
	if emitted.Sockets != 2 || emitted.Cluster != (clusterReach{Nodes: 3, Replied: 2, Incomplete: true}) {
		t.Fatalf(`POST /emit on A with C hung = %+v, want 2 sockets (a1, b1), 3 nodes, 2 replied, "complete":false`, emitted)
	}
	if st, _ := a.get("/readyz"); st != http.StatusOK {
		t.Fatalf("GET /readyz on A with C hung = %d, want 200: readiness is about this node's Redis connection", st)
	}
	c.Signal(t, syscall.SIGCONT)
	testkit.Poll(t, clusterWait, "GET /sockets on A to list c1 again, every node replying", func() bool {
		ids, reach = a.socketsReach(t)
		return slices.Equal(ids, clusterSorted(a1.sid, b1.sid, c1.sid)) && reach == (clusterReach{Nodes: 3, Replied: 3})
	})

	// C dies (SIGKILL): Redis drops its subscriptions with its connections, and queries stop
	// waiting for it: it is no longer counted.
	c.Kill(t)
	c1.expectClosed(t)
	testkit.Poll(t, clusterWait, "GET /sockets on A to answer without C, C no longer counted", func() bool {
		ids, reach = a.socketsReach(t)
		return slices.Equal(ids, clusterSorted(a1.sid, b1.sid)) && reach == (clusterReach{Nodes: 2, Replied: 2})
	})
}

// testClusterNodeJS: a Node.js socket.io server with @socket.io/redis-adapter, and
// @socket.io/redis-emitter, in the same cluster as a siobridge node.
func testClusterNodeJS(t *testing.T, bin string) {
	testkit.RequireNodeServer(t)
	r := testkit.StartRedis(t)
	app := clusterStartApp(t)
	js := testkit.StartNodeServer(t, r.URL(), clusterRequestTimeout) // cluster.js uses the default key prefix, "socket.io"
	a := clusterStartNodes(t, bin, r, app, []string{"A"}, "SIOBRIDGE_CLUSTER_KEY_PREFIX=socket.io")[0]
	a1 := clusterConnect(t, a, "a1")
	a.AwaitReady(t, clusterWait, http.StatusOK)
	n1 := js.Client(t, "n1")
	testkit.Poll(t, clusterWait, "GET /sockets on A to list the Node.js server's socket", func() bool {
		_, ok := a.sockets(t, "")[n1]
		return ok
	})

	t.Run("emit reaches a Node.js client", func(t *testing.T) {
		a.emit(t, `{"event":"from-siobridge","args":[1,"two",{"three":3},{"$binary":"AQID"}]}`, 2) // a1 and n1
		if got, want := js.ClientEvent(t, "n1", "from-siobridge"), `[1,"two",{"three":3},{"$bin":"010203"}]`; got != want {
			t.Fatalf("the Node.js client got %s, want %s", got, want)
		}
		a1.expect(t, `451-["from-siobridge",1,"two",{"three":3},{"_placeholder":true,"num":0}]`, "bin:\x01\x02\x03")
	})

	t.Run("join a Node.js socket, emit to its room", func(t *testing.T) {
		// Node.js nodes act on the request but do not answer it: they are asked for the
		// sockets it selects first, and the count has them.
		if n := a.count(t, "/join", fmt.Sprintf(`{"to":[%q],"rooms":["mixed"]}`, n1)); n != 1 {
			t.Fatalf("POST /join for the Node.js socket = %d, want 1", n)
		}
		testkit.Poll(t, clusterWait, "GET /rooms on A to count the Node.js socket in mixed", func() bool {
			return clusterMapEqual(a.rooms(t), map[string]int{"mixed": 1})
		})
		a.emit(t, `{"event":"to-mixed","to":["mixed"],"args":["m"]}`, 1)
		if got := js.ClientEvent(t, "n1", "to-mixed"); got != `["m"]` {
			t.Fatalf("the Node.js client got %s, want [\"m\"]", got)
		}
	})

	t.Run("emit with acks gathers a Node.js client's ack", func(t *testing.T) {
		res := clusterAwait(t, "POST /emit with ack_timeout_ms", a.emitAsync(fmt.Sprintf(`{"event":"ask","to":[%q],"ack_timeout_ms":5000}`, n1)))
		// Node.js nodes send the first ack argument and no socket id.
		if res.Sockets != 1 || len(res.Acks) != 1 || res.Acks[0].Socket != "" || string(res.Acks[0].Args) != `["ack from n1"]` {
			t.Fatalf("emit with acks to the Node.js socket = %+v, want sockets 1 and one ack [\"ack from n1\"] without socket id", res)
		}
	})

	t.Run("Node.js server and redis-emitter reach siobridge clients", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "emit", "event": "from-node", "args": []any{"hi"}})
		a1.expect(t, `42["from-node","hi"]`)
		js.Call(t, map[string]any{"cmd": "emitter", "action": "emit", "rooms": []string{a1.sid}, "event": "from-emitter", "args": []any{7}})
		a1.expect(t, `42["from-emitter",7]`)
	})

	t.Run("leave and disconnect a Node.js socket", func(t *testing.T) {
		if n := a.count(t, "/leave", fmt.Sprintf(`{"to":[%q],"rooms":["mixed"]}`, n1)); n != 1 {
			t.Fatalf("POST /leave for the Node.js socket = %d, want 1", n)
		}
		testkit.Poll(t, clusterWait, "GET /rooms on A to show the Node.js socket out of mixed", func() bool {
			return len(a.rooms(t)) == 0
		})
		if n := a.count(t, "/disconnect", fmt.Sprintf(`{"to":[%q]}`, n1)); n != 1 {
			t.Fatalf("POST /disconnect for the Node.js socket = %d, want 1", n)
		}
		m := js.Expect(t, "the Node.js server to disconnect n1", func(m testkit.NodeMessage) bool {
			return m.Kind() == "server-disconnect" && m.Text("id") == n1
		})
		if reason := string(m["reason"]); reason != `"server namespace disconnect"` {
			t.Fatalf("the Node.js server disconnected n1 with reason %s, want \"server namespace disconnect\"", reason)
		}
	})
}

// testClusterNodeJSCounts: two siobridge nodes and a Node.js server, with sockets on each.
// The counts of POST /emit, /join, /leave and /disconnect are the sockets reached on every
// server, the Node.js one included, and "cluster" counts it among the nodes; so they stay
// after a siobridge node is killed. A server on the request channel that never answers is
// left out, and the answer says "complete":false.
func testClusterNodeJSCounts(t *testing.T, bin string) {
	testkit.RequireNodeServer(t)
	r := testkit.StartRedis(t)
	app := clusterStartApp(t)
	js := testkit.StartNodeServer(t, r.URL(), clusterRequestTimeout) // the default key prefix, "socket.io"
	nodes := clusterStartNodes(t, bin, r, app, []string{"A", "B"}, "SIOBRIDGE_CLUSTER_KEY_PREFIX=socket.io")
	a, b := nodes[0], nodes[1]
	a1, a2, b1 := clusterConnect(t, a, "a1"), clusterConnect(t, a, "a2"), clusterConnect(t, b, "b1")
	for _, n := range nodes {
		n.AwaitReady(t, clusterWait, http.StatusOK)
	}
	n1, n2 := js.Client(t, "n1"), js.Client(t, "n2")
	testkit.Poll(t, clusterWait, "GET /sockets on A to list the five sockets, three servers replying", func() bool {
		ids, reach := a.socketsReach(t)
		return len(ids) == 5 && reach == (clusterReach{Nodes: 3, Replied: 3})
	})
	// counted makes POST path on A and checks its count and "cluster".
	counted := func(t *testing.T, path, body string, want int, reach clusterReach) {
		t.Helper()
		var res struct {
			Sockets int
			Cluster *clusterReach
		}
		a.call(t, http.MethodPost, path, body, &res)
		if res.Sockets != want || res.Cluster == nil || *res.Cluster != reach {
			t.Fatalf(`POST %s %s on A = {"sockets":%d,"cluster":%+v}, want %d and %+v`, path, body, res.Sockets, res.Cluster, want, reach)
		}
	}
	disconnected := func(t *testing.T, id string) {
		t.Helper()
		js.Expect(t, "the Node.js server to disconnect "+id, func(m testkit.NodeMessage) bool {
			return m.Kind() == "server-disconnect" && m.Text("id") == id
		})
	}

	t.Run("counts include the Node.js server's sockets", func(t *testing.T) {
		all := clusterReach{Nodes: 3, Replied: 3}
		counted(t, "/emit", `{"event":"to-all"}`, 5, all)
		for _, cl := range []*clusterClient{a1, a2, b1} {
			cl.expect(t, `42["to-all"]`)
		}
		js.ClientEvent(t, "n1", "to-all")
		js.ClientEvent(t, "n2", "to-all")

		counted(t, "/join", fmt.Sprintf(`{"to":[%q,%q,%q],"rooms":["mixed"]}`, a1.sid, b1.sid, n1), 3, all)
		counted(t, "/emit", `{"event":"to-mixed","to":["mixed"]}`, 3, all)
		counted(t, "/emit", fmt.Sprintf(`{"event":"to-mixed-but-n1","to":["mixed"],"except":[%q]}`, n1), 2, all)
		a1.expect(t, `42["to-mixed"]`, `42["to-mixed-but-n1"]`)
		b1.expect(t, `42["to-mixed"]`, `42["to-mixed-but-n1"]`)
		js.ClientEvent(t, "n1", "to-mixed")
		// The Node.js server is asked for its sockets before it acts: those that leave the
		// room they were selected by are counted.
		counted(t, "/leave", `{"to":["mixed"],"rooms":["mixed"]}`, 3, all)
		counted(t, "/emit", `{"event":"to-nobody","to":["mixed"]}`, 0, all)
		counted(t, "/disconnect", fmt.Sprintf(`{"to":[%q]}`, n2), 1, all)
		disconnected(t, n2)
		counted(t, "/emit", `{"event":"marker"}`, 4, all)
		for _, cl := range []*clusterClient{a1, a2, b1} {
			cl.expect(t, `42["marker"]`) // nothing meant for others came first
		}
		if got := js.ClientEvent(t, "n1", "marker"); got != "[]" {
			t.Fatalf("n1 got marker with %s", got)
		}
		for _, m := range js.Pending() {
			if event := m.Text("event"); m.Kind() == "client-event" && (event == "to-mixed-but-n1" || event == "to-nobody") {
				t.Fatalf("a Node.js client got an event not meant for it: %s", clusterLine(m))
			}
		}
	})

	t.Run("after a siobridge node is killed", func(t *testing.T) {
		b.Kill(t)
		b1.expectClosed(t)
		testkit.Poll(t, clusterWait, "GET /sockets on A to answer without B, B no longer counted", func() bool {
			ids, reach := a.socketsReach(t)
			return slices.Equal(ids, clusterSorted(a1.sid, a2.sid, n1)) && reach == (clusterReach{Nodes: 2, Replied: 2})
		})
		all := clusterReach{Nodes: 2, Replied: 2}
		counted(t, "/emit", `{"event":"without-b"}`, 3, all)
		a1.expect(t, `42["without-b"]`)
		a2.expect(t, `42["without-b"]`)
		js.ClientEvent(t, "n1", "without-b")
		counted(t, "/join", fmt.Sprintf(`{"to":[%q,%q],"rooms":["leaving"]}`, a2.sid, n1), 2, all)
		counted(t, "/disconnect", `{"to":["leaving"]}`, 2, all)
		a2.expect(t, "41")
		disconnected(t, n1)
		counted(t, "/emit", `{"event":"last"}`, 1, all)
		a1.expect(t, `42["last"]`)
	})

	t.Run("a server that does not answer makes the answer incomplete", func(t *testing.T) {
		n3 := js.Client(t, "n3")
		// Subscribed to the request channel, so counted among the servers; it never answers.
		silent := redis.NewClient(&redis.Options{Addr: r.Addr()})
		defer silent.Close()
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		ps := silent.Subscribe(ctx, "socket.io-request#/#")
		_, err := ps.ReceiveTimeout(ctx, clusterWait)
		cancel()
		if err != nil {
			t.Fatalf("SUBSCRIBE: %v", err)
		}
		short := clusterReach{Nodes: 3, Replied: 2, Incomplete: true}
		counted(t, "/emit", `{"event":"while-silent"}`, 2, short) // a1 and n3
		a1.expect(t, `42["while-silent"]`)
		js.ClientEvent(t, "n3", "while-silent")
		counted(t, "/join", fmt.Sprintf(`{"to":[%q],"rooms":["r"]}`, n3), 1, short)

		_ = ps.Close()
		testkit.Poll(t, clusterWait, "Redis to drop the silent subscriber", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
			defer cancel()
			n, err := silent.PubSubNumSub(ctx, "socket.io-request#/#").Result()
			return err == nil && n["socket.io-request#/#"] == 2
		})
		counted(t, "/emit", `{"event":"complete-again"}`, 2, clusterReach{Nodes: 2, Replied: 2})
		a1.expect(t, `42["complete-again"]`)
		js.ClientEvent(t, "n3", "complete-again")
	})
}

// testClusterDynamicNamespaces: with namespaces = ["*"], one POST full of CONNECTs to new
// namespaces costs Redis no connection per namespace and stops at max_dynamic_namespaces; a
// dynamic namespace spans the nodes; the namespaces go when their client does.
func testClusterDynamicNamespaces(t *testing.T, bin string) {
	const limit, asked = 200, 250
	r := testkit.StartRedis(t)
	app := clusterStartApp(t)
	nodes := clusterStartNodes(t, bin, r, app, []string{"A", "B"},
		"SIOBRIDGE_SOCKETIO_NAMESPACES=*",
		fmt.Sprintf("SIOBRIDGE_SOCKETIO_MAX_DYNAMIC_NAMESPACES=%d", limit),
		"SIOBRIDGE_LIMITS_MAX_NAMESPACES_PER_CONNECTION=0")
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		n.AwaitReady(t, clusterWait, http.StatusOK)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	redisClients := func() int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		defer cancel()
		info, err := rdb.Info(ctx, "clients").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "connected_clients:"); ok {
				if n, err := strconv.Atoi(v); err == nil {
					return n
				}
			}
		}
		t.Fatalf("INFO clients without connected_clients: %q", info)
		return 0
	}
	before := redisClients()

	p := socketiotest.DialPolling(t, "http://"+a.Public, "")
	connects := make([]string, asked)
	for i := range connects {
		connects[i] = fmt.Sprintf("40/n%d,", i)
	}
	p.Post(connects...)
	admitted, refused := 0, 0
	for _, m := range p.Read(asked) {
		switch {
		case strings.HasPrefix(m, "40/n") && strings.Contains(m, `,{"sid":`):
			admitted++
		case strings.HasPrefix(m, "44/n") && strings.HasSuffix(m, fmt.Sprintf(`,{"message":"Too many dynamic namespaces on this server (limit %d)"}`, limit)):
			refused++
		default:
			t.Fatalf("a CONNECT was answered %q", m)
		}
	}
	if admitted != limit || refused != asked-limit {
		t.Fatalf("%d CONNECTs: %d admitted, %d refused; want %d and %d", asked, admitted, refused, limit, asked-limit)
	}
	st, metrics := a.get("/metrics")
	if want := fmt.Sprintf(`siobridge_limit_hits_total{limit="max_dynamic_namespaces"} %d`, asked-limit); st != http.StatusOK || !strings.Contains(string(metrics), want+"\n") {
		t.Fatalf("GET /metrics on A: %d, without %s", st, want)
	}
	after := redisClients()
	t.Logf("Redis clients: %d with two nodes, %d once A has %d dynamic namespaces", before, after, limit)
	if after > before+2 {
		t.Fatalf("Redis has %d clients, %d before A's %d namespaces: connections grow with namespaces", after, before, limit)
	}
	if st, body := a.get("/readyz"); st != http.StatusOK {
		t.Fatalf("GET /readyz on A = %d %s", st, body)
	}

	// A dynamic namespace spans the nodes, through the API of a node that has no socket in it.
	b.emit(t, `{"namespace":"/n3","event":"from-b"}`, 1)
	if got := p.Read(1)[0]; got != `42/n3,["from-b"]` {
		t.Fatalf("A's client got %q", got)
	}
	cb := socketiotest.Dial(t, "http://"+b.Public, "")
	cb.Connect("/n3", "")
	a.emit(t, `{"namespace":"/n3","event":"from-a"}`, 2)
	cb.Expect(`42/n3,["from-a"]`)
	if got := p.Read(1)[0]; got != `42/n3,["from-a"]` {
		t.Fatalf("A's client got %q", got)
	}

	// The client leaves: A's namespaces go, and with them their subscriptions.
	p.Post("1")
	channels := make([]string, limit)
	for i := range channels {
		channels[i] = fmt.Sprintf("socket.io-request#/n%d#", i)
	}
	testkit.Poll(t, clusterWait, "A's dynamic namespaces to unsubscribe", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		defer cancel()
		counts, err := rdb.PubSubNumSub(ctx, channels...).Result()
		if err != nil {
			return false
		}
		for ch, n := range counts {
			if want := map[bool]int64{true: 1}[ch == "socket.io-request#/n3#"]; n != want { // B's cb is in /n3
				return false
			}
		}
		return true
	})
	b.emit(t, `{"namespace":"/n3","event":"still"}`, 1)
	cb.Expect(`42/n3,["still"]`)
}

// ---- waiting ----

// processStopped reports whether every thread of the process is stopped ('T' in its
// /proc/<pid>/task/<tid>/stat).
func processStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// "tid (comm) S ...": the state follows the last ')', since comm may hold any byte.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

// clusterAwait waits for the value of ch, an API answer.
func clusterAwait[T any](t *testing.T, what string, ch <-chan clusterResult[T]) T {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.v
	case <-time.After(clusterAnswerWait):
		t.Fatalf("timed out after %v waiting for %s", clusterAnswerWait, what)
	}
	var zero T
	return zero
}

type clusterResult[T any] struct {
	v   T
	err error
}

func clusterSorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func clusterMapEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ---- the app ----

// clusterDelivery is one webhook the app received.
type clusterDelivery struct {
	Node    string // the node that sent it: the last segment of its webhook URL
	ID      string // X-Siobridge-Delivery
	Kind    string // X-Siobridge-Type
	Payload webhook.Payload
}

// clusterApp receives every node's webhooks on /hook/<node>, verifies their signatures and
// records them.
type clusterApp struct {
	ts *httptest.Server

	problems *testkit.Problems

	mu         sync.Mutex
	deliveries []clusterDelivery
	reply      func(clusterDelivery) any
	changed    chan struct{} // closed and replaced at each delivery
}

func clusterStartApp(t *testing.T) *clusterApp {
	t.Helper()
	a := &clusterApp{changed: make(chan struct{}), problems: testkit.NewProblems(t, "app")}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook/{node}", a.hook)
	a.ts = httptest.NewServer(mux)
	t.Cleanup(a.ts.Close)
	return a
}

func (a *clusterApp) hookURL(node string) string { return a.ts.URL + "/hook/" + node }

func (a *clusterApp) setReply(f func(clusterDelivery) any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reply = f
}

func (a *clusterApp) hook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if err := webhook.Verify(clusterSecret, r.Header.Get(webhook.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		a.problems.Add("webhook refused: %v: %s", err, body)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	d := clusterDelivery{Node: r.PathValue("node"), ID: r.Header.Get(webhook.HeaderDelivery), Kind: r.Header.Get(webhook.HeaderType)}
	if err := json.Unmarshal(body, &d.Payload); err != nil {
		a.problems.Add("webhook body %s: %v", body, err)
	}
	a.mu.Lock()
	a.deliveries = append(a.deliveries, d)
	reply := a.reply
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
	var out []byte
	if reply != nil {
		if v := reply(d); v != nil {
			out, _ = json.Marshal(v)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// all returns the deliveries so far, in arrival order.
func (a *clusterApp) all() []clusterDelivery {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.deliveries)
}

// waitFor returns the first delivery match accepts, waiting for it up to clusterWait.
func (a *clusterApp) waitFor(t *testing.T, what string, match func(clusterDelivery) bool) clusterDelivery {
	t.Helper()
	timer := time.NewTimer(clusterWait)
	defer timer.Stop()
	for {
		a.mu.Lock()
		changed := a.changed
		ds := slices.Clone(a.deliveries)
		a.mu.Unlock()
		for _, d := range ds {
			if match(d) {
				return d
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s; the app got %d webhooks", clusterWait, what, len(ds))
		}
	}
}

func clusterNodesOf(ds []clusterDelivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Node)
	}
	return out
}

// ---- siobridge nodes ----

// clusterNode is one siobridge process of the cluster.
type clusterNode struct {
	*testkit.Siobridge
	name string
	http *http.Client
}

// clusterStartNodes starts one node per name, all at once, with the webhooks going to app and
// env overriding the defaults; each one's cleanup stops it and checks that it exited 0.
func clusterStartNodes(t *testing.T, bin string, r *testkit.Redis, app *clusterApp, names []string, env ...string) []*clusterNode {
	t.Helper()
	nodes := make([]*clusterNode, len(names))
	for i, name := range names {
		nodes[i] = &clusterNode{
			name: name,
			http: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: clusterAnswerWait},
		}
		nodes[i].Siobridge = testkit.LaunchSiobridge(t, testkit.Command{
			Name: "node " + name,
			Args: []string{bin},
			Env: slices.Concat(bridgeEnv, []string{
				"SIOBRIDGE_CLUSTER_ADAPTER=redis",
				"SIOBRIDGE_CLUSTER_REDIS_URL=" + r.URL(),
				"SIOBRIDGE_CLUSTER_REQUEST_TIMEOUT=" + clusterRequestTimeout.String(),
				"SIOBRIDGE_WEBHOOK_URL=" + app.hookURL(name),
				"SIOBRIDGE_WEBHOOK_SECRET=" + clusterSecret,
			}, env), // the last value of a variable wins
		})
	}
	for _, n := range nodes {
		n.AwaitServing(t)
	}
	return nodes
}

func (n *clusterNode) do(method, path, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+n.API+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// get returns the status of GET path (0 when the call failed) and the body.
func (n *clusterNode) get(path string) (int, []byte) {
	st, body, _ := n.do(http.MethodGet, path, "")
	return st, body
}

// call makes an API call that must answer 200, and decodes the answer into out.
func (n *clusterNode) call(t *testing.T, method, path, body string, out any) {
	t.Helper()
	st, resp, err := n.do(method, path, body)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, n.name, err)
	}
	if st != http.StatusOK {
		t.Fatalf("%s %s %s on %s = %d %s, want 200", method, path, body, n.name, st, resp)
	}
	if err := json.Unmarshal(resp, out); err != nil {
		t.Fatalf("%s %s on %s: answer %s: %v", method, path, n.name, resp, err)
	}
}

// emit makes POST /emit and checks the count it answers, and that every node replied.
func (n *clusterNode) emit(t *testing.T, body string, wantSockets int) {
	t.Helper()
	var res struct {
		Sockets int
		Cluster *clusterReach
	}
	n.call(t, http.MethodPost, "/emit", body, &res)
	if res.Sockets != wantSockets {
		t.Fatalf("POST /emit %s on %s = {\"sockets\":%d}, want %d (the sockets of the cluster)", body, n.name, res.Sockets, wantSockets)
	}
	if res.Cluster == nil || res.Cluster.Replied != res.Cluster.Nodes {
		t.Fatalf("POST /emit %s on %s: \"cluster\" = %+v, want every node replied", body, n.name, res.Cluster)
	}
}

// clusterReach is the "cluster" member of an API answer.
type clusterReach struct {
	Nodes   int
	Replied int
	// Incomplete is "complete":false; a complete answer has no "complete".
	Incomplete bool
}

// UnmarshalJSON refuses a "cluster" member whose "complete" disagrees with its counts:
// "complete":false exactly when fewer servers replied than the answer waited for.
func (c *clusterReach) UnmarshalJSON(b []byte) error {
	var raw struct {
		Nodes    *int  `json:"nodes"`
		Replied  *int  `json:"replied"`
		Complete *bool `json:"complete"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw.Nodes == nil || raw.Replied == nil {
		return fmt.Errorf(`"cluster" %s: want "nodes" and "replied"`, b)
	}
	if raw.Complete != nil && *raw.Complete {
		return fmt.Errorf(`"cluster" %s: a complete answer has no "complete"`, b)
	}
	*c = clusterReach{Nodes: *raw.Nodes, Replied: *raw.Replied, Incomplete: raw.Complete != nil}
	if c.Incomplete != (c.Replied < c.Nodes) {
		return fmt.Errorf(`"cluster" %s: "complete":false must be there exactly when "replied" < "nodes"`, b)
	}
	return nil
}

// clusterReach makes an API call that must answer 200 and returns its "cluster" members (one,
// or one per item of a batch answer).
func (n *clusterNode) clusterReach(t *testing.T, method, path, body string) []clusterReach {
	t.Helper()
	var raw json.RawMessage
	n.call(t, method, path, body, &raw)
	type answer struct{ Cluster *clusterReach }
	var items []answer
	if strings.HasPrefix(string(raw), "[") {
		n.decode(t, raw, &items)
	} else {
		var one answer
		n.decode(t, raw, &one)
		items = append(items, one)
	}
	var out []clusterReach
	for i, it := range items {
		if it.Cluster == nil {
			t.Fatalf("%s %s %s on %s: answer %d has no \"cluster\": %s", method, path, body, n.name, i, raw)
		}
		out = append(out, *it.Cluster)
	}
	return out
}

func (n *clusterNode) decode(t *testing.T, raw []byte, out any) {
	t.Helper()
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("answer of %s %s: %v", n.name, raw, err)
	}
}

// clusterAckResult is the answer to POST /emit with ack_timeout_ms.
type clusterAckResult struct {
	Sockets int `json:"sockets"`
	Acks    []struct {
		Socket string          `json:"socket"`
		Args   json.RawMessage `json:"args"`
	} `json:"acks"`
	TimedOut []string `json:"timed_out"`
}

// acks maps socket ids to their ack arguments.
func (r clusterAckResult) acks() map[string]string {
	out := map[string]string{}
	for _, a := range r.Acks {
		out[a.Socket] = string(a.Args)
	}
	return out
}

// emitAsync makes POST /emit (with ack_timeout_ms) on a goroutine of its own, since it
// answers only once the clients have.
func (n *clusterNode) emitAsync(body string) <-chan clusterResult[clusterAckResult] {
	ch := make(chan clusterResult[clusterAckResult], 1)
	go func() {
		var r clusterResult[clusterAckResult]
		st, resp, err := n.do(http.MethodPost, "/emit", body)
		switch {
		case err != nil:
			r.err = err
		case st != http.StatusOK:
			r.err = fmt.Errorf("POST /emit %s on %s = %d %s", body, n.name, st, resp)
		default:
			if err := json.Unmarshal(resp, &r.v); err != nil {
				r.err = fmt.Errorf("answer %s: %w", resp, err)
			}
		}
		ch <- r
	}()
	return ch
}

// count makes POST path (/join, /leave, /disconnect) and returns its count.
func (n *clusterNode) count(t *testing.T, path, body string) int {
	t.Helper()
	var res struct{ Sockets int }
	n.call(t, http.MethodPost, path, body, &res)
	return res.Sockets
}

type clusterSocket struct {
	ID    string   `json:"id"`
	Rooms []string `json:"rooms"`
}

// sockets is GET /sockets (of room, if not empty), by socket id.
func (n *clusterNode) sockets(t *testing.T, room string) map[string]clusterSocket {
	t.Helper()
	path := "/sockets"
	if room != "" {
		path += "?room=" + room
	}
	var res struct{ Sockets []clusterSocket }
	n.call(t, http.MethodGet, path, "", &res)
	out := map[string]clusterSocket{}
	for _, s := range res.Sockets {
		out[s.ID] = s
	}
	return out
}

// socketsReach is GET /sockets: the ids of the sockets, sorted, and the answer's "cluster".
func (n *clusterNode) socketsReach(t *testing.T) ([]string, clusterReach) {
	t.Helper()
	var res struct {
		Sockets []clusterSocket
		Cluster *clusterReach
	}
	n.call(t, http.MethodGet, "/sockets", "", &res)
	if res.Cluster == nil {
		t.Fatalf("GET /sockets on %s: no \"cluster\" in the answer", n.name)
	}
	ids := make([]string, 0, len(res.Sockets))
	for _, s := range res.Sockets {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids, *res.Cluster
}

func clusterIDs(m map[string]clusterSocket) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// rooms is GET /rooms: room name to sockets.
func (n *clusterNode) rooms(t *testing.T) map[string]int {
	t.Helper()
	var res struct {
		Rooms []struct {
			Name    string
			Sockets int
		}
	}
	n.call(t, http.MethodGet, "/rooms", "", &res)
	out := map[string]int{}
	for _, r := range res.Rooms {
		out[r.Name] = r.Sockets
	}
	return out
}

// ---- clients ----

// clusterClient is a raw Socket.IO client connected to one node, whose messages a goroutine
// reads into a channel (answering pings), so that tests wait on them with timeouts.
type clusterClient struct {
	name string
	node string
	sid  string
	c    *socketiotest.Client

	wmu    sync.Mutex // one writer at a time: the test, or the reader answering a ping
	msgs   chan string
	quit   chan struct{} // closed at cleanup: nobody reads msgs any more
	closed chan struct{} // closed when the connection ended
	err    error         // why, set before closed is closed
}

// clusterConnect opens a WebSocket session to n and joins "/".
func clusterConnect(t *testing.T, n *clusterNode, name string) *clusterClient {
	t.Helper()
	c := socketiotest.Dial(t, "http://"+n.Public, "")
	cl := &clusterClient{name: name, node: n.name, c: c, msgs: make(chan string, 1024), quit: make(chan struct{}), closed: make(chan struct{})}
	cl.sid = c.Connect("/", "")
	// socketiotest's reads leave a deadline on the connection; the reader waits without one,
	// and each wait for a message has its own timeout.
	if err := c.Conn.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	go cl.readLoop()
	t.Cleanup(func() {
		close(cl.quit)
		_ = c.Conn.Close()
		<-cl.closed
	})
	return cl
}

func (cl *clusterClient) readLoop() {
	defer close(cl.closed)
	for {
		typ, b, err := cl.c.Conn.ReadMessage()
		if err != nil {
			cl.err = err
			return
		}
		msg := string(b)
		switch {
		case typ == websocket.TextMessage && msg == "2":
			cl.wmu.Lock()
			_ = cl.c.Conn.WriteMessage(websocket.TextMessage, []byte("3"))
			cl.wmu.Unlock()
			continue
		case typ == websocket.BinaryMessage:
			msg = "bin:" + msg
		}
		select {
		case cl.msgs <- msg:
		case <-cl.quit:
		}
	}
}

func (cl *clusterClient) write(t *testing.T, msg string) {
	t.Helper()
	cl.wmu.Lock()
	defer cl.wmu.Unlock()
	if err := cl.c.Conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("client %s (on %s): write %q: %v", cl.name, cl.node, msg, err)
	}
}

// next returns the next message, failing after clusterWait.
func (cl *clusterClient) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-cl.msgs:
		return m
	case <-cl.closed:
		select {
		case m := <-cl.msgs:
			return m
		default:
		}
		t.Fatalf("client %s (on %s): connection ended: %v", cl.name, cl.node, cl.err)
	case <-time.After(clusterWait):
		t.Fatalf("client %s (on %s): no message within %v", cl.name, cl.node, clusterWait)
	}
	return ""
}

// expect checks that the next messages are want, in order.
func (cl *clusterClient) expect(t *testing.T, want ...string) {
	t.Helper()
	for i, w := range want {
		if got := cl.next(t); got != w {
			t.Fatalf("client %s (on %s): message %d is %q, want %q (all expected: %q)", cl.name, cl.node, i, got, w, want)
		}
	}
}

// expectAsk reads an event with an ack id, `42<id><args>`, and returns the id.
func (cl *clusterClient) expectAsk(t *testing.T, args string) string {
	t.Helper()
	msg := cl.next(t)
	id, ok := strings.CutSuffix(strings.TrimPrefix(msg, "42"), args)
	if !ok || id == "" || strings.Trim(id, "0123456789") != "" {
		t.Fatalf("client %s (on %s): got %q, want 42<ack id>%s", cl.name, cl.node, msg, args)
	}
	return id
}

// collect reads the client's messages on a goroutine of its own until one equals last (or
// the connection ends), so that a long stream of them never fills its buffer; the channel
// then gives them all, last included.
func (cl *clusterClient) collect(last string) <-chan clusterResult[[]string] {
	ch := make(chan clusterResult[[]string], 1)
	go func() {
		var msgs []string
		for {
			select {
			case m := <-cl.msgs:
				msgs = append(msgs, m)
				if m == last {
					ch <- clusterResult[[]string]{v: msgs}
					return
				}
			case <-cl.closed:
				ch <- clusterResult[[]string]{v: msgs, err: fmt.Errorf("client %s (on %s): connection ended after %d messages: %v", cl.name, cl.node, len(msgs), cl.err)}
				return
			case <-cl.quit:
				return
			}
		}
	}()
	return ch
}

// expectClosed waits for the server to end the connection; messages before that are dropped.
func (cl *clusterClient) expectClosed(t *testing.T) {
	t.Helper()
	select {
	case <-cl.closed:
		var ce *websocket.CloseError
		var ne net.Error
		if errors.As(cl.err, &ne) && ne.Timeout() || !errors.As(cl.err, &ce) && !errors.Is(cl.err, io.ErrUnexpectedEOF) {
			t.Fatalf("client %s (on %s): the connection ended with %v, want the server closing it", cl.name, cl.node, cl.err)
		}
	case <-time.After(clusterWait):
		t.Fatalf("client %s (on %s): the server did not close the connection within %v", cl.name, cl.node, clusterWait)
	}
}

// ---- a steady stream of emits ----

const (
	// clusterStreamEvery spaces the emits of a clusterStream.
	clusterStreamEvery = 5 * time.Millisecond
	// clusterStreamMax bounds the emits of a clusterStream.
	clusterStreamMax = 5000
)

// clusterTick is one emit of a clusterStream.
type clusterTick struct {
	Seq     int
	Status  int // of POST /emit; 0 when the call failed
	Sockets int
	Cluster *clusterReach
	// Undecodable is the answer to a 200 that could not be read, if any.
	Undecodable string
	// Ready: accepted while ready. The emit answered 200, and GET /readyz answered 200 on
	// every node just before it was sent and just after it was answered.
	Ready bool
}

// clusterStream makes POST /emit on one node every clusterStreamEvery: the event "tick" with
// its sequence number, to one socket, each emit bracketed by GET /readyz on every node.
type clusterStream struct {
	halt chan struct{}
	done chan struct{}

	mu      sync.Mutex
	ticks   []clusterTick
	changed chan struct{} // closed and replaced at each tick
}

func clusterStartStream(t *testing.T, from *clusterNode, nodes []*clusterNode, to string) *clusterStream {
	t.Helper()
	s := &clusterStream{halt: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{})}
	go s.run(from, nodes, to)
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *clusterStream) run(from *clusterNode, nodes []*clusterNode, to string) {
	defer close(s.done)
	allReady := func() bool {
		for _, n := range nodes {
			if st, _ := n.get("/readyz"); st != http.StatusOK {
				return false
			}
		}
		return true
	}
	every := time.NewTicker(clusterStreamEvery)
	defer every.Stop()
	ready := allReady()
	for seq := range clusterStreamMax {
		select {
		case <-s.halt:
			return
		case <-every.C:
		}
		tk := clusterTick{Seq: seq}
		st, body, err := from.do(http.MethodPost, "/emit", fmt.Sprintf(`{"event":"tick","args":[%d],"to":[%q]}`, seq, to))
		if err == nil {
			tk.Status = st
		}
		if tk.Status == http.StatusOK {
			var res struct {
				Sockets int
				Cluster *clusterReach
			}
			if err := json.Unmarshal(body, &res); err != nil {
				tk.Undecodable = fmt.Sprintf("%s: %v", body, err)
			}
			tk.Sockets, tk.Cluster = res.Sockets, res.Cluster
		}
		before := ready
		ready = allReady()
		tk.Ready = before && ready && tk.Status == http.StatusOK && tk.Undecodable == ""
		s.mu.Lock()
		s.ticks = append(s.ticks, tk)
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}

// len is how many emits were answered so far.
func (s *clusterStream) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ticks)
}

// await checks cond at each emit until it holds, failing after clusterWait or when the
// stream has ended.
func (s *clusterStream) await(t *testing.T, what string, cond func([]clusterTick) bool) {
	t.Helper()
	timer := time.NewTimer(clusterWait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ticks, changed := slices.Clone(s.ticks), s.changed
		s.mu.Unlock()
		if cond(ticks) {
			return
		}
		select {
		case <-changed:
		case <-s.done:
			t.Fatalf("the stream of emits ended (%d emits) before %s", s.len(), what)
		case <-timer.C:
			t.Fatalf("gave up after %v waiting for %s (%d emits so far)", clusterWait, what, len(ticks))
		}
	}
}

// stop ends the stream, waiting for the emit in flight, and returns every emit; idempotent.
func (s *clusterStream) stop(t *testing.T) []clusterTick {
	t.Helper()
	select {
	case <-s.halt:
	default:
		close(s.halt)
	}
	select {
	case <-s.done:
	case <-time.After(clusterAnswerWait):
		t.Fatalf("the stream of emits did not stop within %v", clusterAnswerWait)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ticks)
}

// clusterCountReady counts the emits accepted while ready.
func clusterCountReady(ticks []clusterTick) int {
	n := 0
	for _, tk := range ticks {
		if tk.Ready {
			n++
		}
	}
	return n
}

func clusterLine(m testkit.NodeMessage) string {
	b, _ := json.Marshal(m)
	return string(b)
}
