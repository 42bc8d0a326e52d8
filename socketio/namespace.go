package socketio

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
)

// ConnectRequest is a client's request to join a namespace, as an authorizer sees it.
type ConnectRequest struct {
	// Namespace is the namespace asked for.
	Namespace string
	// SocketID is the id the socket will have if admitted.
	SocketID string
	// Handshake carries the connection's request data and the CONNECT packet's auth payload
	// (without the recovery fields pid and offset).
	Handshake *Handshake
	// Recovered is true when the client is recovering a session (connection state recovery):
	// SocketID is then its former id, and Rooms and Data what it had. Admitting it restores
	// them and replays the packets it missed; refusing it drops the session.
	Recovered bool
	// Rooms are the recovered socket's former rooms, its own id room included.
	Rooms []string
	// Data is the recovered socket's former data.
	Data any

	restore Restore // the session being restored, when Recovered
}

// Admission is an authorizer's yes, with what to set on the new socket.
type Admission struct {
	// Data is kept on the socket (Socket.Data) and shown by socket queries. For a recovered
	// socket, nil keeps the data it had.
	Data any
	// Rooms are joined before anything else can reach the socket.
	Rooms []string
	// Connected, when set, runs right after the namespace's OnConnect handler, on the same
	// goroutine and before the socket's first event is handled: emits made there reach the
	// client after its connect.
	Connected func(*Socket)
}

// ConnectError is an authorizer's no: the client's connect_error gets Message and Data.
type ConnectError struct {
	Message string
	Data    any
}

func (e *ConnectError) Error() string { return e.Message }

// Authorizer decides whether a client joins a namespace. It runs on its own goroutine and may
// block (ctx ends if the connection closes meanwhile). It returns an admission (nil for a plain
// yes) or an error: a *ConnectError reaches the client as is, any other error as its message.
type Authorizer func(ctx context.Context, req *ConnectRequest) (*Admission, error)

// Namespace is one Socket.IO namespace: its sockets on this node, its adapter and its handlers.
type Namespace struct {
	srv     *Server
	name    string
	adapter Adapter
	// The adapter's optional parts, when it has them:
	store   SessionStore    // when recovery is on too
	counter CountingAdapter // nil: EmitContext counts this node's sockets
	health  HealthChecker   // nil: always healthy

	mu        sync.RWMutex
	sockets   map[string]*Socket
	authorize Authorizer
	onConnect func(*Socket)

	// ackIDs numbers acks across the namespace, so that one encoded broadcast can carry the
	// same id to every receiver without clashing with any socket's own acks.
	ackIDs atomic.Uint64

	// dynamic is set while the namespace may be removed (see Dynamic); Of clears it.
	dynamic atomic.Bool
	// holds counts what keeps the namespace: its sockets, the CONNECTs to it being
	// authorized, and Server.Hold calls. Taken under the server's read lock (Server.acquire).
	holds atomic.Int64
}

func newNamespace(srv *Server, name string) *Namespace {
	ns := &Namespace{srv: srv, name: name, sockets: make(map[string]*Socket)}
	ns.adapter = srv.opts.Adapter(ns)
	if st, ok := ns.adapter.(SessionStore); ok && srv.opts.Recovery.MaxDisconnection > 0 {
		ns.store = st
	}
	ns.counter, _ = ns.adapter.(CountingAdapter)
	ns.health, _ = ns.adapter.(HealthChecker)
	return ns
}

// NextAckID returns a fresh ack id from the namespace's counter: adapters that deliver a
// broadcast with acks from another node to this node's sockets number it with this, so it can
// never meet an id already waiting on one of them.
func (ns *Namespace) NextAckID() uint64 { return ns.ackIDs.Add(1) }

// Name is the namespace's name, such as "/" or "/chat".
func (ns *Namespace) Name() string { return ns.name }

// Dynamic reports whether the namespace was made because the Namespaces option holds "*",
// for a client's CONNECT or a [Server.Hold], rather than being "/", listed or made by
// [Server.Of]. A dynamic namespace is removed, and its adapter closed, once no socket is in
// it, no CONNECT to it is being authorized, no Hold keeps it and its recovery store keeps no
// session; a later CONNECT makes it anew, with the [Server.OnNamespace] handlers.
func (ns *Namespace) Dynamic() bool { return ns.dynamic.Load() }

