package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siobridge/siobridge/engineio"
)

// conn is the Socket.IO side of one Engine.IO session: it decodes packets, routes them to the
// session's sockets (one per namespace joined) and encodes what they send.
type conn struct {
	srv *Server
	eio *engineio.Session
	dec decoder // used by the session's reader only
	// dispatchMu orders event dispatch against a namespace admission completing on another
	// goroutine: a socket's first event is handled after its OnConnect handler has run.
	dispatchMu sync.Mutex

	mu      sync.Mutex
	sockets nsSockets
	// connecting holds the connect timeout until the first namespace is admitted and the
	// CONNECTs being authorized; nil when there are neither, so that an admitted connection
	// keeps no timer nor map, nor the pointers to them.
	connecting *connecting
	closed     bool

	// legacy is true for a socket.io-client 2.x (Engine.IO v3, Socket.IO protocol v4): "/" is
	// connected without a CONNECT, a CONNECT carries its auth as the namespace's query, the
	// CONNECT answer has no payload, a refusal is an ERROR with the message alone, socket ids
	// are the Engine.IO id, and connection state recovery does not exist. Set at the start,
	// beside closed so that the two share a word (a conn is kept per connection).
	legacy bool
}

func (s *Server) newConn(sess *engineio.Session) engineio.SessionHandler {
	c := &conn{srv: s, eio: sess, legacy: sess.Protocol() == 3}
	c.dec.MaxAttachments = int32(min(s.opts.MaxAttachments, math.MaxInt32))
	c.mu.Lock() // the timer's callback reads the field under mu
	c.connecting = &connecting{timer: time.AfterFunc(s.opts.ConnectTimeout, c.connectTimeout)}
	c.mu.Unlock()
	return c
}

// OnOpen implements engineio.SessionOpener: a 2.x client is in "/" as soon as its connection
// opens, without asking; its CONNECT answer follows the open packet.
func (c *conn) OnOpen() {
	if c.legacy {
		c.onConnect(&Packet{Type: PacketConnect, Namespace: "/"})
	}
}

// OnMessage decodes one Engine.IO message; a malformed packet closes the connection with
// "parse error".
func (c *conn) OnMessage(data []byte, binary bool) {
	var p *Packet
	var err error
	if binary {
		p, err = c.dec.DecodeBinary(data)
	} else {
		p, err = c.dec.DecodeText(data)
	}
	if err != nil {
		if errors.Is(err, errTooMany) {
			c.srv.onLimit(LimitAttachments)
		}
		c.srv.log.Debug("socketio: parse error", "sid", c.eio.ID(), "err", err)
		c.close(engineio.ReasonParseError)
		return
	}
	if p == nil {
		return // attachments to come
	}
	if p.Type == PacketConnect {
		c.onConnect(p)
		return
	}
	c.dispatchMu.Lock()
	defer c.dispatchMu.Unlock()
	s := c.socket(p.Namespace)
	if s == nil {
		return // not (yet) in that namespace: dropped, as in Node
	}
	switch p.Type {
	case PacketDisconnect:
		s.onClose(ReasonClientNamespaceDisconnect)
	case PacketEvent, PacketBinaryEvent:
		if err := s.onEvent(p); err != nil {
			c.close(engineio.ReasonParseError)
		}
	case PacketAck, PacketBinaryAck:
		s.onAck(p)
	default:
		// CONNECT_ERROR is the server's to send; from a client it means nothing.
	}
}

// OnClose ends every socket of the connection with the Engine.IO reason.
func (c *conn) OnClose(reason string, err error) {
	c.shutdown(reason)
}

func (c *conn) socket(nsp string) *Socket {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sockets.get(nsp)
}

// forget drops a socket that left its namespace.
func (c *conn) forget(s *Socket) {
	c.mu.Lock()
	c.sockets.remove(s)
	c.mu.Unlock()
}

// send encodes p and queues it on the session.
func (c *conn) send(p *Packet) error {
	return c.eio.Send(EncodeMessages(p)...)
}

