package redisadapter

// This file holds the requests this node waits on: answers are gathered by request id, on the
// subscriber goroutine, until every node expected has answered or the wait ends.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// pendingRequest gathers the answers to one request.
type pendingRequest struct {
	expect    int
	responses []*object
	done      chan struct{}
	// sockets marks a count's request for sockets (askForeign): each answer is kept as
	// {"count": n}, n the sockets it lists, read without decoding them.
	sockets bool
}

// request publishes the request that build makes with a new request id on the request
// channel, runs queued once it is queued, and, when expect > 0, gathers that many answers
// until ctx ends, RequestTimeout passes or the adapter closes. Nodes that did not answer in
// time are left out, without error.
func (a *Adapter) request(ctx context.Context, expect int, build func(id string) ([]byte, error), queued ...func()) ([]*object, error) {
	return a.requestOn(ctx, a.requestChannel, expect, build, queued...)
}

// requestOn is request published on channel.
func (a *Adapter) requestOn(ctx context.Context, channel string, expect int, build func(id string) ([]byte, error), queued ...func()) ([]*object, error) {
	o, err := a.send(channel, expect, false, build)
	for _, f := range queued {
		f()
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	defer cancel()
	return o.wait(ctx), nil
}

// outstanding is a request queued for the publisher, whose answers are gathered until wait.
type outstanding struct {
	a  *Adapter
	id string
	p  *pendingRequest // nil when no answer is awaited
}

// send queues the request that build makes with a new request id on channel; when expect >
// 0, the answers to it are gathered from then on (with sockets, as answers to a count's
// request for sockets: see pendingRequest). A caller that gets an outstanding must wait on
// it.
func (a *Adapter) send(channel string, expect int, sockets bool, build func(id string) ([]byte, error)) (*outstanding, error) {
	id := newID()
	payload, err := build(id)
	if err != nil {
		return nil, fmt.Errorf("redisadapter: encode request: %w", err)
	}
	o := &outstanding{a: a, id: id}
	if expect > 0 {
		o.p = &pendingRequest{expect: expect, done: make(chan struct{}), sockets: sockets}
		a.mu.Lock()
		a.pending[id] = o.p
		a.mu.Unlock()
	}
	if err := a.publish(channel, payload); err != nil {
		o.forget()
		return nil, err
	}
	return o, nil
}

// wait returns the answers gathered once every one expected is in, ctx ends or the adapter
// closes, and stops gathering them. A nil outstanding has none.
func (o *outstanding) wait(ctx context.Context) []*object {
	if o == nil || o.p == nil {
		return nil
	}
	defer o.forget()
	select {
	case <-o.p.done:
	case <-ctx.Done():
	case <-o.a.ctx.Done():
	}
	o.a.mu.Lock()
	out := slices.Clone(o.p.responses)
	o.a.mu.Unlock()
	if len(out) < o.p.expect {
		o.a.log.Debug("redis adapter request: some nodes did not answer in time", "answered", len(out), "expected", o.p.expect)
	}
	return out
}

func (o *outstanding) forget() {
	if o.p == nil {
		return
	}
	o.a.mu.Lock()
	delete(o.a.pending, o.id)
	o.a.mu.Unlock()
}

// onResponse handles an answer from another node, on the subscriber goroutine.
func (a *Adapter) onResponse(payload []byte) {
	if id, ok := jsonRequestID(payload); ok {
		// Every node gets the answers on the shared response channel: only the requester
		// decodes them.
		a.mu.Lock()
		p, ar := a.pending[id], a.ackReqs[id]
		a.mu.Unlock()
		if p == nil && ar == nil {
			return
		}
		if p != nil && p.sockets {
			a.onSocketCount(p, payload)
			return
		}
	}
	resp, err := decodeMessage(payload)
	if err != nil {
		a.log.Debug("redis adapter: ignoring malformed response", "error", err)
		return
	}
	id := propertyKey(resp.get("requestId"))
	typ, _ := asInt(resp.get("type"))
	a.mu.Lock()
	if ar := a.ackReqs[id]; ar != nil {
		switch typ {
		case typeBroadcastClientCount:
			n, _ := asInt(resp.get("clientCount"))
			sids := asRooms(resp.get("sids")) // siobridge nodes name the sockets they reached
			last := false
			if !ar.countsEnded {
				ar.countsLeft--
				if ar.countsLeft <= 0 {
					ar.countsEnded, last = true, true
				}
			}
			a.mu.Unlock()
			// Counted before the waiter is woken, so the total it passes on includes this one.
			ar.onCount(int(n), sids)
			if last {
				close(ar.countsDone)
			}
		case typeBroadcastAck:
			a.mu.Unlock()
			res, err := ackResultFromWire(resp)
			if err != nil {
				a.log.Debug("redis adapter: ignoring malformed ack", "error", err)
				return
			}
			ar.onAck(res)
		default:
			a.mu.Unlock()
		}
		return
	}
	if p := a.pending[id]; p != nil && len(p.responses) < p.expect {
		p.responses = append(p.responses, resp)
		if len(p.responses) == p.expect {
			close(p.done)
		}
	}
	a.mu.Unlock()
}

// onSocketCount keeps an answer to a count's request, {"requestId":..,"sockets":[..]}, as
// {"count": n}, reading the sockets it lists (ids, or sockets in full) without decoding
// them, so that a Node.js server's answer listing many holds the subscriber goroutine as
// little as it can.
func (a *Adapter) onSocketCount(p *pendingRequest, payload []byte) {
	var answer struct {
		Sockets []skipped `json:"sockets"`
	}
	if err := json.Unmarshal(payload, &answer); err != nil {
		a.log.Debug("redis adapter: ignoring malformed response", "error", err)
		return
	}
	count := &object{}
	count.set("count", int64(len(answer.Sockets)))
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(p.responses) < p.expect {
		p.responses = append(p.responses, count)
		if len(p.responses) == p.expect {
			close(p.done)
		}
	}
}

// skipped is any JSON value, left undecoded.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }
