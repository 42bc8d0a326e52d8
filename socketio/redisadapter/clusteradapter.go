package redisadapter

// This file is socket.io-adapter 2.5's ClusterAdapter protocol for one namespace, written once
// for the engines that speak it (the sharded adapter now, the streams adapter next): what a
// node publishes for its calls, the requests it waits on, and its answers to the other
// nodes' messages. The engine gives it a clusterTransport; the rest is here.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/siobridge/siobridge/socketio"
)

// clusterTransport is what an engine gives the ClusterAdapter protocol: a way to every node of
// the namespace, one to a node's responses, and the number of nodes.
type clusterTransport interface {
	// publish sends a message to every node of the namespace without waiting. room is the
	// single room a broadcast without acks is for ("" otherwise), for an engine that has a
	// channel per room.
	publish(m clusterMessage, room string) error
	// publishResponse sends a response to the node uid without waiting.
	publishResponse(uid string, m clusterMessage) error
	// serverCount is how many nodes the namespace has, this one included, as the engine
	// knows it; bounded by ctx.
	serverCount(ctx context.Context) (int, error)
}

// clusterAdapter is one namespace's side of the ClusterAdapter protocol. Its exported methods
// implement socketio.Cluster but Close; onMessage and onResponse take what the engine
// receives.
type clusterAdapter struct {
	local   socketio.Local
	uid     string
	t       clusterTransport
	timeout time.Duration
	log     *slog.Logger
	// onMalformed counts a message from Redis that could not be read.
	onMalformed func()

	selfJSON, selfMsgpack []byte // how this node's messages begin

	ctx    context.Context // ends at close
	cancel context.CancelFunc

	mu       sync.Mutex
	requests map[string]*clusterRequest
	acks     map[string]*ackRequest
}

// clusterRequest gathers the responses (their data) to one request, until expect are in.
type clusterRequest struct {
	expect    int
	responses []*object
	done      chan struct{}
}

func newClusterAdapter(local socketio.Local, uid string, t clusterTransport, opts Options, log *slog.Logger) *clusterAdapter {
	c := &clusterAdapter{
		local:       local,
		uid:         uid,
		t:           t,
		timeout:     opts.RequestTimeout,
		log:         log,
		onMalformed: opts.OnMalformed,
		requests:    make(map[string]*clusterRequest),
		acks:        make(map[string]*ackRequest),
	}
	c.selfJSON, c.selfMsgpack = selfPrefixes(uid)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// close ends the waits of the namespace's requests.
func (c *clusterAdapter) close() {
	c.mu.Lock()
	c.acks = make(map[string]*ackRequest)
	c.mu.Unlock()
	c.cancel()
}

// message is a message of this node.
func (c *clusterAdapter) message(typ int64, data *object) clusterMessage {
	return clusterMessage{uid: c.uid, nsp: c.local.Name(), typ: typ, data: data}
}

// send publishes m to every node (room as clusterTransport.publish).
func (c *clusterAdapter) send(m clusterMessage, room string) error {
	return c.t.publish(m, room)
}

// respond publishes a response to the node uid.
func (c *clusterAdapter) respond(uid string, typ int64, data *object) {
	if err := c.t.publishResponse(uid, c.message(typ, data)); err != nil {
		c.log.Debug("redis adapter: response not sent", "to", uid, "error", err)
	}
}

// expectResponses registers a request that waits for n responses under a new id.
func (c *clusterAdapter) expectResponses(n int) (string, *clusterRequest) {
	id := newRequestID()
	r := &clusterRequest{expect: n, done: make(chan struct{})}
	c.mu.Lock()
	c.requests[id] = r
	c.mu.Unlock()
	return id, r
}

// await returns the responses to request id once all are in, ctx ends, the request timeout
// passes or the adapter closes, and forgets the request.
func (c *clusterAdapter) await(ctx context.Context, id string, r *clusterRequest) []*object {
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case <-r.done:
	case <-ctx.Done():
	case <-timer.C:
	case <-c.ctx.Done():
	}
	c.mu.Lock()
	delete(c.requests, id)
	out := slices.Clone(r.responses)
	c.mu.Unlock()
	if len(out) < r.expect {
		c.log.Debug("redis adapter request: some nodes did not answer in time", "answered", len(out), "expected", r.expect)
	}
	return out
}

