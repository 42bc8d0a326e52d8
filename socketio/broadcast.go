package socketio

import (
	"context"
	"slices"
	"sync"
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
	// Local keeps the call to this node's sockets: the namespace's cluster engine, if it has
	// one, is not asked.
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

// defaultAckWait bounds a broadcast ack wait whose context has no deadline.
const defaultAckWait = 10 * time.Second

// BroadcastOperator selects sockets of a namespace, across the cluster when the namespace has
// a [Cluster] engine, and emits to them or queries them. Each method returns a new operator; one can be kept
// and reused.
type BroadcastOperator struct {
	ns   *Namespace
	opts BroadcastOptions
}

func (b *BroadcastOperator) clone() *BroadcastOperator {
	c := *b
	c.opts.Rooms = slices.Clone(b.opts.Rooms)
	c.opts.Except = slices.Clone(b.opts.Except)
	return &c
}

// To adds rooms to select (socket ids included).
func (b *BroadcastOperator) To(rooms ...string) *BroadcastOperator {
	c := b.clone()
	c.opts.Rooms = append(c.opts.Rooms, rooms...)
	return c
}

// Except leaves out the sockets in rooms (socket ids included).
func (b *BroadcastOperator) Except(rooms ...string) *BroadcastOperator {
	c := b.clone()
	c.opts.Except = append(c.opts.Except, rooms...)
	return c
}

// Volatile makes the emit skip sockets whose transport cannot take it right now.
func (b *BroadcastOperator) Volatile() *BroadcastOperator {
	c := b.clone()
	c.opts.Volatile = true
	return c
}

// Local keeps the operator to this node's sockets.
func (b *BroadcastOperator) Local() *BroadcastOperator {
	c := b.clone()
	c.opts.Local = true
	return c
}

// Options returns the selection.
func (b *BroadcastOperator) Options() BroadcastOptions { return b.clone().opts }

// Emit sends an event to the selected sockets, encoded once for all of them, and returns how
// many sockets on this node it was queued on.
func (b *BroadcastOperator) Emit(event string, args ...any) (int, error) {
	p, err := newEventPacket(b.ns.name, event, args)
	if err != nil {
		return 0, err
	}
	return b.ns.broadcast(p, b.opts)
}

// EmitContext is Emit that counts across the cluster: it waits, bounded by ctx, for the other
// nodes to say how many of their sockets the event reached. On a single node Total is Local,
// at no extra cost.
func (b *BroadcastOperator) EmitContext(ctx context.Context, event string, args ...any) (Reached, error) {
	p, err := newEventPacket(b.ns.name, event, args)
	if err != nil {
		return Reached{}, err
	}
	if c := b.ns.remote(b.opts); c != nil {
		return c.BroadcastCount(ctx, p, b.opts)
	}
	n := b.ns.local().Broadcast(p, b.opts)
	return Reached{Local: n, Total: n}, nil
}

// AckResults gathers the answers to a broadcast with acknowledgement.
type AckResults struct {
	// Sockets is how many sockets the event reached.
	Sockets int
	// Acks are the answers, in the order they came.
	Acks []AckResult
	// TimedOut lists the sockets known by id that did not answer in time. Sockets of nodes
	// that do not name the sockets they reached (Node.js servers) are counted in Sockets but
	// named in neither Acks nor TimedOut when they stay silent.
	TimedOut []string
	// Reach is how many nodes said how many sockets the event reached.
	Reach Reach
}

// EmitWithAck sends an event to the selected sockets and gathers their acknowledgements until
// every socket reached has answered or ctx ends (with no deadline, 10 seconds).
func (b *BroadcastOperator) EmitWithAck(ctx context.Context, event string, args ...any) (*AckResults, error) {
	p, err := newEventPacket(b.ns.name, event, args)
	if err != nil {
		return nil, err
	}
	p.ID, p.HasID = b.ns.ackIDs.Add(1), true
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultAckWait)
		defer cancel()
	}
	var (
		mu       sync.Mutex
		res      AckResults
		countsIn bool // every node's count is in: only then can the acks be complete
		done     = make(chan struct{})
		closed   bool
		late     []string // the sockets that nodes whose count came late named as reached
	)
	finish := func() { // with mu held
		if !closed && countsIn && len(res.Acks) >= res.Sockets {
			closed = true
			close(done)
		}
	}
	onAck := func(a AckResult) {
		mu.Lock()
		res.Acks = append(res.Acks, a)
		finish()
		mu.Unlock()
	}
	var (
		reached []string
		r       Reached
	)
	if c := b.ns.remote(b.opts); c != nil {
		reached, r, err = c.BroadcastWithAck(ctx, p, b.opts, onAck, func(n int, ids []string) {
			mu.Lock()
			res.Sockets += n
			late = append(late, ids...)
			finish()
			mu.Unlock()
		})
		if err != nil {
			return nil, err
		}
	} else {
		reached = b.ns.local().BroadcastWithAck(ctx, p, b.opts, onAck)
		r = Reached{Local: len(reached), Total: len(reached)}
	}
	mu.Lock()
	res.Sockets += r.Total
	res.Reach = r.Reach
	countsIn = true
	finish()
	mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	out := AckResults{Sockets: res.Sockets, Acks: slices.Clone(res.Acks), Reach: res.Reach}
	answered := make(map[string]bool, len(out.Acks))
	for _, a := range out.Acks {
		answered[a.SocketID] = true
	}
	for _, id := range append(reached, late...) {
		if !answered[id] {
			out.TimedOut = append(out.TimedOut, id)
		}
	}
	return &out, nil
}

// FetchSockets describes the selected sockets, by id.
func (b *BroadcastOperator) FetchSockets(ctx context.Context) ([]SocketInfo, Reach, error) {
	if c := b.ns.remote(b.opts); c != nil {
		return c.FetchSockets(ctx, b.opts)
	}
	return b.ns.local().FetchSockets(b.opts), Reach{}, nil
}

// SocketsJoin makes the selected sockets join rooms; Reached counts them.
func (b *BroadcastOperator) SocketsJoin(ctx context.Context, rooms ...string) (Reached, error) {
	if c := b.ns.remote(b.opts); c != nil {
		return c.AddSockets(ctx, b.opts, rooms)
	}
	return localReached(b.ns.local().AddSockets(b.opts, rooms))
}

// SocketsLeave makes the selected sockets leave rooms; Reached counts them.
func (b *BroadcastOperator) SocketsLeave(ctx context.Context, rooms ...string) (Reached, error) {
	if c := b.ns.remote(b.opts); c != nil {
		return c.DelSockets(ctx, b.opts, rooms)
	}
	return localReached(b.ns.local().DelSockets(b.opts, rooms))
}

// DisconnectSockets disconnects the selected sockets (with close, their whole connections);
// Reached counts them.
func (b *BroadcastOperator) DisconnectSockets(ctx context.Context, close bool) (Reached, error) {
	if c := b.ns.remote(b.opts); c != nil {
		return c.DisconnectSockets(ctx, b.opts, close)
	}
	return localReached(b.ns.local().DisconnectSockets(b.opts, close))
}

// localReached is what a call that acted on n sockets of a single node reached.
func localReached(n int) (Reached, error) { return Reached{Local: n, Total: n}, nil }
