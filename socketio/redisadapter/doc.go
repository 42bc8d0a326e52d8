// Package redisadapter is a [socketio.Cluster] engine that spans several processes through one
// Redis server, speaking the protocol of @socket.io/redis-adapter 8 (the classic pub/sub adapter) so
// that siobridge nodes and Node.js Socket.IO servers can share one cluster, and so that
// @socket.io/redis-emitter 5 can emit to siobridge's clients.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	srv := socketio.NewServer(socketio.Options{Cluster: redisadapter.New(redisadapter.Options{Client: rdb})})
//
// Each namespace gets its own adapter, with a random node id. The adapters of one factory
// (one New) share one subscriber connection made from the client, which subscribes to each
// namespace's channels while the namespace exists and unsubscribes when its adapter closes,
// and the goroutines that read it, dispatch what it brings (one message at a time, in the
// order Redis sent them) and publish; so a node holds one subscriber connection to Redis
// however many namespaces it has, dynamic ones included. On the wire, per namespace nsp and
// key prefix (default "socket.io"):
//
//   - broadcasts are PUBLISHed as msgpack [uid, packet, opts] on "<prefix>#<nsp>#", or on
//     "<prefix>#<nsp>#<room>#" when exactly one room is targeted; every node PSUBSCRIBEs
//     "<prefix>#<nsp>#*" and delivers what other nodes sent to its own sockets;
//   - requests (socket queries, remote join/leave/disconnect, broadcasts with acks) go to
//     "<prefix>-request#<nsp>#", answers to "<prefix>-response#<nsp>#" (or the requester's own
//     "<prefix>-response#<nsp>#<uid>#" with Options.PublishOnSpecificResponseChannel).
//     The number of nodes is PUBSUB NUMSUB of the request channel.
//
// What it adds to the Node.js protocol, without disturbing Node.js nodes (which ignore unknown
// fields and channels):
//
//   - siobridge nodes also subscribe to "<prefix>-siobridge#<nsp>#", so that PUBSUB NUMSUB of it
//     tells how many of the nodes are siobridge nodes;
//   - remote join, leave and disconnect requests carry a requestId, and siobridge nodes answer
//     them with how many of their sockets were selected ({"requestId":..,"count":n}); Node.js
//     nodes act on their sockets but do not answer;
//   - so that counts include the sockets of Node.js servers all the same, a count (of
//     BroadcastCount, AddSockets, DelSockets, DisconnectSockets) made while the request
//     channel has subscribers that are not siobridge nodes (NUMSUB of the request channel
//     above that of the presence channel) first sends a SOCKETS request (REMOTE_FETCH when
//     the selection excepts some) with the same selection and "skipSiobridge":true, which
//     those servers answer with their sockets and siobridge nodes leave alone; every siobridge
//     node of a cluster must know that field. With siobridge nodes alone, no such request is
//     sent. Answers on the shared response channel are decoded by their requester only;
//   - the answer to ALL_ROOMS carries "counts" (room name to sockets, socket-id rooms left
//     out); for the room names that Node.js nodes report without counts, Rooms asks every node
//     for the sockets in those rooms (REMOTE_FETCH) and counts them;
//   - a BROADCAST_ACK carries the answering socket's id ("sid") and all of its ack arguments
//     ("args"); Node.js nodes send only the first argument, and no id. A BROADCAST_CLIENT_COUNT
//     carries the ids of the sockets reached ("sids"), so that the requester can name the
//     silent ones;
//   - a broadcast made by BroadcastCount carries "countRequestId" in its opts; siobridge nodes
//     answer it with {"requestId":..,"count":n}, the sockets they sent it to.
//
// Calls that wait for other nodes answer, in the [socketio.Reach] they return, how many
// servers they waited for (every subscriber of the request channel, Node.js servers
// included) and how many answered in time. Errors of calls that cannot reach
// Redis wrap [socketio.ErrClusterUnavailable].
//
// Delivery is at most once, as with the in-memory adapter: a broadcast published while Redis is
// unreachable is lost for the other nodes (this node's sockets still get it, and the loss is
// logged). The subscriber reconnects and subscribes again on its own, and pings an idle
// connection so that a silent one is replaced; [Adapter.Healthy] (a
// [socketio.HealthChecker]) tells whether it is subscribed now, for a readiness probe:
//
//	for _, ns := range srv.Namespaces() {
//		if err := ns.ClusterHealth(); err != nil {
//			return err // not ready
//		}
//	}
//
// Queries (FetchSockets, Rooms, the counts of AddSockets, DelSockets and DisconnectSockets)
// return this node's part with an error when Redis cannot be reached; broadcasts, with or
// without acks, go on serving this node's sockets.
//
// A broadcast with acks from another node is sent to this node's sockets with an ack id from
// the namespace's own counter (socketio.Local.BroadcastWithAck numbers it), so it never meets
// an id already waiting.
//
// The package has three engines, each wire-compatible with its Node.js counterpart, so that
// siobridge and Node.js servers may share a cluster:
//
//   - [New], above: @socket.io/redis-adapter 8's classic pub/sub adapter (createAdapter);
//   - [NewSharded]: the sharded adapter of @socket.io/redis-adapter 8.3 (createShardedAdapter),
//     socket.io-adapter 2.5's ClusterAdapter protocol on Redis 7's sharded pub/sub, over the
//     same kind of shared connection; see its doc;
//   - [NewStreams]: @socket.io/redis-streams-adapter 0.2.3 (createAdapter), the same
//     ClusterAdapter protocol as entries of one Redis stream, nodes known by their
//     heartbeats, and the one engine here that recovers connection state across nodes
//     ([StreamsAdapter] is a [socketio.SessionStore]: a client may come back on any node,
//     siobridge or Node.js); see its doc.
//
// Every engine runs on a Redis Cluster when Options.Client is a *redis.ClusterClient: the
// classic one subscribes on any node (a PUBLISH reaches every node's subscribers) and sums
// PUBSUB NUMSUB over the nodes; the sharded one subscribes each shard channel on the master
// that owns its slot (see NewSharded); the streams one's stream and session keys are keys,
// on the masters that own their slots.
//
// Not supported: serverSideEmit (siobridge has no server-side events; such requests are
// ignored, so a Node.js serverSideEmitWithAck times out waiting for siobridge nodes),
// and connection state recovery with the pub/sub engines.
package redisadapter
