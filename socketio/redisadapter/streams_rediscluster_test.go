package redisadapter

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// newClusterRecoveryNode is newRecoveryNode on a Redis Cluster, through a go-redis cluster
// client: the stream and the session keys are keys, each on the master owning its slot.
func newClusterRecoveryNode(t *testing.T, rc *testkit.RedisCluster, window time.Duration) *recoveryNode {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs(), DialTimeout: time.Second})
	n := &recoveryNode{
		node: startNode(t, cc, NewStreams, Options{RequestTimeout: 5 * time.Second},
			socketio.Options{Recovery: socketio.RecoveryOptions{MaxDisconnection: window}}),
		connected: make(chan *socketio.Socket, 16), disconnected: make(chan string, 16)}
	n.ns().OnConnect(func(s *socketio.Socket) {
		if !s.Recovered() {
			s.Join("r")
			s.SetData(json.RawMessage(`{"user":"bob"}`))
		}
		s.OnDisconnect(func(reason string) { n.disconnected <- reason })
		n.connected <- s
	})
	return n
}

// TestStreamsOnRedisCluster runs two siobridge nodes on the streams adapter on a 3-master
// Redis Cluster: emits both ways with the same offset on both nodes, and a client that drops
// on one node recovering on the other, its session key and the stream on whichever masters
// own their slots.
func TestStreamsOnRedisCluster(t *testing.T) {
	rc := testkit.StartRedisCluster(t, 3)
	a := newClusterRecoveryNode(t, rc, time.Minute)
	b := newClusterRecoveryNode(t, rc, time.Minute)
	waitNodes(t, 2, a.node, b.node)

	c := socketiotest.Dial(t, a.ts.URL, "")
	first := c.ConnectFields("")
	s := recvResult(t, a.connected)
	witness := socketiotest.Dial(t, b.ts.URL, "")
	witness.ConnectFields("")
	recvResult(t, b.connected)

	// Both ways, one offset per broadcast on both nodes.
	var offset string
	for i, from := range []*recoveryNode{b, a} {
		if _, err := from.ns().To("r").Emit("e", i); err != nil {
			t.Fatal(err)
		}
		got, seen := c.ReadEvent(), witness.ReadEvent()
		if string(got[1]) != string(rune('0'+i)) || socketiotest.Offset(t, got) != socketiotest.Offset(t, seen) {
			t.Fatalf("emit %d: %s on A, %s on B; want the same event and offset", i, got, seen)
		}
		offset = socketiotest.Offset(t, got)
	}

	c.Conn.Close()
	if reason := recvResult(t, a.disconnected); reason != "transport close" && reason != "transport error" {
		t.Fatalf("disconnect reason %q", reason)
	}
	// Missed while away, from each node; the witness in "r" tells when B has read them.
	for i, from := range []*recoveryNode{a, b} {
		if _, err := from.ns().To("r").Emit("missed", i); err != nil {
			t.Fatal(err)
		}
		if got := witness.ReadEvent(); string(got[0]) != `"missed"` || string(got[1]) != string(rune('0'+i)) {
			t.Fatalf("the witness got %s, want missed %d", got, i)
		}
	}

	c2 := socketiotest.Dial(t, b.ts.URL, "")
	again := c2.ConnectFields(`{"pid":"` + first["pid"] + `","offset":"` + offset + `"}`)
	if again["sid"] != first["sid"] || again["pid"] != first["pid"] {
		t.Fatalf("restored %v, was %v", again, first)
	}
	for i := range 2 {
		if got := c2.ReadEvent(); string(got[0]) != `"missed"` || string(got[1]) != string(rune('0'+i)) {
			t.Fatalf("replayed %s, want missed %d", got, i)
		}
	}
	s2 := recvResult(t, b.connected)
	if s2.ID() != s.ID() || !s2.Recovered() {
		t.Fatalf("socket %s recovered=%v, was %s", s2.ID(), s2.Recovered(), s.ID())
	}
	if d, _ := json.Marshal(s2.Data()); string(d) != `{"user":"bob"}` {
		t.Fatalf("data %s", d)
	}
}
