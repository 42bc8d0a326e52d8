package redisadapter

import (
	"testing"

	"github.com/siobridge/siobridge/socketio"
)

// TestWorstReach: a call that asks the cluster twice (Rooms, which may fetch sockets too)
// answers with the most nodes and the fewest replies, so that it never claims a complete
// answer that was not; a request that failed says nothing.
func TestWorstReach(t *testing.T) {
	for _, tc := range []struct {
		a, b, want socketio.Reach
	}{
		{socketio.Reach{}, socketio.Reach{}, socketio.Reach{}},
		{socketio.Reach{Nodes: 3, Replied: 3}, socketio.Reach{}, socketio.Reach{Nodes: 3, Replied: 3}},
		{socketio.Reach{}, socketio.Reach{Nodes: 2, Replied: 1}, socketio.Reach{Nodes: 2, Replied: 1}},
		{socketio.Reach{Nodes: 2, Replied: 2}, socketio.Reach{Nodes: 3, Replied: 2}, socketio.Reach{Nodes: 3, Replied: 2}},
		{socketio.Reach{Nodes: 3, Replied: 3}, socketio.Reach{Nodes: 2, Replied: 1}, socketio.Reach{Nodes: 3, Replied: 1}},
	} {
		if got := worst(tc.a, tc.b); got != tc.want {
			t.Errorf("worst(%+v, %+v) = %+v, want %+v", tc.a, tc.b, got, tc.want)
		}
	}
}
