package redisadapter

// This file holds the cluster-wide queries and actions this node asks for: socket listings,
// rooms, and remote join, leave and disconnect, each with its count.

import (
	"context"
	"errors"
	"slices"

	"github.com/siobridge/siobridge/socketio"
)

// FetchSockets implements [socketio.Cluster]. Sockets of nodes that do not answer within ctx
// and RequestTimeout are left out. When Redis cannot be reached, the local sockets are
// returned with the error.
func (a *Adapter) FetchSockets(ctx context.Context, opts socketio.BroadcastOptions) ([]socketio.SocketInfo, socketio.Reach, error) {
	out := a.local.FetchSockets(opts)
	remote, reach, err := a.fetchRemote(ctx, opts)
	out = append(out, remote...)
	sortSockets(out)
	return out, reach, err
}

// fetchRemote asks the other nodes for the sockets opts selects.
func (a *Adapter) fetchRemote(ctx context.Context, opts socketio.BroadcastOptions) ([]socketio.SocketInfo, socketio.Reach, error) {
	all, _, err := a.nodeCounts(ctx)
	if err != nil {
		return nil, socketio.Reach{}, err
	}
	if all <= 1 {
		return nil, socketio.Reach{Nodes: 1, Replied: 1}, nil
	}
	resps, err := a.request(ctx, all-1, func(id string) ([]byte, error) {
		return jsonRequest(wireRequest{UID: a.uid, RequestID: id, Type: typeRemoteFetch, Opts: wireOptsOf(opts)})
	})
	var reach socketio.Reach
	if err == nil {
		reach = socketio.Reach{Nodes: all, Replied: 1 + len(resps)}
	}
	var out []socketio.SocketInfo
	for _, r := range resps {
		list, _ := r.get("sockets").([]any)
		for _, s := range list {
			if info, ok := socketInfoFromWire(s, a.local.Name()); ok {
				out = append(out, info)
			}
		}
	}
	return out, reach, err
}

// AddSockets implements [socketio.Cluster]. Sockets on every node join; the count is this
// node's, plus what the other siobridge nodes report, plus, when servers that are not
// siobridge nodes (Node.js ones) are in the cluster, the sockets they report selected just
// before they act (askForeign), all within RequestTimeout.
func (a *Adapter) AddSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) (socketio.Reached, error) {
	return a.remoteAction(ctx, opts, typeRemoteJoin, func() int {
		return a.local.AddSockets(opts, rooms)
	}, func(r *wireRequest) { r.Rooms = nonNil(rooms) })
}

// DelSockets implements [socketio.Cluster]; counts as AddSockets does.
func (a *Adapter) DelSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) (socketio.Reached, error) {
	return a.remoteAction(ctx, opts, typeRemoteLeave, func() int {
		return a.local.DelSockets(opts, rooms)
	}, func(r *wireRequest) { r.Rooms = nonNil(rooms) })
}

// DisconnectSockets implements [socketio.Cluster]; counts as AddSockets does.
func (a *Adapter) DisconnectSockets(ctx context.Context, opts socketio.BroadcastOptions, close bool) (socketio.Reached, error) {
	return a.remoteAction(ctx, opts, typeRemoteDisconnect, func() int {
		return a.local.DisconnectSockets(opts, close)
	}, func(r *wireRequest) { r.Close = &close })
}

