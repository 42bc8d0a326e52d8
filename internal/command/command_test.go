package command

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/siobridge/siobridge/socketio"
)

// TestClusterSaysWhenIncomplete: the "cluster" member of an answer says "complete":false only
// when a server the answer waited for did not reply, and is absent without a cluster adapter.
func TestClusterSaysWhenIncomplete(t *testing.T) {
	for _, tc := range []struct {
		name    string
		records [][2]int // nodes, replied
		want    string
	}{
		{"single node", nil, "null"},
		{"every server replied", [][2]int{{3, 3}}, `{"nodes":3,"replied":3}`},
		{"one did not", [][2]int{{3, 2}}, `{"nodes":3,"replied":2,"complete":false}`},
		{"one of two calls fell short", [][2]int{{2, 2}, {3, 2}}, `{"nodes":3,"replied":2,"complete":false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, reach := socketio.WithReach(context.Background())
			for _, r := range tc.records {
				reach.Record(r[0], r[1])
			}
			got, err := json.Marshal(clusterOf(reach))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("cluster = %s, want %s", got, tc.want)
			}
		})
	}
}
