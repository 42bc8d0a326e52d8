package testkit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisCluster is a Redis Cluster of the test's own: masters redis-servers (no replicas) on
// free loopback ports, joined by redis-cli --cluster create, every slot assigned.
type RedisCluster struct {
	Nodes []*Redis
}

// StartRedisCluster starts masters (3 or more, as Redis Cluster wants) redis-servers in
// cluster mode, joins them into one cluster and returns once every node reports
// cluster_state:ok. They are killed at the test's end.
func StartRedisCluster(t testing.TB, masters int) *RedisCluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("testkit: a Redis Cluster needs at least 3 masters, not %d", masters)
	}
	cli := RequireTool(t, "redis-cli")
	c := &RedisCluster{}
	for range masters {
		// The node's state file goes to its own directory (--dir), under a name that is
		// relative to it.
		c.Nodes = append(c.Nodes, startRedis(t, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"))
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("testkit: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range c.Nodes {
		Poll(t, Wait, "Redis Cluster node "+n.Addr()+" to report cluster_state:ok", func() bool {
			info, err := n.ClusterInfo()
			return err == nil && info["cluster_state"] == "ok"
		})
	}
	return c
}

// Addrs are the nodes' host:port, the seeds a cluster client starts from.
func (c *RedisCluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// ClusterInfo returns the node's CLUSTER INFO fields, asked on a connection of its own.
func (r *Redis) ClusterInfo() (map[string]string, error) {
	conn, err := net.DialTimeout("tcp", r.Addr(), time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("CLUSTER INFO\r\n")); err != nil {
		return nil, err
	}
	rd := bufio.NewReader(conn)
	head, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(head, "$") {
		return nil, fmt.Errorf("CLUSTER INFO answered %q", head)
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n < 0 || n > 1<<16 {
		return nil, fmt.Errorf("CLUSTER INFO answered %q", head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rd, body); err != nil {
		return nil, err
	}
	info := map[string]string{}
	for _, line := range strings.Split(string(body), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			info[k] = v
		}
	}
	return info, nil
}
