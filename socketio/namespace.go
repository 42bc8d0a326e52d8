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

// Namespace is one Socket.IO namespace: its sockets on this node and their rooms, its handlers,
// and its [Cluster] engine when it spans a cluster.
type Namespace struct {
	srv   *Server
	name  string
	rooms roomTable // its sockets on this node, and their rooms

	cluster Cluster // nil: this node's alone
	// The engine's optional parts, when it has them:
	health HealthChecker // nil: always healthy
	// store keeps the sessions of disconnected sockets, with recovery on: log, or the
	// engine's. Nil when recovery is off, or the engine keeps no sessions.
	store SessionStore
	log   *recoveryLog // the namespace's own store, with recovery on and no engine

	mu        sync.RWMutex
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
	ns := &Namespace{srv: srv, name: name, rooms: newRoomTable()}
	recovery := srv.opts.Recovery.MaxDisconnection > 0
	if srv.opts.Cluster != nil {
		ns.cluster = srv.opts.Cluster(ns.local())
	}
	switch {
	case ns.cluster == nil:
		if recovery {
			ns.log = newRecoveryLog(srv.opts.Recovery, name, srv.log)
			ns.store = ns.log
		}
	default:
		ns.health, _ = ns.cluster.(HealthChecker)
		ns.rooms.observer, _ = ns.cluster.(RoomObserver)
		if st, ok := ns.cluster.(SessionStore); ok && recovery {
			ns.store = st
		}
	}
	return ns
}

// closeCluster closes the namespace's cluster engine, if it has one.
func (ns *Namespace) closeCluster() error {
	if ns.cluster == nil {
		return nil
	}
	return ns.cluster.Close()
}

// local is the namespace's side on this node.
func (ns *Namespace) local() Local { return Local{ns} }

// remote is the cluster engine that a call with opts goes through, or nil when the call
// concerns this node's sockets alone.
func (ns *Namespace) remote(opts BroadcastOptions) Cluster {
	if opts.Local {
		return nil
	}
	return ns.cluster
}

// broadcast sends p to the sockets opts selects, through the cluster engine if there is one.
func (ns *Namespace) broadcast(p *Packet, opts BroadcastOptions) (int, error) {
	if c := ns.remote(opts); c != nil {
		return c.Broadcast(p, opts)
	}
	return ns.local().Broadcast(p, opts), nil
}

// Name is the namespace's name, such as "/" or "/chat".
func (ns *Namespace) Name() string { return ns.name }

// Dynamic reports whether the namespace was made because the Namespaces option holds "*",
// for a client's CONNECT or a [Server.Hold], rather than being "/", listed or made by
// [Server.Of]. A dynamic namespace is removed, and its cluster engine closed, once no socket is
// in it, no CONNECT to it is being authorized, no Hold keeps it and its recovery store keeps
// no session; a later CONNECT makes it anew, with the [Server.OnNamespace] handlers.
func (ns *Namespace) Dynamic() bool { return ns.dynamic.Load() }

// Cluster returns the namespace's cluster engine, or nil when the namespace is this node's
// alone.
func (ns *Namespace) Cluster() Cluster { return ns.cluster }

// ClusterHealth returns nil while the namespace's cluster engine reaches the other nodes, and
// the engine's error otherwise; nil on a single node, and with an engine that is not a
// [HealthChecker].
func (ns *Namespace) ClusterHealth() error {
	if ns.health == nil {
		return nil
	}
	return ns.health.Healthy()
}

// Recovery reports whether connection state recovery is on for the namespace: Options.Recovery
// is set, and the namespace has no cluster engine or one that is a [SessionStore].
func (ns *Namespace) Recovery() bool { return ns.store != nil }

// Authorize sets the function that admits or refuses clients; without one all are admitted.
func (ns *Namespace) Authorize(fn Authorizer) {
	ns.mu.Lock()
	ns.authorize = fn
	ns.mu.Unlock()
}

// OnConnect sets the handler called for each admitted socket, right after the client's CONNECT
// is answered and before any of its events is handled: the place to register event handlers.
// Emits made there reach the client after its connect. Rooms joined there are joined after
// the client has its CONNECT answer, so a broadcast that another connection causes meanwhile
// may miss the socket: rooms it must be in from its first moment go in its [Admission]
// (see [Namespace.Authorize]).
func (ns *Namespace) OnConnect(fn func(*Socket)) {
	ns.mu.Lock()
	ns.onConnect = fn
	ns.mu.Unlock()
}

// Socket returns the socket with the id connected to this node, or nil.
func (ns *Namespace) Socket(id string) *Socket { return ns.rooms.socket(id) }

// Sockets returns the sockets connected to this node, in no particular order.
func (ns *Namespace) Sockets() []*Socket { return ns.rooms.all() }

// Len is the number of sockets connected to this node.
func (ns *Namespace) Len() int { return ns.rooms.len() }

func (ns *Namespace) handlers() (Authorizer, func(*Socket)) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.authorize, ns.onConnect
}

// add makes s one of the namespace's sockets, in its own id room and rooms.
func (ns *Namespace) add(s *Socket, rooms []string) {
	ns.refused(s, ns.rooms.add(s, rooms, ns.srv.opts.MaxRoomsPerSocket))
}

// join puts s into rooms, as far as Options.MaxRoomsPerSocket allows.
func (ns *Namespace) join(s *Socket, rooms []string) {
	ns.refused(s, ns.rooms.join(s, rooms, ns.srv.opts.MaxRoomsPerSocket))
}

// refused reports the rooms that the room limit kept s out of.
func (ns *Namespace) refused(s *Socket, rooms []string) {
	if len(rooms) == 0 {
		return
	}
	srv := ns.srv
	srv.onLimit(LimitRooms)
	srv.log.Warn("socketio: rooms not joined: the socket is in as many rooms as allowed",
		"namespace", ns.name, "socket", s.id, "limit", srv.opts.MaxRoomsPerSocket, "rooms", rooms)
}

// remove takes s out of the namespace and all its rooms.
func (ns *Namespace) remove(s *Socket) { ns.rooms.remove(s) }

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

// Rooms lists the rooms of the namespace, across the cluster when it has a [Cluster] engine,
// by name, each with its number of sockets; the room named by each socket's id is left out,
// unless other sockets joined it too.
func (ns *Namespace) Rooms(ctx context.Context) ([]RoomInfo, Reach, error) {
	if ns.cluster != nil {
		return ns.cluster.Rooms(ctx)
	}
	return ns.local().Rooms(), Reach{}, nil
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