// forget drops request id, whose message could not be sent.
func (c *clusterAdapter) forget(id string) {
	c.mu.Lock()
	delete(c.requests, id)
	c.mu.Unlock()
}

// newUID returns 8 random bytes in hex, the shape of ClusterAdapter's uids.
func newUID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newRequestID returns a request id, of the shape of ClusterAdapter's.
func newRequestID() string { return newUID() }

// wireOptsObject is a selection as ClusterAdapter sends it: {rooms, except, flags}.
func wireOptsObject(opts socketio.BroadcastOptions, flags *object) *object {
	if flags == nil {
		flags = &object{}
	}
	if opts.Volatile && !flags.has("volatile") {
		flags.set("volatile", true)
	}
	o := &object{}
	o.set("rooms", stringsToAny(dedupe(opts.Rooms)))
	o.set("except", stringsToAny(dedupe(opts.Except)))
	o.set("flags", flags)
	return o
}

func stringsToAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// singleRoom is the room of a selection of exactly one room, or "".
func singleRoom(opts socketio.BroadcastOptions) string {
	if rooms := dedupe(opts.Rooms); len(rooms) == 1 {
		return rooms[0]
	}
	return ""
}

// broadcastMessage is the BROADCAST of p to opts, with requestID for one with acks.
func (c *clusterAdapter) broadcastMessage(p *socketio.Packet, opts socketio.BroadcastOptions, requestID string, flags *object) (clusterMessage, error) {
	pkt, err := packetToWire(p)
	if err != nil {
		return clusterMessage{}, err
	}
	d := &object{}
	d.set("packet", pkt)
	if requestID != "" {
		d.set("requestId", requestID)
	}
	d.set("opts", wireOptsObject(opts, flags))
	return c.message(clusterBroadcast, d), nil
}

// Broadcast implements [socketio.Cluster]: this node's sockets get p at once, the other
// nodes one message, encoded once, published without waiting (on the room's own channel when
// opts selects one room and the engine has one).
func (c *clusterAdapter) Broadcast(p *socketio.Packet, opts socketio.BroadcastOptions) (int, error) {
	n := c.local.Broadcast(p, opts)
	m, err := c.broadcastMessage(p, opts, "", nil)
	if err == nil {
		err = c.send(m, singleRoom(opts))
	}
	if err != nil {
		return n, fmt.Errorf("redisadapter: broadcast to other nodes: %w", err)
	}
	return n, nil
}

// countRemote asks the other nodes how many of their sockets opts selects: a FETCH_SOCKETS
// marked "siobridgeCount", which siobridge nodes answer with {"count": n} and Node.js nodes,
// which ignore the mark, with the sockets themselves. It returns the request to await, or an
// empty id when there is nothing to wait for.
func (c *clusterAdapter) countRemote(nodes int, opts socketio.BroadcastOptions) (string, *clusterRequest, error) {
	if nodes <= 1 {
		return "", nil, nil
	}
	id, r := c.expectResponses(nodes - 1)
	d := &object{}
	d.set("opts", wireOptsObject(opts, nil))
	d.set("requestId", id)
	d.set("siobridgeCount", true)
	if err := c.send(c.message(clusterFetchSockets, d), ""); err != nil {
		c.forget(id)
		return "", nil, err
	}
	return id, r, nil
}

// counted adds up the answers to countRemote.
func counted(resps []*object) int {
	n := 0
	for _, r := range resps {
		if k, ok := asInt(r.get("count")); ok {
			n += int(max(k, 0))
		} else if list, ok := r.get("sockets").([]any); ok {
			n += len(list)
		}
	}
	return n
}

