package socketio

import "testing"

func TestReachComplete(t *testing.T) {
	for _, tc := range []struct {
		reach Reach
		want  bool
	}{
		{Reach{}, true}, // a single node
		{Reach{Nodes: 3, Replied: 3}, true},
		{Reach{Nodes: 3, Replied: 2}, false},
	} {
		if got := tc.reach.Complete(); got != tc.want {
			t.Errorf("%+v.Complete() = %v, want %v", tc.reach, got, tc.want)
		}
	}
}
