package wsframe

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"
)

// Opcodes of the frames a client sends (RFC 6455 section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// maxClientHeader is the longest header of a client's (masked) frame: 2 bytes, a 64-bit
// length and the mask key.
const maxClientHeader = 14

// maxControlPayload is the largest payload of a control frame (RFC 6455 section 5.5).
const maxControlPayload = 125

// Event is one thing the Reader found: a whole message (OpText, OpBinary) or a ping or pong
// frame (OpPing, OpPong). Op is 0 when the bytes ended before anything was complete.
type Event struct {
	Op byte
	// Data is a message's payload, which belongs to the caller, or a control frame's, which
	// is valid only until the next call to Next.
	Data []byte
}

// Reader parses a client's frames from bytes as they arrive, in reads of any size: it keeps
// what an unfinished frame needs between reads and nothing else. Its zero value is not
// usable: NewReader sets its limit.
type Reader struct {
	maxPayload int64

	// hdr holds the header of the next frame while it is incomplete: hdrLen of its bytes.
	hdr    [maxClientHeader]byte
	hdrLen uint8
	// msgOp is the opcode of the message being read (see msg); it sits here, beside the
	// header's bytes, so that a Reader fits in a connection's struct with no padding.
	msgOp byte

	// The frame whose payload is being read (inFrame), its header parsed.
	inFrame bool
	fin     bool
	op      byte // the frame's opcode
	key     [4]byte
	got     int // payload bytes of the frame read so far
	size    int // the frame's payload length
	ctl     []byte

	// The message being read: msgOp (above) its opcode, msg its data so far. msgOp is 0
	// between messages.
	msg []byte
}

// NewReader returns a Reader for messages of at most maxPayload bytes. It is a value, to be
// kept in the connection's own struct: a connection costs no allocation of its own.
func NewReader(maxPayload int64) Reader {
	return Reader{maxPayload: maxPayload}
}

// Idle reports whether no frame and no message is partly read: the reader holds no bytes.
func (r *Reader) Idle() bool {
	return r.hdrLen == 0 && !r.inFrame && r.msgOp == 0
}

// InFrame reports, while the reader is within a frame whose header it has read, how many
// bytes of the frame's payload it has read (read) of the length its header gave (size). ok
// is false between frames and while a header is incomplete.
func (r *Reader) InFrame() (read, size int, ok bool) {
	return r.got, r.size, r.inFrame
}

// Next consumes bytes from buf until one event is complete or buf is used up, and returns
// how many it consumed and the event, if any (Op 0: buf ended first). Once it has returned an
// error, the connection must be dropped; CloseReply tells what to send the client first. The
// error is a *ProtocolError for a breach of RFC 6455, a *websocket.CloseError for the
// client's close frame, or websocket.ErrReadLimit for a message over the limit.
func (r *Reader) Next(buf []byte) (int, Event, error) {
	n := 0
	for {
		if !r.inFrame {
			k, err := r.readHeader(buf[n:])
			n += k
			if err != nil {
				return n, Event{}, err
			}
			if !r.inFrame {
				return n, Event{}, nil // the header is not complete yet
			}
		}
		// The payload: into the message for data frames, into ctl for control frames.
		take := min(r.size-r.got, len(buf)-n)
		if take > 0 {
			var dst []byte
			if r.op >= OpClose {
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
			return n, Event{}, nil
		}
		r.inFrame = false
		if ev, err := r.frameDone(); err != nil || ev.Op != 0 {
			return n, ev, err
		}
		if n == len(buf) {
			return n, Event{}, nil
		}
	}
}

// readHeader consumes header bytes from buf; once the header is whole it checks it and
// prepares for the payload (inFrame). The first two bytes are checked as soon as they are
// there, so that a frame refused by them is refused without waiting for the rest.
func (r *Reader) readHeader(buf []byte) (int, error) {
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
		// A 64-bit length with its top bit set is refused once it is read, as gorilla
		// refuses it, not after the mask key.
		if r.hdr[1]&0x7f == 127 && r.hdrLen >= 10 && r.hdr[2]&0x80 != 0 {
			return n, websocket.ErrReadLimit
		}
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
func (r *Reader) checkStart(b0, b1 byte) error {
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
	case OpClose, OpPing, OpPong:
		if b1&0x7f > maxControlPayload {
			problems = append(problems, "len > 125 for control")
		}
		if !fin {
			problems = append(problems, "FIN not set on control")
		}
	case OpText, OpBinary:
		if r.msgOp != 0 {
			problems = append(problems, "data before FIN")
		}
	case OpContinuation:
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
		return &ProtocolError{strings.Join(problems, ", ")}
	}
	return nil
}

// startFrame takes a whole frame header, its first two bytes checked, and sets the reader up
// for the frame's payload.
func (r *Reader) startFrame(h []byte) error {
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

	if op < OpClose {
		// A data frame: the message so far and this frame within maxPayload (which also
		// refuses a length with its top bit set).
		if size > uint64(r.maxPayload) || int64(len(r.msg))+int64(size) > r.maxPayload {
			return websocket.ErrReadLimit
		}
		if op != OpContinuation {
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
func (r *Reader) frameDone() (Event, error) {
	if r.op >= OpClose {
		payload := r.ctl
		r.ctl = nil
		switch r.op {
		case OpPing, OpPong:
			return Event{Op: r.op, Data: payload}, nil
		default:
			return Event{}, closeFrameError(payload)
		}
	}
	if !r.fin {
		return Event{}, nil
	}
	ev := Event{Op: r.msgOp, Data: r.msg}
	if ev.Data == nil {
		ev.Data = []byte{}
	}
	r.msgOp, r.msg = 0, nil
	return ev, nil
}

// growMessage extends msg by n bytes for a frame's payload, of which rest are still to come
// (n of them now). The buffer grows with what arrives, not with what a header announces, so
// that a client cannot make the server hold maxPayload bytes per connection by sending
// headers alone; it doubles as it grows, and never past the frame's end.
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