// onConnect handles a CONNECT: an unknown namespace is refused at once, a known one is
// authorized (on its own goroutine when the namespace has an authorizer). The namespace is
// held from here until the CONNECT is refused or, admitted, its socket leaves.
func (c *conn) onConnect(p *Packet) {
	auth := p.Data
	if c.legacy {
		p.Namespace, auth = legacyConnect(p.Namespace)
	}
	ns, err := c.srv.acquire(normalizeNamespace(p.Namespace), true)
	if err != nil {
		msg := "Invalid namespace"
		switch {
		case errors.Is(err, errTooManyDynamic):
			limit := c.srv.opts.MaxDynamicNamespaces
			c.srv.onLimit(LimitDynamicNamespaces)
			c.srv.log.Debug("socketio: CONNECT refused: dynamic namespace limit", "sid", c.eio.ID(), "namespace", p.Namespace, "limit", limit)
			msg = fmt.Sprintf("Too many dynamic namespaces on this server (limit %d)", limit)
		case errors.Is(err, errServerShuttingDown):
			msg = "server shutting down"
		}
		_ = c.send(&Packet{Type: PacketConnectError, Namespace: p.Namespace, Data: c.connectErrorPayload(msg, nil, msg != "Invalid namespace")})
		return
	}
	c.mu.Lock()
	if c.closed || c.connecting.has(ns.name) || c.sockets.get(ns.name) != nil {
		c.mu.Unlock()
		c.srv.release(ns)
		return // a repeated CONNECT is ignored, as in Node
	}
	if limit := c.srv.opts.MaxNamespacesPerConnection; limit > 0 && c.sockets.len()+c.connecting.len() >= limit {
		c.mu.Unlock()
		c.srv.release(ns)
		c.srv.onLimit(LimitNamespaces)
		c.srv.log.Debug("socketio: CONNECT refused: namespace limit", "sid", c.eio.ID(), "namespace", ns.name, "limit", limit)
		_ = c.send(&Packet{Type: PacketConnectError, Namespace: ns.name,
			Data: c.connectErrorPayload(fmt.Sprintf("Too many namespaces on this connection (limit %d)", limit), nil, true)})
		return
	}
	if c.connecting == nil {
		c.connecting = &connecting{}
	}
	if c.connecting.pending == nil {
		c.connecting.pending = make(map[string]context.CancelFunc, 1)
	}
	c.connecting.pending[ns.name] = nil
	c.mu.Unlock()

	req := &ConnectRequest{Namespace: ns.name, SocketID: engineio.NewID()}
	if c.legacy {
		// What the client computes as its socket.id.
		req.SocketID = c.eio.ID()
		if ns.name != "/" {
			req.SocketID = ns.name + "#" + req.SocketID
		}
	}
	if ns.store != nil && !c.legacy {
		// The private session id is the client's alone: handlers and webhooks never see it.
		var pid, offset string
		auth, pid, offset = splitRecoveryAuth(p.Data)
		if pid != "" && offset != "" {
			if r, ok := ns.store.RestoreSession(pid, offset); ok {
				sess := r.Session()
				req.SocketID, req.Recovered, req.Rooms, req.Data, req.restore = sess.SID, true, sess.Rooms, sess.Data, r
			}
		}
	}
	req.Handshake = newHandshake(c.eio.Handshake(), auth)
	authorize, _ := ns.handlers()
	if authorize == nil {
		c.admit(ns, req, nil)
		return
	}
	// Started under the server's lock, so that Close, which sets closed under it before it
	// waits, finds every authorizer counted; a server closing starts no more.
	c.srv.mu.RLock()
	if c.srv.closed {
		c.srv.mu.RUnlock()
		c.refuse(ns, req, &ConnectError{Message: "server shutting down"})
		return
	}
	// The authorizer's context ends when the connection closes (shutdown cancels it) or
	// the authorizer returns.
	ctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	if c.connecting.has(ns.name) && !c.closed {
		c.connecting.pending[ns.name] = cancel
	} else {
		cancel()
	}
	c.mu.Unlock()
	c.srv.goroutines.Go(func() {
		adm, err := authorize(ctx, req)
		cancel()
		if err != nil {
			c.refuse(ns, req, err)
			return
		}
		c.admit(ns, req, adm)
	})
	c.srv.mu.RUnlock()
}

