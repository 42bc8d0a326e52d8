package redisadapter

// This file is the streams adapter's transport: what the namespaces' adapters of one
// NewStreams factory share. One goroutine reads the stream (XREAD BLOCK), settles responses
// and keeps the namespaces' membership; one dispatcher delivers broadcasts and answers
// requests, in stream order; one publisher XADDs (and SETs the sessions kept for recovery),
// pipelining what piled up; one ticker sends the heartbeats that are due and forgets the
// nodes gone silent. All four are owned by the hub's group and ended by stop.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/internal/group"
	"github.com/siobridge/siobridge/socketio"
)

// streamInboxSize bounds the entries waiting for the dispatcher; beyond it the reader waits,
// and the stream keeps what it has not read.
const streamInboxSize = 1024

// errUnsentFull is what a command gets that the publisher cannot keep while Redis does not
// answer.
var errUnsentFull = fmt.Errorf("redisadapter: more messages wait for Redis than the adapter keeps: %w", socketio.ErrClusterUnavailable)

// streamsFactory is what NewStreams returns the method of: its adapters share one hub, which
// runs while at least one of them is open.
type streamsFactory struct {
	opts Options

	mu  sync.Mutex
	hub *streamHub // nil while no adapter is open
}

// join adds a to the running hub, starting one if none runs; a.hub is set from then on.
func (f *streamsFactory) join(a *StreamsAdapter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hub == nil {
		f.hub = startStreamHub(f.opts)
	}
	f.hub.add(a)
}

// release takes a closing adapter out of h; the last one out stops the hub.
func (f *streamsFactory) release(a *StreamsAdapter, h *streamHub) {
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

// streamHub is the Redis side that a factory's adapters share.
type streamHub struct {
	opts   Options
	client redis.UniversalClient
	stream string
	log    *slog.Logger

	ctx     context.Context // ends at stop
	cancel  context.CancelFunc
	loops   group.Group
	inbox   chan streamDelivery
	outbox  chan streamOut
	flushed chan struct{} // closed by stop: the publisher sends what is queued and ends

	// The publisher's own: commands given up since the last log line, and when that was.
	givenUp   int
	givenUpAt time.Time

	mu       sync.Mutex
	adapters map[string]*StreamsAdapter // by namespace
	// readPos is the id of the last entry the reader routed (or where it started).
	readPos streamID
	// reading is set once the reader knows where it starts: an adapter announces itself
	// (INITIAL_HEARTBEAT) only then, so that it reads the answers.
	reading bool
	readErr error // nil while XREAD gets answers
	readAt  time.Time
	cmdErr  error // nil while the last XADD or SET got an answer
	cmdAt   time.Time
}

// streamDelivery is an entry for the dispatcher.
type streamDelivery struct {
	a  *StreamsAdapter
	id string
	m  clusterMessage
}

// streamOut is one command for the publisher: an XADD of values, or a SET of key.
type streamOut struct {
	values []any // XADD's field-value pairs; nil for a SET
	key    string
	value  string
	ttl    time.Duration
	// done, when set, is called once the command has been answered, with its error.
	done func(error)
}

func startStreamHub(opts Options) *streamHub {
	h := &streamHub{
		opts:     opts,
		client:   opts.Client,
		stream:   opts.KeyPrefix,
		log:      opts.Logger.With("component", "redisadapter", "adapter", "streams"),
		inbox:    make(chan streamDelivery, streamInboxSize),
		outbox:   make(chan streamOut, publishQueueSize),
		flushed:  make(chan struct{}),
		adapters: make(map[string]*StreamsAdapter),
		readErr:  errNotYet,
		readAt:   time.Now(),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.loops.Go(h.readLoop)
	h.loops.Go(h.dispatchLoop)
	h.loops.Go(h.publishLoop)
	h.loops.Go(h.heartbeatLoop)
	return h
}

// stop ends the goroutines, letting the publisher send what is queued (for at most
// flushOnClose).
func (h *streamHub) stop() {
	close(h.flushed)
	h.cancel()
	h.loops.Wait()
}

func (h *streamHub) add(a *StreamsAdapter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a.hub = h
	h.adapters[a.local.Name()] = a
	// Every entry of the namespace after readPos will be routed to a.
	a.seen = h.readPos
	if h.reading {
		a.announce()
	}
}

// remove takes a out and reports whether it was the last adapter.
func (h *streamHub) remove(a *StreamsAdapter) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.adapters[a.local.Name()] == a {
		delete(h.adapters, a.local.Name())
	}
	return len(h.adapters) == 0
}

// send queues a command for the publisher without waiting.
func (h *streamHub) send(o streamOut) error {
	select {
	case <-h.flushed:
		return ErrClosed
	default:
	}
	select {
	case h.outbox <- o:
		return nil
	default:
		if h.opts.OnDrop != nil {
			h.opts.OnDrop(1)
		}
		return ErrPublishQueueFull
	}
}

// health is nil while the reader and the commands both work.
func (h *streamHub) health() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readErr != nil {
		return fmt.Errorf("redisadapter: cannot read stream %q since %s: %w", h.stream, h.readAt.Format(time.RFC3339), h.readErr)
	}
	if h.cmdErr != nil {
		return fmt.Errorf("redisadapter: cannot write to Redis since %s: %w", h.cmdAt.Format(time.RFC3339), h.cmdErr)
	}
	return nil
}

