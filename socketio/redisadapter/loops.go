package redisadapter

// The hub's four goroutines, all ended by hub.stop:
//
//   - the subscriber reads the shared subscription connection, answers for its health, hands
//     broadcasts and requests to the dispatcher and settles responses itself (so that a
//     request handler that waits for other nodes cannot block the answers it waits for);
//   - the keeper sends SUBSCRIBE and UNSUBSCRIBE as namespaces come and go, so that neither
//     making a namespace nor closing one waits on Redis;
//   - the dispatcher delivers broadcasts to this node's sockets and answers requests, one at
//     a time in the order Redis delivered them (so in order within each namespace);
//   - the publisher PUBLISHes what the adapters queued, in order, pipelining what piled up.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// publishTimeout bounds one PUBLISH (or pipeline of them, of at most publishBatch).
	publishTimeout = 2 * time.Second
	publishBatch   = 64
	// maxUnsent and maxUnsentBytes bound what the publisher keeps while Redis does not take
	// it; retryMin and retryMax the waits between its attempts (doubling), so that a dead
	// Redis costs no time per broadcast.
	maxUnsent      = 16384
	maxUnsentBytes = 32 << 20
	retryMin       = 50 * time.Millisecond
	retryMax       = time.Second
	// dropLogEvery spaces the warnings about dropped messages.
	dropLogEvery = 10 * time.Second
	// flushOnClose bounds how long stopping lets the publisher send what is queued.
	flushOnClose = time.Second
	// maxBackoff caps the wait between two attempts to reach Redis.
	maxBackoff = 2 * time.Second
)

// subscribeLoop is the subscriber goroutine.
func (h *hub) subscribeLoop() {
	h.mu.Lock()
	ps := h.ps
	h.mu.Unlock()
	var backoff time.Duration
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(h.ctx, pingInterval)
		if h.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if pinged {
					// The ping got no answer: the connection is dead without having been
					// closed (a network partition). Start over on a new one.
					h.connLost(fmt.Errorf("no answer to a ping within %s", pingInterval))
					if ps = h.renewPubSub(ps); ps == nil {
						return
					}
					pinged = false
					continue
				}
				if perr := ps.Ping(h.ctx); perr != nil {
					h.connLost(perr)
				} else {
					pinged = true
				}
				continue
			}
			// A broken connection: go-redis dials again (and subscribes again) on the next
			// receive; wait a little first, so a Redis that is down costs no busy loop.
			h.connLost(err)
			backoff = min(max(2*backoff, 50*time.Millisecond), maxBackoff)
			if !h.sleep(backoff) {
				return
			}
			continue
		}
		backoff, pinged = 0, false
		h.connUp()
		switch m := msg.(type) {
		case *redis.Subscription:
			h.onSubscription(m)
		case *redis.Message:
			h.route(m)
		}
	}
}

func (h *hub) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.ctx.Done():
		return false
	}
}

// keepLoop is the keeper goroutine. It tries again, waiting longer each time (up to
// maxBackoff), while a shard channel's master cannot be found (a Redis Cluster that cannot
// be reached).
func (h *hub) keepLoop() {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var backoff time.Duration
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.resync:
		case <-retry.C:
		}
		if h.syncSubscriptions() {
			backoff = min(max(2*backoff, retryMin), maxBackoff)
			retry.Reset(backoff)
		} else {
			backoff = 0
		}
	}
}

// dispatchLoop is the dispatcher goroutine.
func (h *hub) dispatchLoop() {
	for {
		select {
		case <-h.ctx.Done():
			return
		case d := <-h.inbox:
			d.a.dispatch(d.m)
		}
	}
}

