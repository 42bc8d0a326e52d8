// Package api is siobridge's private REST API, the one the app calls to act on Socket.IO
// clients: POST /emit, /join, /leave and /disconnect, GET /sockets and /rooms, the health and
// readiness checks, /metrics and, when asked, the runtime profiles.
//
//	h := api.New(api.Options{Server: srv, Token: token, Gatherer: reg, Metrics: m})
//
// It speaks JSON only, read strictly (unknown fields and trailing data are errors that say
// where), and shares its vocabulary with webhook replies: it decodes a request, hands it to
// package internal/command, which checks and carries it out, and maps its errors to HTTP
// statuses that name the setting to change. It refuses browsers (an Origin header) and, without
// a token, any Host that is not loopback.
//
// It is not the public front (package proxy) and not the listener (cmd/siobridge).
package api
