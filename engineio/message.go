package engineio

import (
	"encoding/base64"
	"sync"

	"github.com/gorilla/websocket"
)

// Message is one outbound Engine.IO packet, encoded once. The same *Message may be queued on any
// number of sessions: a WebSocket session writes its frame, a polling session its payload form,
// and neither is re-encoded per receiver. A Message is immutable once built.
type Message struct {
	// frame is the WebSocket frame payload: the type digit and data for text packets, the raw
	// bytes for binary messages.
	frame  []byte
	binary bool
	// shared messages are written through one gorilla PreparedMessage, which frames the bytes
	// once for every WebSocket receiver.
	shared   bool
	prepOnce sync.Once
	prepared *websocket.PreparedMessage
}

// NewMessage builds a message packet carrying data. A text message's data is copied; a binary
// message keeps data, which the caller must not change afterwards.
func NewMessage(data []byte, binary bool) *Message {
	if binary {
		return &Message{frame: data, binary: true}
	}
	return newPacket(PacketMessage, data)
}

// NewSharedMessage is [NewMessage] for a message that will be queued on many sessions, such as a
// broadcast: WebSocket receivers write it from one pre-framed copy.
func NewSharedMessage(data []byte, binary bool) *Message {
	m := NewMessage(data, binary)
	m.shared = true
	return m
}

func newPacket(t PacketType, data []byte) *Message {
	frame := make([]byte, 1+len(data))
	frame[0] = '0' + byte(t)
	copy(frame[1:], data)
	return &Message{frame: frame}
}

// Len is the size of the message's data in bytes.
func (m *Message) Len() int {
	if m.binary {
		return len(m.frame)
	}
	return len(m.frame) - 1
}

// writeTo writes the message as one WebSocket frame.
func (m *Message) writeTo(c *websocket.Conn) error {
	typ := websocket.TextMessage
	if m.binary {
		typ = websocket.BinaryMessage
	}
	if !m.shared {
		return c.WriteMessage(typ, m.frame)
	}
	m.prepOnce.Do(func() {
		// NewPreparedMessage only fails for compression errors; compression is off, and a nil
		// prepared message falls back to a plain write below.
		m.prepared, _ = websocket.NewPreparedMessage(typ, m.frame)
	})
	if m.prepared == nil {
		return c.WriteMessage(typ, m.frame)
	}
	return c.WritePreparedMessage(m.prepared)
}

// appendPayload appends the message's long-polling form: the text frame as it is, a binary message
// as 'b' and its base64.
func (m *Message) appendPayload(dst []byte) []byte {
	if !m.binary {
		return append(dst, m.frame...)
	}
	dst = append(dst, 'b')
	return base64.StdEncoding.AppendEncode(dst, m.frame)
}

// payloadLen is the length appendPayload adds.
func (m *Message) payloadLen() int {
	if !m.binary {
		return len(m.frame)
	}
	return 1 + base64.StdEncoding.EncodedLen(len(m.frame))
}
