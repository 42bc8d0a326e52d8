package socketio

import (
	"context"
	"slices"
	"testing"
	"unsafe"

	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// A conn is kept per connection: past 96 bytes it takes the next size class, 16 bytes more
// for every idle connection.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 96 {
		t.Errorf("conn is %d bytes, over the 96-byte size class", n)
	}
}

// An admitted connection keeps nothing of its CONNECT: no connect timer, no pending map,
// whether its namespace has an authorizer or not.
func TestAdmittedConnKeepsNoConnecting(t *testing.T) {
	srv, ts := newTestServer(t, Options{Namespaces: []string{"/auth"}})
	srv.Of("/auth").Authorize(func(context.Context, *ConnectRequest) (*Admission, error) {
		return &Admission{}, nil
	})
	sockets := make(chan *Socket, 2)
	for _, name := range []string{"/", "/auth"} {
		srv.Of(name).OnConnect(func(s *Socket) { sockets <- s })
	}
	for _, name := range []string{"/", "/auth"} {
		c := socketiotest.Dial(t, ts.URL, "")
		c.Connect(name, "")
		s := recv(t, sockets)
		s.conn.mu.Lock()
		connecting := s.conn.connecting
		s.conn.mu.Unlock()
		if connecting != nil {
			t.Errorf("%s: an admitted connection keeps %+v", name, *connecting)
		}
	}
}

// A connection's sockets: the first namespace's inline, later ones in a map, any removable.
func TestNSSockets(t *testing.T) {
	mk := func(name string) *Socket { return &Socket{id: name + "-id", ns: &Namespace{name: name}} }
	a, b, c := mk("/"), mk("/b"), mk("/c")
	var m nsSockets
	for _, s := range []*Socket{a, b, c} {
		m.put(s)
	}
	if m.len() != 3 || m.get("/") != a || m.get("/b") != b || m.get("/c") != c || m.get("/x") != nil {
		t.Fatalf("after three puts: len %d", m.len())
	}
	m.remove(mk("/b")) // another socket of the same namespace: not removed
	m.remove(a)
	if m.len() != 2 || m.get("/") != nil || m.get("/b") != b {
		t.Fatalf("after removing the first: len %d", m.len())
	}
	a2 := mk("/")
	m.put(a2)
	ids := []string{}
	for _, s := range m.all() {
		ids = append(ids, s.id)
	}
	slices.Sort(ids)
	if m.get("/") != a2 || !slices.Equal(ids, []string{"/-id", "/b-id", "/c-id"}) {
		t.Fatalf("after putting / again: %v", ids)
	}
	m.remove(b)
	m.remove(c)
	if m.more != nil || m.len() != 1 {
		t.Fatalf("the map outlived its last socket: %v, len %d", m.more, m.len())
	}
}
