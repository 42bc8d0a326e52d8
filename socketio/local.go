package socketio

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siobridge/siobridge/engineio"
)

// Local is a namespace's side on this node: the handle its [Cluster] engine acts through,
// for this node's part of each cluster-wide call and to answer the other nodes' requests.
// Its methods concern this node's sockets only, ignore [BroadcastOptions].Local, never wait
// on the network, and may be called from any goroutine. The engine gets it from
// [ClusterFactory]; the zero Local is not usable.
type Local struct{ ns *Namespace }

// Name is the namespace's name, such as "/" or "/chat".
func (l Local) Name() string { return l.ns.name }

// Socket returns this node's socket with id, or nil.
func (l Local) Socket(id string) *Socket { return l.ns.rooms.socket(id) }

// Count is how many of this node's sockets opts selects.
func (l Local) Count(opts BroadcastOptions) int { return len(l.ns.rooms.selectSockets(opts)) }

// RecoveryWindow is how long connection state recovery keeps the session of a disconnected
// socket ([RecoveryOptions].MaxDisconnection), 0 when recovery is off. A [Cluster] engine
// that is a [SessionStore] stores broadcasts (and puts offsets on them) only when it is not 0.
func (l Local) RecoveryWindow() time.Duration { return l.ns.srv.opts.Recovery.MaxDisconnection }

// SocketIDs lists the ids of this node's sockets, in no particular order.
func (l Local) SocketIDs() []string { return l.ns.rooms.ids() }

// Broadcast queues p on this node's sockets that opts selects, encoded once for all of them,
// and returns how many took it. A volatile broadcast skips the sockets whose transport cannot
// take it now. With connection state recovery on and no [Cluster] engine, p is also stored
// for recovery when it is an event without ack id and not volatile.
func (l Local) Broadcast(p *Packet, opts BroadcastOptions) int {
	ns := l.ns
	start, burst := ns.srv.paceStart()
	defer ns.srv.paceEnd(start, burst)
	if ns.log != nil && storable(p, opts) {
		return ns.broadcastStored(p, opts, burst)
	}
	targets := ns.rooms.selectSockets(opts)
	if len(targets) == 0 {
		return 0
	}
	msgs := EncodeMessages(p)
	// The receivers' sessions first, in a loop of loads alone, whose cache misses the
	// processor overlaps; between the sends (system calls) each would wait on its own.
	sessions := make([]*engineio.Session, len(targets))
	for i, s := range targets {
		sessions[i] = s.conn.eio
	}
	n := 0
	for _, sess := range sessions {
		switch {
		case opts.Volatile:
			if sess.SendVolatile(msgs...) {
				n++
			}
		case burst:
			switch err := sess.EnqueueBatched(msgs...); {
			case err == nil:
				n++
			case errors.Is(err, engineio.ErrSendQueueFull):
				sess.CloseSlow()
			}
		default:
			if sess.Send(msgs...) == nil {
				n++
			}
		}
	}
	return n
}

// broadcastStored stores p for recovery and queues it on the receivers, all under the log's
// lock, so that every socket gets stored packets in offset order and a restore in progress
// sees each one either among its missed packets or live, never both or neither. A receiver
// too slow to take it is closed once the lock is released.
func (ns *Namespace) broadcastStored(p *Packet, opts BroadcastOptions, burst bool) int {
	l := ns.log
	l.mu.Lock()
	n, slow := ns.local().enqueue(l.store(p, opts), opts, burst)
	l.mu.Unlock()
	for _, sess := range slow {
		sess.CloseSlow()
	}
	return n
}

// Enqueue queues msgs, the messages of one stored packet (its offset appended as its last
// argument, encoded with [EncodeMessages]), on this node's sockets that opts selects. It is
// for a [SessionStore] of a cluster engine: it queues with [engineio.Session.Enqueue], which
// never closes a session, so it may be called under the lock that orders the store's packets
// against [Restore.Resume]. It returns how many sockets took them, and the sessions too slow
// to: call CloseSlow on each once that lock is released.
func (l Local) Enqueue(msgs []*engineio.Message, opts BroadcastOptions) (n int, slow []*engineio.Session) {
	start, burst := l.ns.srv.paceStart()
	defer l.ns.srv.paceEnd(start, burst)
	return l.enqueue(msgs, opts, burst)
}

// enqueue is Enqueue, its sessions' writers deferred in a burst (engineio's EnqueueBatched).
func (l Local) enqueue(msgs []*engineio.Message, opts BroadcastOptions, burst bool) (n int, slow []*engineio.Session) {
	enqueue := (*engineio.Session).Enqueue
	if burst {
		enqueue = (*engineio.Session).EnqueueBatched
	}
	for _, s := range l.ns.rooms.selectSockets(opts) {
		switch err := enqueue(s.conn.eio, msgs...); {
		case err == nil:
			n++
		case errors.Is(err, engineio.ErrSendQueueFull):
			slow = append(slow, s.conn.eio)
		}
	}
	return n, slow
}