// act is a call that acts on sockets: count them on the other nodes (first, so that what the
// action changes does not change the count), publish the action, do it here, and gather the
// counts.
func (c *clusterAdapter) act(ctx context.Context, opts socketio.BroadcastOptions, publish func() error, local func() int) (socketio.Reached, error) {
	nodes, nerr := c.t.serverCount(ctx)
	if nerr != nil {
		perr := publish() // Redis may take it even if the count failed
		n := local()
		return socketio.Reached{Local: n, Total: n}, errors.Join(nerr, perr)
	}
	id, req, cerr := c.countRemote(nodes, opts)
	perr := publish()
	n := local()
	r := socketio.Reached{Local: n, Total: n}
	if req != nil {
		resps := c.await(ctx, id, req)
		r.Total += counted(resps)
		r.Reach = socketio.Reach{Nodes: nodes, Replied: 1 + len(resps)}
	} else if cerr == nil {
		r.Reach = socketio.Reach{Nodes: 1, Replied: 1}
	}
	if err := errors.Join(cerr, perr); err != nil {
		r.Reach = socketio.Reach{}
		return r, fmt.Errorf("redisadapter: reach other nodes: %w", err)
	}
	return r, nil
}

// BroadcastCount implements [socketio.Cluster]: the other nodes are asked how many of their
// sockets opts selects just before the broadcast is published, and answer within ctx and
// RequestTimeout.
func (c *clusterAdapter) BroadcastCount(ctx context.Context, p *socketio.Packet, opts socketio.BroadcastOptions) (socketio.Reached, error) {
	return c.act(ctx, opts, func() error {
		m, err := c.broadcastMessage(p, opts, "", nil)
		if err != nil {
			return err
		}
		return c.send(m, singleRoom(opts))
	}, func() int { return c.local.Broadcast(p, opts) })
}

// AddSockets implements [socketio.Cluster] with SOCKETS_JOIN; counts as BroadcastCount.
func (c *clusterAdapter) AddSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) (socketio.Reached, error) {
	return c.act(ctx, opts, func() error {
		d := &object{}
		d.set("opts", wireOptsObject(opts, nil))
		d.set("rooms", stringsToAny(nonNil(rooms)))
		return c.send(c.message(clusterSocketsJoin, d), "")
	}, func() int { return c.local.AddSockets(opts, rooms) })
}

// DelSockets implements [socketio.Cluster] with SOCKETS_LEAVE; counts as BroadcastCount.
func (c *clusterAdapter) DelSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) (socketio.Reached, error) {
	return c.act(ctx, opts, func() error {
		d := &object{}
		d.set("opts", wireOptsObject(opts, nil))
		d.set("rooms", stringsToAny(nonNil(rooms)))
		return c.send(c.message(clusterSocketsLeave, d), "")
	}, func() int { return c.local.DelSockets(opts, rooms) })
}

// DisconnectSockets implements [socketio.Cluster] with DISCONNECT_SOCKETS; counts as
// BroadcastCount.
func (c *clusterAdapter) DisconnectSockets(ctx context.Context, opts socketio.BroadcastOptions, close bool) (socketio.Reached, error) {
	return c.act(ctx, opts, func() error {
		d := &object{}
		d.set("opts", wireOptsObject(opts, nil))
		d.set("close", close)
		return c.send(c.message(clusterDisconnectSockets, d), "")
	}, func() int { return c.local.DisconnectSockets(opts, close) })
}

// FetchSockets implements [socketio.Cluster] with FETCH_SOCKETS.
func (c *clusterAdapter) FetchSockets(ctx context.Context, opts socketio.BroadcastOptions) ([]socketio.SocketInfo, socketio.Reach, error) {
	out := c.local.FetchSockets(opts)
	remote, reach, err := c.fetchRemote(ctx, opts)
	out = append(out, remote...)
	sortSockets(out)
	return out, reach, err
}

func (c *clusterAdapter) fetchRemote(ctx context.Context, opts socketio.BroadcastOptions) ([]socketio.SocketInfo, socketio.Reach, error) {
	nodes, err := c.t.serverCount(ctx)
	if err != nil {
		return nil, socketio.Reach{}, err
	}
	if nodes <= 1 {
		return nil, socketio.Reach{Nodes: 1, Replied: 1}, nil
	}
	id, req := c.expectResponses(nodes - 1)
	d := &object{}
	d.set("opts", wireOptsObject(opts, nil))
	d.set("requestId", id)
	if err := c.send(c.message(clusterFetchSockets, d), ""); err != nil {
		c.forget(id)
		return nil, socketio.Reach{}, err
	}
	resps := c.await(ctx, id, req)
	var out []socketio.SocketInfo
	for _, r := range resps {
		list, _ := r.get("sockets").([]any)
		for _, s := range list {
			if info, ok := socketInfoFromWire(s, c.local.Name()); ok {
				out = append(out, info)
			}
		}
	}
	return out, socketio.Reach{Nodes: nodes, Replied: 1 + len(resps)}, nil
}

