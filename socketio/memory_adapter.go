package socketio

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/siobridge/siobridge/engineio"
)

// MemoryAdapter is the in-process [Adapter]: rooms are maps from name to socket, so joins,
// leaves and lookups are O(1) and a broadcast costs O(receivers). With [Options].Recovery
// set it is also the namespace's [SessionStore].
//
// Every socket is in the room named by its id from the start, and most stay in no other: that
// membership is a flag on the socket's entry rather than a one-member map of its own, which
// would cost an idle connection a few hundred bytes.
type MemoryAdapter struct {
	ns  *Namespace
	log *recoveryLog // nil without recovery

	mu    sync.RWMutex
	rooms map[string]map[string]*Socket // room -> members, but for each socket's own-id room
	sids  map[string]*membership        // socket id -> its rooms
}

// membership is one socket's rooms in the adapter.
type membership struct {
	s     *Socket
	self  bool                // in the room named by its own id
	rooms map[string]struct{} // its other rooms; nil while there are none
}

// in reports whether the socket is in room r.
func (m *membership) in(id, r string) bool {
	if r == id {
		return m.self
	}
	_, ok := m.rooms[r]
	return ok
}

// NewMemoryAdapter returns the in-memory adapter of ns; it is the default [AdapterFactory].
func NewMemoryAdapter(ns *Namespace) Adapter {
	a := &MemoryAdapter{
		ns:    ns,
		rooms: make(map[string]map[string]*Socket),
		sids:  make(map[string]*membership),
	}
	if ns.srv.opts.Recovery.MaxDisconnection > 0 {
		a.log = newRecoveryLog(ns.srv.opts.Recovery)
	}
	return a
}

// AddAll implements [Adapter]. With Options.MaxRoomsPerSocket, rooms beyond the limit are
// not joined, and a warning says which.
func (a *MemoryAdapter) AddAll(id string, rooms []string) {
	refused := a.addAll(id, rooms)
	if len(refused) > 0 {
		srv := a.ns.srv
		srv.onLimit(LimitRooms)
		srv.log.Warn("socketio: rooms not joined: the socket is in as many rooms as allowed",
			"namespace", a.ns.name, "socket", id, "limit", srv.opts.MaxRoomsPerSocket, "rooms", refused)
	}
}

// addAll joins what the room limit allows and returns the rooms it refused.
func (a *MemoryAdapter) addAll(id string, rooms []string) (refused []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Checked under the lock: a socket removed from its namespace is then removed from here
	// (Namespace.remove), so a racing join cannot leave it behind.
	s := a.ns.Socket(id)
	if s == nil {
		return nil
	}
	m := a.sids[id]
	if m == nil {
		m = &membership{s: s}
		a.sids[id] = m
	}
	limit := a.ns.srv.opts.MaxRoomsPerSocket
	for _, r := range rooms {
		if r == id { // the socket's own id room, not counted against the limit
			m.self = true
			continue
		}
		if _, in := m.rooms[r]; in {
			continue
		}
		if limit > 0 && len(m.rooms) >= limit {
			refused = append(refused, r)
			continue
		}
		if m.rooms == nil {
			m.rooms = make(map[string]struct{}, 1)
		}
		m.rooms[r] = struct{}{}
		members := a.rooms[r]
		if members == nil {
			members = make(map[string]*Socket, 1)
			a.rooms[r] = members
		}
		members[id] = s
	}
	return refused
}

// Del implements [Adapter].
func (a *MemoryAdapter) Del(id, room string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.sids[id]
	if m == nil {
		return
	}
	if room == id {
		m.self = false
		return
	}
	delete(m.rooms, room)
	if len(m.rooms) == 0 {
		m.rooms = nil
	}
	a.delFromRoom(id, room)
}

func (a *MemoryAdapter) delFromRoom(id, room string) {
	if members := a.rooms[room]; members != nil {
		delete(members, id)
		if len(members) == 0 {
			delete(a.rooms, room)
		}
	}
}

// DelAll implements [Adapter].
func (a *MemoryAdapter) DelAll(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if m := a.sids[id]; m != nil {
		for r := range m.rooms {
			a.delFromRoom(id, r)
		}
	}
	delete(a.sids, id)
}

