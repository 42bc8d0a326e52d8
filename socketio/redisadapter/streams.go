package redisadapter

// This file is the streams adapter: the ClusterAdapter protocol (clusteradapter.go) over one
// Redis stream, as @socket.io/redis-streams-adapter 0.2.3 speaks it, with its heartbeats and
// its connection state recovery (streams_recovery.go), on the hub that the factory's
// namespaces share (streams_hub.go).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siobridge/siobridge/socketio"
)

// The defaults of the streams adapter's Options, those of @socket.io/redis-streams-adapter.
const (
	DefaultStreamMaxLen      = 10000
	DefaultReadCount         = 100
	DefaultReadBlock         = 5 * time.Second
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultHeartbeatTimeout  = 10 * time.Second
	DefaultSessionKeyPrefix  = "sio:session:"
)

// emitterUID is the uid of @socket.io/redis-emitter's messages, which is not a node.
const emitterUID = "emitter"

var (
	_ socketio.Cluster       = (*StreamsAdapter)(nil)
	_ socketio.HealthChecker = (*StreamsAdapter)(nil)
	_ socketio.SessionStore  = (*StreamsAdapter)(nil)
)

// NewStreams returns the factory of streams adapters, one per namespace, for
// socketio.Options.Cluster of one server: the ClusterAdapter protocol of socket.io-adapter
// 2.5 over one Redis stream, wire-compatible with createAdapter of
// @socket.io/redis-streams-adapter 0.2.3, connection state recovery included.
//
//   - Every namespace's messages are entries of one stream, named Options.KeyPrefix (the
//     Node.js streamName, default "socket.io"): XADD <stream> MAXLEN ~ StreamMaxLen * uid
//     <uid> nsp <nsp> type <n> [data <d>], d being the message's data as JSON, or base64 of
//     its msgpack when it carries binary. Responses go on the same stream; the requester
//     knows them by their requestId.
//   - One goroutine per factory reads the stream (XREAD BLOCK ReadBlock COUNT ReadCount),
//     from its last entry when the adapter starts, and from the last entry read after a
//     failure, so that nothing is lost while Redis keeps the stream.
//   - Nodes know each other by their messages: each namespace's adapter announces itself
//     (INITIAL_HEARTBEAT, answered with a HEARTBEAT), publishes a HEARTBEAT when it has
//     published nothing for HeartbeatInterval, and says ADAPTER_CLOSE when it closes; a
//     node not heard from for HeartbeatTimeout is forgotten. The number of nodes is those
//     known plus this one.
//   - With connection state recovery on ([socketio.Options].Recovery), the adapter is the
//     namespace's [socketio.SessionStore]: see [StreamsAdapter.PersistSession].
//
// The adapters of one factory share four goroutines (reader, dispatcher, publisher and one
// heartbeat ticker), started with the first adapter and ended when the last one closes. It
// panics if opts.Client is nil.
func NewStreams(opts Options) socketio.ClusterFactory {
	opts = opts.withDefaults()
	if opts.StreamMaxLen <= 0 {
		opts.StreamMaxLen = DefaultStreamMaxLen
	}
	if opts.ReadCount <= 0 {
		opts.ReadCount = DefaultReadCount
	}
	if opts.ReadBlock <= 0 {
		opts.ReadBlock = DefaultReadBlock
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.HeartbeatTimeout <= 0 {
		opts.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if opts.SessionKeyPrefix == "" {
		opts.SessionKeyPrefix = DefaultSessionKeyPrefix
	}
	f := &streamsFactory{opts: opts}
	return func(local socketio.Local) socketio.Cluster { return newStreamsAdapter(local, f) }
}

// StreamsAdapter is one namespace's streams adapter, its [socketio.Cluster] engine and, with
// connection state recovery on, its [socketio.SessionStore].
type StreamsAdapter struct {
	*clusterAdapter
	opts    Options
	factory *streamsFactory
	hub     *streamHub // for the adapter's life
	// recovery is the namespace's recovery window; 0 when recovery is off.
	recovery time.Duration

	closeOnce sync.Once
	persists  atomic.Int64 // sessions queued for Redis, not yet answered

	nodesMu     sync.Mutex
	nodes       map[string]time.Time // the other nodes, by uid, with when they were last heard
	lastPublish time.Time

	// mu orders the stored broadcasts' delivery against restores.
	mu       sync.Mutex
	seen     streamID      // every stored broadcast of the namespace up to it has been delivered
	progress chan struct{} // closed (and replaced) when seen moves
	restores map[*streamRestore]struct{}
}

func newStreamsAdapter(local socketio.Local, f *streamsFactory) *StreamsAdapter {
	uid := newUID()
	a := &StreamsAdapter{
		opts:        f.opts,
		factory:     f,
		recovery:    local.RecoveryWindow(),
		nodes:       make(map[string]time.Time),
		lastPublish: time.Now(),
		progress:    make(chan struct{}),
		restores:    make(map[*streamRestore]struct{}),
	}
	log := f.opts.Logger.With("component", "redisadapter", "adapter", "streams", "namespace", local.Name(), "node", uid)
	a.clusterAdapter = newClusterAdapter(local, uid, a, f.opts, log)
	f.join(a)
	return a
}

// announce publishes the adapter's INITIAL_HEARTBEAT, which the other nodes answer with a
// HEARTBEAT; the hub calls it once its reader knows where it starts.
func (a *StreamsAdapter) announce() { _ = a.sendType(clusterInitialHeartbeat) }

// UID is this node's id in the namespace, as other nodes see it in messages.
func (a *StreamsAdapter) UID() string { return a.uid }

// sendType publishes a message of type typ without data.
func (a *StreamsAdapter) sendType(typ int64) error {
	return a.publish(a.message(typ, nil), "")
}

// publish implements clusterTransport: an XADD to the stream, without waiting.
func (a *StreamsAdapter) publish(m clusterMessage, _ string) error {
	return a.add(m, nil)
}

// publishResponse implements clusterTransport: responses go on the stream too.
func (a *StreamsAdapter) publishResponse(_ string, m clusterMessage) error {
	return a.add(m, nil)
}

// add queues the XADD of m; done, when set, gets its outcome.
func (a *StreamsAdapter) add(m clusterMessage, done func(error)) error {
	if a.ctx.Err() != nil && m.typ != clusterAdapterClose {
		return ErrClosed
	}
	values, err := streamEntryValues(m)
	if err != nil {
		return fmt.Errorf("redisadapter: encode message: %w", err)
	}
	a.nodesMu.Lock()
	a.lastPublish = time.Now()
	a.nodesMu.Unlock()
	return a.hub.send(streamOut{values: values, done: done})
}

// serverCount implements clusterTransport: the nodes heard from within HeartbeatTimeout, and
// this one.
func (a *StreamsAdapter) serverCount(context.Context) (int, error) {
	if err := a.readFailing(); err != nil {
		return 0, err
	}
	a.nodesMu.Lock()
	defer a.nodesMu.Unlock()
	return 1 + len(a.nodes), nil
}

// readFailing returns an error wrapping socketio.ErrClusterUnavailable while the stream
// cannot be read (not before the first read).
func (a *StreamsAdapter) readFailing() error {
	h := a.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readErr != nil && !errors.Is(h.readErr, errNotYet) {
		return fmt.Errorf("%w: redisadapter: reading stream %q: %w", socketio.ErrClusterUnavailable, h.stream, h.readErr)
	}
	return nil
}

// Healthy implements [socketio.HealthChecker]: nil while the stream is read and commands
// (XADD, SET) get answers.
func (a *StreamsAdapter) Healthy() error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	if err := a.hub.health(); err != nil {
		return fmt.Errorf("redisadapter: namespace %q: %w", a.local.Name(), err)
	}
	return nil
}

// Nodes is how many nodes the namespace has as this adapter knows them now, this one
// included.
func (a *StreamsAdapter) Nodes() int {
	a.nodesMu.Lock()
	defer a.nodesMu.Unlock()
	return 1 + len(a.nodes)
}

// stores reports whether a broadcast of p to opts is stored for recovery: recovery is on,
// and p is an event without ack id and not volatile.
func (a *StreamsAdapter) stores(p *socketio.Packet, opts socketio.BroadcastOptions) bool {
	return a.recovery > 0 && (p.Type == socketio.PacketEvent || p.Type == socketio.PacketBinaryEvent) && !p.HasID && !opts.Volatile
}

// Broadcast implements [socketio.Cluster]. A broadcast that is stored for recovery reaches
// this node's sockets when the reader reads it back from the stream, with its entry id as
// offset, like every other node's sockets; it returns how many of this node's sockets opts
// selects now. If Redis does not take it, this node's sockets get it without offset (as in
// Node.js). Any other broadcast reaches this node's sockets at once.
func (a *StreamsAdapter) Broadcast(p *socketio.Packet, opts socketio.BroadcastOptions) (int, error) {
	if !a.stores(p, opts) {
		return a.clusterAdapter.Broadcast(p, opts)
	}
	n := a.local.Count(opts)
	if err := a.publishStored(p, opts); err != nil {
		return a.local.Broadcast(p, opts), fmt.Errorf("redisadapter: broadcast to other nodes: %w", err)
	}
	return n, nil
}

// BroadcastCount implements [socketio.Cluster], as Broadcast for what this node's sockets
// get.
func (a *StreamsAdapter) BroadcastCount(ctx context.Context, p *socketio.Packet, opts socketio.BroadcastOptions) (socketio.Reached, error) {
	if !a.stores(p, opts) {
		return a.clusterAdapter.BroadcastCount(ctx, p, opts)
	}
	failed := false
	return a.act(ctx, opts, func() error {
		err := a.publishStored(p, opts)
		failed = err != nil
		return err
	}, func() int {
		if failed {
			return a.local.Broadcast(p, opts)
		}
		return a.local.Count(opts)
	})
}

// publishStored queues a stored broadcast; if Redis refuses it, this node's sockets get it
// without offset.
func (a *StreamsAdapter) publishStored(p *socketio.Packet, opts socketio.BroadcastOptions) error {
	m, err := a.broadcastMessage(p, opts, "", nil)
	if err != nil {
		return err
	}
	return a.add(m, func(err error) {
		if err != nil {
			a.local.Broadcast(p, opts)
		}
	})
}

// receive takes an entry of the namespace on the reader goroutine: it keeps the membership,
// answers heartbeats and settles responses there, and returns what the dispatcher is to
// handle.
func (a *StreamsAdapter) receive(id string, values map[string]any) (streamDelivery, bool) {
	if a.ctx.Err() != nil {
		return streamDelivery{}, false
	}
	m, err := decodeStreamEntry(values)
	if err != nil {
		a.log.Debug("redis streams adapter: ignoring malformed entry", "id", id, "error", err)
		if a.onMalformed != nil {
			a.onMalformed()
		}
		return streamDelivery{}, false
	}
	if m.uid == a.uid {
		// This node's stored broadcasts reach its sockets from here, with their offset.
		return streamDelivery{a, id, m}, a.recovery > 0 && isStoredBroadcast(m)
	}
	if m.uid != "" && m.uid != emitterUID {
		a.nodesMu.Lock()
		a.nodes[m.uid] = time.Now()
		a.nodesMu.Unlock()
	}
	switch m.typ {
	case clusterInitialHeartbeat:
		_ = a.sendType(clusterHeartbeat)
	case clusterHeartbeat:
	case clusterAdapterClose:
		a.nodesMu.Lock()
		delete(a.nodes, m.uid)
		a.nodesMu.Unlock()
	case clusterFetchSocketsResponse, clusterBroadcastClientCount, clusterBroadcastAck, clusterServerSideEmitResponse:
		a.settle(m)
	default:
		return streamDelivery{a, id, m}, true
	}
	return streamDelivery{}, false
}

// dispatch handles an entry on the dispatcher goroutine.
func (a *StreamsAdapter) dispatch(d streamDelivery) {
	defer func() {
		// An entry from the network must never take the process down.
		if r := recover(); r != nil {
			a.log.Error("redis streams adapter: panic while handling an entry", "id", d.id, "panic", r)
		}
	}()
	if a.ctx.Err() != nil {
		return
	}
	if a.recovery > 0 && isStoredBroadcast(d.m) {
		a.deliverStored(d.id, d.m)
		return
	}
	a.handle(d.m)
	if a.recovery > 0 {
		// A client's offset may be the id of any broadcast that Node.js replayed to it
		// (a volatile one included): a restore waits for this node to be past it.
		if id, ok := parseStreamID(d.id); ok {
			a.mu.Lock()
			a.advance(id)
			a.mu.Unlock()
		}
	}
}

// isStoredBroadcast reports whether m is a broadcast that recovery stores, as Node.js'
// ClusterAdapter decides when it adds an offset: an event (type 2) without ack id nor
// requestId, not volatile.
func isStoredBroadcast(m clusterMessage) bool {
	if m.typ != clusterBroadcast || m.data == nil || m.data.has("requestId") {
		return false
	}
	pkt, _ := m.data.get("packet").(*object)
	if typ, _ := asInt(pkt.get("type")); typ != int64(socketio.PacketEvent) || pkt.has("id") {
		return false
	}
	wopts, _ := m.data.get("opts").(*object)
	flags, _ := wopts.get("flags").(*object)
	return !flags.has("volatile")
}

// tick is the heartbeat ticker's visit: nodes silent for HeartbeatTimeout are forgotten, and
// a HEARTBEAT goes out when nothing was published for HeartbeatInterval.
func (a *StreamsAdapter) tick(now time.Time) {
	if a.ctx.Err() != nil {
		return
	}
	a.nodesMu.Lock()
	for uid, at := range a.nodes {
		if now.Sub(at) > a.opts.HeartbeatTimeout {
			delete(a.nodes, uid)
			a.log.Debug("redis streams adapter: node gone silent", "uid", uid)
		}
	}
	due := now.Sub(a.lastPublish) >= a.opts.HeartbeatInterval
	a.nodesMu.Unlock()
	if due {
		_ = a.sendType(clusterHeartbeat)
	}
}

// Close implements [socketio.Cluster]: ADAPTER_CLOSE goes out, requests waiting for other
// nodes return what they have, restores in progress end. Closing the factory's last adapter
// stops its goroutines, once what is queued for Redis is sent (for at most a second).
func (a *StreamsAdapter) Close() error {
	a.closeOnce.Do(func() {
		_ = a.sendType(clusterAdapterClose)
		a.close()
		a.factory.release(a, a.hub)
	})
	return nil
}