func (h *streamHub) setRead(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if (err == nil) != (h.readErr == nil) {
		h.readAt = time.Now()
		if err != nil {
			h.log.Warn("redis streams adapter: cannot read the stream", "stream", h.stream, "error", err)
		} else {
			h.log.Info("redis streams adapter: reading the stream", "stream", h.stream)
		}
	}
	h.readErr = err
}

func (h *streamHub) setCmd(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if (err == nil) != (h.cmdErr == nil) {
		h.cmdAt = time.Now()
	}
	h.cmdErr = err
}

// sleep waits d, and reports false if the hub stopped meanwhile.
func (h *streamHub) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.ctx.Done():
		return false
	}
}

// readLoop is the reader goroutine: XREAD BLOCK from the last entry read, as the Node.js
// adapter does. It starts after the stream's last entry (resolved once, so that nothing
// added between two reads is missed, as "$" would), and after a failure goes on from the
// last entry it read: nothing is lost while the stream survives. Redis back empty gives new
// entries ids from its clock, after the last one read, so they are read too (unless that
// Redis's clock is behind the former's, which Node.js does not handle either).
func (h *streamHub) readLoop() {
	var last string
	backoff := retryMin
	fail := func(err error) bool {
		if h.ctx.Err() != nil {
			return false
		}
		h.setRead(err)
		ok := h.sleep(backoff)
		backoff = min(2*backoff, maxBackoff)
		return ok
	}
	for h.ctx.Err() == nil {
		if last == "" {
			tail, err := h.tail()
			if err != nil {
				if !fail(err) {
					return
				}
				continue
			}
			last = tail.String()
			h.setRead(nil)
			h.positioned(tail)
		}
		res, err := h.client.XRead(h.ctx, &redis.XReadArgs{
			Streams: []string{h.stream, last},
			Count:   h.opts.ReadCount,
			Block:   h.opts.ReadBlock,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			if !fail(err) {
				return
			}
			continue
		}
		backoff = retryMin
		h.setRead(nil)
		for _, s := range res {
			for _, e := range s.Messages {
				if !h.route(e) {
					return
				}
				last = e.ID
			}
		}
	}
}

// tail is the id of the stream's last entry, 0-0 when it has none.
func (h *streamHub) tail() (streamID, error) {
	ctx, cancel := context.WithTimeout(h.ctx, h.opts.RequestTimeout)
	defer cancel()
	entries, err := h.client.XRevRangeN(ctx, h.stream, "+", "-", 1).Result()
	if err != nil {
		return streamID{}, fmt.Errorf("XREVRANGE %s: %w", h.stream, err)
	}
	if len(entries) == 0 {
		return streamID{}, nil
	}
	id, ok := parseStreamID(entries[0].ID)
	if !ok {
		return streamID{}, fmt.Errorf("XREVRANGE %s: entry id %q", h.stream, entries[0].ID)
	}
	return id, nil
}

// positioned records where the reader starts: every namespace has had what came before.
func (h *streamHub) positioned(at streamID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readPos.less(at) {
		h.readPos = at
	}
	for _, a := range h.adapters {
		a.mu.Lock()
		a.advance(at)
		a.mu.Unlock()
		if !h.reading {
			a.announce()
		}
	}
	h.reading = true
}

// route hands one entry to its namespace's adapter; it returns false once the hub stops.
func (h *streamHub) route(e redis.XMessage) bool {
	nsp, _ := e.Values["nsp"].(string)
	id, ok := parseStreamID(e.ID)
	h.mu.Lock()
	a := h.adapters[nsp]
	if ok && h.readPos.less(id) {
		h.readPos = id
	}
	h.mu.Unlock()
	if a == nil {
		return true
	}
	d, ok := a.receive(e.ID, e.Values)
	if !ok {
		return true
	}
	select {
	case h.inbox <- d:
		return true
	case <-h.ctx.Done():
		return false
	}
}

// dispatchLoop is the dispatcher goroutine.
func (h *streamHub) dispatchLoop() {
	for {
		select {
		case d := <-h.inbox:
			d.a.dispatch(d)
		case <-h.ctx.Done():
			return
		}
	}
}

// publishLoop is the publisher goroutine: it sends what is queued, in order, at most
// publishBatch commands in one pipeline. A command that Redis did not answer (Redis down,
// restarting, unreachable) is kept, with those after it, and sent again in order once Redis
// answers, as the classic adapter's publisher does and as node-redis' offline queue does
// for the Node.js adapter: a short outage loses nothing. At most maxUnsent commands are kept;
// what does not fit, and a command Redis refused with an error of its own, is given up: its
// done says so, and it is counted (OnDrop) and logged. Once stop is called it sends what is
// queued, for at most flushOnClose, and gives up the rest.
func (h *streamHub) publishLoop() {
	var (
		unsent  []streamOut // taken from the outbox, not yet answered, in order
		backoff time.Duration
		retry   <-chan time.Time
	)
	take := func(o streamOut) {
		if len(unsent) >= maxUnsent {
			h.giveUp([]streamOut{o}, errUnsentFull)
			return
		}
		unsent = append(unsent, o)
	}
	for {
		if len(unsent) == 0 || retry != nil {
			select {
			case o := <-h.outbox:
				take(o)
				if retry != nil {
					continue // keep waiting out the backoff
				}
			case <-retry:
				retry = nil
			case <-h.flushed:
				h.flush(unsent)
				return
			}
		}
		for len(unsent) < maxUnsent {
			select {
			case o := <-h.outbox:
				take(o)
				continue
			default:
			}
			break
		}
		n := min(len(unsent), publishBatch)
		again := h.exec(unsent[:n], publishTimeout)
		unsent = append(again, unsent[n:]...)
		if len(again) == 0 {
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, retryMin), maxBackoff)
		retry = time.After(backoff)
	}
}

