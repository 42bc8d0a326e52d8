package testkit

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NodeServer is the Node.js Socket.IO server of a mixed cluster: ClusterNode's cluster.js,
// socket.io with @socket.io/redis-adapter on the test's Redis, with an
// @socket.io/redis-emitter and socket.io-client clients on demand. The test drives it with
// one JSON command a line, and reads its replies and events (see the comment at the top of
// cluster.js). Its methods are for the test's goroutine.
type NodeServer struct {
	*Process
	// Port is the loopback port it serves Socket.IO on.
	Port int

	seq int
}

// NodeMessage is one line cluster.js printed: {"type": ..., ...}.
type NodeMessage map[string]json.RawMessage

// Kind is the message's type: ready, reply, error, fatal, connection, client-event, ...
func (m NodeMessage) Kind() string { return m.Text("type") }

// Text is the string at key, "" when it is not one.
func (m NodeMessage) Text(key string) string {
	var s string
	_ = json.Unmarshal(m[key], &s)
	return s
}

// StartNodeServer runs cluster.js on the Redis at redisURL, with its cluster requests timing out
// after requestTimeout, and returns once it is ready. It needs node and ClusterNode's
// node_modules (RequireNodeServer). It stops when its stdin closes at the test's end, and must
// exit 0. It uses the classic Redis adapter; StartShardedNodeServer the sharded one.
func StartNodeServer(t testing.TB, redisURL string, requestTimeout time.Duration) *NodeServer {
	t.Helper()
	return startNodeServer(t, "REDIS_URL="+redisURL, requestTimeout, "redis")
}

// StartShardedNodeServer is StartNodeServer with @socket.io/redis-adapter's sharded adapter
// (createShardedAdapter, Redis 7 sharded pub/sub).
func StartShardedNodeServer(t testing.TB, redisURL string, requestTimeout time.Duration) *NodeServer {
	t.Helper()
	return startNodeServer(t, "REDIS_URL="+redisURL, requestTimeout, "redis-sharded")
}

// StartShardedNodeServerOnCluster is StartShardedNodeServer on the Redis Cluster c, through
// node-redis cluster clients (createCluster) that start from its nodes.
func StartShardedNodeServerOnCluster(t testing.TB, c *RedisCluster, requestTimeout time.Duration) *NodeServer {
	t.Helper()
	return startNodeServer(t, "REDIS_CLUSTER="+strings.Join(c.Addrs(), ","), requestTimeout, "redis-sharded")
}

// StartStreamsNodeServer is StartNodeServer with @socket.io/redis-streams-adapter 0.2.3, and
// connection state recovery for recovery when it is not 0.
func StartStreamsNodeServer(t testing.TB, redisURL string, recovery time.Duration) *NodeServer {
	t.Helper()
	RequireNodeModules(t, ClusterNode, "@socket.io/redis-streams-adapter")
	return startNodeServer(t, "REDIS_URL="+redisURL, 0, "redis-streams", fmt.Sprint("RECOVERY_MS=", recovery.Milliseconds()))
}

// startNodeServer runs cluster.js with redis, the variable that says where Redis is, and env.
func startNodeServer(t testing.TB, redis string, requestTimeout time.Duration, adapter string, env ...string) *NodeServer {
	t.Helper()
	node := RequireNodeServer(t)
	s := &NodeServer{Process: Start(t, Command{
		Name: "the Node.js server (cluster.js)",
		Args: []string{node, "cluster.js"},
		Dir:  RootDir(t, ClusterNode), // its node_modules resolve from there
		Env: append([]string{redis, fmt.Sprint("REQUESTS_TIMEOUT=", requestTimeout.Milliseconds()),
			"ADAPTER=" + adapter}, env...),
		Stdin:     true,
		CheckExit: true,
	})}
	ready := s.Expect(t, "the Node.js server to be ready", func(m NodeMessage) bool { return m.Kind() == "ready" })
	if err := json.Unmarshal(ready["port"], &s.Port); err != nil || s.Port == 0 {
		t.Fatalf("the Node.js server's ready line has no port: %v", ready)
	}
	return s
}

// RequireNodeServer fails the test, with one line saying what to install, when node or a
// package cluster.js needs is missing; it returns node's path. StartNodeServer calls it; a test
// calls it first too, so that a missing package fails it before it starts anything else.
func RequireNodeServer(t testing.TB) string {
	t.Helper()
	node := RequireTool(t, "node")
	RequireNodeModules(t, ClusterNode, "socket.io", "@socket.io/redis-adapter", "@socket.io/redis-emitter", "redis", "socket.io-client")
	return node
}

// Expect returns the first message not yet expected that match accepts; the others stay for
// a later Expect. A fatal message fails the test, as does no match within OutputWait.
func (s *NodeServer) Expect(t testing.TB, what string, match func(NodeMessage) bool) NodeMessage {
	t.Helper()
	return TakeJSON(t, s.Stdout, what, func(m NodeMessage) bool {
		if m.Kind() == "fatal" {
			t.Fatalf("the Node.js server failed: %s", m["message"])
		}
		return match(m)
	})
}

// Pending returns the messages printed so far that no Expect has returned, in order.
func (s *NodeServer) Pending() []NodeMessage {
	var out []NodeMessage
	for _, line := range s.Stdout.Pending() {
		var m NodeMessage
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// Send writes a command and returns its sequence number, for Reply.
func (s *NodeServer) Send(t testing.TB, cmd map[string]any) int {
	t.Helper()
	s.seq++
	cmd["seq"] = s.seq
	s.SendJSON(t, cmd)
	return s.seq
}

// Reply waits for the answer to command seq; an error answer fails the test.
func (s *NodeServer) Reply(t testing.TB, seq int) NodeMessage {
	t.Helper()
	want := strconv.Itoa(seq)
	m := s.Expect(t, "the reply to command "+want, func(m NodeMessage) bool {
		return (m.Kind() == "reply" || m.Kind() == "error") && string(m["seq"]) == want
	})
	if m.Kind() == "error" {
		t.Fatalf("Node.js command %s failed: %s", want, m["message"])
	}
	return m
}

// Call sends a command and waits for its reply.
func (s *NodeServer) Call(t testing.TB, cmd map[string]any) NodeMessage {
	t.Helper()
	return s.Reply(t, s.Send(t, cmd))
}

// Client connects a socket.io-client named name to the Node.js server and returns its socket
// id.
func (s *NodeServer) Client(t testing.TB, name string) string {
	t.Helper()
	id := s.Call(t, map[string]any{"cmd": "client", "name": name}).Text("id")
	if id == "" {
		t.Fatalf("the Node.js client %s has no socket id", name)
	}
	return id
}

// ClientEvent waits for the Node.js client name to get event, and returns its args as
// JSON.stringify wrote them (binary as {"$bin":hex}).
func (s *NodeServer) ClientEvent(t testing.TB, name, event string) string {
	t.Helper()
	m := s.Expect(t, fmt.Sprintf("the Node.js client %s to get %q", name, event), func(m NodeMessage) bool {
		return m.Kind() == "client-event" && m.Text("name") == name && m.Text("event") == event
	})
	return string(m["args"])
}
