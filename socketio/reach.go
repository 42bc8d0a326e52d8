package socketio

import "errors"

// ErrClusterUnavailable is wrapped by the errors of a cluster adapter that cannot reach the
// other nodes (its broker is down): the call has acted on this node's sockets only, and may be
// retried once the cluster is back.
var ErrClusterUnavailable = errors.New("cluster unavailable")

// Reach says how many nodes a cluster-wide call needed to hear from and how many did in time.
// The zero Reach is that of a call that asked no other node: on a single node, kept to this
// node ([BroadcastOperator.Local]), or whose other nodes could not be reached (its error then
// wraps [ErrClusterUnavailable]).
type Reach struct {
	// Nodes is how many servers the call waited for, this one included, and servers of other
	// implementations that share the cluster (Node.js ones) too.
	Nodes int
	// Replied is how many of them answered in time, this one included.
	Replied int
}

// Complete reports whether every server the call waited for answered in time; when not, the
// call's counts and lists leave out the sockets of those that did not.
func (r Reach) Complete() bool { return r.Replied >= r.Nodes }

// Reached is what a call that acts on sockets (an emit, a join, a leave, a disconnect) reached:
// how many sockets, on this node and in all, and the nodes it heard from.
type Reached struct {
	// Local is how many of this node's sockets the call acted on.
	Local int
	// Total is how many sockets it acted on on every server that answered in time, Local
	// included. On a single node it is Local.
	Total int
	Reach
}
