package socketio

import (
	"context"
	"testing"
)

func TestReach(t *testing.T) {
	if _, _, ok := ReachFrom(context.Background()).Get(); ok {
		t.Fatal("a context without a Reach reports one")
	}
	ReachFrom(context.Background()).Record(3, 3) // recording into nil does nothing

	ctx, r := WithReach(context.Background())
	if ReachFrom(ctx) != r {
		t.Fatal("ReachFrom does not return the Reach of WithReach")
	}
	if _, _, ok := r.Get(); ok {
		t.Fatal("a fresh Reach reports a record")
	}
	r.Record(3, 3)
	r.Record(2, 1) // a second request of the same call heard from fewer nodes
	r.Record(4, 4)
	if nodes, replied, ok := r.Get(); !ok || nodes != 4 || replied != 1 {
		t.Fatalf("Get = %d, %d, %v; want the most nodes (4) and the fewest replies (1)", nodes, replied, ok)
	}
}
