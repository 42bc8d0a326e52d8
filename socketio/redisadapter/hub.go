package redisadapter

// This file and loops.go are the transport: one Redis pub/sub connection per factory, shared
// by its namespaces' adapters, and the goroutines that read it and publish. The rest of the
// package is the protocols, per namespace: that of @socket.io/redis-adapter's classic
// adapter (Adapter), and that of socket.io-adapter's ClusterAdapter (clusterAdapter), which
// the sharded adapter (ShardedAdapter) speaks over SSUBSCRIBE and SPUBLISH on the same hub.

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/internal/group"
	"github.com/siobridge/siobridge/socketio"
)

// factory is what [New] returns the method of: the adapters it makes share one hub, which
// runs while at least one of them is open.
type factory struct {
	opts Options

	mu  sync.Mutex
	hub *hub // nil while no adapter is open
}

// member is a namespace's adapter as the hub sees it: the channels it routes to it, and
// where its health is kept.
type member interface {
	// subscriptions are the channels and patterns the adapter needs to be healthy; it may
	// route more to itself with hub.addRoute.
	subscriptions() []subscription
	// hubLink is the adapter's health, kept by the hub under its lock.
	hubLink() *link
	// receive takes a message on the subscriber goroutine: it settles it there (a response
	// to a request of its own) and returns false, or returns true to have the dispatcher call
	// dispatch with it, in the order Redis sent it.
	receive(m *redis.Message) bool
	// dispatch handles a message on the dispatcher goroutine.
	dispatch(m *redis.Message)
}

// link is an adapter's health as the hub keeps it, under its lock.
type link struct {
	health     error         // nil while subscribed
	healthAt   time.Time     // since when health is what it is
	subscribed chan struct{} // closed, and set to nil, once first subscribed
}

func newLink() link {
	return link{health: errNotYet, healthAt: time.Now(), subscribed: make(chan struct{})}
}

func (f *factory) newAdapter(local socketio.Local) socketio.Cluster {
	a := newAdapter(local, f)
	f.mu.Lock()
	if f.hub == nil {
		f.hub = startHub(f.opts)
	}
	a.hub = f.hub
	f.hub.add(a)
	f.mu.Unlock()
	return a
}

// join starts the hub if none runs, sets a's hub with set and adds a to it.
func (f *factory) join(a member, set func(*hub)) {
	f.mu.Lock()
	if f.hub == nil {
		f.hub = startHub(f.opts)
	}
	set(f.hub)
	f.hub.add(a)
	f.mu.Unlock()
}

// release takes a closing adapter out of its hub h. The last one out stops the hub and waits
// for its goroutines; a later adapter starts a new one.
func (f *factory) release(a member, h *hub) {
	f.mu.Lock()
	last := h.remove(a)
	if last && f.hub == h {
		f.hub = nil
	}
	f.mu.Unlock()
	if last {
		h.stop()
	}
}

// hub is the Redis side that a factory's adapters share: one subscriber connection (one
// redis.PubSub) subscribed to the channels of every open namespace, and the goroutines that
// read it, dispatch what it brings and publish what the adapters send. So Redis sees one
// subscriber connection per node however many namespaces there are, and publishes go
// through the client's pool from one goroutine.
//
// Four goroutines, all ended by stop (see loops.go): the subscriber reads the connection,
// the dispatcher delivers broadcasts and answers requests, the subscription keeper sends
// SUBSCRIBE and UNSUBSCRIBE as namespaces come and go, and the publisher PUBLISHes.
//
// On a Redis Cluster (the client is a *redis.ClusterClient), a PUBLISH reaches the
// subscribers of every node, so channels and patterns stay on that one connection; but a
// shard channel lives on the master that owns its slot, and only there can it be
// SSUBSCRIBEd. The shard channels go to one more connection per master that owns any of
// them (shardConn, shards.go), each read by a goroutine of its own; the keeper moves a
// channel to its new owner when Redis says its slot moved.
type hub struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // client, when it is a Redis Cluster's; else nil
	log     *slog.Logger

	ctx    context.Context // ends at stop
	cancel context.CancelFunc
	loops  group.Group   // the four loops below
	inbox  chan delivery // broadcasts and requests for the dispatcher, in Redis' order
	outbox chan outgoing // messages for the publisher, in the adapters' order
	resync chan struct{} // (one slot) the subscriptions wanted have changed
	probe  chan struct{} // (one slot) the publisher is to check that commands work
	onDrop func(n int)
	// maxUnsent bounds the messages the publisher keeps while Redis does not take them.
	maxUnsent int

	mu sync.Mutex
	ps *redis.PubSub
	// routes are the subscriptions wanted, each with the adapter its messages go to. A
	// namespace made again while its former adapter is closing takes the routes over.
	routes map[subscription]member
	// sent is what ps has been asked to subscribe to; the keeper brings it to routes.
	sent map[subscription]bool
	// confirmed is what Redis has confirmed on the current connection.
	confirmed map[subscription]bool
	// unconfirmed counts the routes not confirmed.
	unconfirmed int
	adapters    map[member]struct{}
	// connErr is nil while the connection works; errNotYet before it first does.
	connErr error
	// announced is true once "subscribed" has been logged for the current connection.
	announced bool
	everUp    bool
	// cmdErr is nil while commands through the client's pool (PUBLISH, PUBSUB NUMSUB) are
	// known to work: the last one the publisher sent got an answer. It is set by a failure,
	// and when the subscription is lost, until the publisher's next answer.
	cmdErr   error
	cmdErrAt time.Time

	// On a Redis Cluster only (see shards.go): the connections to the masters that own
	// the shard channels wanted, by address; where each shard channel was SSUBSCRIBEd
	// (what sent is for the other subscriptions); whether the keeper must reload the slot
	// map before it next subscribes; and the wait before a master's connection is made
	// again after a failure.
	shardConns map[string]*shardConn
	shardOf    map[subscription]*shardConn
	slotsStale bool
	shardRetry map[string]time.Duration
	// shardDown are the masters whose connection failed, by address, until a subscription
	// on a new one is confirmed or none of the channels wanted is theirs any more.
	shardDown map[string]shardFailure
}