// SocketRooms implements [Adapter].
func (a *MemoryAdapter) SocketRooms(id string) []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	m := a.sids[id]
	if m == nil {
		return nil
	}
	out := make([]string, 0, len(m.rooms)+1)
	if m.self {
		out = append(out, id)
	}
	for r := range m.rooms {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// roomSize is the number of sockets in room r, with a.mu held.
func (a *MemoryAdapter) roomSize(r string) int {
	n := len(a.rooms[r])
	if m := a.sids[r]; m != nil && m.self {
		n++
	}
	return n
}

// eachInRoom calls f with every socket of room r, with a.mu held.
func (a *MemoryAdapter) eachInRoom(r string, f func(*Socket)) {
	if m := a.sids[r]; m != nil && m.self {
		f(m.s)
	}
	for _, s := range a.rooms[r] {
		f(s)
	}
}

// selectSockets returns the local sockets opts selects. The lock is not held while the caller
// acts on them: sending may end a session, whose cleanup takes the lock again.
func (a *MemoryAdapter) selectSockets(opts BroadcastOptions) []*Socket {
	a.mu.RLock()
	defer a.mu.RUnlock()
	excluded := func(id string) bool {
		if len(opts.Except) == 0 {
			return false
		}
		m := a.sids[id]
		for _, r := range opts.Except {
			if m != nil && m.in(id, r) {
				return true
			}
		}
		return false
	}
	var out []*Socket
	if len(opts.Rooms) == 0 {
		out = make([]*Socket, 0, len(a.sids))
		for id, m := range a.sids {
			if !excluded(id) {
				out = append(out, m.s)
			}
		}
		return out
	}
	if len(opts.Rooms) == 1 {
		out = make([]*Socket, 0, a.roomSize(opts.Rooms[0]))
		a.eachInRoom(opts.Rooms[0], func(s *Socket) {
			if !excluded(s.id) {
				out = append(out, s)
			}
		})
		return out
	}
	seen := make(map[string]struct{})
	for _, r := range opts.Rooms {
		a.eachInRoom(r, func(s *Socket) {
			if _, dup := seen[s.id]; dup || excluded(s.id) {
				return
			}
			seen[s.id] = struct{}{}
			out = append(out, s)
		})
	}
	return out
}

// Broadcast implements [Adapter]: the packet is encoded once and the same messages are queued
// on every receiver.
func (a *MemoryAdapter) Broadcast(p *Packet, opts BroadcastOptions) (int, error) {
	// Only the namespace's own store records: a cluster adapter's local in-memory adapter
	// does not.
	if a.log != nil && a.ns.store == SessionStore(a) && storable(p, opts) {
		return a.broadcastStored(p, opts), nil
	}
	targets := a.selectSockets(opts)
	if len(targets) == 0 {
		return 0, nil
	}
	msgs := encodeMessages(p)
	n := 0
	for _, s := range targets {
		if opts.Volatile {
			if s.conn.eio.SendVolatile(msgs...) {
				n++
			}
			continue
		}
		if s.conn.eio.Send(msgs...) == nil {
			n++
		}
	}
	return n, nil
}

// broadcastStored stores p for recovery and queues it on the receivers, all under the log's
// lock, so that every socket gets stored packets in offset order and a restore in progress
// sees each one either among its missed packets or live, never both or neither. A receiver
// too slow to take it is closed once the lock is released.
func (a *MemoryAdapter) broadcastStored(p *Packet, opts BroadcastOptions) int {
	l := a.log
	var slow []*engineio.Session
	n := 0
	l.mu.Lock()
	msgs := l.store(p, opts)
	for _, s := range a.selectSockets(opts) {
		switch err := s.conn.eio.Enqueue(msgs...); {
		case err == nil:
			n++
		case errors.Is(err, engineio.ErrSendQueueFull):
			slow = append(slow, s.conn.eio)
		}
	}
	l.mu.Unlock()
	for _, sess := range slow {
		sess.CloseSlow()
	}
	return n
}

// BroadcastWithAck implements [Adapter].
func (a *MemoryAdapter) BroadcastWithAck(ctx context.Context, p *Packet, opts BroadcastOptions, onAck func(AckResult), _ func(int, []string)) ([]string, Reached, error) {
	targets := a.selectSockets(opts)
	msgs := encodeMessages(p)
	ids := make([]string, 0, len(targets))
	for _, s := range targets {
		s := s
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
	return ids, Reached{Local: len(ids), Total: len(ids)}, nil
}

// FetchSockets implements [Adapter].
func (a *MemoryAdapter) FetchSockets(_ context.Context, opts BroadcastOptions) ([]SocketInfo, Reach, error) {
	targets := a.selectSockets(opts)
	out := make([]SocketInfo, 0, len(targets))
	for _, s := range targets {
		out = append(out, SocketInfo{
			ID:        s.id,
			Namespace: a.ns.name,
			Rooms:     a.SocketRooms(s.id),
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
	return out, Reach{}, nil
}

// AddSockets implements [Adapter].
func (a *MemoryAdapter) AddSockets(_ context.Context, opts BroadcastOptions, rooms []string) (Reached, error) {
	targets := a.selectSockets(opts)
	for _, s := range targets {
		s.Join(rooms...)
	}
	return Reached{Local: len(targets), Total: len(targets)}, nil
}

// DelSockets implements [Adapter].
func (a *MemoryAdapter) DelSockets(_ context.Context, opts BroadcastOptions, rooms []string) (Reached, error) {
	targets := a.selectSockets(opts)
	for _, s := range targets {
		s.Leave(rooms...)
	}
	return Reached{Local: len(targets), Total: len(targets)}, nil
}

// DisconnectSockets implements [Adapter].
func (a *MemoryAdapter) DisconnectSockets(_ context.Context, opts BroadcastOptions, close bool) (Reached, error) {
	targets := a.selectSockets(opts)
	for _, s := range targets {
		s.Disconnect(close)
	}
	return Reached{Local: len(targets), Total: len(targets)}, nil
}

// Rooms implements [Adapter]; the room named by each socket's id is left out, unless other
// sockets joined it too.
func (a *MemoryAdapter) Rooms(context.Context) ([]RoomInfo, Reach, error) {
	a.mu.RLock()
	out := make([]RoomInfo, 0, len(a.rooms))
	for name := range a.rooms {
		out = append(out, RoomInfo{Name: name, Sockets: a.roomSize(name)})
	}
	a.mu.RUnlock()
	slices.SortFunc(out, func(x, y RoomInfo) int {
		if x.Name < y.Name {
			return -1
		}
		return 1
	})
	return out, Reach{}, nil
}

// Close implements [Adapter]; the memory adapter holds nothing to release.
func (a *MemoryAdapter) Close() error { return nil }
