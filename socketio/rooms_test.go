package socketio

import (
	"slices"
	"testing"
)

// The room table keeps each socket's rooms on the socket: a socket that takes the place of
// another of its id starts with its own rooms alone, and the one it replaced can no longer
// change the table; a socket with no room besides its own keeps no map.
func TestRoomTableSocketOfSameID(t *testing.T) {
	tab := newRoomTable()
	ns := &Namespace{name: "/"}
	old := &Socket{id: "a", ns: ns}
	other := &Socket{id: "b", ns: ns}
	tab.add(old, []string{"r1", "r2"}, 0)
	tab.add(other, []string{"r1"}, 0)
	rooms := func(id string) []string { return tab.socketRooms(id) }
	if got := rooms("a"); !slices.Equal(got, []string{"a", "r1", "r2"}) {
		t.Fatalf("rooms of a: %v", got)
	}

	replacement := &Socket{id: "a", ns: ns}
	tab.add(replacement, []string{"r3"}, 0)
	if old.joined != nil || old.inIDRoom {
		t.Fatalf("the replaced socket keeps rooms: %v, own room %v", old.joined, old.inIDRoom)
	}
	if got := rooms("a"); !slices.Equal(got, []string{"a", "r3"}) {
		t.Fatalf("rooms of the replacement: %v", got)
	}
	if got := tab.selectSockets(BroadcastOptions{Rooms: []string{"r1", "r2"}}); len(got) != 1 || got[0] != other {
		t.Fatalf("r1 and r2 after the replacement: %v", got)
	}
	if _, ok := tab.rooms["r2"]; ok {
		t.Fatal("r2 outlived its last member")
	}

	tab.join(old, []string{"r4"}, 0)
	tab.leave(old, []string{"a", "r3"})
	tab.remove(old)
	if tab.socket("a") != replacement || !slices.Equal(rooms("a"), []string{"a", "r3"}) {
		t.Fatalf("the replaced socket changed the table: %v", rooms("a"))
	}
	if got := tab.selectSockets(BroadcastOptions{Except: []string{"a"}}); len(got) != 1 || got[0] != other {
		t.Fatalf("all but a: %v", got)
	}

	tab.leave(replacement, []string{"r3"})
	if replacement.joined != nil {
		t.Fatalf("a socket in no room but its own keeps %v", replacement.joined)
	}
	tab.remove(replacement)
	if tab.socket("a") != nil || tab.len() != 1 {
		t.Fatalf("a still in the table, %d sockets", tab.len())
	}
}
