package main

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/siobridge/siobridge/internal/testkit"
)

// clusterAdapters are the cluster adapters that testClusterKilledNode and testClusterWebhooks
// run on. They stop waiting for a node that died each in its way: Redis drops a dead node's
// subscriptions with its connection, so the pub/sub adapters count it out at once; the
// streams adapter drops a node after its heartbeat timeout.
var clusterAdapters = []string{"redis", "redis-sharded", "redis-streams"}

// testClusterKilledNode: on each adapter, node C of three dies with SIGKILL. From then on every
// POST /emit on A answers within the request timeout and a second, and reaches the sockets of
// A and B; once the adapter has counted C out, the answers are complete again, with 2 nodes.
func testClusterKilledNode(t *testing.T, bin string) {
	for _, adapter := range clusterAdapters {
		t.Run(adapter, func(t *testing.T) {
			t.Parallel()
			r := testkit.StartRedis(t)
			app := clusterStartApp(t)
			nodes := clusterStartNodes(t, bin, r, app, []string{"A", "B", "C"}, "SIOBRIDGE_CLUSTER_ADAPTER="+adapter)
			a, b, c := nodes[0], nodes[1], nodes[2]
			a1, b1, c1 := clusterConnect(t, a, "a1"), clusterConnect(t, b, "b1"), clusterConnect(t, c, "c1")
			for _, n := range nodes {
				n.AwaitReady(t, clusterWait, http.StatusOK)
			}
			testkit.Poll(t, clusterWait, "GET /sockets on A to list all three sockets, every node replying", func() bool {
				ids, reach := a.socketsReach(t)
				return slices.Equal(ids, clusterSorted(a1.sid, b1.sid, c1.sid)) && reach == (clusterReach{Nodes: 3, Replied: 3})
			})

			c.Kill(t)
			c1.expectClosed(t)
			// Emits go on until C is counted out, each answered within the bound and
			// delivered to a1 and b1, in order; a bounded number of them.
			const maxEmits = 40
			for i := 0; ; i++ {
				if i == maxEmits {
					t.Fatalf("after %d emits, C is still counted", maxEmits)
				}
				start := time.Now()
				var emitted struct {
					Sockets int
					Cluster clusterReach
				}
				a.call(t, http.MethodPost, "/emit", `{"event":"after-kill","args":[`+strconv.Itoa(i)+`]}`, &emitted)
				if took := time.Since(start); took > clusterRequestTimeout+time.Second {
					t.Fatalf("POST /emit %d on A after C died answered after %v, want within the %v request timeout and a second", i, took, clusterRequestTimeout)
				}
				if emitted.Sockets != 2 {
					t.Fatalf("POST /emit %d on A after C died = %+v, want 2 sockets (a1, b1)", i, emitted)
				}
				want := `42["after-kill",` + strconv.Itoa(i) + `]`
				a1.expect(t, want)
				b1.expect(t, want)
				switch emitted.Cluster {
				case clusterReach{Nodes: 2, Replied: 2}:
					t.Logf("%s: C counted out after %d emits", adapter, i)
					return
				case clusterReach{Nodes: 3, Replied: 2, Incomplete: true}:
					// C is still counted: it cannot answer, so the answer says so.
				default:
					t.Fatalf(`POST /emit %d on A after C died: "cluster" %+v, want 3 nodes with 2 replied, or 2 nodes`, i, emitted.Cluster)
				}
			}
		})
	}
}
