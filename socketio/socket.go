package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Errors of the socket API.
var (
	// ErrDisconnected is returned for a socket that has left its namespace.
	ErrDisconnected = errors.New("socketio: socket disconnected")
	// ErrReservedEvent refuses an emit of an event name that Socket.IO reserves.
	ErrReservedEvent = errors.New("socketio: reserved event name")
	// ErrNoAck is returned by Event.Ack when the client asked for no ack, or it was sent already.
	ErrNoAck = errors.New("socketio: no ack expected")
)

// The disconnect reasons a socket can end with, in Socket.IO's words (the Engine.IO ones
// besides: transport close, transport error, ping timeout, parse error, forced close, server
// shutting down).
const (
	ReasonClientNamespaceDisconnect = "client namespace disconnect"
	ReasonServerNamespaceDisconnect = "server namespace disconnect"
)

// Args are the arguments of an event or an ack as they came: a JSON array with
// {"_placeholder":true,"num":N} standing for Attachments[N].
type Args struct {
	Raw         json.RawMessage
	Attachments [][]byte
}

// Decode returns the arguments as Go values: json.Number for numbers, []byte for binary.
func (a Args) Decode() ([]any, error) { return decodeArgs(a.Raw, a.Attachments) }

// Event is one event received from a client.
type Event struct {
	Name string
	Args
	socket *Socket
	ackID  uint64
	hasAck bool
	acked  atomic.Bool
}

// Socket is the socket that sent the event.
func (e *Event) Socket() *Socket { return e.socket }

// WantsAck reports whether the client asked for an acknowledgement.
func (e *Event) WantsAck() bool { return e.hasAck }

// Ack answers the client's acknowledgement callback with args, once; it may be called from any
// goroutine, later than the handler.
func (e *Event) Ack(args ...any) error {
	if !e.hasAck || !e.acked.CompareAndSwap(false, true) {
		return ErrNoAck
	}
	data, atts, err := EncodeArgs(args)
	if err != nil {
		return fmt.Errorf("socketio: encode ack: %w", err)
	}
	return e.socket.sendAck(e.ackID, data, atts)
}

// AckRaw is Ack with arguments already encoded as a JSON array, placeholders standing for
// attachments.
func (e *Event) AckRaw(a Args) error {
	if !e.hasAck || !e.acked.CompareAndSwap(false, true) {
		return ErrNoAck
	}
	return e.socket.sendAck(e.ackID, a.Raw, a.Attachments)
}

// Socket is one client's membership of one namespace.
type Socket struct {
	id   string
	ns   *Namespace
	conn *conn
	// auth is the CONNECT packet's auth payload, a copy of its bytes alone (not a slice of the
	// packet's); the rest of the handshake is the Engine.IO session's, so a socket keeps no
	// copy of it (Handshake builds one when asked).
	auth string

	mu         sync.Mutex
	data       any
	handlers   map[string]func(*Event)
	anyHandler func(*Event)
	// onDisconnect runs the disconnect handlers in the order they were added: a single one
	// is kept as it is, more are chained into one function, so that a socket with one
	// handler, as most have, keeps no slice of them.
	onDisconnect func(reason string)
	acks         map[uint64]func(Args, error)
	disconnected bool
	recovered    bool
	// admitting is set while the socket's connect handlers run; a close asked for meanwhile
	// (its connection ending) waits in end until they have, so that the disconnect handlers
	// they register run.
	admitting bool
	// inIDRoom and joined are the socket's rooms, kept for its namespace's room table and
	// guarded by the table's lock, not mu: whether it is in the room named by its id, and
	// its other rooms (nil while there are none).
	inIDRoom bool
	joined   map[string]struct{}
	// end is set when the socket leaves, or is to leave once admitted; nil until then, so
	// that a connected socket keeps none of it.
	end *socketEnd
	pid string // private session id, with recovery on

	// events limits the client's events with Options.EventsPerSecond; made at the first event
	// (its bucket full, as it would be by then had it been made at the connect), so that a
	// socket that never sends keeps none. Used by the reader only.
	events *rate.Limiter
}

