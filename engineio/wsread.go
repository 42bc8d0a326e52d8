package engineio

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// WebSocket opcodes a client may send besides those in message.go.
const (
	opContinuation = 0x0
	opPing         = 0x9
)

// maxClientHeader is the longest header of a client's (masked) frame: 2 bytes, a 64-bit
// length and the mask key.
const maxClientHeader = 14

// maxControlPayload is the largest payload of a control frame (RFC 6455 section 5.5).
const maxControlPayload = 125

// wsProtocolError is a client's breach of RFC 6455. The reader of the connection answers it
// with a close frame with status 1002 carrying the text, then drops the connection.
type wsProtocolError struct{ msg string }

func (e *wsProtocolError) Error() string { return "websocket: " + e.msg }

// errWSEOF is what reading a connection that the client closed gives: the same error gorilla
// gives, a close error with status 1006 (no close frame), so that the session's close reason is
// the same whichever reader saw it.
var errWSEOF error = &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()}

// wsEvent is one thing the frame reader found: a whole message (opText, opBinary), or a
// control frame (opPing, opPong). op is 0 while no frame is complete.
type wsEvent struct {
	op byte
	// data is a message's payload, which belongs to the caller, or a control frame's, which
	// is valid only until the next call to the reader.
	data []byte
}

// wsFrameReader parses the client-to-server direction of a WebSocket (RFC 6455) from bytes as
// they arrive, in reads of any size: it keeps what an unfinished frame needs between reads and
// nothing else, so a connection between messages holds no buffer. Its checks are those of
// gorilla/websocket, which it stands in for: frames must be masked, reserved bits unset,
// opcodes known, control frames final and at most 125 bytes, continuations in order, a close
// frame's status valid and its text UTF-8; a message's data is not checked for UTF-8. A
// message larger than maxPayload fails with websocket.ErrReadLimit.
type wsFrameReader struct {
	maxPayload int64

	// hdr holds the header of the next frame while it is incomplete: hdrLen of its bytes.
	hdr    [maxClientHeader]byte
	hdrLen uint8

	// The frame whose payload is being read (inFrame), its header parsed.
	inFrame bool
	fin     bool
	op      byte // the frame's opcode
	key     [4]byte
	got     int // payload bytes of the frame read so far
	size    int // the frame's payload length
	ctl     []byte

	// The message being read: msgOp its opcode, msg its data so far. msgOp is 0 between
	// messages.
	msgOp byte
	msg   []byte
}

func newWSFrameReader(maxPayload int64) wsFrameReader {
	return wsFrameReader{maxPayload: maxPayload}
}

// idle reports whether no frame is partly read: the reader holds no bytes.
func (r *wsFrameReader) idle() bool {
	return r.hdrLen == 0 && !r.inFrame && r.msgOp == 0
}

// next consumes bytes from buf until one event is complete or buf is used up, and returns how
// many it consumed and the event, if any (op 0: buf ended first). Once it has returned an
// error, the connection must be dropped.
func (r *wsFrameReader) next(buf []byte) (int, wsEvent, error) {
	n := 0
	for {
		if !r.inFrame {
			k, err := r.readHeader(buf[n:])
			n += k
			if err != nil {
				return n, wsEvent{}, err
			}
			if !r.inFrame {
				return n, wsEvent{}, nil // the header is not complete yet
			}
		}
		// The payload: into the message for data frames, into ctl for control frames.
		take := min(r.size-r.got, len(buf)-n)
		if take > 0 {
			var dst []byte
			if r.op >= opClose {
				dst = r.ctl[r.got : r.got+take]
			} else {
				start := len(r.msg)
				r.msg = growMessage(r.msg, take, r.size-r.got)
				dst = r.msg[start:]
			}
			copy(dst, buf[n:n+take])
			maskBytes(dst, r.key, r.got)
			r.got += take
			n += take
		}
		if r.got < r.size {
			return n, wsEvent{}, nil
		}
		r.inFrame = false
		if ev, err := r.frameDone(); err != nil || ev.op != 0 {
			return n, ev, err
		}
		if n == len(buf) {
			return n, wsEvent{}, nil
		}
	}
}

// readHeader consumes header bytes from buf; once the header is whole it checks it and
// prepares for the payload (inFrame). The first two bytes are checked as soon as they are
// there, so that a frame refused by them is refused without waiting for the rest.
func (r *wsFrameReader) readHeader(buf []byte) (int, error) {
	if r.hdrLen == 0 && len(buf) >= 2 {
		if err := r.checkStart(buf[0], buf[1]); err != nil {
			return 0, err
		}
		if want := headerLen(buf[1]); len(buf) >= want {
			// The usual case: the whole header is in buf.
			return want, r.startFrame(buf[:want])
		}
	}
	// Gather it: first the two bytes that tell its length, then the rest.
	n := 0
	for r.hdrLen < 2 && n < len(buf) {
		r.hdr[r.hdrLen] = buf[n]
		r.hdrLen++
		n++
		if r.hdrLen == 2 {
			if err := r.checkStart(r.hdr[0], r.hdr[1]); err != nil {
				return n, err
			}
		}
	}
	if r.hdrLen < 2 {
		return n, nil
	}
	want := headerLen(r.hdr[1])
	k := copy(r.hdr[r.hdrLen:want], buf[n:])
	r.hdrLen += uint8(k)
	n += k
	if int(r.hdrLen) < want {
		return n, nil
	}
	r.hdrLen = 0
	return n, r.startFrame(r.hdr[:want])
}

// headerLen is the length of a masked frame's header from its second byte.
func headerLen(b1 byte) int {
	n := 6 // two bytes and the mask key
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	return n
}

