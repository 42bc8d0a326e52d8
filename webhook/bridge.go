package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/siobridge/siobridge/internal/command"
	"github.com/siobridge/siobridge/internal/spool"
	"github.com/siobridge/siobridge/socketio"
)

// Payload is the body of every webhook: one shape for connect, event and disconnect.
type Payload struct {
	// ID is the delivery's id, the X-Siobridge-Delivery header's value. It is in the body so
	// that the signature covers it: a captured webhook cannot be sent again under a new id
	// to get past an app that drops the ids it has seen.
	ID        string        `json:"id"`
	Type      Kind          `json:"type"`
	Namespace string        `json:"namespace"`
	Socket    SocketPayload `json:"socket"`
	// Event, Args and Ack are set for events: Args is the JSON array of the event's
	// arguments, binary ones as {"$binary":"<base64>"}; Ack tells whether the client waits
	// for an acknowledgement (the reply's "ack").
	Event string          `json:"event,omitempty"`
	Args  json.RawMessage `json:"args,omitempty"`
	Ack   *bool           `json:"ack,omitempty"`
	// Reason is set for disconnects, in Socket.IO's words ("transport close", ...).
	Reason string `json:"reason,omitempty"`
	// Recovered is set on a connect when the client is recovering its session (connection
	// state recovery): the socket keeps its former id, rooms and data, shown in Socket.
	Recovered bool `json:"recovered,omitempty"`
}

// SocketPayload describes the socket a webhook is about.
type SocketPayload struct {
	ID        string              `json:"id"`
	Rooms     []string            `json:"rooms"`
	Data      json.RawMessage     `json:"data"`
	Handshake *socketio.Handshake `json:"handshake"`
}

// Actions is what the app's 2xx reply to a webhook may ask for. They are applied in this
// order: data, join, leave, ack, emit, disconnect.
type Actions struct {
	// Ack answers the client's acknowledgement callback, when it asked for one.
	Ack *[]json.RawMessage `json:"ack"`
	// Emit items are shaped like POST /emit; their namespace defaults to the socket's.
	Emit []command.EmitRequest `json:"emit"`
	// Join and Leave change the socket's rooms.
	Join  []string `json:"join"`
	Leave []string `json:"leave"`
	// Disconnect removes the socket from its namespace.
	Disconnect bool `json:"disconnect"`
	// Data replaces the socket's data, which later webhooks carry.
	Data json.RawMessage `json:"data"`
	// Message and Data (with a 4xx reply to a connect) refuse the connection with this
	// message; the client's connect_error gets both.
	Message string `json:"message"`
}

// BridgeOptions configure a [Bridge].
type BridgeOptions struct {
	// Server is the Socket.IO server whose clients are reported.
	Server *socketio.Server
	// Deliverer sends the webhooks. The bridge owns it from then on: [Bridge.Close] closes it.
	Deliverer *Deliverer
	// Kinds lists the kinds of webhook sent; the others are not.
	Kinds []Kind
	// AcceptOnError admits a connection when the connect webhook could not be delivered
	// (after its retries); by default such a connection is refused.
	AcceptOnError bool
	// QueueFull is what an event does when its socket's webhook queue is full (the app is
	// not keeping up with this client): QueueFullDisconnect (the default) or QueueFullReject.
	QueueFull QueueFullPolicy
	// HandshakeHeaders chooses the handshake headers the webhooks show. Nil: all of them.
	HandshakeHeaders *HeaderFilter
	Metrics          *Metrics
	Logger           *slog.Logger
}

// QueueFullPolicy is what a client's event does when its socket's webhook queue is full.
type QueueFullPolicy string

const (
	// QueueFullDisconnect disconnects the socket from its namespace ("server namespace
	// disconnect"): the client learns that it was cut off rather than lose events unseen.
	QueueFullDisconnect QueueFullPolicy = "disconnect"
	// QueueFullReject refuses the event: it is not sent to the app, and if the client asked
	// for an ack, the ack is {"error":"webhook queue full"}. The socket stays connected.
	QueueFullReject QueueFullPolicy = "reject"
)

