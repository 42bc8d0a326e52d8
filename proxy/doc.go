// Package proxy is siobridge's public HTTP front: the handler that serves the Socket.IO
// endpoint and the socket.io-client bundle and reverse-proxies every other request to the
// app, and the Prometheus metrics of the front and of the private API (package internal/api).
//
//	pub, err := proxy.NewPublic(proxy.PublicOptions{SocketIO: srv, Path: "/socket.io/", Bundle: bundle, Upstream: app})
//
// The public handler adds nothing to the proxied traffic beyond X-Forwarded-For, -Host and
// -Proto; WebSocket upgrades and streamed responses pass through.
//
// It is not the Socket.IO protocol (package socketio), not the outbound webhook delivery
// (package webhook), not the REST API (package internal/api), and not configuration or
// listeners (cmd/siobridge): it builds http.Handlers and leaves serving them to the caller.
package proxy
