package socketio

import (
	"context"
	"errors"
	"sync"
)

// ErrClusterUnavailable is wrapped by the errors of a cluster adapter that cannot reach the
// other nodes (its broker is down): the call has acted on this node's sockets only, and may be
// retried once the cluster is back.
var ErrClusterUnavailable = errors.New("cluster unavailable")

// Reach tells how many nodes a cluster-wide call heard from. A caller that wants to know puts
// one in the call's context with [WithReach]; a cluster adapter records into it, the in-memory
// adapter never does (so a Reach left at zero means a single node).
type Reach struct {
	mu       sync.Mutex
	recorded bool
	nodes    int
	replied  int
}

type reachKey struct{}

// WithReach returns a context that carries a fresh Reach, and the Reach.
func WithReach(ctx context.Context) (context.Context, *Reach) {
	r := &Reach{}
	return context.WithValue(ctx, reachKey{}, r), r
}

// ReachFrom returns the Reach that ctx carries, or nil. Recording into nil does nothing.
func ReachFrom(ctx context.Context) *Reach {
	r, _ := ctx.Value(reachKey{}).(*Reach)
	return r
}

// Record notes that a call waited for the answers of nodes nodes (this node included) and
// replied of them answered in time (this node included). A call that asks the cluster more
// than once records each time: the Reach keeps the most nodes and the fewest replies, so that
// it never claims a complete answer that was not.
func (r *Reach) Record(nodes, replied int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.recorded {
		r.recorded, r.nodes, r.replied = true, nodes, replied
		return
	}
	r.nodes = max(r.nodes, nodes)
	r.replied = min(r.replied, replied)
}

// Get returns what was recorded; ok is false when nothing was (a single node, or a call that
// did not need other nodes).
func (r *Reach) Get() (nodes, replied int, ok bool) {
	if r == nil {
		return 0, 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes, r.replied, r.recorded
}
