package redisadapter

// This file is the sharded adapter: the ClusterAdapter protocol (clusteradapter.go) over
// Redis 7's sharded pub/sub, as @socket.io/redis-adapter 8.3's createShardedAdapter speaks
// it, on the hub that the factory's namespaces share (hub.go, loops.go).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/socketio"
)

// socketIDLength is the length of a Socket.IO socket id: a broadcast to one room of that
// length is taken for one to a socket and goes on the namespace's channel, as in Node.js.
const socketIDLength = 20

var (
	_ socketio.Cluster       = (*ShardedAdapter)(nil)
	_ socketio.HealthChecker = (*ShardedAdapter)(nil)
	_ socketio.RoomObserver  = (*ShardedAdapter)(nil)
)

// NewSharded returns the factory of sharded adapters, one per namespace, for
// socketio.Options.Cluster of one server: the ClusterAdapter protocol of socket.io-adapter 2.5
// over Redis 7's sharded pub/sub (SSUBSCRIBE, SPUBLISH), wire-compatible with
// createShardedAdapter of @socket.io/redis-adapter 8.3 in its default "dynamic" subscription
// mode. Per namespace nsp and key prefix (Options.KeyPrefix, the Node.js channelPrefix):
//
//   - every node SSUBSCRIBEs "<prefix>#<nsp>#", where messages go, and its own
//     "<prefix>#<nsp>#<uid>#", where the answers to its requests go;
//   - a broadcast without acks to exactly one room goes on the room's channel
//     "<prefix>#<nsp>#<room>#" instead, unless the room name has 20 characters (a socket
//     id): a node SSUBSCRIBEs a room's channel while one of its sockets is in the room;
//   - the number of nodes is PUBSUB SHARDNUMSUB of the namespace's channel.
//
// The adapters of one factory share one subscriber connection and the goroutines of New's
// hub. Options.PublishOnSpecificResponseChannel does not apply. The client is a *redis.Client
// (or a failover client), or a *redis.ClusterClient for a Redis Cluster: each channel hashes
// to a slot, as a key does, so a namespace's and its rooms' channels live on different
// masters; the hub then SSUBSCRIBEs each on its slot's master, over one more connection per
// master that owns any of them, and subscribes a channel again on its new master when its
// slot moves; SPUBLISH goes to the channel's master, and the number of nodes is
// PUBSUB SHARDNUMSUB summed over the masters, as the Node.js adapter counts it. It panics if
// opts.Client is nil.
func NewSharded(opts Options) socketio.ClusterFactory {
	opts = opts.withDefaults()
	f := &factory{opts: opts}
	return func(local socketio.Local) socketio.Cluster { return newShardedAdapter(local, f) }
}

// ShardedAdapter is one namespace's sharded adapter, its [socketio.Cluster] engine.
type ShardedAdapter struct {
	*clusterAdapter
	client  redis.UniversalClient
	factory *factory
	hub     *hub // set by the factory, for the adapter's life

	channel         string // "<prefix>#<nsp>#"; a room's is channel + room + "#"
	responseChannel string // channel + uid + "#"

	closeOnce sync.Once

	link // kept by the hub, under its lock
}

func newShardedAdapter(local socketio.Local, f *factory) *ShardedAdapter {
	uid := newUID()
	opts := f.opts
	nsp := local.Name()
	a := &ShardedAdapter{
		client:  opts.Client,
		factory: f,
		channel: opts.KeyPrefix + "#" + nsp + "#",
		link:    newLink(),
	}
	a.responseChannel = a.channel + uid + "#"
	log := opts.Logger.With("component", "redisadapter", "adapter", "sharded", "namespace", nsp, "node", uid)
	a.clusterAdapter = newClusterAdapter(local, uid, a, opts, log)
	f.join(a, func(h *hub) { a.hub = h })
	return a
}

// UID is this node's id in the namespace, as other nodes see it in messages.
func (a *ShardedAdapter) UID() string { return a.uid }

func (a *ShardedAdapter) subscriptions() []subscription {
	return []subscription{{name: a.channel, shard: true}, {name: a.responseChannel, shard: true}}
}

func (a *ShardedAdapter) hubLink() *link { return &a.link }

// receive settles responses on the subscriber goroutine and leaves the rest to the
// dispatcher.
func (a *ShardedAdapter) receive(m *redis.Message) bool {
	if m.Channel == a.responseChannel {
		a.onResponse([]byte(m.Payload))
		return false
	}
	return true
}

func (a *ShardedAdapter) dispatch(m *redis.Message) {
	defer func() {
		// A message from the network must never take the process down.
		if r := recover(); r != nil {
			a.log.Error("redis adapter: panic while handling a message", "channel", m.Channel, "panic", r)
		}
	}()
	a.onMessage([]byte(m.Payload))
}

func (a *ShardedAdapter) roomChannel(room string) subscription {
	return subscription{name: a.channel + room + "#", shard: true}
}

