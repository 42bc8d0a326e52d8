// Package command is the vocabulary of what the app asks siobridge to do to its Socket.IO
// clients: emit, join, leave, disconnect, and the listings of sockets and rooms. The REST API
// (package proxy) and the actions of a webhook reply (package webhook) both speak it, so that
// {"emit":[...]} in a reply means what POST /emit means and both are refused for the same
// reasons: this package owns the request types, every check made on them (the namespace, the
// selection, reserved event names through socketio.IsReservedEvent, the arguments' JSON with
// its {"$binary":"<base64>"} values) and their execution on a socketio.Server.
//
// It is not HTTP: status codes, body decoding and error bodies are the API's; and it is not
// the reply's own rules (which namespace an item defaults to, which fields a reply may use),
// which are the webhook bridge's. Its errors wrap ErrInvalid or ErrUnknownNamespace so that
// each caller answers them in its own way.
package command
