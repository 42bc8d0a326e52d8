package testkit

import "testing"

// TestStartRedisCluster: three masters make one cluster that knows them all and serves every
// slot.
func TestStartRedisCluster(t *testing.T) {
	c := StartRedisCluster(t, 3)
	if len(c.Addrs()) != 3 {
		t.Fatalf("addrs %v", c.Addrs())
	}
	for _, n := range c.Nodes {
		info, err := n.ClusterInfo()
		if err != nil {
			t.Fatal(err)
		}
		if info["cluster_state"] != "ok" || info["cluster_slots_assigned"] != "16384" || info["cluster_known_nodes"] != "3" || info["cluster_size"] != "3" {
			t.Fatalf("node %s: %v", n.Addr(), info)
		}
	}
}
