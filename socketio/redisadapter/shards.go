package redisadapter

// This file is the hub's side of a Redis Cluster: the shard channels of the sharded adapter,
// SSUBSCRIBEd on the master that owns each one's slot. On a single Redis (or a failover
// client) none of it runs: every subscription is on the hub's one connection.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// shardConn is a subscriber connection to one master of a Redis Cluster, for the shard
// channels whose slots it owns (as far as the slot map knows). Its goroutine (shardLoop)
// reads it; the keeper alone sends on it. A connection that fails is not made again by
// go-redis (which would SSUBSCRIBE every channel in one command, refused as CROSSSLOT when
// they span slots): it is closed, its channels are given back to the keeper, which finds
// their masters again and SSUBSCRIBEs them, one command per slot.
type shardConn struct {
	addr string
	ps   *redis.PubSub
	// subs are the shard channels sent on ps and not taken back (hub.shardOf names ps's
	// for each); under the hub's lock.
	subs map[subscription]struct{}
	// closed is set, under the hub's lock, once the connection is given up.
	closed bool
	// up is set once Redis confirmed a subscription on it: its loss is then worth a warning.
	up bool
}

// shardFailure is why, and since when, a master's connection is down.
type shardFailure struct {
	err error
	at  time.Time
}

// shardDownLocked returns the master whose connection has been down longest, if any: the
// channels of every namespace may be there (a room's are, whichever namespace subscribed
// it), so it makes every namespace unhealthy; h.mu is held.
func (h *hub) shardDownLocked() (addr string, f shardFailure, down bool) {
	for a, af := range h.shardDown {
		if !down || af.at.Before(f.at) {
			addr, f, down = a, af, true
		}
	}
	return addr, f, down
}

// syncShards brings the shard channels SSUBSCRIBEd on the masters' connections in line with
// the routes, on the keeper goroutine, and reports whether it must be called again (the
// slot map or a channel's master could not be had).
func (h *hub) syncShards() (retry bool) {
	ctx, cancel := context.WithTimeout(h.ctx, publishTimeout)
	defer cancel()

	h.mu.Lock()
	unsub := map[*shardConn]map[int][]string{}
	for s, c := range h.shardOf {
		if _, routed := h.routes[s]; routed {
			continue
		}
		// Forgotten before the SUNSUBSCRIBE goes, so that its answer is not taken for Redis
		// dropping the channel.
		delete(h.shardOf, s)
		delete(c.subs, s)
		delete(h.confirmed, s)
		if c.closed {
			continue
		}
		if unsub[c] == nil {
			unsub[c] = map[int][]string{}
		}
		slot := keySlot(s.name)
		unsub[c][slot] = append(unsub[c][slot], s.name)
	}
	var want []subscription
	for s := range h.routes {
		if s.shard && h.shardOf[s] == nil {
			want = append(want, s)
		}
	}
	stale := h.slotsStale && len(want) > 0
	if stale {
		h.slotsStale = false
	}
	idle := h.idleShardConnsLocked()
	h.mu.Unlock()

	for c, bySlot := range unsub {
		for _, names := range bySlot {
			_ = c.ps.SUnsubscribe(ctx, names...)
		}
	}
	for _, c := range idle {
		_ = c.ps.Close()
	}
	if len(want) == 0 {
		h.mu.Lock()
		h.forgetDownLocked()
		h.mu.Unlock()
		return false
	}

	if stale {
		// ForEachMaster reloads the slot map before it runs (ReloadState would only have
		// it reloaded some time later).
		if err := h.cluster.ForEachMaster(ctx, func(context.Context, *redis.Client) error { return nil }); err != nil {
			h.mu.Lock()
			h.slotsStale = true
			h.mu.Unlock()
			h.log.Debug("redis adapter: cannot reload the Redis Cluster's slot map", "error", err)
			return true
		}
	}
	type master struct {
		client *redis.Client
		slots  map[int][]subscription
	}
	masters := map[string]*master{}
	for _, s := range want {
		client, err := h.cluster.MasterForKey(ctx, s.name)
		if err != nil {
			h.log.Debug("redis adapter: no master for a shard channel", "channel", s.name, "error", err)
			retry = true
			continue
		}
		addr := client.Options().Addr
		m := masters[addr]
		if m == nil {
			m = &master{client: client, slots: map[int][]subscription{}}
			masters[addr] = m
		}
		slot := keySlot(s.name)
		m.slots[slot] = append(m.slots[slot], s)
	}
	for addr, m := range masters {
		h.mu.Lock()
		if h.ctx.Err() != nil {
			h.mu.Unlock()
			return false
		}
		c := h.shardConns[addr]
		if c == nil {
			// Lazy: go-redis connects on the first SSUBSCRIBE below.
			c = &shardConn{addr: addr, ps: m.client.Subscribe(h.ctx), subs: map[subscription]struct{}{}}
			h.shardConns[addr] = c
			h.loops.Go(func() { h.shardLoop(c) })
		}
		batches := make([][]string, 0, len(m.slots))
		for _, subs := range m.slots {
			var names []string
			for _, s := range subs {
				if _, routed := h.routes[s]; routed && h.shardOf[s] == nil {
					h.shardOf[s] = c
					c.subs[s] = struct{}{}
					names = append(names, s.name)
				}
			}
			if len(names) > 0 {
				batches = append(batches, names)
			}
		}
		h.mu.Unlock()
		for _, names := range batches {
			// An error is the connection's: shardLoop sees it too and gives the channels back.
			_ = c.ps.SSubscribe(ctx, names...)
		}
	}
	h.mu.Lock()
	h.forgetDownLocked()
	h.mu.Unlock()
	return retry
}