func (c *conn) refuse(ns *Namespace, req *ConnectRequest, err error) {
	if req.restore != nil {
		req.restore.Cancel()
	}
	c.mu.Lock()
	c.donePendingLocked(ns.name)
	c.mu.Unlock()
	ce := &ConnectError{}
	if !errors.As(err, &ce) {
		ce = &ConnectError{Message: err.Error()}
	}
	_ = c.send(&Packet{Type: PacketConnectError, Namespace: ns.name, Data: c.connectErrorPayload(ce.Message, ce.Data, true)})
	c.srv.release(ns)
}

// admit makes the socket: rooms joined, CONNECT answered, then OnConnect run, all before the
// reader may hand the socket its first event.
func (c *conn) admit(ns *Namespace, req *ConnectRequest, adm *Admission) {
	if adm == nil {
		adm = &Admission{}
	}
	c.dispatchMu.Lock()
	defer c.dispatchMu.Unlock()
	s := newSocket(ns, c, req.SocketID, req.Handshake, adm.Data)
	s.admitting = true // until its connect handlers have run: see Socket.onClose

	c.mu.Lock()
	c.donePendingLocked(ns.name)
	if c.closed {
		c.mu.Unlock()
		if req.restore != nil {
			req.restore.Cancel()
		}
		c.srv.release(ns)
		return
	}
	c.sockets.put(s)
	c.stopConnectTimerLocked()
	c.mu.Unlock()

	// The socket is in its rooms before its client learns it is connected, so that anything
	// the client (or the app it tells) sends to its id or rooms at once reaches it. A broadcast
	// that overtakes the CONNECT answer is buffered by the client until its connect.
	var err error
	switch {
	case c.legacy:
		ns.add(s, adm.Rooms)
		err = c.send(&Packet{Type: PacketConnect, Namespace: ns.name})
	case ns.store == nil:
		ns.add(s, adm.Rooms)
		err = c.send(&Packet{Type: PacketConnect, Namespace: ns.name, Data: connectReply(s.id, "")})
	case req.restore == nil:
		s.mu.Lock()
		s.pid = engineio.NewID()
		s.mu.Unlock()
		ns.add(s, adm.Rooms)
		err = c.send(&Packet{Type: PacketConnect, Namespace: ns.name, Data: connectReply(s.id, s.pid)})
	default:
		err = c.resume(s, req, adm)
	}
	if err != nil {
		s.admitted()
		s.onClose(engineio.ReasonTransportClose)
		return
	}
	if _, onConnect := ns.handlers(); onConnect != nil {
		onConnect(s)
	}
	if adm.Connected != nil {
		adm.Connected(s)
	}
	s.admitted()
}

// connectErrorPayload is the payload of a refused CONNECT: {"message","data"} for a v5
// client. A 2.x client gets an ERROR packet with the refusal's data if it has any, else its
// message as a JSON string, as Node sends it; but, as Node too, the object for a namespace
// that does not exist (refused false).
func (c *conn) connectErrorPayload(message string, data any, refused bool) json.RawMessage {
	if !c.legacy || !refused {
		return connectErrorPayload(message, data)
	}
	if data != nil {
		if b, err := json.Marshal(data); err == nil {
			return b
		}
	}
	b, _ := json.Marshal(message)
	return b
}

