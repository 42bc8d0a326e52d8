package engineio

import (
	"encoding/base64"
	"encoding/binary"
)

// Message is one outbound Engine.IO packet, encoded once. The same *Message may be queued on any
// number of sessions: a WebSocket session writes its frame, a polling session its payload form,
// and neither is re-encoded per receiver. A Message is immutable once built.
type Message struct {
	// frame is the WebSocket frame payload: the type digit and data for text packets, the raw
	// bytes for binary messages.
	frame  []byte
	binary bool
	// header is the WebSocket frame header (RFC 6455 section 5.2, unmasked as a server's
	// frames are) for frame, built with the message: a WebSocket writer sends header and frame
	// as they are, several messages in one writev.
	header    [maxFrameHeader]byte
	headerLen uint8
	// wire is header and frame side by side, for a text message (whose frame is built with room
	// for its header before it); nil for a binary one. A message written alone is written from
	// it with one write(2): a writev(2) would leave the socket's iovec array in the net package
	// for the connection's life, which for an idle WebSocket is all it keeps of its writes.
	wire []byte
}

// maxFrameHeader is the longest header of an unmasked WebSocket frame.
const maxFrameHeader = 10

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPong   = 0xA
)

// NewMessage builds a message packet carrying data. A text message's data is copied; a binary
// message keeps data, which the caller must not change afterwards.
func NewMessage(data []byte, binary bool) *Message {
	if binary {
		m := &Message{frame: data, binary: true}
		m.setHeader(opBinary)
		return m
	}
	return newPacket(packetMessage, data)
}

func newPacket(t packetType, data []byte) *Message {
	buf := make([]byte, maxFrameHeader+1+len(data))
	frame := buf[maxFrameHeader:]
	frame[0] = '0' + byte(t)
	copy(frame[1:], data)
	m := &Message{frame: frame}
	m.setHeader(opText)
	start := maxFrameHeader - int(m.headerLen)
	copy(buf[start:], m.header[:m.headerLen])
	m.wire = buf[start:]
	return m
}

// setHeader builds the frame header: FIN, the opcode, and the payload length in its shortest
// form.
func (m *Message) setHeader(op byte) {
	m.headerLen = uint8(appendFrameHeader(m.header[:0], op, len(m.frame)))
}

// appendFrameHeader appends an unmasked final frame's header and returns its length.
func appendFrameHeader(dst []byte, op byte, n int) int {
	dst = append(dst, 0x80|op)
	switch {
	case n <= 125:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return len(dst)
}

// Len is the size of the message's data in bytes.
func (m *Message) Len() int {
	if m.binary {
		return len(m.frame)
	}
	return len(m.frame) - 1
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
