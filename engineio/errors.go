package engineio

import (
	"encoding/json"
	"errors"
	"net/http"
)

// ErrorCode is an Engine.IO handshake or request error code, sent to the client in a JSON body.
type ErrorCode int

// The Engine.IO error codes.
const (
	ErrUnknownTransport      ErrorCode = 0
	ErrUnknownSID            ErrorCode = 1
	ErrBadHandshakeMethod    ErrorCode = 2
	ErrBadRequest            ErrorCode = 3
	ErrForbidden             ErrorCode = 4
	ErrUnsupportedProtocol   ErrorCode = 5
	errorCodePayloadTooLarge ErrorCode = -1 // not on the wire as a code: answered 413
)

var errorMessages = map[ErrorCode]string{
	ErrUnknownTransport:    "Transport unknown",
	ErrUnknownSID:          "Session ID unknown",
	ErrBadHandshakeMethod:  "Bad handshake method",
	ErrBadRequest:          "Bad request",
	ErrForbidden:           "Forbidden",
	ErrUnsupportedProtocol: "Unsupported protocol version",
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
	// ErrHeartbeatDirection ends a v4 session whose client sent a ping (v4 pings go server to client).
	ErrHeartbeatDirection = errors.New("engineio: client ping, invalid heartbeat direction in v4")
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
func writeError(w http.ResponseWriter, code ErrorCode, message string) {
	if message == "" {
		message = errorMessages[code]
	}
	status := http.StatusBadRequest
	switch code {
	case ErrForbidden:
		status = http.StatusForbidden
	case errorCodePayloadTooLarge:
		status = http.StatusRequestEntityTooLarge
		code = ErrBadRequest
	}
	body, _ := json.Marshal(struct {
		Code    ErrorCode `json:"code"`
		Message string    `json:"message"`
	}{code, message})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