// legacyConnect splits a 2.x client's CONNECT namespace ("/chat?token=abc") into the
// namespace and its auth payload: the query as an object of strings, a repeated key as an
// array of them, as Node reads it. A query that does not parse gives what parsed of it.
func legacyConnect(nsp string) (string, json.RawMessage) {
	name, query, ok := strings.Cut(nsp, "?")
	if !ok {
		return name, nil
	}
	values, _ := url.ParseQuery(query)
	auth := make(map[string]any, len(values))
	for k, v := range values {
		if len(v) == 1 {
			auth[k] = v[0]
		} else {
			auth[k] = v
		}
	}
	b, err := json.Marshal(auth)
	if err != nil {
		return name, nil
	}
	return name, b
}

// connectReply is the payload of the CONNECT answer: the socket id, and with recovery on the
// private session id.
func connectReply(sid, pid string) json.RawMessage {
	reply, _ := json.Marshal(struct {
		SID string `json:"sid"`
		PID string `json:"pid,omitempty"`
	}{sid, pid})
	return reply
}

// resume admits a recovered socket: its former rooms (and the admission's) joined, the
// CONNECT answered with its former private id, then every packet it missed, all under the
// store's lock so that nothing stored later overtakes them. When the missed packets cannot
// all be sent (more were stored meanwhile than the store keeps, or they do not fit the send
// queue), the socket keeps its id, rooms and data but gets a new private id and no replay:
// its client sees recovered false and knows it must resynchronize.
func (c *conn) resume(s *Socket, req *ConnectRequest, adm *Admission) error {
	sess := req.restore.Session()
	if adm.Data == nil {
		s.SetData(sess.Data)
	}
	rooms := append(slices.Clone(sess.Rooms), adm.Rooms...)
	var err error
	slow := false
	req.restore.Resume(func(missed [][]*engineio.Message, complete bool) {
		ns := s.ns
		// Set first: a socket whose connection closes right now keeps its session.
		s.mu.Lock()
		s.pid = sess.PID
		s.mu.Unlock()
		ns.add(s, rooms)
		if complete {
			msgs := EncodeMessages(&Packet{Type: PacketConnect, Namespace: ns.name, Data: connectReply(s.id, sess.PID)})
			for _, m := range missed {
				msgs = append(msgs, m...)
			}
			if err = c.eio.Enqueue(msgs...); err == nil {
				s.mu.Lock()
				s.recovered = true
				s.mu.Unlock()
				return
			}
			if !errors.Is(err, engineio.ErrSendQueueFull) {
				return
			}
		}
		c.srv.log.Debug("socketio: session not recovered: too many missed packets", "namespace", ns.name, "socket", s.id)
		pid := engineio.NewID()
		s.mu.Lock()
		s.pid = pid
		s.mu.Unlock()
		err = c.eio.Enqueue(EncodeMessages(&Packet{Type: PacketConnect, Namespace: ns.name, Data: connectReply(s.id, pid)})...)
		slow = errors.Is(err, engineio.ErrSendQueueFull)
	})
	if slow {
		c.eio.CloseSlow()
	}
	return err
}

// stopConnectTimerLocked stops the connect timeout and drops the timer, so that an admitted
// connection keeps none; c.mu must be held.
func (c *conn) stopConnectTimerLocked() {
	if c.connecting == nil || c.connecting.timer == nil {
		return
	}
	c.connecting.timer.Stop()
	c.connecting.timer = nil
	c.dropConnectingLocked()
}

func (c *conn) connectTimeout() {
	c.mu.Lock()
	idle := c.sockets.len() == 0 && !c.closed
	c.mu.Unlock()
	if idle {
		c.close(engineio.ReasonForcedClose)
	}
}

// disconnectAll tells every socket of the connection it is disconnected, then closes the
// connection: what a server-side disconnect(true) does.
func (c *conn) disconnectAll(reason string) {
	c.mu.Lock()
	sockets := c.sockets.all()
	c.mu.Unlock()
	for _, s := range sockets {
		_ = s.send(&Packet{Type: PacketDisconnect, Namespace: s.ns.name})
	}
	c.close(reason)
}

// close ends every socket with reason, then the Engine.IO session.
func (c *conn) close(reason string) {
	c.shutdown(reason)
	c.eio.Close()
}