// socketEnd is what a socket's end leaves on it.
type socketEnd struct {
	reason string   // why it leaves; for a close asked for while admitting, admitted's
	rooms  []string // the rooms it had when it left, for Rooms; nil until then
}

func newSocket(ns *Namespace, c *conn, id string, hs *Handshake, data any) *Socket {
	return &Socket{id: id, ns: ns, conn: c, auth: string(hs.Auth), data: data}
}

// ID is the socket's id, also the name of the room holding only this socket.
func (s *Socket) ID() string { return s.id }

// Namespace is the socket's namespace.
func (s *Socket) Namespace() *Namespace { return s.ns }

// Handshake is what the client's connection and CONNECT packet carried, made anew by each
// call from the Engine.IO session's handshake (an idle socket so holds no header maps).
func (s *Socket) Handshake() *Handshake {
	return newHandshake(s.conn.eio.Handshake(), json.RawMessage(s.auth))
}

// Transport is the connection's current Engine.IO transport.
func (s *Socket) Transport() string { return s.conn.eio.Transport() }

// Protocol is the connection's Engine.IO protocol version: 4, or 3 for a socket.io-client
// 2.x (engineio.Options.AllowEIO3).
func (s *Socket) Protocol() int { return s.conn.eio.Protocol() }

// Data returns the value kept on the socket.
func (s *Socket) Data() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// SetData replaces the value kept on the socket.
func (s *Socket) SetData(v any) {
	s.mu.Lock()
	s.data = v
	s.mu.Unlock()
}

// Recovered reports whether the socket was restored by connection state recovery: it kept
// its former id, rooms and data, and the packets it missed were sent to it first.
func (s *Socket) Recovered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovered
}

// Connected reports whether the socket is still in its namespace.
func (s *Socket) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.disconnected && s.end == nil
}

// Rooms lists the socket's rooms, its own id room included; after a disconnect, the rooms it
// had then.
func (s *Socket) Rooms() []string {
	s.mu.Lock()
	if s.disconnected {
		defer s.mu.Unlock()
		return s.end.rooms
	}
	s.mu.Unlock()
	return s.ns.rooms.socketRooms(s.id)
}

// Join adds the socket to rooms; with [Options].MaxRoomsPerSocket, rooms beyond the limit are
// not joined, and a warning says which.
func (s *Socket) Join(rooms ...string) {
	if s.Connected() {
		s.ns.join(s, rooms)
	}
}

// Leave takes the socket out of rooms.
func (s *Socket) Leave(rooms ...string) { s.ns.rooms.leave(s, rooms) }

// On sets the handler of one event, replacing any earlier one.
func (s *Socket) On(event string, fn func(*Event)) {
	s.mu.Lock()
	if s.handlers == nil {
		s.handlers = make(map[string]func(*Event))
	}
	s.handlers[event] = fn
	s.mu.Unlock()
}

// OnAny sets the handler of every event that has no handler of its own.
func (s *Socket) OnAny(fn func(*Event)) {
	s.mu.Lock()
	s.anyHandler = fn
	s.mu.Unlock()
}

// OnDisconnect adds a handler called once when the socket leaves its namespace, with the
// reason. It runs on whichever goroutine ended the socket, after the socket left its rooms.
func (s *Socket) OnDisconnect(fn func(reason string)) {
	s.mu.Lock()
	if prev := s.onDisconnect; prev != nil {
		s.onDisconnect = func(reason string) {
			prev(reason)
			fn(reason)
		}
	} else {
		s.onDisconnect = fn
	}
	s.mu.Unlock()
}

