// Package heldhttp reads and answers the HTTP/1.1 requests that a held long-polling connection
// may carry: a connection engineio took from net/http, whose next requests it reads itself.
// It parses those requests exactly bounded, and hands anything else back to net/http untouched.
//
// A [Reader] keeps what was read of a connection and not yet served, finds where the request
// at its start ends, and parses it when it is a polling request of one path (a GET or POST
// with a sid and a Content-Length, in HTTP/1.1). It is strict: anything unusual is [Foreign],
// for net/http to read by its own rules, and what it accepts http.ReadRequest reads the same
// way, to the same end (FuzzParsePoll, FuzzHeldBoundaries). A [ResponseWriter] keeps a
// handler's response, [AppendHead] encodes a response's status line and header, and a
// [PrefixConn] gives a connection back to net/http with the bytes read of it already.
//
// It is not a general HTTP server: it serves one path's GETs and POSTs and nothing else, writes
// to no connection, and knows nothing of Engine.IO sessions, of the epoll loop, or of when a
// connection is read.
package heldhttp