// subscription is a channel, a pattern (PSUBSCRIBE) or a shard channel (SSUBSCRIBE).
type subscription struct {
	name    string
	pattern bool
	shard   bool
}

// delivery is a message for the dispatcher, with the adapter it is for.
type delivery struct {
	a member
	m *redis.Message
}

// outgoing is one message for the publisher goroutine: PUBLISHed, or SPUBLISHed with shard.
type outgoing struct {
	channel string
	payload []byte
	shard   bool
}

// errNotYet is the state before the first subscription.
var errNotYet = errors.New("not subscribed yet")

func startHub(opts Options) *hub {
	h := &hub{
		client:    opts.Client,
		log:       opts.Logger.With("component", "redisadapter"),
		inbox:     make(chan delivery, inboxSize),
		outbox:    make(chan outgoing, publishQueueSize),
		resync:    make(chan struct{}, 1),
		probe:     make(chan struct{}, 1),
		onDrop:    opts.OnDrop,
		maxUnsent: cmp.Or(opts.maxUnsent, maxUnsent),
		routes:    make(map[subscription]member),
		sent:      make(map[subscription]bool),
		confirmed: make(map[subscription]bool),
		adapters:  make(map[member]struct{}),
		connErr:   errNotYet,
	}
	if cc, ok := opts.Client.(*redis.ClusterClient); ok {
		h.cluster = cc
		h.shardConns = make(map[string]*shardConn)
		h.shardOf = make(map[subscription]*shardConn)
		h.shardRetry = make(map[string]time.Duration)
		h.shardDown = make(map[string]shardFailure)
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	// No connection is made here: Subscribe without channels is lazy, so making a namespace
	// never blocks on Redis. The subscriber goroutine connects.
	h.ps = h.client.Subscribe(h.ctx)
	h.loops.Go(h.subscribeLoop)
	h.loops.Go(h.keepLoop)
	h.loops.Go(h.dispatchLoop)
	h.loops.Go(h.publishLoop)
	return h
}

// stop ends the connection and the goroutines, letting the publisher send what is queued
// (for at most flushOnClose).
func (h *hub) stop() {
	h.cancel()
	h.mu.Lock()
	ps := h.ps
	conns := h.takeShardConnsLocked()
	h.mu.Unlock()
	_ = ps.Close()
	for _, c := range conns {
		_ = c.ps.Close()
	}
	h.loops.Wait()
}

// add routes a's channels to it and has them subscribed.
func (h *hub) add(a member) {
	h.mu.Lock()
	h.adapters[a] = struct{}{}
	for _, s := range a.subscriptions() {
		if _, taken := h.routes[s]; !taken && !h.confirmed[s] {
			h.unconfirmed++
		}
		h.routes[s] = a
	}
	h.checkLocked(a)
	h.mu.Unlock()
	h.wake()
}

// remove takes a's routes away, those it added with addRoute included (their channels are
// unsubscribed unless another adapter took them over), and reports whether a was the last
// adapter.
func (h *hub) remove(a member) (last bool) {
	h.mu.Lock()
	delete(h.adapters, a)
	for s, owner := range h.routes {
		if owner == a {
			delete(h.routes, s)
			if !h.confirmed[s] {
				h.unconfirmed--
			}
		}
	}
	last = len(h.adapters) == 0
	h.mu.Unlock()
	if !last {
		h.wake()
	}
	return last
}

// addRoute routes one more channel to a, an open adapter, and has it subscribed, without
// waiting: the keeper subscribes.
func (h *hub) addRoute(a member, s subscription) {
	h.mu.Lock()
	if _, open := h.adapters[a]; !open {
		h.mu.Unlock()
		return
	}
	if _, taken := h.routes[s]; !taken && !h.confirmed[s] {
		h.unconfirmed++
	}
	h.routes[s] = a
	h.mu.Unlock()
	h.wake()
}

// removeRoute takes a channel that addRoute gave a away; the keeper unsubscribes it.
func (h *hub) removeRoute(a member, s subscription) {
	h.mu.Lock()
	if h.routes[s] != a {
		h.mu.Unlock()
		return
	}
	delete(h.routes, s)
	if !h.confirmed[s] {
		h.unconfirmed--
	}
	h.mu.Unlock()
	h.wake()
}

// wake tells the keeper that the routes changed, without waiting.
func (h *hub) wake() {
	select {
	case h.resync <- struct{}{}:
	default:
	}
}

// route hands a message to the adapter of its channel (or pattern), which settles it on the
// subscriber goroutine or has the dispatcher handle it. A message for a namespace that has
// gone is dropped. go-redis does not say whether a message came by SUBSCRIBE or SSUBSCRIBE:
// a channel is looked up as both (one hub's adapters use one kind per channel name).
func (h *hub) route(m *redis.Message) {
	h.mu.Lock()
	var a member
	if m.Pattern != "" {
		a = h.routes[subscription{name: m.Pattern, pattern: true}]
	} else if a = h.routes[subscription{name: m.Channel}]; a == nil {
		a = h.routes[subscription{name: m.Channel, shard: true}]
	}
	h.mu.Unlock()
	if a == nil || !a.receive(m) {
		return
	}
	select {
	case h.inbox <- delivery{a, m}:
	case <-h.ctx.Done():
	}
}

// onSubscription records Redis' confirmation of a SUBSCRIBE or UNSUBSCRIBE (or their
// pattern forms); an adapter whose channels are all confirmed is healthy.
func (h *hub) onSubscription(m *redis.Subscription) {
	s := subscription{name: m.Channel,
		pattern: m.Kind == "psubscribe" || m.Kind == "punsubscribe",
		shard:   m.Kind == "ssubscribe" || m.Kind == "sunsubscribe"}
	h.mu.Lock()
	defer h.mu.Unlock()
	a, routed := h.routes[s]
	switch m.Kind {
	case "subscribe", "psubscribe", "ssubscribe":
		if h.confirmed[s] {
			return
		}
		h.confirmed[s] = true
		if routed {
			h.unconfirmed--
		}
	case "unsubscribe", "punsubscribe", "sunsubscribe":
		if !h.confirmed[s] {
			return
		}
		delete(h.confirmed, s)
		if routed {
			h.unconfirmed++
		}
	default:
		return
	}
	if routed {
		h.checkLocked(a)
	}
	if h.unconfirmed == 0 && !h.announced && h.connErr == nil {
		h.announced = true
		h.log.Info("redis adapter subscribed", "namespaces", len(h.adapters))
	}
}

// connUp records that the connection works (a message or an answer came).
func (h *hub) connUp() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.connErr == nil {
		return
	}
	h.connErr = nil
	h.everUp = true
	for a := range h.adapters {
		h.checkLocked(a)
	}
}