// Adapter returns the namespace's adapter.
func (ns *Namespace) Adapter() Adapter { return ns.adapter }

// ClusterHealth returns nil while the namespace's adapter reaches the other nodes, and the
// adapter's error otherwise; nil with an adapter that is not a [HealthChecker], such as the
// in-memory one.
func (ns *Namespace) ClusterHealth() error {
	if ns.health == nil {
		return nil
	}
	return ns.health.Healthy()
}

// Recovery reports whether connection state recovery is on for the namespace: Options.Recovery
// is set and its adapter is a [SessionStore].
func (ns *Namespace) Recovery() bool { return ns.store != nil }

// Authorize sets the function that admits or refuses clients; without one all are admitted.
func (ns *Namespace) Authorize(fn Authorizer) {
	ns.mu.Lock()
	ns.authorize = fn
	ns.mu.Unlock()
}

// OnConnect sets the handler called for each admitted socket, right after the client's CONNECT
// is answered and before any of its events is handled: the place to register event handlers.
// Emits made there reach the client after its connect.
func (ns *Namespace) OnConnect(fn func(*Socket)) {
	ns.mu.Lock()
	ns.onConnect = fn
	ns.mu.Unlock()
}

// Socket returns the socket with the id connected to this node, or nil.
func (ns *Namespace) Socket(id string) *Socket {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.sockets[id]
}

// Sockets returns the sockets connected to this node, in no particular order.
func (ns *Namespace) Sockets() []*Socket {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	out := make([]*Socket, 0, len(ns.sockets))
	for _, s := range ns.sockets {
		out = append(out, s)
	}
	return out
}

// Len is the number of sockets connected to this node.
func (ns *Namespace) Len() int {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return len(ns.sockets)
}

func (ns *Namespace) handlers() (Authorizer, func(*Socket)) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.authorize, ns.onConnect
}

func (ns *Namespace) add(s *Socket, rooms []string) {
	ns.mu.Lock()
	ns.sockets[s.id] = s
	ns.mu.Unlock()
	all := make([]string, 0, len(rooms)+1)
	all = append(all, s.id)
	all = append(all, rooms...)
	ns.adapter.AddAll(s.id, all)
}

func (ns *Namespace) remove(s *Socket) {
	ns.mu.Lock()
	if ns.sockets[s.id] == s {
		delete(ns.sockets, s.id)
	}
	ns.mu.Unlock()
	ns.adapter.DelAll(s.id)
}

// To selects the sockets in rooms (socket ids included) for a broadcast or query.
func (ns *Namespace) To(rooms ...string) *BroadcastOperator {
	return (&BroadcastOperator{ns: ns}).To(rooms...)
}

// Except selects every socket but those in rooms.
func (ns *Namespace) Except(rooms ...string) *BroadcastOperator {
	return (&BroadcastOperator{ns: ns}).Except(rooms...)
}

// Emit sends an event to every socket of the namespace.
func (ns *Namespace) Emit(event string, args ...any) (int, error) {
	return (&BroadcastOperator{ns: ns}).Emit(event, args...)
}

// All selects every socket of the namespace.
func (ns *Namespace) All() *BroadcastOperator { return &BroadcastOperator{ns: ns} }

// Rooms lists the rooms of the namespace, across the cluster when the adapter spans one, each
// with its number of sockets; the room named by each socket's id is left out, unless other
// sockets joined it too.
func (ns *Namespace) Rooms(ctx context.Context) ([]RoomInfo, Reach, error) {
	return ns.adapter.Rooms(ctx)
}

// connectErrorPayload is the body of a CONNECT_ERROR packet.
func connectErrorPayload(message string, data any) json.RawMessage {
	body := struct {
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}{message, data}
	b, err := json.Marshal(body)
	if err != nil {
		b, _ = json.Marshal(struct {
			Message string `json:"message"`
		}{message})
	}
	return b
}