// Rooms implements [socketio.Cluster]. ClusterAdapter has no request for rooms: the other
// nodes' sockets are fetched (FETCH_SOCKETS) and their rooms counted, socket-id rooms left
// out.
func (c *clusterAdapter) Rooms(ctx context.Context) ([]socketio.RoomInfo, socketio.Reach, error) {
	local := c.local.Rooms()
	remote, reach, err := c.fetchRemote(ctx, socketio.BroadcastOptions{})
	counts := make(map[string]int, len(local))
	for _, r := range local {
		counts[r.Name] = r.Sockets
	}
	for _, s := range remote {
		for _, r := range s.Rooms {
			if r != s.ID {
				counts[r]++
			}
		}
	}
	out := make([]socketio.RoomInfo, 0, len(counts))
	for name, n := range counts {
		out = append(out, socketio.RoomInfo{Name: name, Sockets: n})
	}
	slices.SortFunc(out, func(x, y socketio.RoomInfo) int {
		if x.Name < y.Name {
			return -1
		}
		return 1
	})
	return out, reach, err
}

// BroadcastWithAck implements [socketio.Cluster] with a BROADCAST that carries a requestId:
// every other node answers with BROADCAST_CLIENT_COUNT, then a BROADCAST_ACK per socket's
// ack. It waits for the counts until ctx ends or RequestTimeout passes (a count that comes
// later while ctx lasts goes to onLate), and passes on acks until ctx ends.
func (c *clusterAdapter) BroadcastWithAck(ctx context.Context, p *socketio.Packet, opts socketio.BroadcastOptions, onAck func(socketio.AckResult), onLate func(int, []string)) ([]string, socketio.Reached, error) {
	nodes, nerr := c.t.serverCount(ctx)
	others := nodes - 1
	if nerr != nil || others <= 0 {
		ids := c.local.BroadcastWithAck(ctx, p, opts, onAck)
		r := socketio.Reached{Local: len(ids), Total: len(ids)}
		if nerr == nil {
			r.Reach = socketio.Reach{Nodes: 1, Replied: 1}
		}
		return ids, r, nerr
	}
	g := &ackGather{onLate: onLate}
	wait := defaultAckWait
	if dl, ok := ctx.Deadline(); ok {
		wait = max(time.Until(dl), time.Millisecond)
	}
	flags := &object{}
	flags.set("timeout", wait.Milliseconds())
	id := newRequestID()
	m, err := c.broadcastMessage(&socketio.Packet{Type: p.Type, Namespace: p.Namespace, Data: p.Data, Attachments: p.Attachments}, opts, id, flags)
	if err != nil {
		return nil, socketio.Reached{}, fmt.Errorf("redisadapter: broadcast to other nodes: %w", err)
	}
	req := &ackRequest{onCount: g.add, onAck: onAck, countsLeft: others, countsDone: make(chan struct{})}
	c.mu.Lock()
	c.acks[id] = req
	c.mu.Unlock()
	context.AfterFunc(ctx, func() { c.forgetAck(id) })
	perr := c.send(m, "")
	if perr != nil {
		c.forgetAck(id)
	}
	local := c.local.BroadcastWithAck(ctx, p, opts, onAck)
	g.add(len(local), local)
	var reach socketio.Reach
	if perr == nil {
		replied := awaitCounts(ctx, req, &c.mu, others, c.timeout, c.ctx.Done())
		reach = socketio.Reach{Nodes: nodes, Replied: 1 + replied}
	}
	total, ids := g.release()
	return ids, socketio.Reached{Local: len(local), Total: total, Reach: reach}, perr
}

