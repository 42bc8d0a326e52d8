package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/siobridge/siobridge/socketio"
)

// Errors of the commands; callers answer 400 for ErrInvalid and 404 for ErrUnknownNamespace.
var (
	ErrInvalid          = errors.New("invalid request")
	ErrUnknownNamespace = errors.New("unknown namespace")
)

// MaxAckTimeout bounds ack_timeout_ms.
const MaxAckTimeout = 5 * time.Minute

// Selection picks sockets of a namespace: those in any of To (rooms or socket ids; all when
// empty), less those in any of Except.
type Selection struct {
	Namespace string   `json:"namespace,omitempty"`
	To        []string `json:"to,omitempty"`
	Except    []string `json:"except,omitempty"`
}

// EmitRequest is the body of POST /emit and each item of a reply's "emit" list.
type EmitRequest struct {
	Selection
	Event        string            `json:"event"`
	Args         []json.RawMessage `json:"args,omitempty"`
	Volatile     bool              `json:"volatile,omitempty"`
	AckTimeoutMS int64             `json:"ack_timeout_ms,omitempty"`
}

// AckJSON is one socket's answer to an emit with ack, args as JSON ({"$binary":...} for bytes).
type AckJSON struct {
	Socket string          `json:"socket"`
	Args   json.RawMessage `json:"args"`
}

// EmitResult answers an emit: how many sockets it reached, and with ack_timeout_ms their acks.
type EmitResult struct {
	Sockets  int       `json:"sockets"`
	Acks     []AckJSON `json:"acks,omitempty"`
	TimedOut []string  `json:"timed_out,omitempty"`
	Cluster  *Cluster  `json:"cluster,omitempty"`
	// Local is how many of Sockets are on this node, and Namespace the namespace emitted in,
	// "/" when the request names none (for this node's metrics).
	Local     int    `json:"-"`
	Namespace string `json:"-"`
}

// Cluster says, in the answers of a node in a cluster, how many servers the answer needed to
// hear from (every server of the namespace, this one and Node.js ones included) and how many
// did in time. Single-node answers have none.
type Cluster struct {
	Nodes   int `json:"nodes"`
	Replied int `json:"replied"`
	// Complete is false when the answer is short of a server's part (Replied < Nodes): the
	// counts and lists leave out the sockets of the servers that did not answer in time. It
	// is left out (nil) when the answer is complete, so that a complete answer reads as it
	// did before the field existed.
	Complete *bool `json:"complete,omitempty"`
}

// clusterOf is the "cluster" member of an answer whose call heard from the nodes r says, or
// nil when it asked no other node.
func clusterOf(r socketio.Reach) *Cluster {
	if r.Nodes == 0 {
		return nil
	}
	c := &Cluster{Nodes: r.Nodes, Replied: r.Replied}
	if !r.Complete() {
		c.Complete = new(bool)
	}
	return c
}

// RoomsRequest is the body of POST /join and POST /leave.
type RoomsRequest struct {
	Selection
	Rooms []string `json:"rooms"`
}

// DisconnectRequest is the body of POST /disconnect.
type DisconnectRequest struct {
	Selection
	Close bool `json:"close,omitempty"`
}