// connLost records that the connection failed: no channel counts as subscribed until Redis
// confirms it again (go-redis subscribes again to all of them on its next connection), and
// commands are not known to work until the publisher's next answer.
func (h *hub) connLost(err error) {
	h.mu.Lock()
	was, everUp := h.connErr, h.everUp
	h.connErr = err
	if h.cmdErr == nil {
		h.cmdErr, h.cmdErrAt = err, time.Now()
	}
	if h.cluster == nil {
		clear(h.confirmed)
		h.unconfirmed = len(h.routes)
	} else {
		// The shard channels are on connections of their own, which answer for them.
		for s := range h.confirmed {
			if !s.shard {
				h.unconfirmLocked(s)
			}
		}
	}
	h.announced = false
	for a := range h.adapters {
		h.checkLocked(a)
	}
	h.mu.Unlock()
	select {
	case h.probe <- struct{}{}:
	default:
	}
	switch {
	case h.ctx.Err() != nil:
	case was == nil:
		h.log.Warn("redis adapter lost its subscription; other nodes are unreachable until it is back", "error", err)
	case !everUp && errors.Is(was, errNotYet):
		h.log.Warn("redis adapter cannot subscribe yet", "error", err)
	}
}

// setCommands records whether the publisher's last command got an answer.
func (h *hub) setCommands(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if (h.cmdErr == nil) != (err == nil) {
		h.cmdErrAt = time.Now()
	}
	h.cmdErr = err
}

