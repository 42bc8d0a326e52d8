// Package socketio implements the server side of the Socket.IO protocol, version 5, on top of
// package engineio: packets, namespaces, sockets, rooms, broadcasts and acknowledgements.
//
// It knows nothing of webhooks or HTTP routes beyond its own endpoint: the sidecar drives it
// through the same small API an embedding Go program uses:
//
//	srv := socketio.NewServer(socketio.Options{})
//	srv.Of("/chat").OnConnect(func(s *socketio.Socket) {
//		s.On("message", func(e *socketio.Event) {
//			srv.Of("/chat").To("lobby").Emit("message", e.Raw)
//		})
//	})
//	http.Handle("/socket.io/", srv)
//
// Handlers run on the connection's reader goroutine, one at a time and in the client's order;
// they must not block (hand slow work such as an HTTP call to another goroutine). Authorizers,
// which decide on a namespace CONNECT, run on a goroutine of their own and may block.
//
// With "*" in [Options].Namespaces, clients make the namespaces they connect to: such a
// namespace is dynamic ([Namespace.Dynamic]), gets the [Server.OnNamespace] handlers, and is
// removed once no socket (nor CONNECT being authorized, nor [Server.Hold]) keeps it;
// [Options].MaxDynamicNamespaces bounds how many exist at once.
//
// A namespace keeps its sockets on this node and their rooms itself. A broadcast is encoded
// once and the same bytes are queued on every receiver's Engine.IO session. To span several
// processes, [Options].Cluster gives each namespace a [Cluster] engine (socketio/redisadapter
// speaks the protocol of Node's Redis adapter): broadcasts and socket queries then go through
// it to the other nodes, it reaches this node's sockets through the namespace's [Local] side,
// and the calls that wait for other nodes return what they reached ([Reached], [Reach]).
//
// With [Options].Recovery, namespaces do connection state recovery as Socket.IO 4.6+ does: a
// client whose connection drops and that comes back in time keeps its socket id, rooms and
// data, and gets the stored events it missed before anything new ([Socket.Recovered] is then
// true). A namespace without a cluster engine keeps the sessions in memory; one whose engine
// is a [SessionStore] keeps them there, and one whose engine is not has no recovery.
package socketio