func (c *conn) shutdown(reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.stopConnectTimerLocked()
	sockets := c.sockets.all()
	var cancels []context.CancelFunc
	if c.connecting != nil {
		for _, cancel := range c.connecting.pending {
			if cancel != nil {
				cancels = append(cancels, cancel)
			}
		}
	}
	c.mu.Unlock()
	for _, cancel := range cancels {
		cancel() // authorizers stop waiting
	}
	for _, s := range sockets {
		s.onClose(reason)
	}
}

// EncodeMessages turns a packet into the Engine.IO messages that carry it: the text part, then
// one binary message per attachment. A message is framed once, however many sessions it is
// queued on. A [SessionStore] keeps the packets it stores so encoded, with their offsets (see
// [Restore] and [Local.Enqueue]).
func EncodeMessages(p *Packet) []*engineio.Message {
	text := appendEncode(make([]byte, 0, 16+len(p.Namespace)+len(p.Data)), p)
	msgs := make([]*engineio.Message, 0, 1+len(p.Attachments))
	msgs = append(msgs, engineio.NewMessage(text, false))
	for _, a := range p.Attachments {
		msgs = append(msgs, engineio.NewMessage(a, true))
	}
	return msgs
}

// donePendingLocked ends the authorization of namespace name, with c.mu held; the map goes
// when it is empty, so that a connected client holds none.
func (c *conn) donePendingLocked(name string) {
	if c.connecting == nil {
		return
	}
	delete(c.connecting.pending, name)
	if len(c.connecting.pending) == 0 {
		c.connecting.pending = nil
	}
	c.dropConnectingLocked()
}

// dropConnectingLocked drops c.connecting once it holds neither timer nor CONNECT, with c.mu
// held.
func (c *conn) dropConnectingLocked() {
	if c.connecting.timer == nil && c.connecting.pending == nil {
		c.connecting = nil
	}
}

// connecting is a connection's state until it is admitted, apart from its conn so that an
// admitted connection, which needs none of it, keeps none of it.
type connecting struct {
	// timer is the connect timeout, until the first namespace is admitted; nil afterwards.
	timer *time.Timer
	// pending holds the namespaces with a CONNECT being authorized, each with the cancel of
	// its authorizer's context (nil until the authorizer starts), which the connection's
	// close calls; nil when none.
	pending map[string]context.CancelFunc
}

// has reports whether a CONNECT to namespace name is being authorized; c may be nil.
func (c *connecting) has(name string) bool {
	if c == nil {
		return false
	}
	_, ok := c.pending[name]
	return ok
}

// len is the number of CONNECTs being authorized; c may be nil.
func (c *connecting) len() int {
	if c == nil {
		return 0
	}
	return len(c.pending)
}

// nsSockets holds a connection's sockets by namespace: the first inline, since most clients
// join one namespace, the others in a map made for the second.
type nsSockets struct {
	first *Socket
	more  map[string]*Socket
}

func (m *nsSockets) get(name string) *Socket {
	if m.first != nil && m.first.ns.name == name {
		return m.first
	}
	return m.more[name]
}

// put adds s, whose namespace has no socket yet.
func (m *nsSockets) put(s *Socket) {
	if m.first == nil {
		m.first = s
		return
	}
	if m.more == nil {
		m.more = make(map[string]*Socket, 1)
	}
	m.more[s.ns.name] = s
}

// remove drops s, if it is still its namespace's socket.
func (m *nsSockets) remove(s *Socket) {
	if m.first == s {
		m.first = nil
		return
	}
	if m.more[s.ns.name] == s {
		delete(m.more, s.ns.name)
		if len(m.more) == 0 {
			m.more = nil
		}
	}
}

func (m *nsSockets) len() int {
	n := len(m.more)
	if m.first != nil {
		n++
	}
	return n
}

func (m *nsSockets) all() []*Socket {
	out := make([]*Socket, 0, m.len())
	if m.first != nil {
		out = append(out, m.first)
	}
	for _, s := range m.more {
		out = append(out, s)
	}
	return out
}
