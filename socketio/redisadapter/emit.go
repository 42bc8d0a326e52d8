package redisadapter

// This file holds what this node publishes for its emits: broadcasts, broadcasts that count
// the sockets they reach (BroadcastCount), broadcasts with acks, and their messages.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/siobridge/siobridge/socketio"
)

// Broadcast implements [socketio.Cluster]: this node's sockets get the packet at once, the
// other nodes through one PUBLISH made by the publisher goroutine (so the caller never waits
// for Redis). An error (ErrPublishQueueFull, ErrClosed, an encoding error) means other nodes
// will not get it; the count of local sockets is right all the same.
func (a *Adapter) Broadcast(p *socketio.Packet, opts socketio.BroadcastOptions) (int, error) {
	n := a.local.Broadcast(p, opts)
	msg, err := a.encodeBroadcast(p, opts)
	if err != nil {
		return n, fmt.Errorf("redisadapter: broadcast to other nodes: %w", err)
	}
	return n, a.publish(a.broadcastChannel(opts), msg)
}

// broadcastChannel is where a broadcast to opts is published.
func (a *Adapter) broadcastChannel(opts socketio.BroadcastOptions) string {
	if rooms := dedupe(opts.Rooms); len(rooms) == 1 {
		return a.channel + rooms[0] + "#"
	}
	return a.channel
}

