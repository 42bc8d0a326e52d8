package redisadapter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/socketio"
)

// Request types of @socket.io/redis-adapter, numbered as on the wire.
const (
	typeSockets              = 0
	typeAllRooms             = 1
	typeRemoteJoin           = 2
	typeRemoteLeave          = 3
	typeRemoteDisconnect     = 4
	typeRemoteFetch          = 5
	typeServerSideEmit       = 6
	typeBroadcast            = 7
	typeBroadcastClientCount = 8
	typeBroadcastAck         = 9
)

// Defaults of [Options].
const (
	DefaultKeyPrefix      = "socket.io"
	DefaultRequestTimeout = 5 * time.Second
)

// Sizes and intervals that need no tuning.
const (
	// publishQueueSize bounds the messages waiting for the publisher goroutine (of all the
	// namespaces of one factory).
	publishQueueSize = 4096
	// inboxSize bounds the broadcasts and requests waiting for the dispatcher goroutine.
	inboxSize = 1024
	// pingInterval is how long the subscriber waits for a message before it pings Redis; a
	// ping not answered within another interval ends the connection.
	pingInterval = 3 * time.Second
	// defaultAckWait bounds the acks this node gathers for another node's broadcast when the
	// request names no timeout.
	defaultAckWait = 10 * time.Second
	// maxAckWait caps the timeout a remote broadcast request may ask for.
	maxAckWait = 10 * time.Minute
)

// Errors the adapter returns.
var (
	// ErrClosed is returned by calls on a closed adapter that need Redis. It wraps
	// socketio.ErrClusterUnavailable, as do the errors of calls that cannot reach Redis.
	ErrClosed = fmt.Errorf("redisadapter: adapter closed: %w", socketio.ErrClusterUnavailable)
	// ErrPublishQueueFull is returned when messages for Redis pile up faster than they can be
	// published; this node's sockets were served, other nodes miss the message. It wraps
	// socketio.ErrClusterUnavailable.
	ErrPublishQueueFull = fmt.Errorf("redisadapter: publish queue full: %w", socketio.ErrClusterUnavailable)
)

// Options configure the adapters that [New] makes. The zero value of every field but Client
// means its default.
type Options struct {
	// Client publishes and runs commands; the adapters of one factory (the result of one
	// New) also share one subscriber connection made from it (Client.Subscribe). A
	// *redis.Client (also from NewFailoverClient) or a *redis.ClusterClient; not a
	// *redis.Ring, whose shards do not share pub/sub. Required.
	Client redis.UniversalClient
	// KeyPrefix starts every channel name, as the Node.js adapter's "key" option. Default
	// "socket.io".
	KeyPrefix string
	// RequestTimeout bounds how long a cluster-wide request (FetchSockets, Rooms, the counts
	// of AddSockets/DelSockets/DisconnectSockets, the client counts of BroadcastWithAck) waits
	// for the other nodes; a node that has not answered by then is left out. Default 5s,
	// the Node.js adapter's requestsTimeout.
	RequestTimeout time.Duration
	// PublishOnSpecificResponseChannel answers each request on the requester's own channel
	// "<prefix>-response#<nsp>#<uid>#" instead of the shared "<prefix>-response#<nsp>#", as
	// the Node.js option of that name. Node.js adapters 8.2+ listen on both; leave it false
	// when older ones are in the cluster. Default false.
	PublishOnSpecificResponseChannel bool
	// Logger receives the adapter's logs (connection state changes at Warn and Info, dropped
	// messages at Warn, protocol oddities at Debug). Default slog.Default().
	Logger *slog.Logger
	// OnDrop, when set, is called with the number of messages for other nodes dropped
	// because too many waited for Redis (see Healthy): the place to count them. It must not
	// block.
	OnDrop func(n int)

	// maxUnsent replaces the publisher's bound maxUnsent, in tests.
	maxUnsent int
}