// Emit sends an event to this socket. Arguments are encoded with [EncodeArgs]: []byte values
// become binary attachments, json.RawMessage values are sent as they are. With recovery on,
// it is broadcast to the socket's own room, as in Node, so it is stored and carries an
// offset.
func (s *Socket) Emit(event string, args ...any) error {
	p, err := newEventPacket(s.ns.name, event, args)
	if err != nil {
		return err
	}
	if s.ns.store != nil {
		if !s.Connected() {
			return ErrDisconnected
		}
		if n, err := s.ns.broadcast(p, BroadcastOptions{Rooms: []string{s.id}}); err != nil || n == 0 {
			return ErrDisconnected
		}
		return nil
	}
	return s.send(p)
}

// EmitWithAck sends an event and waits for the client's acknowledgement until ctx ends.
func (s *Socket) EmitWithAck(ctx context.Context, event string, args ...any) (Args, error) {
	p, err := newEventPacket(s.ns.name, event, args)
	if err != nil {
		return Args{}, err
	}
	p.ID, p.HasID = s.ns.ackIDs.Add(1), true
	type result struct {
		args Args
		err  error
	}
	reply := make(chan result, 1)
	if !s.expectAck(p.ID, func(a Args, err error) { reply <- result{a, err} }) {
		return Args{}, ErrDisconnected
	}
	if err := s.send(p); err != nil {
		s.dropAck(p.ID)
		return Args{}, err
	}
	select {
	case r := <-reply:
		return r.args, r.err
	case <-ctx.Done():
		s.dropAck(p.ID)
		return Args{}, fmt.Errorf("socketio: ack for %q: %w", event, ctx.Err())
	}
}

// To selects the sockets in rooms, leaving this socket out, as Node's socket.to(room).
func (s *Socket) To(rooms ...string) *BroadcastOperator {
	return s.Broadcast().To(rooms...)
}

// Broadcast selects every socket of the namespace but this one.
func (s *Socket) Broadcast() *BroadcastOperator {
	return &BroadcastOperator{ns: s.ns, opts: BroadcastOptions{Except: []string{s.id}}}
}

// Disconnect removes the socket from its namespace with "server namespace disconnect"; with
// close, it ends the client's whole connection.
func (s *Socket) Disconnect(close bool) {
	if close {
		s.conn.disconnectAll(ReasonServerNamespaceDisconnect)
		return
	}
	if s.Connected() {
		_ = s.send(&Packet{Type: PacketDisconnect, Namespace: s.ns.name})
		s.onClose(ReasonServerNamespaceDisconnect)
	}
}

// send writes one packet to this socket's connection.
func (s *Socket) send(p *Packet) error {
	if !s.Connected() {
		return ErrDisconnected
	}
	return s.conn.send(p)
}

func (s *Socket) sendAck(id uint64, data json.RawMessage, atts [][]byte) error {
	t := PacketAck
	if len(atts) > 0 {
		t = PacketBinaryAck
	}
	return s.send(&Packet{Type: t, Namespace: s.ns.name, ID: id, HasID: true, Data: data, Attachments: atts})
}

// expectAck registers fn for the ack id; false when the socket is gone.
func (s *Socket) expectAck(id uint64, fn func(Args, error)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disconnected {
		return false
	}
	if s.acks == nil {
		s.acks = make(map[uint64]func(Args, error))
	}
	s.acks[id] = fn
	return true
}

func (s *Socket) dropAck(id uint64) {
	s.mu.Lock()
	delete(s.acks, id)
	s.mu.Unlock()
}

