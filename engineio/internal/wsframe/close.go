package wsframe

import (
	"encoding/binary"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// ProtocolError is a client's breach of RFC 6455. Its text is gorilla's for the same breach;
// the server answers it with a close frame with status 1002 carrying the text (CloseReply),
// then drops the connection.
type ProtocolError struct{ msg string }

func (e *ProtocolError) Error() string { return "websocket: " + e.msg }

// closeFrameError is what a client's close frame ends reading with: a *websocket.CloseError
// with its status (1005 when it has none), or a protocol error for an invalid status or text.
func closeFrameError(payload []byte) error {
	code, text := websocket.CloseNoStatusReceived, ""
	if len(payload) >= 2 {
		code = int(binary.BigEndian.Uint16(payload))
		if !validCloseCode(code) {
			return &ProtocolError{"bad close code " + strconv.Itoa(code)}
		}
		text = string(payload[2:])
		if !utf8.ValidString(text) {
			return &ProtocolError{"invalid utf8 payload in close frame"}
		}
	}
	return &websocket.CloseError{Code: code, Text: text}
}

// validCloseCode reports whether a client may send the status code (RFC 6455 section 7.4 and
// the IANA registry, as gorilla accepts them).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1013:
		return true
	}
	return code >= 3000 && code <= 4999
}

// CloseReply is the payload of the close frame that answers an error of Next before the
// connection is dropped, as gorilla answers: the client's status echoed (without its text),
// nothing for a close frame without a status, 1009 for a message too large, 1002 and the
// reason for a protocol error. ok is false when nothing is to be sent: for any other error,
// including a *websocket.CloseError with status 1006, which no close frame carries and which
// is how gorilla, and so the caller, reports a connection that ended without one.
func CloseReply(err error) (payload []byte, ok bool) {
	var ce *websocket.CloseError
	var pe *ProtocolError
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return binary.BigEndian.AppendUint16(nil, websocket.CloseMessageTooBig), true
	case errors.As(err, &pe):
		return append(binary.BigEndian.AppendUint16(nil, websocket.CloseProtocolError), pe.msg...), true
	case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure:
		if ce.Code == websocket.CloseNoStatusReceived {
			return nil, true
		}
		return binary.BigEndian.AppendUint16(nil, uint16(ce.Code)), true
	}
	return nil, false
}
