// Package edge guards siobridge's public listener: it refuses requests whose boundaries a
// front proxy and net/http could read differently, bounds request headers, stalled bodies and
// open connections, and answers what it refuses with a clear status before any handler sees
// the request.
//
// It is not a parser: net/http reads every request. The guard watches the bytes net/http
// reads, finds where each request ends exactly as net/http does, and keeps a verdict that the
// Handler answers.
package edge
