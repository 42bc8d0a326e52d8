// Package proxy is siobridge's HTTP front: the private REST API the app calls to act on
// Socket.IO clients, the public handler that serves the Socket.IO endpoint and the
// socket.io-client bundle and reverse-proxies every other request to the app, and the
// Prometheus metrics of both.
//
// The two handlers are meant for two listeners:
//
//	api := proxy.NewAPI(proxy.APIOptions{Server: srv, Token: token, Gatherer: reg, Metrics: m})
//	pub, err := proxy.NewPublic(proxy.PublicOptions{SocketIO: srv, Path: "/socket.io/", Bundle: bundle, Upstream: app})
//
// The API speaks JSON only and shares its command vocabulary (emit, join, leave, disconnect)
// with webhook replies: it decodes requests, hands them to package internal/command, which
// checks and carries them out, and maps its errors to HTTP statuses. The public handler adds nothing to the
// proxied traffic beyond X-Forwarded-For, -Host and -Proto; WebSocket upgrades and streamed
// responses pass through.
//
// It is not the Socket.IO protocol (package socketio), not the outbound webhook delivery
// (package webhook), and not configuration or listeners (cmd/siobridge): it builds
// http.Handlers and leaves serving them to the caller.
package proxy
