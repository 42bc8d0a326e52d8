package socketio

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// closeTracker makes cluster engines of one node that report their namespace's name when
// closed.
type closeTracker struct{ closed chan string }

func newCloseTracker() *closeTracker { return &closeTracker{closed: make(chan string, 64)} }

func (ct *closeTracker) factory(l Local) Cluster {
	return &trackedCluster{localCluster: localCluster{l}, name: l.Name(), closed: ct.closed}
}

// none fails the test if an engine was closed: call it after a sync point.
func (ct *closeTracker) none(t *testing.T) {
	t.Helper()
	select {
	case name := <-ct.closed:
		t.Fatalf("the engine of %s was closed", name)
	default:
	}
}

type trackedCluster struct {
	localCluster
	name   string
	closed chan string
	once   sync.Once
}

func (c *trackedCluster) Close() error {
	c.once.Do(func() { c.closed <- c.name })
	return c.localCluster.Close()
}

// singleNode leaves every namespace to this node alone.
func singleNode(Local) Cluster { return nil }

// dynamicServer is a server whose every namespace, dynamic ones included, answers "sync"
// with an ack and reports its sockets' connects.
type dynamicServer struct {
	srv      *Server
	url      string
	closes   *closeTracker
	connects chan *Socket
}

func newDynamicServer(t *testing.T, opts Options) *dynamicServer {
	t.Helper()
	d := &dynamicServer{closes: newCloseTracker(), connects: make(chan *Socket, 64)}
	if opts.Cluster == nil {
		opts.Cluster = d.closes.factory
	}
	srv, ts := newTestServer(t, opts)
	d.srv, d.url = srv, ts.URL
	srv.OnNamespace(func(ns *Namespace) {
		ns.OnConnect(func(s *Socket) {
			s.On("sync", func(e *Event) { _ = e.Ack() })
			d.connects <- s
		})
	})
	return d
}

// dial opens a connection joined to "/", which sync needs.
func (d *dynamicServer) dial(t *testing.T) *socketiotest.Client {
	t.Helper()
	c := socketiotest.Dial(t, d.url, "")
	c.Connect("/", "")
	recv(t, d.connects)
	return c
}

// connect joins nsp and returns the server's socket.
func (d *dynamicServer) connect(t *testing.T, c *socketiotest.Client, nsp string) *Socket {
	t.Helper()
	c.Connect(nsp, "")
	return recv(t, d.connects)
}

// syncWith returns once the server has handled everything c sent before: the connection's
// packets are handled in order, and this one is acked.
func syncWith(t *testing.T, c *socketiotest.Client) {
	t.Helper()
	c.Write(`421["sync"]`)
	c.Expect(`431[]`)
}

// syncOn is syncWith through namespace nsp, which c is in.
func syncOn(t *testing.T, c *socketiotest.Client, nsp string) {
	t.Helper()
	c.Write(`42` + nsp + `,1["sync"]`)
	c.Expect(`43` + nsp + `,1[]`)
}

func (d *dynamicServer) names() []string {
	var out []string
	for _, ns := range d.srv.Namespaces() {
		out = append(out, ns.Name())
	}
	return out
}

// waitClosed waits for the engine of nsp to be closed, and checks that the namespace is gone.
func (d *dynamicServer) waitClosed(t *testing.T, nsp string) {
	t.Helper()
	if got := recv(t, d.closes.closed); got != nsp {
		t.Fatalf("the engine of %s was closed, want %s", got, nsp)
	}
	if slices.Contains(d.names(), nsp) {
		t.Fatalf("namespace %s still listed after its engine was closed: %v", nsp, d.names())
	}
}

func TestDynamicNamespaceRemovedWhenItsLastSocketLeaves(t *testing.T) {
	d := newDynamicServer(t, Options{Namespaces: []string{"*"}})
	a, b := d.dial(t), d.dial(t)
	first := d.connect(t, a, "/dyn").Namespace()
	d.connect(t, b, "/dyn")
	if !first.Dynamic() {
		t.Fatal("/dyn, made because of \"*\", is not dynamic")
	}

	// One socket leaving keeps it for the other.
	a.Write("41/dyn,")
	syncWith(t, a)
	d.closes.none(t)
	if !slices.Contains(d.names(), "/dyn") {
		t.Fatalf("namespaces %v: /dyn removed while a socket is in it", d.names())
	}

	// The last one leaving with its connection removes it and closes its adapter.
	b.Conn.Close()
	d.waitClosed(t, "/dyn")

	// A client coming back gets a fresh namespace, with the handlers of every namespace.
	s := d.connect(t, a, "/dyn")
	again := s.Namespace()
	if again == first || !again.Dynamic() {
		t.Fatalf("namespace after removal: same as before %v, dynamic %v", again == first, again.Dynamic())
	}
	if n, err := again.Emit("hello", 1); err != nil || n != 1 {
		t.Fatalf("Emit in the new /dyn = %d, %v", n, err)
	}
	a.Expect(`42/dyn,["hello",1]`)
	syncOn(t, a, "/dyn")
}