// New returns the factory of Redis adapters, one per namespace, for socketio.Options.Cluster
// of one server. The adapters it makes share one subscriber connection and four goroutines
// (a subscriber, a keeper of the subscriptions, a dispatcher and a publisher), started with
// the first adapter and ended when the last one is closed (so by socketio.Server.Close); an
// adapter made after that starts them again. It panics if opts.Client is nil: that is a
// configuration mistake, found at start.
func New(opts Options) socketio.ClusterFactory {
	if opts.Client == nil {
		panic("redisadapter: Options.Client is nil; pass a go-redis client such as redis.NewClient(&redis.Options{Addr: \"127.0.0.1:6379\"})")
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultKeyPrefix
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	f := &factory{opts: opts}
	return f.newAdapter
}

// Adapter is one namespace's Redis adapter, its [socketio.Cluster] engine: it reaches the
// other nodes through Redis, over the connection and goroutines it shares with the factory's
// other adapters, and this node's sockets through the namespace's [socketio.Local] side.
type Adapter struct {
	local   socketio.Local
	client  redis.UniversalClient
	opts    Options
	log     *slog.Logger
	uid     string
	factory *factory
	hub     *hub // set by the factory, for the adapter's life

	channel                 string // broadcasts: channel, or channel + room + "#"
	requestChannel          string
	responseChannel         string
	specificResponseChannel string
	presenceChannel         string // only siobridge nodes subscribe: NUMSUB counts them

	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	pending map[string]*pendingRequest
	ackReqs map[string]*ackRequest

	// Kept by the hub, under its lock:
	health     error // nil while subscribed
	healthAt   time.Time
	subscribed chan struct{} // closed, and set to nil, once first subscribed
}

func newAdapter(local socketio.Local, f *factory) *Adapter {
	uid := newID()
	opts := f.opts
	prefix := opts.KeyPrefix
	nsp := local.Name()
	a := &Adapter{
		local:           local,
		client:          opts.Client,
		opts:            opts,
		log:             opts.Logger.With("component", "redisadapter", "namespace", nsp, "node", uid),
		uid:             uid,
		factory:         f,
		channel:         prefix + "#" + nsp + "#",
		requestChannel:  prefix + "-request#" + nsp + "#",
		responseChannel: prefix + "-response#" + nsp + "#",
		presenceChannel: prefix + "-siobridge#" + nsp + "#",
		pending:         make(map[string]*pendingRequest),
		ackReqs:         make(map[string]*ackRequest),
		health:          errNotYet,
		healthAt:        time.Now(),
		subscribed:      make(chan struct{}),
	}
	a.specificResponseChannel = a.responseChannel + uid + "#"
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

// subscriptions are the adapter's channels and pattern: PSUBSCRIBE on the broadcasts,
// SUBSCRIBE on the requests, the responses (shared and its own) and the presence channel.
func (a *Adapter) subscriptions() [5]subscription {
	return [5]subscription{
		{name: a.channel + "*", pattern: true},
		{name: a.requestChannel},
		{name: a.responseChannel},
		{name: a.specificResponseChannel},
		{name: a.presenceChannel},
	}
}

// newID returns 6 random bytes in hex, the shape of the Node.js adapter's ids.
func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// UID is this node's id in the namespace, as other nodes see it in messages.
func (a *Adapter) UID() string { return a.uid }

// Healthy returns nil while both directions work: the adapter is subscribed to its Redis
// channels, and commands through the client (PUBLISH, PUBSUB NUMSUB) get answers. Otherwise
// it returns an error saying since when and why not (also before the first subscription
// completes, after Redis was lost until both work again, and after Close). While it is not
// nil, messages from other nodes are missed, and messages for them wait in the publisher
// (at most maxUnsent, sent in order once Redis answers; beyond that dropped, logged and
// passed to Options.OnDrop); this node's own sockets are served all along. It implements
// [socketio.HealthChecker].
func (a *Adapter) Healthy() error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	a.hub.mu.Lock()
	defer a.hub.mu.Unlock()
	if a.health != nil {
		return fmt.Errorf("redisadapter: namespace %q: not subscribed to Redis since %s: %w",
			a.local.Name(), a.healthAt.Format(time.RFC3339), a.health)
	}
	if err := a.hub.cmdErr; err != nil {
		return fmt.Errorf("redisadapter: cannot publish to Redis since %s: %w",
			a.hub.cmdErrAt.Format(time.RFC3339), err)
	}
	return nil
}

// waitSubscribed waits, bounded by ctx and RequestTimeout, until a new adapter's channels are
// subscribed while Redis can be reached: PUBSUB NUMSUB counts this node only from then on.
func (a *Adapter) waitSubscribed(ctx context.Context) {
	h := a.hub
	h.mu.Lock()
	ch := a.subscribed
	down := h.connErr != nil && !errors.Is(h.connErr, errNotYet)
	h.mu.Unlock()
	if ch == nil || down {
		return
	}
	timer := time.NewTimer(a.opts.RequestTimeout)
	defer timer.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
	case <-timer.C:
	case <-a.ctx.Done():
	}
}