func (c *clusterAdapter) forgetAck(id string) {
	c.mu.Lock()
	delete(c.acks, id)
	c.mu.Unlock()
}

// fromSelf reports whether payload is a message this node sent, from its first bytes.
func (c *clusterAdapter) fromSelf(payload []byte) bool {
	return hasSelfPrefix(payload, c.selfJSON, c.selfMsgpack)
}

// decode reads a message from Redis; a malformed one is logged and counted.
func (c *clusterAdapter) decode(payload []byte) (clusterMessage, bool) {
	m, err := decodeClusterMessage(payload)
	if err != nil {
		c.log.Debug("redis adapter: ignoring malformed message", "error", err, "bytes", len(payload))
		if c.onMalformed != nil {
			c.onMalformed()
		}
		return m, false
	}
	return m, m.uid != c.uid && m.nsp == c.local.Name()
}

// onMessage handles a message from another node, on the engine's dispatcher goroutine.
func (c *clusterAdapter) onMessage(payload []byte) {
	if c.ctx.Err() != nil || c.fromSelf(payload) {
		return
	}
	m, ok := c.decode(payload)
	if !ok {
		return
	}
	c.handle(m)
}

// handle acts on a decoded message from another node of the namespace.
func (c *clusterAdapter) handle(m clusterMessage) {
	switch m.typ {
	case clusterBroadcast:
		if m.data.has("requestId") {
			c.onBroadcastWithAck(m)
			return
		}
		p, opts, ok := c.broadcastOf(m)
		if ok {
			c.local.Broadcast(p, opts)
		}
	case clusterSocketsJoin:
		c.local.AddSockets(optsFromWire(m.data.get("opts")), asRooms(m.data.get("rooms")))
	case clusterSocketsLeave:
		c.local.DelSockets(optsFromWire(m.data.get("opts")), asRooms(m.data.get("rooms")))
	case clusterDisconnectSockets:
		c.local.DisconnectSockets(optsFromWire(m.data.get("opts")), truthy(m.data.get("close")))
	case clusterFetchSockets:
		c.onFetchSockets(m)
	case clusterFetchSocketsResponse, clusterBroadcastClientCount, clusterBroadcastAck, clusterServerSideEmitResponse:
		c.settle(m)
	case clusterServerSideEmit:
		c.log.Debug("redis adapter: ignoring serverSideEmit (not supported)", "from", m.uid)
	}
}

// onResponse handles a response on this node's own channel, on the engine's subscriber
// goroutine, so that a request handler waiting for other nodes cannot hold up the answers.
func (c *clusterAdapter) onResponse(payload []byte) {
	if c.ctx.Err() != nil {
		return
	}
	if m, ok := c.decode(payload); ok {
		c.settle(m)
	}
}

// broadcastOf reads a BROADCAST's packet and selection.
func (c *clusterAdapter) broadcastOf(m clusterMessage) (*socketio.Packet, socketio.BroadcastOptions, bool) {
	p, err := packetFromWire(m.data.get("packet"), c.local.Name())
	if err != nil {
		c.log.Debug("redis adapter: ignoring broadcast", "from", m.uid, "error", err)
		return nil, socketio.BroadcastOptions{}, false
	}
	wopts, _ := m.data.get("opts").(*object)
	opts := optsFromWire(wopts)
	if flags, ok := wopts.get("flags").(*object); ok {
		opts.Volatile = truthy(flags.get("volatile"))
	}
	return p, opts, true
}

// settle passes a response to the request of this node it answers.
func (c *clusterAdapter) settle(m clusterMessage) {
	id := propertyKey(m.data.get("requestId"))
	c.mu.Lock()
	if ar := c.acks[id]; ar != nil {
		switch m.typ {
		case clusterBroadcastClientCount:
			n, _ := asInt(m.data.get("clientCount"))
			sids := asRooms(m.data.get("sids")) // siobridge nodes name the sockets reached
			last := false
			if !ar.countsEnded {
				ar.countsLeft--
				if ar.countsLeft <= 0 {
					ar.countsEnded, last = true, true
				}
			}
			c.mu.Unlock()
			ar.onCount(int(max(n, 0)), sids)
			if last {
				close(ar.countsDone)
			}
		case clusterBroadcastAck:
			c.mu.Unlock()
			res, err := ackResultFromWire(m.data)
			if err != nil {
				c.log.Debug("redis adapter: ignoring malformed ack", "error", err)
				return
			}
			ar.onAck(res)
		default:
			c.mu.Unlock()
		}
		return
	}
	if r := c.requests[id]; r != nil && m.typ == clusterFetchSocketsResponse && len(r.responses) < r.expect {
		r.responses = append(r.responses, m.data)
		if len(r.responses) == r.expect {
			close(r.done)
		}
	}
	c.mu.Unlock()
}