// CountResult answers join, leave and disconnect.
type CountResult struct {
	Sockets int      `json:"sockets"`
	Cluster *Cluster `json:"cluster,omitempty"`
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// operator resolves a selection to a broadcast operator on srv. The namespace is held (a
// dynamic one made if need be, and kept from being removed) until release is called.
func (sel *Selection) operator(srv *socketio.Server) (op *socketio.BroadcastOperator, release func(), err error) {
	name, err := sel.namespace()
	if err != nil {
		return nil, nil, err
	}
	if err := sel.checkTargets(); err != nil {
		return nil, nil, err
	}
	ns, release, err := hold(srv, name)
	if err != nil {
		return nil, nil, err
	}
	return ns.To(sel.To...).Except(sel.Except...), release, nil
}

// checkTargets refuses empty room names and socket ids.
func (sel *Selection) checkTargets() error {
	if slices.Contains(sel.To, "") || slices.Contains(sel.Except, "") {
		return invalid("room names and socket ids must not be empty")
	}
	return nil
}

// name is the selection's namespace, "/" when empty.
func (sel *Selection) name() string {
	if sel.Namespace == "" {
		return "/"
	}
	return sel.Namespace
}

// namespace is the selection's namespace, "/" when empty; it must start with "/".
func (sel *Selection) namespace() (string, error) {
	name := sel.name()
	if name[0] != '/' {
		return "", invalid("namespace %q must start with \"/\"", name)
	}
	return name, nil
}

// hold holds namespace name until release is called.
func hold(srv *socketio.Server, name string) (ns *socketio.Namespace, release func(), err error) {
	ns, release = srv.Hold(name)
	if ns == nil {
		return nil, nil, fmt.Errorf("%w %q", ErrUnknownNamespace, name)
	}
	return ns, release, nil
}

// validate checks what an emit request says by itself, before its selection and arguments.
func (r *EmitRequest) validate() error {
	switch {
	case r.Event == "":
		return invalid(`"event" is required`)
	case socketio.IsReservedEvent(r.Event):
		return invalid("event %q is reserved", r.Event)
	case r.AckTimeoutMS < 0 || time.Duration(r.AckTimeoutMS)*time.Millisecond > MaxAckTimeout:
		return invalid(`"ack_timeout_ms" must be between 0 and %d`, MaxAckTimeout.Milliseconds())
	case r.Volatile && r.AckTimeoutMS > 0:
		return invalid(`"volatile" and "ack_timeout_ms" cannot be combined`)
	}
	return nil
}

// Check finds what would make Emit refuse r, without emitting and without making a dynamic
// namespace, so that a batch can be checked in full before any of it is applied.
func (r *EmitRequest) Check(srv *socketio.Server) error {
	if err := r.validate(); err != nil {
		return err
	}
	name, err := r.namespace()
	if err != nil {
		return err
	}
	if !srv.Allows(name) {
		return fmt.Errorf("%w %q", ErrUnknownNamespace, name)
	}
	if err := r.checkTargets(); err != nil {
		return err
	}
	_, err = r.args()
	return err
}

// args is r.Args as values for socketio's emit functions.
func (r *EmitRequest) args() ([]any, error) {
	args, err := ArgsFromJSON(r.Args)
	if err != nil {
		return nil, invalid("%v", err)
	}
	return args, nil
}

// Emit sends the event to the selected sockets; with AckTimeoutMS it waits for their acks.
// In a cluster it waits (for at most the adapter's request timeout) for the other servers to
// say how many of their sockets it reached, so that Sockets is the cluster's total: siobridge
// nodes count the sockets they sent it to; Node.js servers, asked just before the broadcast
// reaches them, the sockets it selects there.
func Emit(ctx context.Context, srv *socketio.Server, r *EmitRequest) (*EmitResult, error) {
	return emit(ctx, srv, r, true)
}

// EmitLocalCount is Emit for callers that may not wait on other nodes: an emit with no acks
// reaches the cluster as Emit's does, but Sockets is this node's count.
func EmitLocalCount(ctx context.Context, srv *socketio.Server, r *EmitRequest) (*EmitResult, error) {
	return emit(ctx, srv, r, false)
}

// emit is Emit, or with count false EmitLocalCount.
func emit(ctx context.Context, srv *socketio.Server, r *EmitRequest, count bool) (*EmitResult, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	op, release, err := r.operator(srv)
	if err != nil {
		return nil, err
	}
	defer release()
	args, err := r.args()
	if err != nil {
		return nil, err
	}
	name := r.name()
	if r.Volatile {
		op = op.Volatile()
	}
	if r.AckTimeoutMS <= 0 {
		if !count {
			n, err := op.Emit(r.Event, args...)
			if err != nil {
				return nil, err
			}
			return &EmitResult{Sockets: n, Local: n, Namespace: name}, nil
		}
		reached, err := op.EmitContext(ctx, r.Event, args...)
		if err != nil {
			return nil, fmt.Errorf("%w (the event reached only this node's sockets: %d)", err, reached.Local)
		}
		return &EmitResult{Sockets: reached.Total, Local: reached.Local, Namespace: name, Cluster: clusterOf(reached.Reach)}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.AckTimeoutMS)*time.Millisecond)
	defer cancel()
	res, err := op.EmitWithAck(ctx, r.Event, args...)
	if errors.Is(err, socketio.ErrClusterUnavailable) {
		return nil, fmt.Errorf("%w (the event reached only this node's sockets; their acks are not awaited)", err)
	}
	if err != nil {
		return nil, err
	}
	out := &EmitResult{Sockets: res.Sockets, Acks: make([]AckJSON, 0, len(res.Acks)), TimedOut: res.TimedOut,
		Cluster: clusterOf(res.Reach), Local: res.Sockets, Namespace: name}
	for _, a := range res.Acks {
		j, err := ArgsToJSON(a.Args)
		if err != nil {
			return nil, fmt.Errorf("ack from %s: %w", a.SocketID, err)
		}
		out.Acks = append(out.Acks, AckJSON{Socket: a.SocketID, Args: j})
	}
	if out.TimedOut == nil {
		out.TimedOut = []string{}
	}
	return out, nil
}