// onEvent dispatches an event from the client, on the reader goroutine.
func (s *Socket) onEvent(p *Packet) error {
	name, rest, err := eventName(p.Data)
	if err != nil {
		return err
	}
	if s.events == nil && s.ns.srv.opts.EventsPerSecond > 0 {
		o := &s.ns.srv.opts
		s.events = rate.NewLimiter(rate.Limit(o.EventsPerSecond), o.EventBurst)
	}
	if s.events != nil && !s.events.Allow() {
		s.ns.srv.onLimit(LimitEventRate)
		s.ns.srv.log.Debug("socketio: event dropped: rate limit", "socket", s.id, "event", name)
		if p.HasID {
			_ = s.sendAck(p.ID, rateLimitedAck, nil)
		}
		return nil
	}
	e := &Event{Name: name, Args: Args{Raw: rest, Attachments: p.Attachments}, socket: s, ackID: p.ID, hasAck: p.HasID}
	s.mu.Lock()
	h := s.handlers[name]
	if h == nil {
		h = s.anyHandler
	}
	s.mu.Unlock()
	if h != nil {
		h(e)
	}
	return nil
}

// rateLimitedAck answers an event dropped by the rate limit.
var rateLimitedAck = json.RawMessage(`[{"error":"` + ErrRateLimited + `"}]`)

// onAck delivers a client's acknowledgement; one for an unknown or expired id is ignored.
func (s *Socket) onAck(p *Packet) {
	s.mu.Lock()
	fn := s.acks[p.ID]
	delete(s.acks, p.ID)
	s.mu.Unlock()
	if fn != nil {
		fn(Args{Raw: p.Data, Attachments: p.Attachments}, nil)
	}
}

// onClose ends the socket once: out of its rooms and namespace, pending acks dropped,
// disconnect handlers told, and then its hold on the namespace released (a disconnect
// handler may still broadcast through the namespace's cluster engine).
func (s *Socket) onClose(reason string) {
	s.mu.Lock()
	if s.admitting {
		if s.end == nil && !s.disconnected {
			s.end = &socketEnd{reason: reason}
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.close(reason)
}

// admitted ends the socket's admission: its connect handlers have run, so a close asked for
// meanwhile is carried out now, disconnect handlers included.
func (s *Socket) admitted() {
	s.mu.Lock()
	s.admitting = false
	end := s.end
	s.mu.Unlock()
	if end != nil {
		s.close(end.reason)
	}
}

// close leaves the namespace with reason: the socket's rooms, its pending acks (which get
// ErrDisconnected), then its disconnect handlers. It acts once.
func (s *Socket) close(reason string) {
	rooms := s.ns.rooms.socketRooms(s.id)
	s.mu.Lock()
	if s.disconnected {
		s.mu.Unlock()
		return
	}
	s.disconnected = true
	s.end = &socketEnd{reason: reason, rooms: rooms}
	acks := s.acks
	s.acks = nil
	onDisconnect := s.onDisconnect
	sess := Session{SID: s.id, PID: s.pid, Rooms: rooms, Data: s.data}
	s.mu.Unlock()

	s.conn.forget(s)
	s.ns.remove(s)
	// Kept only once the socket is out of its rooms: a restore under the same id must not
	// find them still held by this socket.
	if s.ns.store != nil && sess.PID != "" && recoverableReasons[reason] {
		s.ns.store.PersistSession(sess)
	}
	for _, fn := range acks {
		fn(Args{}, ErrDisconnected)
	}
	if onDisconnect != nil {
		onDisconnect(reason)
	}
	s.ns.srv.release(s.ns)
}

// newEventPacket builds an EVENT (or BINARY_EVENT) packet for ns.
func newEventPacket(ns, event string, args []any) (*Packet, error) {
	if IsReservedEvent(event) {
		return nil, fmt.Errorf("%w: %q", ErrReservedEvent, event)
	}
	vals := make([]any, 0, len(args)+1)
	vals = append(vals, event)
	vals = append(vals, args...)
	data, atts, err := EncodeArgs(vals)
	if err != nil {
		return nil, fmt.Errorf("socketio: encode %q: %w", event, err)
	}
	t := PacketEvent
	if len(atts) > 0 {
		t = PacketBinaryEvent
	}
	return &Packet{Type: t, Namespace: ns, Data: data, Attachments: atts}, nil
}