// onFetchSockets answers FETCH_SOCKETS with this node's sockets that it selects, or, asked by
// a siobridge count, with how many.
func (c *clusterAdapter) onFetchSockets(m clusterMessage) {
	id, ok := asString(m.data.get("requestId"))
	if !ok || id == "" {
		return
	}
	sockets := c.local.FetchSockets(optsFromWire(m.data.get("opts")))
	d := &object{}
	d.set("requestId", id)
	if truthy(m.data.get("siobridgeCount")) {
		d.set("sockets", []any{})
		d.set("count", int64(len(sockets)))
		c.respond(m.uid, clusterFetchSocketsResponse, d)
		return
	}
	list := make([]any, 0, len(sockets))
	for _, s := range sockets {
		v, err := socketToWire(s)
		if err != nil {
			c.log.Debug("redis adapter: socket cannot be described", "socket", s.ID, "error", err)
			continue
		}
		list = append(list, v)
	}
	d.set("sockets", list)
	c.respond(m.uid, clusterFetchSocketsResponse, d)
}

// socketToWire describes a socket as Node.js' fetchSockets answer does: {id, handshake,
// rooms, data}.
func socketToWire(s socketio.SocketInfo) (*object, error) {
	hs, err := json.Marshal(s.Handshake)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(s.Data)
	if err != nil {
		data = []byte("null")
	}
	h, err := parseArgs(hs, nil)
	if err != nil {
		return nil, err
	}
	d, err := parseArgs(data, nil)
	if err != nil {
		return nil, err
	}
	o := &object{}
	o.set("id", s.ID)
	o.set("handshake", h)
	o.set("rooms", stringsToAny(nonNil(s.Rooms)))
	o.set("data", d)
	return o, nil
}

// onBroadcastWithAck delivers another node's broadcast with acks to this node's sockets and
// answers with their count, then each ack, as ClusterAdapter does; siobridge adds the ids
// of the sockets reached ("sids"), and to each ack its socket ("sid") and all its arguments
// ("args"), which Node.js nodes ignore.
func (c *clusterAdapter) onBroadcastWithAck(m clusterMessage) {
	reqID := propertyKey(m.data.get("requestId"))
	p, opts, ok := c.broadcastOf(m)
	if !ok {
		return
	}
	wopts, _ := m.data.get("opts").(*object)
	answerWithAcks(c.ctx, c.local, p, opts, ackWait(wopts),
		func(r socketio.AckResult) { c.respondAck(m.uid, reqID, r) },
		func(ids []string) {
			d := &object{}
			d.set("requestId", reqID)
			d.set("clientCount", int64(len(ids)))
			d.set("sids", stringsToAny(ids))
			c.respond(m.uid, clusterBroadcastClientCount, d)
		})
}

// respondAck sends one socket's ack to a broadcast with acks: "packet" is its first argument
// (all that Node.js nodes read).
func (c *clusterAdapter) respondAck(uid, reqID string, r socketio.AckResult) {
	var list []any
	if len(r.Args.Raw) > 0 {
		v, err := parseArgs(r.Args.Raw, binaryOnly(r.Args.Attachments))
		if err != nil {
			c.log.Debug("redis adapter: cannot forward ack", "error", err)
			return
		}
		list, _ = v.([]any)
	}
	d := &object{}
	d.set("requestId", reqID)
	if len(list) > 0 {
		d.set("packet", list[0])
	}
	d.set("sid", r.SocketID)
	d.set("args", nonNilAny(list))
	c.respond(uid, clusterBroadcastAck, d)
}