// commandsDown reports whether commands are not known to work.
func (h *hub) commandsDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cmdErr != nil
}

func (h *hub) countDropped(n int) {
	if h.onDrop != nil {
		h.onDrop(n)
	}
}

// checkLocked sets a's health from the connection's and its channels'; h.mu is held.
func (h *hub) checkLocked(a member) {
	err := h.connErr
	if err == nil {
		for _, s := range a.subscriptions() {
			if !h.confirmed[s] || h.routes[s] != a {
				err = errNotYet
				break
			}
		}
	}
	l := a.hubLink()
	if (l.health == nil) != (err == nil) {
		l.healthAt = time.Now()
	}
	l.health = err
	if err == nil && l.subscribed != nil {
		close(l.subscribed)
		l.subscribed = nil
	}
}

// unconfirmLocked takes s's confirmation away; h.mu is held.
func (h *hub) unconfirmLocked(s subscription) {
	if !h.confirmed[s] {
		return
	}
	delete(h.confirmed, s)
	if a, routed := h.routes[s]; routed {
		h.unconfirmed++
		h.checkLocked(a)
	}
}

// syncSubscriptions brings what ps is subscribed to in line with the routes, on the keeper
// goroutine, and reports whether it must be called again (some shard channel's master
// could not be found). go-redis records the channels even when Redis cannot be reached,
// and subscribes again to all of them on every new connection.
func (h *hub) syncSubscriptions() (retry bool) {
	if h.cluster != nil {
		retry = h.syncShards()
	}
	var sub, psub, ssub, unsub, punsub, sunsub []string
	h.mu.Lock()
	ps := h.ps
	for s := range h.routes {
		if s.shard && h.cluster != nil {
			continue // syncShards' own
		}
		if !h.sent[s] {
			h.sent[s] = true
			switch {
			case s.pattern:
				psub = append(psub, s.name)
			case s.shard:
				ssub = append(ssub, s.name)
			default:
				sub = append(sub, s.name)
			}
		}
	}
	for s := range h.sent {
		if _, ok := h.routes[s]; !ok {
			delete(h.sent, s)
			switch {
			case s.pattern:
				punsub = append(punsub, s.name)
			case s.shard:
				sunsub = append(sunsub, s.name)
			default:
				unsub = append(unsub, s.name)
			}
		}
	}
	h.mu.Unlock()
	// Never called without channels: an empty UNSUBSCRIBE would drop them all.
	var err error
	if len(unsub) > 0 {
		err = errors.Join(err, ps.Unsubscribe(h.ctx, unsub...))
	}
	if len(punsub) > 0 {
		err = errors.Join(err, ps.PUnsubscribe(h.ctx, punsub...))
	}
	if len(sunsub) > 0 {
		err = errors.Join(err, ps.SUnsubscribe(h.ctx, sunsub...))
	}
	if len(sub) > 0 {
		err = errors.Join(err, ps.Subscribe(h.ctx, sub...))
	}
	if len(psub) > 0 {
		err = errors.Join(err, ps.PSubscribe(h.ctx, psub...))
	}
	if len(ssub) > 0 {
		err = errors.Join(err, ps.SSubscribe(h.ctx, ssub...))
	}
	if err != nil && h.ctx.Err() == nil {
		// The subscriber sees the connection fail too, and reports it.
		h.log.Debug("redis adapter: (un)subscribing failed; go-redis subscribes again when it reconnects", "error", err)
	}
	return retry
}

// renewPubSub replaces the subscriber connection, on the subscriber goroutine; nil once the
// hub is stopping.
func (h *hub) renewPubSub(old *redis.PubSub) *redis.PubSub {
	_ = old.Close()
	h.mu.Lock()
	if h.ctx.Err() != nil {
		h.mu.Unlock()
		return nil
	}
	ps := h.client.Subscribe(h.ctx)
	h.ps = ps
	clear(h.sent)
	h.mu.Unlock()
	h.wake()
	return ps
}