// queueFullAck answers an event refused by QueueFullReject.
var queueFullAck = json.RawMessage(`[{"error":"webhook queue full"}]`)

// Bridge turns what clients do into webhooks and carries out the actions of the app's replies.
type Bridge struct {
	opts  BridgeOptions
	log   *slog.Logger
	kinds map[Kind]bool
}

// The refusal messages a client's connect_error shows.
const (
	msgRefused     = "Connection refused by the application"
	msgUnreachable = "Connection refused: the application could not be reached"
	msgFailed      = "Connection refused: the application failed"
	msgOverloaded  = "Connection refused: too many webhooks waiting"
	msgStopping    = "Connection refused: the server is stopping"
)

// The errors an event's ack carries when the app's answer cannot give it: the client's
// callback gets [{"error": "..."}].
const (
	ackUnreachable = "the application could not be reached"
	ackFailed      = "the application failed"
	ackRefused     = "the event was refused by the application"
	ackUnreadable  = "the application's reply could not be read"
	ackStopping    = "the server stopped before the application answered"
)

// NewBridge attaches a bridge to every namespace of opts.Server, present and future.
func NewBridge(opts BridgeOptions) *Bridge {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.QueueFull == "" {
		opts.QueueFull = QueueFullDisconnect
	}
	b := &Bridge{opts: opts, log: opts.Logger, kinds: make(map[Kind]bool)}
	for _, k := range opts.Kinds {
		b.kinds[k] = true
	}
	opts.Server.OnNamespace(b.attach)
	return b
}

// Close ends the bridge's work: it closes its Deliverer (see [Deliverer.Close]), which lets
// queued webhooks finish until ctx ends and cancels the rest, and returns the number of
// webhooks cancelled. A client's connect or event that comes after is not forwarded: the
// connect is refused, or accepted with BridgeOptions.AcceptOnError; the event's ack, if it
// asked for one, says that the server stopped. Close the Socket.IO server first, so that the
// disconnect webhooks of the clients it ends are among those that finish.
func (b *Bridge) Close(ctx context.Context) int {
	return b.opts.Deliverer.Close(ctx)
}

func (b *Bridge) attach(ns *socketio.Namespace) {
	if b.kinds[KindConnect] {
		ns.Authorize(b.authorize)
	}
	nst := &namespaceState{b: b, name: ns.Name()}
	ns.OnConnect(func(s *socketio.Socket) {
		st := &socketState{ns: nst, s: s}
		s.OnAny(st.onEvent)
		s.OnDisconnect(st.onDisconnect)
	})
}

// onEvent and onDisconnect are the socket's handlers: method values of its state, which
// knows its bridge and socket, so that each costs an idle socket 16 bytes rather than a
// closure over all three.
func (st *socketState) onEvent(e *socketio.Event)  { st.ns.b.onEvent(st.s, st, e) }
func (st *socketState) onDisconnect(reason string) { st.ns.b.onDisconnect(st.s, st, reason) }

// namespaceState is what the sockets of one namespace share, kept once for them all rather
// than on each socket's state.
type namespaceState struct {
	b    *Bridge
	name string
	// eventsIn is the namespace's EventsIn counter, looked up by its first event.
	eventsInOnce sync.Once
	eventsIn     prometheus.Counter
}

// socketState orders a socket's event webhooks before its disconnect webhook: an event read
// while the socket is being closed from another goroutine (a shutdown, POST /disconnect) is
// either queued before the disconnect or not at all.
//
// It is kept per connected socket: the namespace's share of it is in ns, so that it fits 48
// bytes.
type socketState struct {
	ns *namespaceState
	s  *socketio.Socket
	// handshake is the socket's handshake as JSON, made by its first event webhook.
	handshake atomic.Pointer[json.RawMessage]
	mu        sync.Mutex
	gone      bool // the disconnect has been handled
}