// BroadcastCount implements [socketio.Cluster]: a Broadcast whose message also asks
// the other siobridge nodes to answer with how many of their sockets they sent it to (a
// "countRequestId" in its opts, which Node.js servers ignore). When servers that are not
// siobridge nodes (Node.js ones) are on the namespace's request channel too, they are asked
// for the sockets the broadcast selects (askForeign) just before it is published, and those
// are counted. The answers are gathered for at most ctx and RequestTimeout; a server that has
// not answered by then is left out of the total (and of the Reach's replies). When Redis
// cannot be reached, this node's sockets get the packet, the message is published all the
// same, and the error wraps socketio.ErrClusterUnavailable.
func (a *Adapter) BroadcastCount(ctx context.Context, p *socketio.Packet, opts socketio.BroadcastOptions) (socketio.Reached, error) {
	all, siobridge, nerr := a.nodeCounts(ctx)
	if nerr != nil {
		n, err := a.Broadcast(p, opts)
		return socketio.Reached{Local: n, Total: n}, errors.Join(nerr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	defer cancel()
	// The request for sockets goes first. A Node.js server selects the sockets as it handles
	// it, before it handles the broadcast that Redis brings it next: the count is of the
	// sockets it then sends the broadcast to (volatile aside).
	foreign, ferr := a.askForeign(all-siobridge, opts)
	counted, rerr := a.send(a.broadcastChannel(opts), max(siobridge-1, 0), false, func(id string) ([]byte, error) {
		return a.encodeBroadcastCounted(p, opts, id)
	})
	// After the publish is queued, as Broadcast does it the other way round: either way this
	// node's sockets and the others get the broadcasts of one caller in order.
	local := a.local.Broadcast(p, opts)
	resps, fresps := counted.wait(ctx), foreign.wait(ctx)
	r := socketio.Reached{Local: local, Total: local + sumCounts(resps) + sumCounts(fresps)}
	if ferr == nil && rerr == nil {
		r.Reach = socketio.Reach{Nodes: max(all, siobridge, 1), Replied: 1 + len(resps) + len(fresps)}
	}
	if err := errors.Join(ferr, rerr); err != nil {
		rerr = fmt.Errorf("redisadapter: broadcast to other nodes: %w", err)
	}
	return r, rerr
}

// askForeign queues, for a count, a request for the sockets opts selects to the n servers on
// the request channel that are not siobridge nodes (PUBSUB NUMSUB of the request channel less
// that of the presence channel), which Node.js servers answer with a list of them: SOCKETS,
// whose answer lists socket ids, when opts excepts nothing; otherwise REMOTE_FETCH (the
// request that selects with except too), whose answer lists each socket in full, handshake
// included. It is marked skipSiobridge, so that siobridge nodes, which count their own
// sockets in answer to the broadcast or action that follows, leave it to the others. With
// n <= 0 it sends nothing and returns nil: a cluster of siobridge nodes alone pays nothing.
func (a *Adapter) askForeign(n int, opts socketio.BroadcastOptions) (*outstanding, error) {
	if n <= 0 {
		return nil, nil
	}
	return a.send(a.requestChannel, n, true, func(id string) ([]byte, error) {
		r := wireRequest{UID: a.uid, RequestID: id, Type: typeRemoteFetch, Opts: wireOptsOf(opts), SkipSiobridge: true}
		if len(r.Opts.Except) == 0 {
			r.Type, r.Opts, r.Rooms = typeSockets, nil, r.Opts.Rooms
		}
		return jsonRequest(r)
	})
}

// sumCounts adds up the "count" of answers: siobridge nodes', and those to askForeign (see
// pendingRequest).
func sumCounts(resps []*object) int {
	n := 0
	for _, r := range resps {
		if c, ok := asInt(r.get("count")); ok && c > 0 {
			n += int(c)
		}
	}
	return n
}

// encodeBroadcast builds the msgpack message [uid, packet, opts] of the Node.js adapter.
func (a *Adapter) encodeBroadcast(p *socketio.Packet, opts socketio.BroadcastOptions) ([]byte, error) {
	return a.encodeBroadcastCounted(p, opts, "")
}

// encodeBroadcastCounted is encodeBroadcast with, when countID is set, opts.countRequestId:
// siobridge nodes then answer {"requestId": countID, "count": n}.
func (a *Adapter) encodeBroadcastCounted(p *socketio.Packet, opts socketio.BroadcastOptions, countID string) ([]byte, error) {
	pkt, err := packetToWire(p)
	if err != nil {
		return nil, err
	}
	flags := &object{}
	if opts.Volatile {
		flags.set("volatile", true)
	}
	wopts := &object{}
	wopts.set("rooms", nonNil(dedupe(opts.Rooms)))
	wopts.set("except", nonNil(dedupe(opts.Except)))
	wopts.set("flags", flags)
	if countID != "" {
		wopts.set("countRequestId", countID)
	}
	return encodeMsgpack([]any{a.uid, pkt, wopts})
}

// ackRequest is a broadcast with acks this node sent, waiting for the other nodes' counts
// and their sockets' acks.
type ackRequest struct {
	onCount     func(int, []string)
	onAck       func(socketio.AckResult)
	countsLeft  int
	countsDone  chan struct{}
	countsEnded bool
}

// BroadcastWithAck implements [socketio.Cluster]. When Redis cannot be reached it serves this
// node's sockets only and returns an error wrapping socketio.ErrClusterUnavailable with their
// ids. Otherwise it waits for the other nodes' client counts
// until ctx ends or RequestTimeout passes (a node that has not answered by then is left out,
// though a count it sends later while ctx lasts is passed to onLate), and passes on their
// sockets' acks until ctx ends. ctx must end: it bounds how long acks are awaited.
func (a *Adapter) BroadcastWithAck(ctx context.Context, p *socketio.Packet, opts socketio.BroadcastOptions, onAck func(socketio.AckResult), onLate func(int, []string)) ([]string, socketio.Reached, error) {
	// As for Broadcast, Redis being away costs the other nodes' sockets, not this node's: they
	// get the packet, and the error says that the count is theirs alone.
	all, _, nerr := a.nodeCounts(ctx)
	others := all - 1
	if nerr != nil || others <= 0 {
		ids := a.local.BroadcastWithAck(ctx, p, opts, onAck)
		r := socketio.Reached{Local: len(ids), Total: len(ids)}
		if nerr == nil {
			r.Reach = socketio.Reach{Nodes: 1, Replied: 1}
		}
		return ids, r, nerr
	}
	g := &ackGather{onLate: onLate}
	id := newID()
	req := &ackRequest{onCount: g.add, onAck: onAck, countsLeft: others, countsDone: make(chan struct{})}
	msg, err := a.encodeBroadcastRequest(ctx, id, p, opts)
	if err != nil {
		return nil, socketio.Reached{}, fmt.Errorf("redisadapter: broadcast to other nodes: %w", err)
	}
	a.mu.Lock()
	a.ackReqs[id] = req
	a.mu.Unlock()
	context.AfterFunc(ctx, func() { a.forgetAck(id) })
	perr := a.publish(a.requestChannel, msg)
	if perr != nil {
		a.forgetAck(id)
	}
	local := a.local.BroadcastWithAck(ctx, p, opts, onAck)
	g.add(len(local), local)
	var reach socketio.Reach
	if perr == nil {
		replied := awaitCounts(ctx, req, &a.mu, others, a.opts.RequestTimeout, a.ctx.Done())
		reach = socketio.Reach{Nodes: all, Replied: 1 + replied}
	}
	total, ids := g.release()
	return ids, socketio.Reached{Local: len(local), Total: total, Reach: reach}, perr
}

// ackGather is what one BroadcastWithAck gathers: the counts and socket ids of the acks to
// wait for, this node's and the other nodes' as they answer. They are returned together once
// every node's is in (or the wait is over): socketio's EmitWithAck takes "acks == the counts
// so far" for done, and an ack from a quick node must not end the wait before a slower node's
// count is known. A count that comes after release goes to onLate.
type ackGather struct {
	mu       sync.Mutex
	total    int
	named    []string
	released bool
	onLate   func(int, []string)
}

// add counts n acks to wait for, of the sockets ids (those the counting node names).
func (g *ackGather) add(n int, ids []string) {
	g.mu.Lock()
	if g.released {
		g.mu.Unlock()
		g.onLate(n, ids) // a node that answered late
		return
	}
	g.total += n
	g.named = append(g.named, ids...)
	g.mu.Unlock()
}

// release ends the gathering and returns what came in.
func (g *ackGather) release() (int, []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.released = true
	return g.total, g.named
}

// awaitCounts waits until every one of the others nodes has sent req its count, ctx ends,
// timeout passes or stop closes, and returns how many did; mu guards req.countsLeft.
func awaitCounts(ctx context.Context, req *ackRequest, mu *sync.Mutex, others int, timeout time.Duration, stop <-chan struct{}) int {
	timer := time.NewTimer(timeout)
	select {
	case <-req.countsDone:
	case <-ctx.Done():
	case <-timer.C:
	case <-stop:
	}
	timer.Stop()
	mu.Lock()
	defer mu.Unlock()
	return others - max(req.countsLeft, 0)
}

func (a *Adapter) forgetAck(id string) {
	a.mu.Lock()
	delete(a.ackReqs, id)
	a.mu.Unlock()
}

// encodeBroadcastRequest builds the msgpack BROADCAST request; flags.timeout (milliseconds)
// tells the other nodes how long to wait for their sockets' acks.
func (a *Adapter) encodeBroadcastRequest(ctx context.Context, id string, p *socketio.Packet, opts socketio.BroadcastOptions) ([]byte, error) {
	pkt, err := packetToWire(&socketio.Packet{Type: p.Type, Namespace: p.Namespace, Data: p.Data, Attachments: p.Attachments})
	if err != nil {
		return nil, err
	}
	wait := defaultAckWait
	if dl, ok := ctx.Deadline(); ok {
		wait = max(time.Until(dl), time.Millisecond)
	}
	flags := &object{}
	flags.set("timeout", wait.Milliseconds())
	if opts.Volatile {
		flags.set("volatile", true)
	}
	wopts := &object{}
	wopts.set("rooms", nonNil(dedupe(opts.Rooms)))
	wopts.set("except", nonNil(dedupe(opts.Except)))
	wopts.set("flags", flags)
	req := &object{}
	req.set("uid", a.uid)
	req.set("requestId", id)
	req.set("type", int64(typeBroadcast))
	req.set("packet", pkt)
	req.set("opts", wopts)
	return encodeMsgpack(req)
}