// forgetDownLocked drops the failures of masters that hold none of the channels wanted, once
// every channel wanted was sent to its master (so none is waiting for one that failed);
// h.mu is held.
func (h *hub) forgetDownLocked() {
	if len(h.shardDown) == 0 {
		return
	}
	for s := range h.routes {
		if s.shard && h.shardOf[s] == nil {
			return
		}
	}
	for addr := range h.shardDown {
		if h.shardConns[addr] == nil {
			delete(h.shardDown, addr)
		}
	}
}

// idleShardConnsLocked takes the connections that hold no channel out of the hub, closed,
// for the caller to close their PubSub; h.mu is held.
func (h *hub) idleShardConnsLocked() []*shardConn {
	var idle []*shardConn
	for addr, c := range h.shardConns {
		if len(c.subs) == 0 {
			c.closed = true
			delete(h.shardConns, addr)
			idle = append(idle, c)
		}
	}
	return idle
}

// takeShardConnsLocked takes every connection out of the hub, closed, for stop to close
// their PubSub; h.mu is held.
func (h *hub) takeShardConnsLocked() []*shardConn {
	conns := make([]*shardConn, 0, len(h.shardConns))
	for addr, c := range h.shardConns {
		c.closed = true
		delete(h.shardConns, addr)
		conns = append(conns, c)
	}
	return conns
}

// shardLoop reads one master's connection until it fails, is closed or the hub stops. An
// idle connection is pinged, as the hub's own is, so that a silent one is given up.
func (h *hub) shardLoop(c *shardConn) {
	pinged := false
	for {
		msg, err := c.ps.ReceiveTimeout(h.ctx, pingInterval)
		if h.ctx.Err() != nil || h.shardClosed(c) {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				if err = c.ps.Ping(h.ctx); err == nil {
					pinged = true
					continue
				}
			} else if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("no answer to a ping within %s", pingInterval)
			}
			// A broken connection, a ping unanswered, or an error reply (MOVED: the slot
			// map was stale; CROSSSLOT: go-redis subscribed again on its own).
			h.shardLost(c, err)
			return
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			h.onShardSubscription(c, m)
		case *redis.Message:
			h.route(m)
		}
	}
}

func (h *hub) shardClosed(c *shardConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return c.closed
}

// shardLost gives up a master's connection that failed: its channels count as not
// subscribed and go back to the keeper, which, after a wait that doubles with each failure
// of that master (up to maxBackoff), reloads the slot map and SSUBSCRIBEs them on their
// masters, this one again if it still owns them.
func (h *hub) shardLost(c *shardConn, err error) {
	h.mu.Lock()
	if c.closed {
		h.mu.Unlock()
		return
	}
	c.closed = true
	if h.shardConns[c.addr] == c {
		delete(h.shardConns, c.addr)
	}
	for s := range c.subs {
		if h.shardOf[s] == c {
			delete(h.shardOf, s)
			h.unconfirmLocked(s)
		}
	}
	clear(c.subs)
	if _, known := h.shardDown[c.addr]; !known {
		h.shardDown[c.addr] = shardFailure{err: err, at: time.Now()}
	}
	h.slotsStale = true
	wait := min(max(2*h.shardRetry[c.addr], retryMin), maxBackoff)
	h.shardRetry[c.addr] = wait
	if h.unconfirmed > 0 {
		h.announced = false
	}
	up := c.up
	h.mu.Unlock()
	_ = c.ps.Close()
	if up {
		h.log.Warn("redis adapter lost a Redis Cluster master's connection; subscribing again", "master", c.addr, "error", err)
	} else {
		h.log.Debug("redis adapter: a Redis Cluster master's connection failed", "master", c.addr, "error", err)
	}
	if h.sleep(wait) {
		h.wake()
	}
}

// onShardSubscription records Redis' answer to an SSUBSCRIBE or SUNSUBSCRIBE on a master's
// connection. An SUNSUBSCRIBE the keeper did not send (it forgets a channel before it
// unsubscribes it) is Redis dropping the channel because its slot moved to another master
// (Redis 7 does so): the keeper reloads the slot map and subscribes it on the new owner.
func (h *hub) onShardSubscription(c *shardConn, m *redis.Subscription) {
	s := subscription{name: m.Channel, shard: true}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shardOf[s] != c {
		return // an answer to an SUNSUBSCRIBE the keeper sent, or from before a move
	}
	switch m.Kind {
	case "ssubscribe":
		c.up = true
		delete(h.shardRetry, c.addr)
		delete(h.shardDown, c.addr)
		if h.confirmed[s] {
			return
		}
		h.confirmed[s] = true
		if a, routed := h.routes[s]; routed {
			h.unconfirmed--
			h.checkLocked(a)
		}
		if h.unconfirmed == 0 && !h.announced && h.connErr == nil {
			h.announced = true
			h.log.Info("redis adapter subscribed", "namespaces", len(h.adapters))
		}
	case "sunsubscribe":
		h.log.Debug("redis adapter: Redis dropped a shard channel (its slot moved); subscribing it on its new master", "channel", s.name, "master", c.addr)
		delete(h.shardOf, s)
		delete(c.subs, s)
		h.unconfirmLocked(s)
		h.slotsStale = true
		h.wake()
	}
}