// checkStart checks a frame's first two bytes, as gorilla does.
func (r *wsFrameReader) checkStart(b0, b1 byte) error {
	fin := b0&0x80 != 0
	op := b0 & 0x0f
	var problems []string
	if b0&0x40 != 0 {
		problems = append(problems, "RSV1 set")
	}
	if b0&0x20 != 0 {
		problems = append(problems, "RSV2 set")
	}
	if b0&0x10 != 0 {
		problems = append(problems, "RSV3 set")
	}
	switch op {
	case opClose, opPing, opPong:
		if b1&0x7f > maxControlPayload {
			problems = append(problems, "len > 125 for control")
		}
		if !fin {
			problems = append(problems, "FIN not set on control")
		}
	case opText, opBinary:
		if r.msgOp != 0 {
			problems = append(problems, "data before FIN")
		}
	case opContinuation:
		if r.msgOp == 0 {
			problems = append(problems, "continuation after FIN")
		}
	default:
		problems = append(problems, "bad opcode "+strconv.Itoa(int(op)))
	}
	if b1&0x80 == 0 {
		problems = append(problems, "bad MASK")
	}
	if len(problems) > 0 {
		return &wsProtocolError{strings.Join(problems, ", ")}
	}
	return nil
}

// startFrame takes a whole frame header, its first two bytes checked, and sets the reader up
// for the frame's payload.
func (r *wsFrameReader) startFrame(h []byte) error {
	fin := h[0]&0x80 != 0
	op := h[0] & 0x0f
	var size uint64
	rest := h[2:]
	switch l := h[1] & 0x7f; l {
	case 126:
		size, rest = uint64(binary.BigEndian.Uint16(rest)), rest[2:]
	case 127:
		size, rest = binary.BigEndian.Uint64(rest), rest[8:]
	default:
		size = uint64(l)
	}
	copy(r.key[:], rest)

	if op < opClose {
		// A data frame: the message so far and this frame within MaxPayload (which also
		// refuses a length with its top bit set).
		if size > uint64(r.maxPayload) || int64(len(r.msg))+int64(size) > r.maxPayload {
			return websocket.ErrReadLimit
		}
		if op != opContinuation {
			r.msgOp = op
		}
	} else if size > 0 {
		r.ctl = make([]byte, size)
	}
	r.inFrame, r.fin, r.op = true, fin, op
	r.got, r.size = 0, int(size)
	return nil
}

// frameDone ends a frame whose payload is whole, and returns what it completed.
func (r *wsFrameReader) frameDone() (wsEvent, error) {
	if r.op >= opClose {
		payload := r.ctl
		r.ctl = nil
		switch r.op {
		case opPing, opPong:
			return wsEvent{op: r.op, data: payload}, nil
		default:
			return wsEvent{}, closeFrameError(payload)
		}
	}
	if !r.fin {
		return wsEvent{}, nil
	}
	ev := wsEvent{op: r.msgOp, data: r.msg}
	if ev.data == nil {
		ev.data = []byte{}
	}
	r.msgOp, r.msg = 0, nil
	return ev, nil
}

// growMessage extends msg by n bytes for a frame's payload, of which rest are still to come
// (n of them now). The buffer grows with what arrives, not with what a header announces, so
// that a client cannot make the server hold MaxPayload bytes per connection by sending headers
// alone; it doubles as it grows, and never past the frame's end.
func growMessage(msg []byte, n, rest int) []byte {
	need := len(msg) + n
	if need <= cap(msg) {
		return msg[:need]
	}
	size := min(max(need, 2*cap(msg), 512), len(msg)+rest)
	grown := make([]byte, need, size)
	copy(grown, msg)
	return grown
}

// closeFrameError is what a client's close frame ends reading with: a *websocket.CloseError
// with its status (1005 when it has none), or a protocol error for an invalid status or text.
func closeFrameError(payload []byte) error {
	code, text := websocket.CloseNoStatusReceived, ""
	if len(payload) >= 2 {
		code = int(binary.BigEndian.Uint16(payload))
		if !validCloseCode(code) {
			return &wsProtocolError{"bad close code " + strconv.Itoa(code)}
		}
		text = string(payload[2:])
		if !utf8.ValidString(text) {
			return &wsProtocolError{"invalid utf8 payload in close frame"}
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

// maskBytes unmasks b, whose first byte is the payload's byte at offset pos.
func maskBytes(b []byte, key [4]byte, pos int) {
	pos &= 3
	// Word at a time once aligned on the key.
	for len(b) > 0 && pos != 0 {
		b[0] ^= key[pos]
		b = b[1:]
		pos = (pos + 1) & 3
	}
	k := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k) | uint64(k)<<32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// closeReply is the close frame that answers a read error before the connection is dropped,
// as gorilla answers: the client's status echoed (without its text), 1009 for a message too
// large, 1002 and the reason for a protocol error. ok is false when nothing is to be sent.
func closeReply(err error) (payload []byte, ok bool) {
	var ce *websocket.CloseError
	var pe *wsProtocolError
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return binary.BigEndian.AppendUint16(nil, websocket.CloseMessageTooBig), true
	case errors.As(err, &pe):
		return append(binary.BigEndian.AppendUint16(nil, websocket.CloseProtocolError), pe.msg...), true
	case errors.As(err, &ce) && err != errWSEOF:
		if ce.Code == websocket.CloseNoStatusReceived {
			return nil, true
		}
		return binary.BigEndian.AppendUint16(nil, uint16(ce.Code)), true
	}
	return nil, false
}