// Broadcast implements [socketio.Cluster]: this node's sockets get the packet at once, the
// other nodes through one PUBLISH made by the publisher goroutine (so the caller never waits
// for Redis). An error (ErrPublishQueueFull, ErrClosed, an encoding error) means other nodes
// will not get it; the count of local sockets is right all the same.
func (a *Adapter) Broadcast(p *socketio.Packet, opts socketio.BroadcastOptions) (int, error) {
	n := a.local.Broadcast(p, opts)
	msg, err := a.encodeBroadcast(p, opts)
	if err != nil {
		return n, fmt.Errorf("redisadapter: broadcast to other nodes: %w", err)
	}
	return n, a.publish(a.broadcastChannel(opts), msg)
}

// broadcastChannel is where a broadcast to opts is published.
func (a *Adapter) broadcastChannel(opts socketio.BroadcastOptions) string {
	if rooms := dedupe(opts.Rooms); len(rooms) == 1 {
		return a.channel + rooms[0] + "#"
	}
	return a.channel
}

// BroadcastCount implements [socketio.Cluster]: a Broadcast whose message also asks
// the other siobridge nodes to answer with how many of their sockets they sent it to (a
// "countRequestId" in its opts, which Node.js servers ignore). When servers that are not
// siobridge nodes (Node.js ones) are on the namespace's request channel too, they are asked
// for the sockets the broadcast selects (askForeign) just before it is published, and those
// are counted. The answers are gathered for at most ctx and RequestTimeout; a server that has
// not answered by then is left out of the total (and of the Reach's replies). When Redis
// cannot be reached, this node's sockets get the packet, the message is published all the
// same, and the error wraps socketio.ErrClusterUnavailable.
func (a *Adapter) BroadcastCount(ctx context.Context, p *socketio.Packet, opts socketio.BroadcastOptions) (socketio.Reached, error) {
	all, siobridge, nerr := a.nodeCounts(ctx)
	if nerr != nil {
		n, err := a.Broadcast(p, opts)
		return socketio.Reached{Local: n, Total: n}, errors.Join(nerr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	defer cancel()
	// The request for sockets goes first. A Node.js server selects the sockets as it handles
	// it, before it handles the broadcast that Redis brings it next: the count is of the
	// sockets it then sends the broadcast to (volatile aside).
	foreign, ferr := a.askForeign(all-siobridge, opts)
	counted, rerr := a.send(a.broadcastChannel(opts), max(siobridge-1, 0), false, func(id string) ([]byte, error) {
		return a.encodeBroadcastCounted(p, opts, id)
	})
	// After the publish is queued, as Broadcast does it the other way round: either way this
	// node's sockets and the others get the broadcasts of one caller in order.
	local := a.local.Broadcast(p, opts)
	resps, fresps := counted.wait(ctx), foreign.wait(ctx)
	r := socketio.Reached{Local: local, Total: local + sumCounts(resps) + sumCounts(fresps)}
	if ferr == nil && rerr == nil {
		r.Reach = socketio.Reach{Nodes: max(all, siobridge, 1), Replied: 1 + len(resps) + len(fresps)}
	}
	if err := errors.Join(ferr, rerr); err != nil {
		rerr = fmt.Errorf("redisadapter: broadcast to other nodes: %w", err)
	}
	return r, rerr
}

// askForeign queues, for a count, a request for the sockets opts selects to the n servers on
// the request channel that are not siobridge nodes (PUBSUB NUMSUB of the request channel less
// that of the presence channel), which Node.js servers answer with a list of them: SOCKETS,
// whose answer lists socket ids, when opts excepts nothing; otherwise REMOTE_FETCH (the
// request that selects with except too), whose answer lists each socket in full, handshake
// included. It is marked skipSiobridge, so that siobridge nodes, which count their own
// sockets in answer to the broadcast or action that follows, leave it to the others. With
// n <= 0 it sends nothing and returns nil: a cluster of siobridge nodes alone pays nothing.
func (a *Adapter) askForeign(n int, opts socketio.BroadcastOptions) (*outstanding, error) {
	if n <= 0 {
		return nil, nil
	}
	return a.send(a.requestChannel, n, true, func(id string) ([]byte, error) {
		r := wireRequest{UID: a.uid, RequestID: id, Type: typeRemoteFetch, Opts: wireOptsOf(opts), SkipSiobridge: true}
		if len(r.Opts.Except) == 0 {
			r.Type, r.Opts, r.Rooms = typeSockets, nil, r.Opts.Rooms
		}
		return jsonRequest(r)
	})
}

// sumCounts adds up the "count" of answers: siobridge nodes', and those to askForeign (see
// pendingRequest).
func sumCounts(resps []*object) int {
	n := 0
	for _, r := range resps {
		if c, ok := asInt(r.get("count")); ok && c > 0 {
			n += int(c)
		}
	}
	return n
}

// encodeBroadcast builds the msgpack message [uid, packet, opts] of the Node.js adapter.
func (a *Adapter) encodeBroadcast(p *socketio.Packet, opts socketio.BroadcastOptions) ([]byte, error) {
	return a.encodeBroadcastCounted(p, opts, "")
}

// encodeBroadcastCounted is encodeBroadcast with, when countID is set, opts.countRequestId:
// siobridge nodes then answer {"requestId": countID, "count": n}.
func (a *Adapter) encodeBroadcastCounted(p *socketio.Packet, opts socketio.BroadcastOptions, countID string) ([]byte, error) {
	pkt, err := packetToWire(p)
	if err != nil {
		return nil, err
	}
	flags := &object{}
	if opts.Volatile {
		flags.set("volatile", true)
	}
	wopts := &object{}
	wopts.set("rooms", nonNil(dedupe(opts.Rooms)))
	wopts.set("except", nonNil(dedupe(opts.Except)))
	wopts.set("flags", flags)
	if countID != "" {
		wopts.set("countRequestId", countID)
	}
	return encodeMsgpack([]any{a.uid, pkt, wopts})
}

// publish queues a message for the publisher goroutine without waiting.
func (a *Adapter) publish(channel string, payload []byte) error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	select {
	case a.hub.outbox <- outgoing{channel, payload}:
		return nil
	default:
		a.hub.countDropped(1)
		a.log.Warn("redis adapter publish queue full; message dropped", "channel", channel)
		return ErrPublishQueueFull
	}
}

// nodeCounts returns how many nodes subscribe to the namespace's request channel (this one
// included) and how many of them are siobridge nodes.
//
// While the subscription works (Redis is up), a failure is tried again until RequestTimeout:
// just after Redis came back, the client's pool may still answer with the dial error it
// cached while Redis was down, for up to a second. While the subscription is lost it fails
// at once.
func (a *Adapter) nodeCounts(ctx context.Context) (all, siobridge int, err error) {
	a.waitSubscribed(ctx)
	ctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	defer cancel()
	for wait := retryMin; ; wait = min(2*wait, retryMax) {
		all, siobridge, err = a.countNodes(ctx)
		if err == nil || !a.subscriptionUp() {
			return all, siobridge, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return all, siobridge, err
		}
	}
}

// subscriptionUp reports whether the hub's subscription connection works.
func (a *Adapter) subscriptionUp() bool {
	a.hub.mu.Lock()
	defer a.hub.mu.Unlock()
	return a.hub.connErr == nil
}

// countNodes is one PUBSUB NUMSUB of the namespace's request and presence channels, for
// nodeCounts.
func (a *Adapter) countNodes(ctx context.Context) (all, siobridge int, err error) {
	add := func(c redis.UniversalClient) error {
		m, err := c.PubSubNumSub(ctx, a.requestChannel, a.presenceChannel).Result()
		if err != nil {
			return err
		}
		all += int(m[a.requestChannel])
		siobridge += int(m[a.presenceChannel])
		return nil
	}
	if cc, ok := a.client.(*redis.ClusterClient); ok {
		// Each node of a Redis cluster counts its own subscribers only.
		var mu sync.Mutex
		err = cc.ForEachShard(ctx, func(ctx context.Context, shard *redis.Client) error {
			m, err := shard.PubSubNumSub(ctx, a.requestChannel, a.presenceChannel).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			all += int(m[a.requestChannel])
			siobridge += int(m[a.presenceChannel])
			mu.Unlock()
			return nil
		})
	} else {
		err = add(a.client)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%w: redisadapter: PUBSUB NUMSUB %s: %w", socketio.ErrClusterUnavailable, a.requestChannel, err)
	}
	return all, siobridge, nil
}

// FetchSockets implements [socketio.Cluster]. Sockets of nodes that do not answer within ctx
// and RequestTimeout are left out. When Redis cannot be reached, the local sockets are
// returned with the error.
func (a *Adapter) FetchSockets(ctx context.Context, opts socketio.BroadcastOptions) ([]socketio.SocketInfo, socketio.Reach, error) {
	out := a.local.FetchSockets(opts)
	remote, reach, err := a.fetchRemote(ctx, opts)
	out = append(out, remote...)
	sortSockets(out)
	return out, reach, err
}

// fetchRemote asks the other nodes for the sockets opts selects.
func (a *Adapter) fetchRemote(ctx context.Context, opts socketio.BroadcastOptions) ([]socketio.SocketInfo, socketio.Reach, error) {
	all, _, err := a.nodeCounts(ctx)
	if err != nil {
		return nil, socketio.Reach{}, err
	}
	if all <= 1 {
		return nil, socketio.Reach{Nodes: 1, Replied: 1}, nil
	}
	resps, err := a.request(ctx, all-1, func(id string) ([]byte, error) {
		return jsonRequest(wireRequest{UID: a.uid, RequestID: id, Type: typeRemoteFetch, Opts: wireOptsOf(opts)})
	})
	var reach socketio.Reach
	if err == nil {
		reach = socketio.Reach{Nodes: all, Replied: 1 + len(resps)}
	}
	var out []socketio.SocketInfo
	for _, r := range resps {
		list, _ := r.get("sockets").([]any)
		for _, s := range list {
			if info, ok := socketInfoFromWire(s, a.local.Name()); ok {
				out = append(out, info)
			}
		}
	}
	return out, reach, err
}

// AddSockets implements [socketio.Cluster]. Sockets on every node join; the count is this
// node's, plus what the other siobridge nodes report, plus, when servers that are not
// siobridge nodes (Node.js ones) are in the cluster, the sockets they report selected just
// before they act (askForeign), all within RequestTimeout.
func (a *Adapter) AddSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) (socketio.Reached, error) {
	return a.remoteAction(ctx, opts, typeRemoteJoin, func() int {
		return a.local.AddSockets(opts, rooms)
	}, func(r *wireRequest) { r.Rooms = nonNil(rooms) })
}