// RoomCreated implements [socketio.RoomObserver]: the room's channel is subscribed (by the
// hub's keeper, without waiting), so that broadcasts other nodes send to the room alone
// reach this node.
func (a *ShardedAdapter) RoomCreated(room string) { a.hub.addRoute(a, a.roomChannel(room)) }

// RoomDeleted implements [socketio.RoomObserver]: the room's channel is unsubscribed.
func (a *ShardedAdapter) RoomDeleted(room string) { a.hub.removeRoute(a, a.roomChannel(room)) }

// publish implements clusterTransport: SPUBLISH on the namespace's channel, or on the room's
// for a broadcast to one room whose name does not look like a socket id.
func (a *ShardedAdapter) publish(m clusterMessage, room string) error {
	channel := a.channel
	if room != "" && len(room) != socketIDLength {
		channel = a.channel + room + "#"
	}
	return a.enqueue(channel, m)
}

// publishResponse implements clusterTransport: SPUBLISH on the requester's channel.
func (a *ShardedAdapter) publishResponse(uid string, m clusterMessage) error {
	return a.enqueue(a.channel+uid+"#", m)
}

// enqueue encodes m once and queues it for the hub's publisher.
func (a *ShardedAdapter) enqueue(channel string, m clusterMessage) error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	payload, err := encodeClusterMessage(m)
	if err != nil {
		return fmt.Errorf("redisadapter: encode message: %w", err)
	}
	select {
	case a.hub.outbox <- outgoing{channel: channel, payload: payload, shard: true}:
		return nil
	default:
		a.hub.countDropped(1)
		a.log.Warn("redis adapter publish queue full; message dropped", "channel", channel)
		return ErrPublishQueueFull
	}
}

// serverCount implements clusterTransport: PUBSUB SHARDNUMSUB of the namespace's channel,
// once this node's subscription is confirmed (bounded by ctx and RequestTimeout), so that it
// counts this node. While the subscription works, a failed count is tried again until then
// (the client's pool may answer with a cached dial error just after Redis came back).
func (a *ShardedAdapter) serverCount(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	a.waitSubscribed(ctx)
	for wait := retryMin; ; wait = min(2*wait, retryMax) {
		n, err := a.shardNumSub(ctx)
		if err == nil {
			return max(n, 1), nil
		}
		if !a.subscriptionUp() {
			return 0, fmt.Errorf("%w: redisadapter: PUBSUB SHARDNUMSUB %s: %w", socketio.ErrClusterUnavailable, a.channel, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("%w: redisadapter: PUBSUB SHARDNUMSUB %s: %w", socketio.ErrClusterUnavailable, a.channel, err)
		}
	}
}

// shardNumSub is PUBSUB SHARDNUMSUB of the namespace's channel. Each master of a Redis
// Cluster counts its own subscribers only, so there it is the sum over the masters, as the
// Node.js adapter counts (the channel's owner alone has subscribers, unless its slot is
// moving); go-redis would send it to any one node.
func (a *ShardedAdapter) shardNumSub(ctx context.Context) (int, error) {
	cc, ok := a.client.(*redis.ClusterClient)
	if !ok {
		m, err := a.client.PubSubShardNumSub(ctx, a.channel).Result()
		return int(m[a.channel]), err
	}
	var mu sync.Mutex
	n := 0
	err := cc.ForEachMaster(ctx, func(ctx context.Context, master *redis.Client) error {
		m, err := master.PubSubShardNumSub(ctx, a.channel).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		n += int(m[a.channel])
		mu.Unlock()
		return nil
	})
	return n, err
}

// waitSubscribed waits, bounded by ctx, until the adapter's channels are first subscribed
// while Redis can be reached.
func (a *ShardedAdapter) waitSubscribed(ctx context.Context) {
	h := a.hub
	h.mu.Lock()
	ch := a.subscribed
	down := h.connErr != nil && !errors.Is(h.connErr, errNotYet)
	h.mu.Unlock()
	if ch == nil || down {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	case <-a.ctx.Done():
	}
}

func (a *ShardedAdapter) subscriptionUp() bool {
	a.hub.mu.Lock()
	defer a.hub.mu.Unlock()
	return a.hub.connErr == nil
}

// Healthy implements [socketio.HealthChecker] as [Adapter.Healthy] does: nil while the
// namespace's channel and this node's response channel are subscribed and commands get
// answers.
func (a *ShardedAdapter) Healthy() error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	return a.hub.healthOf(a.local.Name(), func() (time.Time, error) { return a.healthAt, a.health })
}

// Close implements [socketio.Cluster]: the namespace's channels, its rooms' included, are
// unsubscribed by the hub's keeper, and requests waiting for other nodes return what they
// have. Closing the factory's last adapter stops the hub, as [Adapter.Close] says.
func (a *ShardedAdapter) Close() error {
	a.closeOnce.Do(func() {
		a.close()
		a.factory.release(a, a.hub)
	})
	return nil
}