// countEventIn counts an event of the socket in m.EventsIn.
func (st *socketState) countEventIn(m *Metrics) {
	if m == nil || m.EventsIn == nil {
		return
	}
	ns := st.ns
	ns.eventsInOnce.Do(func() { ns.eventsIn = m.EventsIn.WithLabelValues(ns.name) })
	ns.eventsIn.Inc()
}

func socketData(v any) json.RawMessage {
	switch d := v.(type) {
	case nil:
		return json.RawMessage("null")
	case json.RawMessage:
		return d
	default:
		j, err := json.Marshal(d)
		if err != nil {
			return json.RawMessage("null")
		}
		return j
	}
}

func (b *Bridge) socketPayload(s *socketio.Socket) SocketPayload {
	return SocketPayload{ID: s.ID(), Rooms: nonNil(s.Rooms()), Data: socketData(s.Data()),
		Handshake: b.opts.HandshakeHeaders.Apply(s.Handshake())}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// authorize sends the connect webhook and waits for the app's decision.
func (b *Bridge) authorize(ctx context.Context, req *socketio.ConnectRequest) (*socketio.Admission, error) {
	id := NewDeliveryID()
	body, err := json.Marshal(Payload{
		ID:        id,
		Type:      KindConnect,
		Namespace: req.Namespace,
		Socket: SocketPayload{ID: req.SocketID, Rooms: nonNil(req.Rooms), Data: socketData(req.Data),
			Handshake: b.opts.HandshakeHeaders.Apply(req.Handshake)},
		Recovered: req.Recovered,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: encode connect: %w", err)
	}
	results := make(chan Result, 1)
	if err := b.opts.Deliverer.Enqueue(req.SocketID, &Delivery{ID: id, Kind: KindConnect, Body: body}, func(r Result) { results <- r }); err != nil {
		if errors.Is(err, ErrQueueFull) {
			b.opts.Metrics.Dropped(KindConnect, DropDropped)
		}
		b.log.Warn("webhook: connect not sent", "namespace", req.Namespace, "socket", req.SocketID, "err", err)
		msg := msgOverloaded
		if errors.Is(err, ErrClosed) {
			msg = msgStopping
		}
		return b.onConnectError(&socketio.ConnectError{Message: msg})
	}
	var res Result
	select {
	case res = <-results:
	case <-ctx.Done():
		return nil, ctx.Err() // the connection is gone; nobody reads the answer
	}
	if res.Err != nil {
		msg := msgUnreachable
		if res.StatusCode != 0 {
			msg = msgFailed
		}
		b.log.Warn("webhook: connect given up: "+strings.TrimPrefix(msg, "Connection refused: "),
			"delivery", res.Delivery.ID, "namespace", req.Namespace, "socket", req.SocketID,
			"address", addressOf(req.Handshake), "attempts", res.Attempts, "status", res.StatusCode, "err", res.Err)
		return b.onConnectError(&socketio.ConnectError{Message: msg})
	}
	acts, problems, err := parseReply(res.Body)
	b.replyErrors(res, req.SocketID, "", problems, err)
	if res.StatusCode < 200 || res.StatusCode > 299 {
		msg := acts.Message
		if msg == "" {
			msg = msgRefused
		}
		var data any
		if len(acts.Data) > 0 {
			data = acts.Data
		}
		b.log.Info("webhook: connect refused by the app", "delivery", res.Delivery.ID, "namespace", req.Namespace,
			"socket", req.SocketID, "address", addressOf(req.Handshake), "status", res.StatusCode, "message", msg)
		return nil, &socketio.ConnectError{Message: msg, Data: data}
	}
	adm := &socketio.Admission{Rooms: acts.Join}
	if len(acts.Data) > 0 {
		adm.Data = acts.Data
	}
	if len(acts.Emit) > 0 || len(acts.Leave) > 0 || acts.Disconnect {
		post := acts
		post.Join, post.Data, post.Ack = nil, nil, nil
		adm.Connected = func(s *socketio.Socket) { b.apply(s, nil, &post, KindConnect, res.Delivery.ID) }
	}
	return adm, nil
}

func (b *Bridge) onConnectError(refusal *socketio.ConnectError) (*socketio.Admission, error) {
	if b.opts.AcceptOnError {
		return nil, nil
	}
	return nil, refusal
}

// onEvent queues the event's webhook; it runs on the connection's reader and does not wait.
func (b *Bridge) onEvent(s *socketio.Socket, st *socketState, e *socketio.Event) {
	st.countEventIn(b.opts.Metrics)
	if !b.kinds[KindEvent] {
		return
	}
	args, err := command.ArgsToJSON(e.Args)
	if err != nil {
		b.log.Warn("webhook: event arguments unreadable", "socket", s.ID(), "event", e.Name, "err", err)
		return
	}
	id := NewDeliveryID()
	body := b.eventBody(st, id, s, e.Name, args, e.WantsAck())
	st.mu.Lock()
	if st.gone {
		st.mu.Unlock()
		b.log.Debug("webhook: event dropped: its socket has disconnected", "socket", s.ID(), "event", e.Name)
		return
	}
	err = b.opts.Deliverer.Enqueue(s.ID(), &Delivery{ID: id, Kind: KindEvent, Body: body}, func(r Result) {
		b.settleEvent(s, e, r)
	})
	st.mu.Unlock() // before onQueueFull, whose disconnect takes it
	switch {
	case err == nil:
	case errors.Is(err, ErrClosed):
		// The bridge is closed: the event is not sent, and a client waiting for its ack is
		// told why.
		b.log.Warn("webhook: event dropped", "socket", s.ID(), "event", e.Name, "err", err)
		b.opts.Metrics.Dropped(KindEvent, DropDropped)
		b.ackError(s, e, ackStopping)
	default:
		// A full queue, a full spool, or a spool that cannot be written: the event was not
		// accepted, and the client is told so.
		b.onQueueFull(s, e, err)
	}
}

// onQueueFull applies the QueueFull policy to an event whose webhook could not be queued.
func (b *Bridge) onQueueFull(s *socketio.Socket, e *socketio.Event, cause error) {
	why := "its webhook queue is full (the app is not keeping up)"
	switch {
	case errors.Is(cause, spool.ErrFull):
		why = "the webhook spool is full (the app is not keeping up)"
	case !errors.Is(cause, ErrQueueFull):
		why = "the webhook spool cannot be written"
	}
	if b.opts.QueueFull == QueueFullReject {
		b.opts.Metrics.Dropped(KindEvent, DropRejected)
		b.log.Warn("webhook: event rejected: "+why,
			"socket", s.ID(), "event", e.Name, "ack", e.WantsAck(), "err", cause)
		if e.WantsAck() {
			if err := e.AckRaw(socketio.Args{Raw: queueFullAck}); err != nil && !errors.Is(err, socketio.ErrNoAck) {
				b.log.Warn("webhook: ack not sent", "socket", s.ID(), "event", e.Name, "err", err)
			}
		}
		return
	}
	b.opts.Metrics.Dropped(KindEvent, DropDisconnected)
	b.log.Warn("webhook: disconnecting socket: "+why, "socket", s.ID(), "event", e.Name, "err", cause)
	s.Disconnect(false)
}

func (b *Bridge) onDisconnect(s *socketio.Socket, st *socketState, reason string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.gone = true
	if !b.kinds[KindDisconnect] {
		return
	}
	id := NewDeliveryID()
	body, err := json.Marshal(Payload{
		ID:        id,
		Type:      KindDisconnect,
		Namespace: s.Namespace().Name(),
		Socket:    b.socketPayload(s),
		Reason:    reason,
	})
	if err != nil {
		b.log.Warn("webhook: encode disconnect", "socket", s.ID(), "err", err)
		return
	}
	// The disconnect is queued even behind a full queue: the app always learns the end.
	err = b.opts.Deliverer.EnqueueLast(s.ID(), &Delivery{ID: id, Kind: KindDisconnect, Body: body}, func(r Result) {
		switch {
		case r.Kept:
			b.log.Debug("webhook: disconnect kept in the spool for the next start", "delivery", r.Delivery.ID, "socket", s.ID())
		case r.Err != nil:
			b.givenUp(r, s.ID(), "")
		case r.StatusCode < 200 || r.StatusCode > 299:
			b.log.Warn("webhook: disconnect refused by the app", "delivery", r.Delivery.ID, "socket", s.ID(), "status", r.StatusCode)
		default:
			acts, problems, err := parseReply(r.Body)
			b.replyErrors(r, s.ID(), "", problems, err)
			if len(acts.Emit) > 0 {
				b.apply(s, nil, &Actions{Emit: acts.Emit}, KindDisconnect, r.Delivery.ID)
			}
		}
	})
	if err != nil {
		b.log.Warn("webhook: disconnect dropped", "socket", s.ID(), "err", err)
	}
}

// settleEvent acts on how an event's webhook was settled. Whenever the app's actions cannot
// be carried out (the webhook was given up or refused, or the reply cannot be read), it
// says so in the log and, when the client waits for an ack, in the ack.
func (b *Bridge) settleEvent(s *socketio.Socket, e *socketio.Event, r Result) {
	switch {
	case r.Kept:
		b.log.Debug("webhook: event kept in the spool for the next start", "delivery", r.Delivery.ID, "socket", s.ID(), "event", e.Name)
		b.ackError(s, e, ackStopping)
	case r.Err != nil:
		b.givenUp(r, s.ID(), e.Name)
		switch {
		case errors.Is(r.Err, ErrClosed):
			b.ackError(s, e, ackStopping)
		case r.StatusCode != 0:
			b.ackError(s, e, ackFailed)
		default:
			b.ackError(s, e, ackUnreachable)
		}
	case r.StatusCode < 200 || r.StatusCode > 299:
		acts, _, _ := parseReply(r.Body)
		args := []any{"delivery", r.Delivery.ID, "socket", s.ID(), "event", e.Name, "status", r.StatusCode, "message", acts.Message}
		if r.Batch != "" {
			args = append(args, "batch", r.Batch)
		}
		b.log.Warn("webhook: event refused by the app", args...)
		msg := ackRefused
		if acts.Message != "" {
			msg = acts.Message
		}
		b.ackError(s, e, msg)
	default:
		acts, problems, err := parseReply(r.Body)
		if r.ReplyErr != nil {
			acts, problems, err = Actions{}, nil, r.ReplyErr
		}
		b.replyErrors(r, s.ID(), e.Name, problems, err)
		if err != nil {
			b.ackError(s, e, ackUnreadable)
			return
		}
		if acts.Ack == nil && e.WantsAck() && slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, `"ack"`) }) {
			b.ackError(s, e, ackUnreadable)
		}
		b.apply(s, e, &acts, KindEvent, r.Delivery.ID)
	}
}