// publishLoop is the publisher goroutine: it takes what the adapters queue and PUBLISHes it
// in order, pipelining what piled up. What Redis does not take is kept (up to maxUnsent
// messages and maxUnsentBytes) and sent again, in order, once Redis answers; only what does
// not fit is dropped, counted and logged. While it has nothing to send and the hub's
// commands are not known to work (after a failure, or once the subscription was lost), it
// PINGs Redis through the client's pool until it answers: readiness waits for that.
func (h *hub) publishLoop() {
	p := publisher{h: h, base: make([]outgoing, 0, publishBatch)}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	waiting := false // for retry
	for {
		if !waiting && (len(p.unsent) > 0 || h.commandsDown()) {
			if err := p.attempt(h.ctx); err != nil {
				p.backoff = min(max(2*p.backoff, retryMin), retryMax)
				retry.Reset(p.backoff)
				waiting = true
			} else {
				p.backoff = 0
			}
			continue
		}
		select {
		case m := <-h.outbox:
			p.add(m)
			p.fill()
		case <-retry.C:
			waiting = false
		case <-h.probe:
		case <-h.ctx.Done():
			retry.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), flushOnClose)
			for p.fill(); len(p.unsent) > 0 && ctx.Err() == nil; p.fill() {
				if p.attempt(ctx) != nil {
					break
				}
			}
			cancel()
			p.dropped += len(p.unsent)
			p.report(true)
			return
		}
	}
}

// publisher is the publisher goroutine's state.
type publisher struct {
	h       *hub
	unsent  []outgoing // taken from the outbox, not yet published, in order
	bytes   int        // their payloads' size
	base    []outgoing // unsent's first array, kept while there is no backlog
	backoff time.Duration
	dropped int // since the last report
	lastErr error
	lastLog time.Time
}

// add keeps m to be published, or drops it when what is kept is full.
func (p *publisher) add(m outgoing) {
	if len(p.unsent) >= p.h.maxUnsent || p.bytes+len(m.payload) > maxUnsentBytes {
		p.dropped++
		p.h.countDropped(1)
		p.report(false)
		return
	}
	p.unsent = append(p.unsent, m)
	p.bytes += len(m.payload)
}

// fill takes what is queued in the outbox, without waiting.
func (p *publisher) fill() {
	for {
		select {
		case m := <-p.h.outbox:
			p.add(m)
		default:
			return
		}
	}
}

// attempt publishes the first of the unsent messages in one round trip, or PINGs Redis when
// there are none, and records whether commands work.
func (p *publisher) attempt(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if len(p.unsent) == 0 {
		err := p.h.client.Ping(ctx).Err()
		p.h.setCommands(err)
		if err != nil {
			p.lastErr = err
		}
		return err
	}
	n := min(len(p.unsent), publishBatch)
	sent, err := 0, error(nil)
	if n == 1 {
		m := p.unsent[0]
		if m.shard {
			err = p.h.client.SPublish(ctx, m.channel, m.payload).Err()
		} else {
			err = p.h.client.Publish(ctx, m.channel, m.payload).Err()
		}
		if err == nil {
			sent = 1
		}
	} else {
		pipe := p.h.client.Pipeline()
		for _, m := range p.unsent[:n] {
			if m.shard {
				pipe.SPublish(ctx, m.channel, m.payload)
			} else {
				pipe.Publish(ctx, m.channel, m.payload)
			}
		}
		var cmds []redis.Cmder
		cmds, err = pipe.Exec(ctx)
		// What Redis answered went out; the rest is tried again (a message whose answer was
		// lost with the connection may then arrive twice).
		for _, c := range cmds {
			if c.Err() != nil {
				break
			}
			sent++
		}
	}
	for _, m := range p.unsent[:sent] {
		p.bytes -= len(m.payload)
	}
	clear(p.unsent[:sent])
	p.unsent = p.unsent[sent:]
	if len(p.unsent) == 0 {
		p.unsent = p.base[:0] // let a backlog's array go
	}
	p.h.setCommands(err)
	if err != nil {
		p.lastErr = err
		return err
	}
	p.report(true)
	return nil
}

// report logs what was dropped, at most every dropLogEvery unless final.
func (p *publisher) report(final bool) {
	if p.dropped == 0 || (!final && time.Since(p.lastLog) < dropLogEvery) {
		return
	}
	p.h.log.Warn("redis adapter could not publish; other nodes missed these messages",
		"dropped", p.dropped, "kept_at_most", p.h.maxUnsent, "error", p.lastErr)
	p.dropped, p.lastLog = 0, time.Now()
}
