package engineio

import (
	"encoding/json"
	"errors"
	"net/http"
)

// errorCode is an Engine.IO handshake or request error code, sent to the client in a JSON body.
type errorCode int

// The Engine.IO error codes.
const (
	codeUnknownTransport     errorCode = 0
	codeUnknownSID           errorCode = 1
	codeBadHandshakeMethod   errorCode = 2
	codeBadRequest           errorCode = 3
	codeForbidden            errorCode = 4
	codeUnsupportedProtocol  errorCode = 5
	errorCodePayloadTooLarge errorCode = -1 // not on the wire as a code: answered 413
)

var errorMessages = map[errorCode]string{
	codeUnknownTransport:    "Transport unknown",
	codeUnknownSID:          "Session ID unknown",
	codeBadHandshakeMethod:  "Bad handshake method",
	codeBadRequest:          "Bad request",
	codeForbidden:           "Forbidden",
	codeUnsupportedProtocol: "Unsupported protocol version",
}

// Errors that end a session, passed to [SessionHandler.OnClose] beside the reason.
var (
	// ErrSessionClosed is returned by Send on a session that has ended.
	ErrSessionClosed = errors.New("engineio: session closed")
	// ErrSendQueueFull ends a session whose client does not read fast enough: its queue reached
	// Options.MaxQueuedMessages.
	ErrSendQueueFull = errors.New("engineio: send queue full, client too slow")
	// ErrPayloadTooLarge ends a session that sent more than Options.MaxPayload in one request or
	// WebSocket message.
	ErrPayloadTooLarge = errors.New("engineio: payload larger than maxPayload")
	// ErrRequestOverlap ends a polling session that sent a second GET or POST while one was pending.
	ErrRequestOverlap = errors.New("engineio: overlapping polling requests")
	// ErrHeartbeatDirection ends a session whose client sent a ping in v4 (v4 pings go server
	// to client), or a pong in v3 (v3 pings go client to server).
	ErrHeartbeatDirection = errors.New("engineio: invalid heartbeat direction")
	// ErrUnexpectedPacket ends a session that sent a packet type not allowed at that point.
	ErrUnexpectedPacket = errors.New("engineio: unexpected packet type")
)

// The close reasons given to [SessionHandler.OnClose], in Socket.IO's words.
const (
	ReasonTransportClose = "transport close"
	ReasonTransportError = "transport error"
	ReasonPingTimeout    = "ping timeout"
	ReasonParseError     = "parse error"
	ReasonForcedClose    = "forced close"
	ReasonServerShutdown = "server shutting down"
)

// writeError answers a request with the Engine.IO JSON error body.
func writeError(w http.ResponseWriter, code errorCode, message string) {
	if message == "" {
		message = errorMessages[code]
	}
	status := http.StatusBadRequest
	switch code {
	case codeForbidden:
		status = http.StatusForbidden
	case errorCodePayloadTooLarge:
		status = http.StatusRequestEntityTooLarge
		code = codeBadRequest
	}
	body, _ := json.Marshal(struct {
		Code    errorCode `json:"code"`
		Message string    `json:"message"`
	}{code, message})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
