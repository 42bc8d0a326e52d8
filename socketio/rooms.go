package socketio

import (
	"slices"
	"sync"
)

// roomTable is a namespace's sockets on this node and their rooms: maps from name to socket,
// so that joins, leaves and lookups are O(1) and a selection costs O(receivers).
//
// Every socket is in the room named by its id from the start, and most stay in no other: that
// membership is a flag on the socket rather than a one-member map of its own, which would cost
// an idle connection a few hundred bytes. A socket's rooms are kept on the socket itself
// (Socket.inIDRoom and Socket.joined, guarded by mu), so that its entry in sockets costs no
// allocation of its own. A socket is in the namespace exactly as long as it has an entry, so a
// join that races with its leaving cannot leave it behind.
type roomTable struct {
	mu      sync.RWMutex
	sockets map[string]*Socket            // socket id -> the socket
	rooms   map[string]map[string]*Socket // room -> members, but for each socket's own-id room
	// observer, when set, is told of each room's first member and last leave, under mu.
	observer RoomObserver
}

// inLocked reports whether s is in room r, with t.mu held.
func (t *roomTable) inLocked(s *Socket, r string) bool {
	if r == s.id {
		return s.inIDRoom
	}
	_, ok := s.joined[r]
	return ok
}

func newRoomTable() roomTable {
	return roomTable{sockets: make(map[string]*Socket), rooms: make(map[string]map[string]*Socket)}
}

// add enters s in its own id room and rooms, taking the place of any socket of the same id.
func (t *roomTable) add(s *Socket, rooms []string, limit int) (refused []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.sockets[s.id]; old != nil {
		t.removeLocked(old)
	}
	s.inIDRoom = true
	t.sockets[s.id] = s
	return t.joinLocked(s, rooms, limit)
}

// remove takes s out of the table with all its rooms, unless another socket of the same id
// has taken its place.
func (t *roomTable) remove(s *Socket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sockets[s.id] == s {
		t.removeLocked(s)
	}
}

// removeLocked takes s, which has the entry of its id, out of the table and all its rooms.
func (t *roomTable) removeLocked(s *Socket) {
	for r := range s.joined {
		t.leaveRoomLocked(s.id, r)
	}
	s.inIDRoom, s.joined = false, nil
	delete(t.sockets, s.id)
}

// join puts s into rooms, at most limit of them besides its own id room (0: no limit), and
// returns the rooms it refused. A socket no longer in the table joins none.
func (t *roomTable) join(s *Socket, rooms []string, limit int) (refused []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sockets[s.id] != s {
		return nil
	}
	return t.joinLocked(s, rooms, limit)
}

func (t *roomTable) joinLocked(s *Socket, rooms []string, limit int) (refused []string) {
	for _, r := range rooms {
		if r == s.id { // the socket's own id room, not counted against the limit
			s.inIDRoom = true
			continue
		}
		if _, in := s.joined[r]; in {
			continue
		}
		if limit > 0 && len(s.joined) >= limit {
			refused = append(refused, r)
			continue
		}
		if s.joined == nil {
			s.joined = make(map[string]struct{}, 1)
		}
		s.joined[r] = struct{}{}
		members := t.rooms[r]
		if members == nil {
			members = make(map[string]*Socket, 1)
			t.rooms[r] = members
			if t.observer != nil {
				t.observer.RoomCreated(r)
			}
		}
		members[s.id] = s
	}
	return refused
}

// leave takes s out of rooms.
func (t *roomTable) leave(s *Socket, rooms []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sockets[s.id] != s {
		return
	}
	for _, r := range rooms {
		if r == s.id {
			s.inIDRoom = false
			continue
		}
		if _, in := s.joined[r]; !in {
			continue
		}
		delete(s.joined, r)
		t.leaveRoomLocked(s.id, r)
	}
	if len(s.joined) == 0 {
		s.joined = nil
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
	return t.sockets[id]
}

// all returns every socket, in no particular order.
func (t *roomTable) all() []*Socket {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*Socket, 0, len(t.sockets))
	for _, s := range t.sockets {
		out = append(out, s)
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
	s := t.sockets[id]
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.joined)+1)
	if s.inIDRoom {
		out = append(out, id)
	}
	for r := range s.joined {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// roomSize is the number of sockets in room r, with t.mu held.
func (t *roomTable) roomSize(r string) int {
	n := len(t.rooms[r])
	if s := t.sockets[r]; s != nil && s.inIDRoom {
		n++
	}
	return n
}

// eachInRoom calls f with every socket of room r, with t.mu held.
func (t *roomTable) eachInRoom(r string, f func(*Socket)) {
	if s := t.sockets[r]; s != nil && s.inIDRoom {
		f(s)
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
	excluded := func(s *Socket) bool {
		for _, r := range opts.Except {
			if t.inLocked(s, r) {
				return true
			}
		}
		return false
	}
	var out []*Socket
	if len(opts.Rooms) == 0 {
		out = make([]*Socket, 0, len(t.sockets))
		for _, s := range t.sockets {
			if !excluded(s) {
				out = append(out, s)
			}
		}
		return out
	}
	if len(opts.Rooms) == 1 {
		out = make([]*Socket, 0, t.roomSize(opts.Rooms[0]))
		t.eachInRoom(opts.Rooms[0], func(s *Socket) {
			if !excluded(s) {
				out = append(out, s)
			}
		})
		return out
	}
	seen := make(map[string]struct{})
	for _, r := range opts.Rooms {
		t.eachInRoom(r, func(s *Socket) {
			if _, dup := seen[s.id]; dup || excluded(s) {
				return
			}
			seen[s.id] = struct{}{}
			out = append(out, s)
		})
	}
	return out
}