// givenUp logs a webhook given up without a final reply from the app
// (siobridge_webhook_given_up_total counts it).
func (b *Bridge) givenUp(r Result, socket, event string) {
	args := []any{"delivery", r.Delivery.ID, "kind", r.Delivery.Kind, "socket", socket}
	if event != "" {
		args = append(args, "event", event)
	}
	if r.Batch != "" {
		args = append(args, "batch", r.Batch)
	}
	args = append(args, "attempts", r.Attempts, "status", r.StatusCode, "err", r.Err)
	b.log.Error("webhook: "+string(r.Delivery.Kind)+" given up", args...)
}

// replyErrors reports what parseReply found wrong in a reply, once per reply.
func (b *Bridge) replyErrors(r Result, socket, event string, problems []string, err error) {
	if err == nil && len(problems) == 0 {
		return
	}
	b.opts.Metrics.replyError(r.Delivery.Kind)
	args := []any{"delivery", r.Delivery.ID, "kind", r.Delivery.Kind, "socket", socket}
	if event != "" {
		args = append(args, "event", event)
	}
	if r.Batch != "" {
		args = append(args, "batch", r.Batch)
	}
	if err != nil {
		b.log.Warn("webhook: reply unreadable: its actions are not applied", append(args, "status", r.StatusCode, "err", err)...)
		return
	}
	b.log.Warn("webhook: reply has errors: the other actions apply", append(args, "errors", strings.Join(problems, "; "))...)
}