// BroadcastWithAck queues p on this node's sockets that opts selects, with an ack id of the
// namespace's own when p has none (one id for every receiver, which never meets an id already
// waiting on one of them), passes each socket's answer to onAck until ctx ends, and returns
// the ids of the sockets it reached.
func (l Local) BroadcastWithAck(ctx context.Context, p *Packet, opts BroadcastOptions, onAck func(AckResult)) []string {
	if !p.HasID {
		q := *p
		q.ID, q.HasID = l.ns.ackIDs.Add(1), true
		p = &q
	}
	targets := l.ns.rooms.selectSockets(opts)
	msgs := EncodeMessages(p)
	ids := make([]string, 0, len(targets))
	for _, s := range targets {
		if !s.expectAck(p.ID, func(args Args, err error) {
			if err == nil {
				onAck(AckResult{SocketID: s.id, Args: args})
			}
		}) {
			continue
		}
		if err := s.conn.eio.Send(msgs...); err != nil {
			s.dropAck(p.ID)
			continue
		}
		ids = append(ids, s.id)
	}
	context.AfterFunc(ctx, func() {
		for _, s := range targets {
			s.dropAck(p.ID)
		}
	})
	return ids
}

// FetchSockets describes this node's sockets that opts selects, by id.
func (l Local) FetchSockets(opts BroadcastOptions) []SocketInfo {
	targets := l.ns.rooms.selectSockets(opts)
	out := make([]SocketInfo, 0, len(targets))
	for _, s := range targets {
		out = append(out, SocketInfo{
			ID:        s.id,
			Namespace: l.ns.name,
			Rooms:     l.ns.rooms.socketRooms(s.id),
			Data:      s.Data(),
			Handshake: s.Handshake(),
		})
	}
	slices.SortFunc(out, func(x, y SocketInfo) int {
		if x.ID < y.ID {
			return -1
		}
		return 1
	})
	return out
}

// AddSockets makes this node's sockets that opts selects join rooms, as [Socket.Join] does
// ([Options].MaxRoomsPerSocket applies), and returns how many there were.
func (l Local) AddSockets(opts BroadcastOptions, rooms []string) int {
	targets := l.ns.rooms.selectSockets(opts)
	for _, s := range targets {
		s.Join(rooms...)
	}
	return len(targets)
}

// DelSockets makes this node's sockets that opts selects leave rooms, and returns how many
// there were.
func (l Local) DelSockets(opts BroadcastOptions, rooms []string) int {
	targets := l.ns.rooms.selectSockets(opts)
	for _, s := range targets {
		s.Leave(rooms...)
	}
	return len(targets)
}

// DisconnectSockets disconnects this node's sockets that opts selects, as
// [Socket.Disconnect] does (with close, their whole connections), and returns how many there
// were. Their disconnect handlers run before it returns.
func (l Local) DisconnectSockets(opts BroadcastOptions, close bool) int {
	targets := l.ns.rooms.selectSockets(opts)
	for _, s := range targets {
		s.Disconnect(close)
	}
	return len(targets)
}

// Rooms lists the rooms of this node's sockets, by name, each with how many of them it holds;
// the room named by each socket's id is left out, unless other sockets joined it too.
func (l Local) Rooms() []RoomInfo { return l.ns.rooms.list() }

// broadcastPace tells a burst of broadcasts, each starting before the previous one has been
// over for as long as it took, from broadcasts with time between them. A WebSocket receiver
// that keeps up is written to by the broadcast itself, one system call per message; in a
// burst, that would be one per message and receiver. A burst's broadcasts queue instead, and
// defer the receivers' writers (engineio's EnqueueBatched) until the burst pauses (flush), so
// that each writer writes what piled up for its receiver in one system call.
type broadcastPace struct {
	// base is what the times are counted from, monotonic.
	base time.Time
	// lastEnd and lastTook are when the last broadcast ended and how long it took, in
	// nanoseconds since base.
	lastEnd, lastTook atomic.Int64

	mu sync.Mutex
	// flush, once made, starts the writers a burst deferred (engineio's Server.Flush) when
	// no broadcast has started for as long as the last one took.
	flush *time.Timer
}

// burst tells whether a broadcast starting at now (since base) is part of a burst: it starts
// before the last one has been over for as long as it took.
func (p *broadcastPace) burst(now int64) bool {
	return now-p.lastEnd.Load() < p.lastTook.Load()
}

// ended records a broadcast that started at start and ended at now. One of a burst (its
// writes deferred, it took less than it costs) does not shorten lastTook: the burst goes on
// while broadcasts come within what a broadcast that writes takes.
func (p *broadcastPace) ended(start, now int64, burst bool) {
	took := now - start
	if burst {
		took = max(took, p.lastTook.Load())
	}
	p.lastTook.Store(took)
	p.lastEnd.Store(now)
}

// paceStart tells whether a broadcast starting now is part of a burst, whose sends defer
// their writers, and returns its start for paceEnd. A burst's next broadcast holds off the
// flush the last one set: its sends join the same writes.
func (s *Server) paceStart() (start int64, burst bool) {
	start = int64(time.Since(s.pace.base))
	burst = s.pace.burst(start)
	if burst {
		s.pace.mu.Lock()
		if s.pace.flush != nil {
			s.pace.flush.Stop()
		}
		s.pace.mu.Unlock()
	}
	return start, burst
}

// paceEnd records the end of the broadcast paceStart started. After one of a burst, the
// writers it deferred start when no broadcast has started for as long as it took (the burst
// is over), and at the latest (engineio's bound) when the burst goes on for longer.
func (s *Server) paceEnd(start int64, burst bool) {
	end := int64(time.Since(s.pace.base))
	s.pace.ended(start, end, burst)
	if !burst {
		return
	}
	wait := time.Duration(s.pace.lastTook.Load())
	s.pace.mu.Lock()
	if s.pace.flush == nil {
		s.pace.flush = time.AfterFunc(wait, s.eio.Flush)
	} else {
		s.pace.flush.Reset(wait)
	}
	s.pace.mu.Unlock()
}
