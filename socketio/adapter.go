package socketio

import (
	"context"
	"time"
)

// BroadcastOptions select the sockets of a namespace that a broadcast or a query acts on.
type BroadcastOptions struct {
	// Rooms, when not empty, selects the sockets in at least one of them; empty selects every
	// socket of the namespace. A socket id is a room holding that socket alone.
	Rooms []string
	// Except leaves out the sockets in any of these rooms (socket ids included).
	Except []string
	// Volatile sends only to sockets whose transport can take the packet now; it may be lost.
	Volatile bool
	// Local keeps a cluster adapter to this node's sockets.
	Local bool
}

// SocketInfo describes one socket, local or on another node, for queries.
type SocketInfo struct {
	ID        string     `json:"id"`
	Namespace string     `json:"namespace"`
	Rooms     []string   `json:"rooms"`
	Data      any        `json:"data"`
	Handshake *Handshake `json:"handshake"`
}

// RoomInfo is a room and how many sockets are in it.
type RoomInfo struct {
	Name    string `json:"name"`
	Sockets int    `json:"sockets"`
}

// AckResult is one socket's answer to a broadcast with acknowledgement.
type AckResult struct {
	// SocketID is the answering socket; empty when a remote node does not say.
	SocketID string
	Args     Args
}

// Adapter keeps a namespace's room membership and carries its broadcasts and socket queries.
// The in-memory adapter ([NewMemoryAdapter]) serves one process; a cluster adapter reaches
// every node's sockets with the same calls, so swapping it changes nothing elsewhere.
//
// Membership calls (AddAll, Del, DelAll, SocketRooms) concern this node's sockets and must be
// cheap: they run on connection goroutines. Broadcast delivery is at most once: a socket that
// disconnects meanwhile, or a volatile packet its transport cannot take now, misses it.
// Everything else takes a context that bounds the wait for other nodes; a node that does not
// answer in time is left out of the answer, never waited on beyond ctx, and the [Reach]
// returned says how many did.
type Adapter interface {
	// AddAll puts the local socket id into rooms.
	AddAll(id string, rooms []string)
	// Del takes the local socket id out of room.
	Del(id, room string)
	// DelAll takes the local socket id out of every room, as it disconnects.
	DelAll(id string)
	// SocketRooms lists the rooms of the local socket id, or nil for an unknown socket.
	SocketRooms(id string) []string

	// Broadcast sends p to the selected sockets and returns how many local sockets it was
	// queued on.
	Broadcast(p *Packet, opts BroadcastOptions) (int, error)
	// BroadcastWithAck sends p, which carries an ack id, to the selected sockets and calls
	// onAck with each answer until ctx ends. It returns once every node has said how many of
	// its sockets it sent p to, or its wait for that is over: Reached counts them, and ids
	// names those the nodes named. A node whose count comes later, while ctx lasts, is passed
	// to onLate (n sockets, those of ids named), so that its sockets' answers are awaited too.
	BroadcastWithAck(ctx context.Context, p *Packet, opts BroadcastOptions, onAck func(AckResult), onLate func(n int, ids []string)) (ids []string, r Reached, err error)

	// FetchSockets describes the selected sockets.
	FetchSockets(ctx context.Context, opts BroadcastOptions) ([]SocketInfo, Reach, error)
	// AddSockets makes the selected sockets join rooms; Reached counts those selected.
	AddSockets(ctx context.Context, opts BroadcastOptions, rooms []string) (Reached, error)
	// DelSockets makes the selected sockets leave rooms; Reached counts those selected.
	DelSockets(ctx context.Context, opts BroadcastOptions, rooms []string) (Reached, error)
	// DisconnectSockets disconnects the selected sockets from the namespace (with close, their
	// whole connection); Reached counts those selected.
	DisconnectSockets(ctx context.Context, opts BroadcastOptions, close bool) (Reached, error)
	// Rooms lists every room with its number of sockets, socket-id rooms left out.
	Rooms(ctx context.Context) ([]RoomInfo, Reach, error)

	// Close releases the adapter's resources.
	Close() error
}

// CountingAdapter is the optional part of an Adapter that can count the sockets a broadcast
// reaches on the other nodes too. BroadcastOperator.EmitContext uses it when the adapter has
// it; otherwise EmitContext counts this node's sockets alone.
type CountingAdapter interface {
	Adapter
	// BroadcastCount is Broadcast that also waits, bounded by ctx, for the other nodes to say
	// how many of their sockets they sent p to; nodes that do not answer in time are left out
	// of the total.
	BroadcastCount(ctx context.Context, p *Packet, opts BroadcastOptions) (Reached, error)
}

// HealthChecker is the optional part of an Adapter that tells whether it reaches the other
// nodes now; [Namespace.ClusterHealth] asks it, for a readiness probe. Whatever it answers,
// the adapter serves this node's sockets.
type HealthChecker interface {
	// Healthy returns nil while the adapter can both send to the other nodes and hear from
	// them, and otherwise an error saying why not and since when; meanwhile the other nodes
	// miss this node's broadcasts, or this node misses theirs. It must answer at once, without
	// waiting on the network.
	Healthy() error
}

// AdapterFactory makes the adapter of one namespace.
type AdapterFactory func(ns *Namespace) Adapter

// defaultAckWait bounds a broadcast ack wait whose context has no deadline.
const defaultAckWait = 10 * time.Second