// DelSockets implements [socketio.Cluster]; counts as AddSockets does.
func (a *Adapter) DelSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) (socketio.Reached, error) {
	return a.remoteAction(ctx, opts, typeRemoteLeave, func() int {
		return a.local.DelSockets(opts, rooms)
	}, func(r *wireRequest) { r.Rooms = nonNil(rooms) })
}

// DisconnectSockets implements [socketio.Cluster]; counts as AddSockets does.
func (a *Adapter) DisconnectSockets(ctx context.Context, opts socketio.BroadcastOptions, close bool) (socketio.Reached, error) {
	return a.remoteAction(ctx, opts, typeRemoteDisconnect, func() int {
		return a.local.DisconnectSockets(opts, close)
	}, func(r *wireRequest) { r.Close = &close })
}

// remoteAction publishes a join, leave or disconnect request, does it locally and gathers
// the counts of the other servers.
func (a *Adapter) remoteAction(ctx context.Context, opts socketio.BroadcastOptions, typ int, local func() int, fill func(*wireRequest)) (socketio.Reached, error) {
	all, siobridge, err := a.nodeCounts(ctx)
	if err != nil {
		// Published all the same: Redis may take the message even if NUMSUB failed. The error
		// tells the caller that the count is this node's only.
		all, siobridge = 0, 0
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	defer cancel()
	// The request for sockets goes first: after a disconnect, or a leave of the rooms it
	// selects by, a server would no longer find the sockets the action selected.
	foreign, ferr := a.askForeign(all-siobridge, opts)
	req, rerr := a.send(a.requestChannel, max(siobridge-1, 0), false, func(id string) ([]byte, error) {
		r := wireRequest{UID: a.uid, RequestID: id, Type: typ, Opts: wireOptsOf(opts)}
		fill(&r)
		return jsonRequest(r)
	})
	// Done once the request is queued: a later broadcast from this node is then published
	// after it, and local sockets act in the same order as remote ones.
	n := local()
	resps, fresps := req.wait(ctx), foreign.wait(ctx)
	r := socketio.Reached{Local: n, Total: n + sumCounts(resps) + sumCounts(fresps)}
	if err == nil && ferr == nil && rerr == nil {
		r.Reach = socketio.Reach{Nodes: max(all, siobridge, 1), Replied: 1 + len(resps) + len(fresps)}
	}
	return r, errors.Join(err, ferr, rerr)
}

// Rooms implements [socketio.Cluster]. Siobridge nodes answer with counts; for room names a
// Node.js node reports (without counts), the sockets in those rooms are fetched from every
// node and counted, so with Node.js nodes in the cluster the wait is up to twice
// RequestTimeout (always bounded by ctx). When Redis cannot be reached, this node's rooms are
// returned with the error.
func (a *Adapter) Rooms(ctx context.Context) ([]socketio.RoomInfo, socketio.Reach, error) {
	local := a.local.Rooms()
	all, _, err := a.nodeCounts(ctx)
	if err != nil {
		return local, socketio.Reach{}, err
	}
	if all <= 1 {
		return local, socketio.Reach{Nodes: 1, Replied: 1}, nil
	}
	counts := make(map[string]int, len(local))
	for _, r := range local {
		counts[r.Name] = r.Sockets
	}
	resps, rerr := a.request(ctx, all-1, func(id string) ([]byte, error) {
		return jsonRequest(wireRequest{UID: a.uid, RequestID: id, Type: typeAllRooms})
	})
	var reach socketio.Reach
	if rerr == nil {
		reach = socketio.Reach{Nodes: all, Replied: 1 + len(resps)}
	}
	uncounted := make(map[string]struct{})
	for _, r := range resps {
		if c, ok := r.get("counts").(*object); ok {
			for i, name := range c.keys {
				if n, ok := asInt(c.vals[i]); ok {
					counts[name] += int(n)
				}
			}
			continue
		}
		for _, name := range asRooms(r.get("rooms")) {
			uncounted[name] = struct{}{}
		}
	}
	if len(uncounted) > 0 {
		names := make([]string, 0, len(uncounted))
		for name := range uncounted {
			names = append(names, name)
		}
		slices.Sort(names)
		sockets, freach, ferr := a.FetchSockets(ctx, socketio.BroadcastOptions{Rooms: names})
		reach = worst(reach, freach)
		rerr = errors.Join(rerr, ferr)
		seen := make(map[string]bool, len(sockets))
		exact := make(map[string]int, len(names))
		for _, s := range sockets {
			if seen[s.ID] {
				continue
			}
			seen[s.ID] = true
			for _, r := range s.Rooms {
				if _, ok := uncounted[r]; ok && r != s.ID {
					exact[r]++
				}
			}
		}
		for _, name := range names {
			counts[name] = exact[name] // the fetch saw every node: it replaces partial counts
		}
	}
	out := make([]socketio.RoomInfo, 0, len(counts))
	for name, n := range counts {
		if n > 0 {
			out = append(out, socketio.RoomInfo{Name: name, Sockets: n})
		}
	}
	slices.SortFunc(out, func(x, y socketio.RoomInfo) int {
		if x.Name < y.Name {
			return -1
		}
		return 1
	})
	return out, reach, rerr
}

// worst is the Reach of a call that asked the cluster twice: the most nodes and the fewest
// replies, so that it never claims a complete answer that was not. A zero Reach (a request
// that failed) says nothing.
func worst(a, b socketio.Reach) socketio.Reach {
	switch {
	case a.Nodes == 0:
		return b
	case b.Nodes == 0:
		return a
	}
	return socketio.Reach{Nodes: max(a.Nodes, b.Nodes), Replied: min(a.Replied, b.Replied)}
}

// ackRequest is a broadcast with acks this node sent, waiting for the other nodes' counts
// and their sockets' acks.
type ackRequest struct {
	onCount     func(int, []string)
	onAck       func(socketio.AckResult)
	countsLeft  int
	countsDone  chan struct{}
	countsEnded bool
}

// BroadcastWithAck implements [socketio.Cluster]. When Redis cannot be reached it serves this
// node's sockets only and returns an error wrapping socketio.ErrClusterUnavailable with their
// ids. Otherwise it waits for the other nodes' client counts
// until ctx ends or RequestTimeout passes (a node that has not answered by then is left out,
// though a count it sends later while ctx lasts is passed to onLate), and passes on their
// sockets' acks until ctx ends. ctx must end: it bounds how long acks are awaited.
func (a *Adapter) BroadcastWithAck(ctx context.Context, p *socketio.Packet, opts socketio.BroadcastOptions, onAck func(socketio.AckResult), onLate func(int, []string)) ([]string, socketio.Reached, error) {
	// As for Broadcast, Redis being away costs the other nodes' sockets, not this node's: they
	// get the packet, and the error says that the count is theirs alone.
	all, _, nerr := a.nodeCounts(ctx)
	others := all - 1
	if nerr != nil || others <= 0 {
		ids := a.local.BroadcastWithAck(ctx, p, opts, onAck)
		r := socketio.Reached{Local: len(ids), Total: len(ids)}
		if nerr == nil {
			r.Reach = socketio.Reach{Nodes: 1, Replied: 1}
		}
		return ids, r, nerr
	}
	// The counts are returned together once every node's is in (or the wait is over):
	// socketio's EmitWithAck takes "acks == the counts so far" for done, and an ack from a
	// quick node must not end the wait before a slower node's count is known.
	var (
		cmu      sync.Mutex
		total    int
		named    []string
		released bool
	)
	gather := func(n int, ids []string) {
		cmu.Lock()
		if released {
			cmu.Unlock()
			onLate(n, ids) // a node that answered late
			return
		}
		total += n
		named = append(named, ids...)
		cmu.Unlock()
	}
	id := newID()
	req := &ackRequest{onCount: gather, onAck: onAck, countsLeft: others, countsDone: make(chan struct{})}
	msg, err := a.encodeBroadcastRequest(ctx, id, p, opts)
	if err != nil {
		return nil, socketio.Reached{}, fmt.Errorf("redisadapter: broadcast to other nodes: %w", err)
	}
	a.mu.Lock()
	a.ackReqs[id] = req
	a.mu.Unlock()
	context.AfterFunc(ctx, func() { a.forgetAck(id) })
	perr := a.publish(a.requestChannel, msg)
	if perr != nil {
		a.forgetAck(id)
	}
	local := a.local.BroadcastWithAck(ctx, p, opts, onAck)
	gather(len(local), local)
	var reach socketio.Reach
	if perr == nil {
		timer := time.NewTimer(a.opts.RequestTimeout)
		select {
		case <-req.countsDone:
		case <-ctx.Done():
		case <-timer.C:
		case <-a.ctx.Done():
		}
		timer.Stop()
		a.mu.Lock()
		replied := others - max(req.countsLeft, 0)
		a.mu.Unlock()
		reach = socketio.Reach{Nodes: all, Replied: 1 + replied}
	}
	cmu.Lock()
	released = true
	r := socketio.Reached{Local: len(local), Total: total, Reach: reach}
	ids := named
	cmu.Unlock()
	return ids, r, perr
}

func (a *Adapter) forgetAck(id string) {
	a.mu.Lock()
	delete(a.ackReqs, id)
	a.mu.Unlock()
}

// encodeBroadcastRequest builds the msgpack BROADCAST request; flags.timeout (milliseconds)
// tells the other nodes how long to wait for their sockets' acks.
func (a *Adapter) encodeBroadcastRequest(ctx context.Context, id string, p *socketio.Packet, opts socketio.BroadcastOptions) ([]byte, error) {
	pkt, err := packetToWire(&socketio.Packet{Type: p.Type, Namespace: p.Namespace, Data: p.Data, Attachments: p.Attachments})
	if err != nil {
		return nil, err
	}
	wait := defaultAckWait
	if dl, ok := ctx.Deadline(); ok {
		wait = max(time.Until(dl), time.Millisecond)
	}
	flags := &object{}
	flags.set("timeout", wait.Milliseconds())
	if opts.Volatile {
		flags.set("volatile", true)
	}
	wopts := &object{}
	wopts.set("rooms", nonNil(dedupe(opts.Rooms)))
	wopts.set("except", nonNil(dedupe(opts.Except)))
	wopts.set("flags", flags)
	req := &object{}
	req.set("uid", a.uid)
	req.set("requestId", id)
	req.set("type", int64(typeBroadcast))
	req.set("packet", pkt)
	req.set("opts", wopts)
	return encodeMsgpack(req)
}

// Close implements [socketio.Cluster]: the namespace's channels are unsubscribed (by the
// hub's keeper, so Close does not wait on Redis) and what it queued for the publisher is
// still published. Requests waiting for other nodes return what they have. Closing the
// factory's last adapter also ends the shared connection, lets the publisher send what is
// queued (for at most a second) and waits for the hub's goroutines, so that one must not be
// closed from a handler the dispatcher runs (a disconnect handler of a remote disconnect
// request). socketio.Server closes an adapter from there only when it removes a dynamic
// namespace while "/" is open, so the last one is always closed by Server.Close.
func (a *Adapter) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.ackReqs = make(map[string]*ackRequest)
	a.mu.Unlock()
	a.cancel()
	a.factory.release(a)
	return nil
}

func dedupe(in []string) []string {
	if len(in) < 2 {
		return in
	}
	seen := make(map[string]struct{}, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func sortSockets(s []socketio.SocketInfo) {
	slices.SortStableFunc(s, func(x, y socketio.SocketInfo) int {
		switch {
		case x.ID < y.ID:
			return -1
		case x.ID > y.ID:
			return 1
		}
		return 0
	})
}
