package socketio

import (
	"slices"
	"sync"
)

// roomTable is a namespace's sockets on this node and their rooms: maps from name to socket,
// so that joins, leaves and lookups are O(1) and a selection costs O(receivers).
//
// Every socket is in the room named by its id from the start, and most stay in no other: that
// membership is a flag on the socket's entry rather than a one-member map of its own, which
// would cost an idle connection a few hundred bytes. A socket is in the namespace exactly as
// long as it has an entry, so a join that races with its leaving cannot leave it behind.
type roomTable struct {
	mu      sync.RWMutex
	sockets map[string]*member            // socket id -> the socket and its rooms
	rooms   map[string]map[string]*Socket // room -> members, but for each socket's own-id room
	// observer, when set, is told of each room's first member and last leave, under mu.
	observer RoomObserver
}

// member is one socket's entry in the table.
type member struct {
	s     *Socket
	self  bool                // in the room named by its own id
	rooms map[string]struct{} // its other rooms; nil while there are none
}

// in reports whether the socket is in room r.
func (m *member) in(id, r string) bool {
	if r == id {
		return m.self
	}
	_, ok := m.rooms[r]
	return ok
}

func newRoomTable() roomTable {
	return roomTable{sockets: make(map[string]*member), rooms: make(map[string]map[string]*Socket)}
}

// add enters s in its own id room and rooms, taking the place of any socket of the same id.
func (t *roomTable) add(s *Socket, rooms []string, limit int) (refused []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.sockets[s.id]; old != nil {
		t.removeLocked(old)
	}
	m := &member{s: s, self: true}
	t.sockets[s.id] = m
	return t.joinLocked(m, rooms, limit)
}

// remove takes s out of the table with all its rooms, unless another socket of the same id
// has taken its place.
func (t *roomTable) remove(s *Socket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.sockets[s.id]; m != nil && m.s == s {
		t.removeLocked(m)
	}
}

func (t *roomTable) removeLocked(m *member) {
	for r := range m.rooms {
		t.leaveRoomLocked(m.s.id, r)
	}
	delete(t.sockets, m.s.id)
}

// join puts s into rooms, at most limit of them besides its own id room (0: no limit), and
// returns the rooms it refused. A socket no longer in the table joins none.
func (t *roomTable) join(s *Socket, rooms []string, limit int) (refused []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.sockets[s.id]
	if m == nil || m.s != s {
		return nil
	}
	return t.joinLocked(m, rooms, limit)
}

func (t *roomTable) joinLocked(m *member, rooms []string, limit int) (refused []string) {
	id := m.s.id
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
		members := t.rooms[r]
		if members == nil {
			members = make(map[string]*Socket, 1)
			t.rooms[r] = members
			if t.observer != nil {
				t.observer.RoomCreated(r)
			}
		}
		members[id] = m.s
	}
	return refused
}

// leave takes s out of rooms.
func (t *roomTable) leave(s *Socket, rooms []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.sockets[s.id]
	if m == nil || m.s != s {
		return
	}
	for _, r := range rooms {
		if r == s.id {
			m.self = false
			continue
		}
		if _, in := m.rooms[r]; !in {
			continue
		}
		delete(m.rooms, r)
		t.leaveRoomLocked(s.id, r)
	}
	if len(m.rooms) == 0 {
		m.rooms = nil
	}
}

func (t *roomTable) leaveRoomLocked(id, room string) {
	if members := t.rooms[room]; members != nil {
		delete(members, id)
		if len(members) == 0 {
			delete(t.rooms, room)
			if t.observer != nil {
				t.observer.RoomDeleted(room)
			}
		}
	}
}

// socket returns the socket with id, or nil.
func (t *roomTable) socket(id string) *Socket {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if m := t.sockets[id]; m != nil {
		return m.s
	}
	return nil
}

// all returns every socket, in no particular order.
func (t *roomTable) all() []*Socket {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*Socket, 0, len(t.sockets))
	for _, m := range t.sockets {
		out = append(out, m.s)
	}
	return out
}

// ids returns the id of every socket, in no particular order.
func (t *roomTable) ids() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]string, 0, len(t.sockets))
	for id := range t.sockets {
		out = append(out, id)
	}
	return out
}

func (t *roomTable) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.sockets)
}

// socketRooms lists the rooms of the socket id, sorted, or nil for an unknown socket.
func (t *roomTable) socketRooms(id string) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	m := t.sockets[id]
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

// roomSize is the number of sockets in room r, with t.mu held.
func (t *roomTable) roomSize(r string) int {
	n := len(t.rooms[r])
	if m := t.sockets[r]; m != nil && m.self {
		n++
	}
	return n
}

// eachInRoom calls f with every socket of room r, with t.mu held.
func (t *roomTable) eachInRoom(r string, f func(*Socket)) {
	if m := t.sockets[r]; m != nil && m.self {
		f(m.s)
	}
	for _, s := range t.rooms[r] {
		f(s)
	}
}

// list returns every room with its number of sockets, by name; the room named by each
// socket's id is left out, unless other sockets joined it too.
func (t *roomTable) list() []RoomInfo {
	t.mu.RLock()
	out := make([]RoomInfo, 0, len(t.rooms))
	for name := range t.rooms {
		out = append(out, RoomInfo{Name: name, Sockets: t.roomSize(name)})
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(x, y RoomInfo) int {
		if x.Name < y.Name {
			return -1
		}
		return 1
	})
	return out
}

// selectSockets returns the sockets opts selects. The lock is not held while the caller acts
// on them: sending may end a session, whose cleanup takes the lock again.
func (t *roomTable) selectSockets(opts BroadcastOptions) []*Socket {
	t.mu.RLock()
	defer t.mu.RUnlock()
	excluded := func(id string) bool {
		if len(opts.Except) == 0 {
			return false
		}
		m := t.sockets[id]
		for _, r := range opts.Except {
			if m != nil && m.in(id, r) {
				return true
			}
		}
		return false
	}
	var out []*Socket
	if len(opts.Rooms) == 0 {
		out = make([]*Socket, 0, len(t.sockets))
		for id, m := range t.sockets {
			if !excluded(id) {
				out = append(out, m.s)
			}
		}
		return out
	}
	if len(opts.Rooms) == 1 {
		out = make([]*Socket, 0, t.roomSize(opts.Rooms[0]))
		t.eachInRoom(opts.Rooms[0], func(s *Socket) {
			if !excluded(s.id) {
				out = append(out, s)
			}
		})
		return out
	}
	seen := make(map[string]struct{})
	for _, r := range opts.Rooms {
		t.eachInRoom(r, func(s *Socket) {
			if _, dup := seen[s.id]; dup || excluded(s.id) {
				return
			}
			seen[s.id] = struct{}{}
			out = append(out, s)
		})
	}
	return out
}