func TestDynamicNamespaceKeptWhileAConnectIsAuthorized(t *testing.T) {
	d := newDynamicServer(t, Options{Namespaces: []string{"*"}})
	proceed := make(chan struct{})
	waiting := make(chan string, 4)
	d.srv.OnNamespace(func(ns *Namespace) {
		ns.Authorize(func(ctx context.Context, req *ConnectRequest) (*Admission, error) {
			auth := string(req.Handshake.Auth)
			if strings.Contains(auth, "wait") {
				waiting <- req.SocketID
				select {
				case <-proceed:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			if strings.Contains(auth, "refuse") {
				return nil, &ConnectError{Message: "no"}
			}
			return nil, nil
		})
	})
	a, b := d.dial(t), d.dial(t)
	ns := d.connect(t, a, "/slow").Namespace()

	b.Write(`40/slow,{"wait":true}`)
	recv(t, waiting)
	a.Write("41/slow,")
	syncWith(t, a)
	d.closes.none(t)
	if !slices.Contains(d.names(), "/slow") {
		t.Fatalf("namespaces %v: /slow removed while a connect to it is being authorized", d.names())
	}

	close(proceed)
	if reply := b.Read(); !strings.HasPrefix(reply, `40/slow,{"sid":`) {
		t.Fatalf("the connect in flight got %q", reply)
	}
	if s := recv(t, d.connects); s.Namespace() != ns {
		t.Fatal("the connect in flight was admitted to another namespace than the one it waited for")
	}
	b.Write("41/slow,")
	d.waitClosed(t, "/slow")

	// A refused connect leaves nothing behind either.
	a.Write(`40/gone,{"refuse":true}`)
	a.Expect(`44/gone,{"message":"no"}`)
	d.waitClosed(t, "/gone")
}

func TestListedNamespacesAreNeverRemoved(t *testing.T) {
	d := newDynamicServer(t, Options{Namespaces: []string{"/listed", "*"}})
	d.srv.Of("/made")
	c := d.dial(t)
	for _, nsp := range []string{"/listed", "/made", "/dyn"} {
		d.connect(t, c, nsp)
	}
	c.Write("41/made,")
	c.Write("41/dyn,")
	c.Write("41")
	syncOn(t, c, "/listed")
	d.waitClosed(t, "/dyn")
	c.Write("41/listed,")
	d.connect(t, c, "/")
	syncWith(t, c)
	d.closes.none(t)
	if got, want := d.names(), []string{"/", "/listed", "/made"}; !slices.Equal(got, want) {
		t.Fatalf("namespaces %v, want %v", got, want)
	}
	for _, ns := range d.srv.Namespaces() {
		if ns.Dynamic() {
			t.Errorf("namespace %s is dynamic", ns.Name())
		}
	}
}

func TestMaxDynamicNamespaces(t *testing.T) {
	var hits limitHits
	d := newDynamicServer(t, Options{Namespaces: []string{"/listed", "*"}, MaxDynamicNamespaces: 2, OnLimit: hits.hook})
	a, b := d.dial(t), d.dial(t)
	d.connect(t, a, "/d1")
	d.connect(t, a, "/d2")
	a.Write("40/d3,")
	a.Expect(`44/d3,{"message":"Too many dynamic namespaces on this server (limit 2)"}`)
	if n := hits.get(LimitDynamicNamespaces); n != 1 {
		t.Errorf("OnLimit(%s) called %d times, want 1", LimitDynamicNamespaces, n)
	}
	// The limit is the server's: another connection may join those that exist, not make one.
	d.connect(t, b, "/d1")
	b.Write("40/d4,")
	b.Expect(`44/d4,{"message":"Too many dynamic namespaces on this server (limit 2)"}`)
	if n := hits.get(LimitDynamicNamespaces); n != 2 {
		t.Errorf("OnLimit(%s) called %d times, want 2", LimitDynamicNamespaces, n)
	}
	// Listed namespaces are not counted.
	d.connect(t, b, "/listed")
	if got, want := d.names(), []string{"/", "/d1", "/d2", "/listed"}; !slices.Equal(got, want) {
		t.Fatalf("namespaces %v, want %v", got, want)
	}
	// A namespace removed makes room.
	a.Write("41/d2,")
	d.waitClosed(t, "/d2")
	d.connect(t, b, "/d3")
}

func TestHoldKeepsADynamicNamespace(t *testing.T) {
	d := newDynamicServer(t, Options{Namespaces: []string{"*"}, MaxDynamicNamespaces: 1})
	c := d.dial(t)
	d.connect(t, c, "/busy")
	// Held namespaces are the app's (the REST API's): the limit does not refuse them.
	ns, release := d.srv.Hold("/api")
	if ns == nil || ns.Name() != "/api" || !ns.Dynamic() {
		t.Fatalf("Hold(/api) = %v", ns)
	}
	if other, rel := d.srv.Hold("api"); other != ns {
		t.Fatal("a second Hold of /api got another namespace")
	} else {
		rel()
	}
	d.connect(t, c, "/api")
	c.Write("41/api,")
	syncWith(t, c)
	d.closes.none(t)
	release()
	d.waitClosed(t, "/api")
	release() // a second call does nothing

	root, rel := d.srv.Hold("/")
	if root == nil || root.Dynamic() {
		t.Fatalf("Hold(/) = %v", root)
	}
	rel()
	syncWith(t, c)
	d.closes.none(t)

	closed := newDynamicServer(t, Options{Namespaces: []string{"/chat"}})
	if ns, _ := closed.srv.Hold("/other"); ns != nil {
		t.Fatalf("Hold of a namespace that is not allowed = %v, want nil", ns.Name())
	}
	if !closed.srv.Allows("/chat") || closed.srv.Allows("/other") || !d.srv.Allows("/anything") {
		t.Fatal("Allows is wrong")
	}
}

func TestDynamicNamespaceKeptForARecoverableSession(t *testing.T) {
	d := newDynamicServer(t, Options{Namespaces: []string{"*"}, Cluster: singleNode,
		Recovery: RecoveryOptions{MaxDisconnection: time.Minute}})
	c := socketiotest.Dial(t, d.url, "")
	c.Write("40/dyn,")
	var body map[string]string
	if reply := c.Read(); !strings.HasPrefix(reply, "40/dyn,") || json.Unmarshal([]byte(strings.TrimPrefix(reply, "40/dyn,")), &body) != nil || body["pid"] == "" {
		t.Fatalf("CONNECT answer %q", reply)
	}
	s := recv(t, d.connects)
	ns := s.Namespace()
	gone := make(chan string, 1)
	s.OnDisconnect(func(reason string) { gone <- reason })
	if _, err := ns.Emit("e", 1); err != nil {
		t.Fatal(err)
	}
	msg := c.Read()
	var args []string
	if !strings.HasPrefix(msg, `42/dyn,["e",1,"`) || json.Unmarshal([]byte(strings.Replace(msg[len(`42/dyn,`):], `"e",1,`, "", 1)), &args) != nil {
		t.Fatalf("event %q", msg)
	}
	c.Conn.Close()
	recv(t, gone)

	// The session is its namespace's: the namespace stays, and the client gets its socket back.
	c2 := socketiotest.Dial(t, d.url, "")
	c2.Write(`40/dyn,{"pid":"` + body["pid"] + `","offset":"` + args[0] + `"}`)
	if reply := c2.Read(); !strings.HasPrefix(reply, `40/dyn,{"sid":"`+body["sid"]+`"`) {
		t.Fatalf("recovering CONNECT answer %q, want the former sid %s", reply, body["sid"])
	}
	back := recv(t, d.connects)
	if !back.Recovered() || back.Namespace() != ns {
		t.Fatalf("recovered %v, same namespace %v", back.Recovered(), back.Namespace() == ns)
	}
}

func TestDynamicNamespaceRemovedWhenItsSessionsExpire(t *testing.T) {
	d := newDynamicServer(t, Options{Namespaces: []string{"*"}, Cluster: singleNode,
		Recovery: RecoveryOptions{MaxDisconnection: 100 * time.Millisecond}})
	c := socketiotest.Dial(t, d.url, "")
	c.Write("40/dyn,")
	if reply := c.Read(); !strings.HasPrefix(reply, `40/dyn,{"sid":`) {
		t.Fatalf("CONNECT answer %q", reply)
	}
	s := recv(t, d.connects)
	gone := make(chan string, 1)
	s.OnDisconnect(func(reason string) { gone <- reason })
	c.Conn.Close()
	recv(t, gone)
	deadline := time.Now().Add(5 * time.Second)
	for slices.Contains(d.names(), "/dyn") {
		if time.Now().After(deadline) {
			t.Fatal("/dyn still there 5s after its only session expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
