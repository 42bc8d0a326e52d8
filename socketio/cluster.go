package socketio

import (
	"context"
	"errors"
)

// Cluster is a namespace's cluster engine: it carries the namespace's broadcasts and socket
// queries to the other nodes of a cluster and answers theirs, as Node's Socket.IO adapters
// do on Redis (see package socketio/redisadapter). It is made per namespace by
// [Options].Cluster, given the namespace's [Local] side. The namespace owns its sockets and
// their rooms; without an engine (the default) it is this node's alone, and a broadcast costs
// nothing more than its delivery.
//
// Each method acts on the sockets that opts selects on every node: on this node's through
// Local, at the point the engine's ordering needs (the namespace does not do it too), on the
// others' through the network. The namespace calls it only for calls not kept to this node
// ([BroadcastOptions].Local false). Other nodes' requests the engine answers through Local as
// well. Methods may be called concurrently, from any goroutine.
//
// What every engine guarantees:
//   - Broadcast delivery is at most once on every node: a socket that disconnects meanwhile, a
//     volatile packet its transport cannot take at once, a node that cannot be reached, miss
//     it. The broadcasts of one caller reach each socket in the order they were made.
//   - Broadcast never waits for the other nodes.
//   - The other methods wait for the other nodes at most until ctx ends or a bound of the
//     engine's own; a node that has not answered by then is left out of the result, and the
//     [Reach] returned says how many answered.
//   - An error that means the other nodes cannot be reached wraps [ErrClusterUnavailable]; this
//     node's part has been done all the same, and the result holds it.
//
// Optional parts, each found once when the namespace is made: [HealthChecker],
// [SessionStore] and [RoomObserver].
type Cluster interface {
	// Broadcast sends p to the selected sockets and returns how many of this node's it was
	// queued on. An error means other nodes may miss it.
	Broadcast(p *Packet, opts BroadcastOptions) (int, error)
	// BroadcastCount is Broadcast that also waits for the other nodes to say how many of
	// their sockets they sent p to.
	BroadcastCount(ctx context.Context, p *Packet, opts BroadcastOptions) (Reached, error)
	// BroadcastWithAck sends p, which carries an ack id, to the selected sockets and calls
	// onAck with each answer until ctx ends. It returns once every node has said how many of
	// its sockets it sent p to, or its wait for that is over: Reached counts them, and ids
	// names those the nodes named. A node whose count comes later, while ctx lasts, is passed
	// to onLate (n sockets, those of ids named), so that its sockets' answers are awaited too.
	BroadcastWithAck(ctx context.Context, p *Packet, opts BroadcastOptions, onAck func(AckResult), onLate func(n int, ids []string)) (ids []string, r Reached, err error)
	// FetchSockets describes the selected sockets, by id.
	FetchSockets(ctx context.Context, opts BroadcastOptions) ([]SocketInfo, Reach, error)
	// AddSockets makes the selected sockets join rooms; Reached counts those selected.
	AddSockets(ctx context.Context, opts BroadcastOptions, rooms []string) (Reached, error)
	// DelSockets makes the selected sockets leave rooms; Reached counts those selected.
	DelSockets(ctx context.Context, opts BroadcastOptions, rooms []string) (Reached, error)
	// DisconnectSockets disconnects the selected sockets from the namespace (with close,
	// their whole connections); Reached counts those selected.
	DisconnectSockets(ctx context.Context, opts BroadcastOptions, close bool) (Reached, error)
	// Rooms lists every room with its number of sockets, by name, socket-id rooms left out.
	Rooms(ctx context.Context) ([]RoomInfo, Reach, error)
	// Close ends the engine's part in the cluster; the namespace calls it once, when it is
	// removed or its server closes.
	Close() error
}

// ClusterFactory makes the cluster engine of the namespace whose Local side it is given, or
// returns nil to leave that namespace to this node alone. It runs while the server makes the
// namespace, under the server's lock: it must not block nor call the server, and may keep
// Local for later but not call it yet.
type ClusterFactory func(Local) Cluster

// HealthChecker is the optional part of a [Cluster] engine that tells whether it reaches the
// other nodes now; [Namespace.ClusterHealth] asks it, for a readiness probe. Whatever it
// answers, the engine serves this node's sockets.
type HealthChecker interface {
	// Healthy returns nil while the engine can both send to the other nodes and hear from
	// them, and otherwise an error saying why not and since when; meanwhile the other nodes
	// miss this node's broadcasts, or this node misses theirs. It must answer at once, without
	// waiting on the network.
	Healthy() error
}

// RoomObserver is the optional part of a [Cluster] engine that follows which rooms this node
// has, for an engine that listens to a room's traffic only while some socket here is in it
// (Socket.IO's sharded Redis adapter subscribes to a channel per room). RoomCreated is
// called when a room gets its first socket on this node, RoomDeleted when its last one
// leaves; the room named by a socket's own id is not reported, unless other sockets joined
// it too. The calls for one namespace are made one at a time, in the order the rooms changed,
// with the namespace's room table locked: they must not block, nor call [Local] or the
// namespace.
type RoomObserver interface {
	RoomCreated(room string)
	RoomDeleted(room string)
}

// ErrClusterUnavailable is wrapped by the errors of a cluster engine that cannot reach the
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