// flush sends unsent and what is queued, for at most flushOnClose, and gives up the rest.
func (h *streamHub) flush(unsent []streamOut) {
	deadline := time.Now().Add(flushOnClose)
	for {
		for len(unsent) < publishBatch {
			select {
			case o := <-h.outbox:
				unsent = append(unsent, o)
				continue
			default:
			}
			break
		}
		if len(unsent) == 0 {
			return
		}
		if time.Until(deadline) <= 0 {
			h.giveUp(unsent, ErrClosed)
			return
		}
		n := min(len(unsent), publishBatch)
		again := h.exec(unsent[:n], max(time.Until(deadline), time.Millisecond))
		unsent = append(again, unsent[n:]...)
		if len(again) > 0 && !h.sleep(retryMin) {
			// The hub's context is over: no more waiting.
			deadline = time.Now()
		}
	}
}

// exec sends a batch of commands in one pipeline, calls done for those answered, and returns
// those to send again, in order: the commands Redis did not answer. A command Redis answered
// with an error is given up.
func (h *streamHub) exec(batch []streamOut, timeout time.Duration) (again []streamOut) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pipe := h.client.Pipeline()
	cmds := make([]redis.Cmder, len(batch))
	for i, o := range batch {
		if o.values != nil {
			cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{
				Stream: h.stream,
				MaxLen: h.opts.StreamMaxLen,
				Approx: true,
				ID:     "*",
				Values: o.values,
			})
		} else {
			cmds[i] = pipe.Set(ctx, o.key, o.value, o.ttl)
		}
	}
	_, err := pipe.Exec(ctx)
	h.setCmd(err)
	var refused []streamOut
	var refusal error
	for i, o := range batch {
		cerr := cmds[i].Err()
		var reply redis.Error
		switch {
		case cerr == nil:
			if o.done != nil {
				o.done(nil)
			}
		case errors.As(cerr, &reply):
			refused, refusal = append(refused, o), cerr
		default:
			// Not answered; it may have been carried out all the same (its answer lost
			// with the connection): sent again, it may be in the stream twice.
			again = append(again, o)
		}
	}
	if len(refused) > 0 {
		h.giveUp(refused, refusal)
	}
	if len(again) > 0 {
		h.log.Debug("redis streams adapter: commands kept to be sent again", "count", len(again), "error", err)
	}
	// again must not share batch's array, which the caller's unsent still uses.
	return slices.Clone(again)
}

// giveUp ends commands that will not be sent: their done gets err, and they are counted and
// logged.
func (h *streamHub) giveUp(outs []streamOut, err error) {
	for _, o := range outs {
		if o.done != nil {
			o.done(err)
		}
	}
	if h.opts.OnDrop != nil {
		h.opts.OnDrop(len(outs))
	}
	// One line a second at most, however many are given up one by one in an outage.
	h.givenUp += len(outs)
	if now := time.Now(); now.Sub(h.givenUpAt) >= time.Second {
		h.log.Warn("redis streams adapter: messages not written to the stream; other nodes miss them", "count", h.givenUp, "error", err)
		h.givenUp, h.givenUpAt = 0, now
	}
}

// heartbeatLoop is the ticker goroutine: one timer for every namespace's heartbeats and
// membership.
func (h *streamHub) heartbeatLoop() {
	every := min(h.opts.HeartbeatInterval, h.opts.HeartbeatTimeout) / 4
	every = min(max(every, 10*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			h.mu.Lock()
			list := make([]*StreamsAdapter, 0, len(h.adapters))
			for _, a := range h.adapters {
				list = append(list, a)
			}
			h.mu.Unlock()
			for _, a := range list {
				a.tick(now)
			}
		case <-h.ctx.Done():
			return
		}
	}
}