// remoteAction publishes a join, leave or disconnect request, does it locally and gathers
// the counts of the other servers.
func (a *Adapter) remoteAction(ctx context.Context, opts socketio.BroadcastOptions, typ int, local func() int, fill func(*wireRequest)) (socketio.Reached, error) {
	all, siobridge, err := a.nodeCounts(ctx)
	if err != nil {
		// Published all the same: Redis may take the message even if NUMSUB failed. The error
		// tells the caller that the count is this node's only.
		all, siobridge = 0, 0
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	defer cancel()
	// The request for sockets goes first: after a disconnect, or a leave of the rooms it
	// selects by, a server would no longer find the sockets the action selected.
	foreign, ferr := a.askForeign(all-siobridge, opts)
	req, rerr := a.send(a.requestChannel, max(siobridge-1, 0), false, func(id string) ([]byte, error) {
		r := wireRequest{UID: a.uid, RequestID: id, Type: typ, Opts: wireOptsOf(opts)}
		fill(&r)
		return jsonRequest(r)
	})
	// Done once the request is queued: a later broadcast from this node is then published
	// after it, and local sockets act in the same order as remote ones.
	n := local()
	resps, fresps := req.wait(ctx), foreign.wait(ctx)
	r := socketio.Reached{Local: n, Total: n + sumCounts(resps) + sumCounts(fresps)}
	if err == nil && ferr == nil && rerr == nil {
		r.Reach = socketio.Reach{Nodes: max(all, siobridge, 1), Replied: 1 + len(resps) + len(fresps)}
	}
	return r, errors.Join(err, ferr, rerr)
}

// Rooms implements [socketio.Cluster]. Siobridge nodes answer with counts; for room names a
// Node.js node reports (without counts), the sockets in those rooms are fetched from every
// node and counted, so with Node.js nodes in the cluster the wait is up to twice
// RequestTimeout (always bounded by ctx). When Redis cannot be reached, this node's rooms are
// returned with the error.
func (a *Adapter) Rooms(ctx context.Context) ([]socketio.RoomInfo, socketio.Reach, error) {
	local := a.local.Rooms()
	all, _, err := a.nodeCounts(ctx)
	if err != nil {
		return local, socketio.Reach{}, err
	}
	if all <= 1 {
		return local, socketio.Reach{Nodes: 1, Replied: 1}, nil
	}
	counts := make(map[string]int, len(local))
	for _, r := range local {
		counts[r.Name] = r.Sockets
	}
	resps, rerr := a.request(ctx, all-1, func(id string) ([]byte, error) {
		return jsonRequest(wireRequest{UID: a.uid, RequestID: id, Type: typeAllRooms})
	})
	var reach socketio.Reach
	if rerr == nil {
		reach = socketio.Reach{Nodes: all, Replied: 1 + len(resps)}
	}
	uncounted := make(map[string]struct{})
	for _, r := range resps {
		if c, ok := r.get("counts").(*object); ok {
			for i, name := range c.keys {
				if n, ok := asInt(c.vals[i]); ok {
					counts[name] += int(n)
				}
			}
			continue
		}
		for _, name := range asRooms(r.get("rooms")) {
			uncounted[name] = struct{}{}
		}
	}
	if len(uncounted) > 0 {
		names := make([]string, 0, len(uncounted))
		for name := range uncounted {
			names = append(names, name)
		}
		slices.Sort(names)
		sockets, freach, ferr := a.FetchSockets(ctx, socketio.BroadcastOptions{Rooms: names})
		reach = worst(reach, freach)
		rerr = errors.Join(rerr, ferr)
		seen := make(map[string]bool, len(sockets))
		exact := make(map[string]int, len(names))
		for _, s := range sockets {
			if seen[s.ID] {
				continue
			}
			seen[s.ID] = true
			for _, r := range s.Rooms {
				if _, ok := uncounted[r]; ok && r != s.ID {
					exact[r]++
				}
			}
		}
		for _, name := range names {
			counts[name] = exact[name] // the fetch saw every node: it replaces partial counts
		}
	}
	out := make([]socketio.RoomInfo, 0, len(counts))
	for name, n := range counts {
		if n > 0 {
			out = append(out, socketio.RoomInfo{Name: name, Sockets: n})
		}
	}
	slices.SortFunc(out, func(x, y socketio.RoomInfo) int {
		if x.Name < y.Name {
			return -1
		}
		return 1
	})
	return out, reach, rerr
}

// worst is the Reach of a call that asked the cluster twice: the most nodes and the fewest
// replies, so that it never claims a complete answer that was not. A zero Reach (a request
// that failed) says nothing.
func worst(a, b socketio.Reach) socketio.Reach {
	switch {
	case a.Nodes == 0:
		return b
	case b.Nodes == 0:
		return a
	}
	return socketio.Reach{Nodes: max(a.Nodes, b.Nodes), Replied: min(a.Replied, b.Replied)}
}
