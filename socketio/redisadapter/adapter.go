package redisadapter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
	// KeyPrefix starts every channel name, as the Node.js adapter's "key" option; for the
	// streams adapter it is the stream's name (the Node.js "streamName"). Default
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
	// OnMalformed, when set, is called once for each message from Redis that the sharded
	// or the streams adapter could not read (it is logged at Debug and dropped): the place to count them.
	// It must not block.
	OnMalformed func()
	// OnDrop, when set, is called with the number of messages for other nodes dropped
	// because too many waited for Redis (see Healthy): the place to count them. It must not
	// block.
	OnDrop func(n int)

	// The streams adapter's (NewStreams), with the defaults of
	// @socket.io/redis-streams-adapter; its stream is named KeyPrefix (the Node.js
	// streamName).

	// StreamMaxLen caps the stream, in entries: each XADD trims it with MAXLEN ~ StreamMaxLen
	// (Redis trims by whole nodes, so a few more may stay). A client whose offset has been
	// trimmed away cannot recover. Default 10000, the Node.js maxLen.
	StreamMaxLen int64
	// ReadCount is the most entries one XREAD returns (COUNT). Default 100, the Node.js
	// readCount.
	ReadCount int64
	// ReadBlock is how long one XREAD waits for new entries (BLOCK). Default 5s, as in
	// Node.js.
	ReadBlock time.Duration
	// HeartbeatInterval: a namespace's adapter that has published nothing for this long
	// publishes a HEARTBEAT, so that the other nodes keep counting it. Default 5s, the
	// Node.js heartbeatInterval.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout: a node not heard from for this long is no longer counted (nor
	// waited for). Default 10s, the Node.js heartbeatTimeout.
	HeartbeatTimeout time.Duration
	// SessionKeyPrefix starts the Redis key of each session kept for connection state
	// recovery: <SessionKeyPrefix><pid>. Default "sio:session:", the Node.js
	// sessionKeyPrefix.
	SessionKeyPrefix string

	// maxUnsent replaces the publisher's bound maxUnsent, in tests.
	maxUnsent int
}

// withDefaults is opts with every engine's defaults set. It panics if opts.Client is nil:
// that is a configuration mistake, found at start.
func (opts Options) withDefaults() Options {
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
	return opts
}

// New returns the factory of Redis adapters, one per namespace, for socketio.Options.Cluster
// of one server. The adapters it makes share one subscriber connection and four goroutines
// (a subscriber, a keeper of the subscriptions, a dispatcher and a publisher), started with
// the first adapter and ended when the last one is closed (so by socketio.Server.Close); an
// adapter made after that starts them again. It panics if opts.Client is nil: that is a
// configuration mistake, found at start.
func New(opts Options) socketio.ClusterFactory {
	opts = opts.withDefaults()
	f := &factory{opts: opts}
	return f.newAdapter
}

var (
	_ socketio.Cluster       = (*Adapter)(nil)
	_ socketio.HealthChecker = (*Adapter)(nil)
)

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

	link // kept by the hub, under its lock
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
		link:            newLink(),
	}
	a.specificResponseChannel = a.responseChannel + uid + "#"
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

// subscriptions are the adapter's channels and pattern: PSUBSCRIBE on the broadcasts,
// SUBSCRIBE on the requests, the responses (shared and its own) and the presence channel.
func (a *Adapter) subscriptions() []subscription {
	return []subscription{
		{name: a.channel + "*", pattern: true},
		{name: a.requestChannel},
		{name: a.responseChannel},
		{name: a.specificResponseChannel},
		{name: a.presenceChannel},
	}
}

func (a *Adapter) hubLink() *link { return &a.link }

// receive settles responses on the subscriber goroutine and leaves broadcasts and requests
// to the dispatcher.
func (a *Adapter) receive(m *redis.Message) bool {
	switch {
	case m.Pattern != "" || m.Channel == a.requestChannel:
		return true
	case m.Channel == a.responseChannel || m.Channel == a.specificResponseChannel:
		a.onResponse([]byte(m.Payload))
	}
	return false
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
	return a.hub.healthOf(a.local.Name(), func() (time.Time, error) { return a.healthAt, a.health })
}

// healthOf is an adapter's Healthy, the namespace name's: subscribed returns, under h.mu,
// since when and why its channels are not subscribed (a nil error when they are).
func (h *hub) healthOf(name string, subscribed func() (time.Time, error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if at, err := subscribed(); err != nil {
		return fmt.Errorf("redisadapter: namespace %q: not subscribed to Redis since %s: %w",
			name, at.Format(time.RFC3339), err)
	}
	if err := h.cmdErr; err != nil {
		return fmt.Errorf("redisadapter: cannot publish to Redis since %s: %w",
			h.cmdErrAt.Format(time.RFC3339), err)
	}
	if addr, f, down := h.shardDownLocked(); down {
		return fmt.Errorf("redisadapter: not subscribed to Redis Cluster master %s since %s: %w",
			addr, f.at.Format(time.RFC3339), f.err)
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

// publish queues a message for the publisher goroutine without waiting.
func (a *Adapter) publish(channel string, payload []byte) error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	select {
	case a.hub.outbox <- outgoing{channel: channel, payload: payload}:
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
	a.factory.release(a, a.hub)
	return nil
}