func (r *RoomsRequest) validate() error {
	if len(r.Rooms) == 0 {
		return invalid(`"rooms" must list at least one room`)
	}
	for _, room := range r.Rooms {
		if room == "" {
			return invalid("room names must not be empty")
		}
	}
	return nil
}

// Join makes the selected sockets join the rooms. Sockets counts the selected sockets of
// every server that answered in time (see Cluster).
func Join(ctx context.Context, srv *socketio.Server, r *RoomsRequest) (*CountResult, error) {
	return r.apply(ctx, srv, (*socketio.BroadcastOperator).SocketsJoin)
}

// Leave makes the selected sockets leave the rooms; Sockets counts as Join's does.
func Leave(ctx context.Context, srv *socketio.Server, r *RoomsRequest) (*CountResult, error) {
	return r.apply(ctx, srv, (*socketio.BroadcastOperator).SocketsLeave)
}

// apply checks r and applies change, SocketsJoin or SocketsLeave, with its rooms.
func (r *RoomsRequest) apply(ctx context.Context, srv *socketio.Server,
	change func(*socketio.BroadcastOperator, context.Context, ...string) (socketio.Reached, error)) (*CountResult, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	return count(ctx, srv, &r.Selection, func(ctx context.Context, op *socketio.BroadcastOperator) (socketio.Reached, error) {
		return change(op, ctx, r.Rooms...)
	})
}

// Disconnect disconnects the selected sockets (with Close, their whole connections);
// Sockets counts as Join's does.
func Disconnect(ctx context.Context, srv *socketio.Server, r *DisconnectRequest) (*CountResult, error) {
	return count(ctx, srv, &r.Selection, func(ctx context.Context, op *socketio.BroadcastOperator) (socketio.Reached, error) {
		return op.DisconnectSockets(ctx, r.Close)
	})
}

// count applies act to the sockets sel selects, its namespace held meanwhile, and answers
// how many act reached with the servers that answered.
func count(ctx context.Context, srv *socketio.Server, sel *Selection,
	act func(context.Context, *socketio.BroadcastOperator) (socketio.Reached, error)) (*CountResult, error) {
	op, release, err := sel.operator(srv)
	if err != nil {
		return nil, err
	}
	defer release()
	r, err := act(ctx, op)
	return &CountResult{Sockets: r.Total, Cluster: clusterOf(r.Reach)}, err
}

// SocketsResult answers GET /sockets.
type SocketsResult struct {
	Sockets []socketio.SocketInfo `json:"sockets"`
	Cluster *Cluster              `json:"cluster,omitempty"`
}

// Sockets lists the sockets of a namespace, or of one room of it.
func Sockets(ctx context.Context, srv *socketio.Server, namespace, room string) (*SocketsResult, error) {
	sel := Selection{Namespace: namespace}
	if room != "" {
		sel.To = []string{room}
	}
	op, release, err := sel.operator(srv)
	if err != nil {
		return nil, err
	}
	defer release()
	infos, reach, err := op.FetchSockets(ctx)
	if err != nil {
		return nil, err
	}
	return &SocketsResult{Sockets: infos, Cluster: clusterOf(reach)}, nil
}

// RoomsResult answers GET /rooms.
type RoomsResult struct {
	Rooms   []socketio.RoomInfo `json:"rooms"`
	Cluster *Cluster            `json:"cluster,omitempty"`
}

// Rooms lists the rooms of a namespace with their socket counts.
func Rooms(ctx context.Context, srv *socketio.Server, namespace string) (*RoomsResult, error) {
	name, err := (&Selection{Namespace: namespace}).namespace()
	if err != nil {
		return nil, err
	}
	ns, release, err := hold(srv, name)
	if err != nil {
		return nil, err
	}
	defer release()
	rooms, reach, err := ns.Rooms(ctx)
	if err != nil {
		return nil, err
	}
	return &RoomsResult{Rooms: rooms, Cluster: clusterOf(reach)}, nil
}
