// Package engineio implements the server side of the Engine.IO protocol, version 4, and version
// 3 beside it with Options.AllowEIO3 (socket.io-client 2.x; JSONP polling included): the
// transport layer under Socket.IO. It owns the HTTP long-polling and WebSocket transports, the handshake, the
// upgrade from polling to WebSocket, the server-driven heartbeat and the per-session send queue.
//
// It knows nothing of Socket.IO: a session carries opaque text and binary messages. The layer above
// receives them through a [SessionHandler] and sends with [Session.Send], where a [Message] built once
// can be queued on any number of sessions (a broadcast is encoded once, whatever the receivers'
// transports). A WebSocket that keeps up is written to by Send itself, on the caller's
// goroutine. A burst of broadcasts sends with [Session.EnqueueBatched] instead, which defers
// each receiver's writer until [Server.Flush] (or at most 20 ms), so that a receiver gets the
// burst's messages in one system call rather than one each.
//
// Words: polling is the transport; a poll is one of its GETs, which waits for what the server
// sends (a POST carries what the client sends); a held connection is a polling client's HTTP
// connection that the server took from net/http to park its polls without a goroutine
// (Options.PollingHandoff); the poller is the server's epoll loop, which reads WebSockets and
// held connections (epoller, in the source).
//
// Goroutines: on Linux, a WebSocket session has no goroutine while it is idle. One poller
// goroutine per server waits on epoll for all of its WebSockets and hands each that has bytes to
// read to a reader goroutine, which runs only while it reads (at most 256 at once per server);
// a writer goroutine runs only while the session's send queue has something. Elsewhere, or with
// Options.DisableWebSocketPoller, or over TLS, a WebSocket session has a reader goroutine of its
// own for its whole life. For a polling session the POST request's goroutine is the reader and
// the pending GET request's goroutine writes; with Options.PollingHandoff, a GET with nothing
// to answer parks on its held connection with no goroutine, and whoever queues the next message
// writes its answer.
// Heartbeats of all sessions share one runtime timer and a heap of due times, not a timer per
// session, and the writers EnqueueBatched defers share another. With Options.HandshakeRate,
// one janitor goroutine per server prunes the per-address rate limiter. Every goroutine the
// package starts ends when its session (or, for the janitor, its server) ends, and
// [Server.Close] waits for them.
//
// Limits: Options.MaxSessions, MaxSessionsPerAddr and HandshakeRate refuse handshakes (403, code
// 4, a message naming the limit); MaxQueuedMessages closes a client too slow to read; MaxPayload
// one that sends too much at once. Options.OnLimit reports each hit, so the layer above can count
// them without this package knowing of any metrics library.
package engineio