// ackError answers the client's ack callback, if it waits for one, with [{"error": msg}].
func (b *Bridge) ackError(s *socketio.Socket, e *socketio.Event, msg string) {
	if !e.WantsAck() {
		return
	}
	if err := e.Ack(map[string]string{"error": msg}); err != nil && !errors.Is(err, socketio.ErrNoAck) {
		b.log.Debug("webhook: error ack not sent", "socket", s.ID(), "event", e.Name, "err", err)
	}
}

// addressOf is a handshake's client address, "" without one.
func addressOf(h *socketio.Handshake) string {
	if h == nil {
		return ""
	}
	return h.Address
}

// apply carries out a reply's actions for socket s; e is the event replied to, if any.
// kind and delivery are those of the webhook replied to, for the log and the metrics.
func (b *Bridge) apply(s *socketio.Socket, e *socketio.Event, acts *Actions, kind Kind, delivery string) {
	if len(acts.Data) > 0 {
		s.SetData(acts.Data)
	}
	if len(acts.Join) > 0 {
		s.Join(acts.Join...)
	}
	if len(acts.Leave) > 0 {
		s.Leave(acts.Leave...)
	}
	if acts.Ack != nil && e != nil && e.WantsAck() {
		args, err := command.ArgsFromJSON(*acts.Ack)
		if err != nil {
			b.opts.Metrics.replyError(kind)
			b.log.Warn("webhook: reply has errors: the other actions apply", "delivery", delivery, "kind", kind,
				"socket", s.ID(), "event", e.Name, "errors", `"ack": `+err.Error())
			b.ackError(s, e, ackUnreadable)
		} else if err := e.Ack(args...); err != nil && !errors.Is(err, socketio.ErrNoAck) {
			b.log.Warn("webhook: ack not sent", "delivery", delivery, "socket", s.ID(), "event", e.Name, "err", err)
		}
	}
	for i := range acts.Emit {
		em := acts.Emit[i]
		if em.Namespace == "" {
			em.Namespace = s.Namespace().Name()
		}
		if em.AckTimeoutMS > 0 {
			b.opts.Metrics.replyError(kind)
			b.log.Warn("webhook: emit action ignored: ack_timeout_ms is only for POST /emit", "delivery", delivery, "kind", kind, "socket", s.ID(), "event", em.Event)
			continue
		}
		// Not waiting for other nodes' counts: the socket's next webhook waits on this one.
		res, err := command.EmitLocalCount(context.Background(), b.opts.Server, &em)
		if err != nil {
			if errors.Is(err, command.ErrInvalid) || errors.Is(err, command.ErrUnknownNamespace) {
				b.opts.Metrics.replyError(kind)
			}
			b.log.Warn("webhook: emit action failed", "delivery", delivery, "kind", kind, "socket", s.ID(), "event", em.Event, "err", err)
			continue
		}
		countEventsOut(b.opts.Metrics, em.Namespace, res.Sockets)
	}
	if acts.Disconnect {
		s.Disconnect(false)
	}
}

func countEventsOut(m *Metrics, namespace string, n int) {
	if m != nil && m.EventsOut != nil && n > 0 {
		m.EventsOut.WithLabelValues(namespace).Add(float64(n))
	}
}
