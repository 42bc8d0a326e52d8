package socketio

// This file implements the Socket.IO protocol v5 packet format
// (https://github.com/socketio/socket.io-protocol), wire compatible with the
// reference socket.io-parser:
//
//	<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]
//
// The decoder keeps the JSON payload as raw bytes: most packets are routed by
// namespace and event name only, so full decoding is left to decodeArgs and
// eventName, which the caller runs when (and if) it needs the values.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/siobridge/siobridge/internal/jsonw"
)

// PacketType is the Socket.IO packet type, the first character of every
// encoded packet.
type PacketType byte

// Packet types, numbered as on the wire.
const (
	// PacketConnect asks to join a namespace (client) or grants it (server).
	PacketConnect PacketType = iota
	// PacketDisconnect leaves a namespace.
	PacketDisconnect
	// PacketEvent carries an event name and its arguments.
	PacketEvent
	// PacketAck answers an event that carried an ack id.
	PacketAck
	// PacketConnectError refuses a namespace connection.
	PacketConnectError
	// PacketBinaryEvent is an event whose arguments include binary attachments.
	PacketBinaryEvent
	// PacketBinaryAck is an ack whose arguments include binary attachments.
	PacketBinaryAck
)

// String returns the protocol name of t (as used by the spec), so logs read
// like the spec; unknown values print as PacketType(n).
func (t PacketType) String() string {
	switch t {
	case PacketConnect:
		return "CONNECT"
	case PacketDisconnect:
		return "DISCONNECT"
	case PacketEvent:
		return "EVENT"
	case PacketAck:
		return "ACK"
	case PacketConnectError:
		return "CONNECT_ERROR"
	case PacketBinaryEvent:
		return "BINARY_EVENT"
	case PacketBinaryAck:
		return "BINARY_ACK"
	}
	return "PacketType(" + strconv.Itoa(int(t)) + ")"
}

// isBinary reports whether packets of type t carry an attachment count and
// are followed by binary messages.
func (t PacketType) isBinary() bool {
	return t == PacketBinaryEvent || t == PacketBinaryAck
}

// Packet is one decoded or to-be-encoded Socket.IO packet.
type Packet struct {
	Type PacketType
	// Namespace is "/" when absent on the wire; never empty after decoding.
	Namespace string
	// ID is the ack id, meaningful only when HasID.
	ID uint64
	// HasID tells whether the packet carries an ack id (0 is a valid id).
	HasID bool
	// Data is the JSON payload exactly as on the wire (placeholders
	// included), nil when absent. Decoded packets own this memory.
	Data json.RawMessage
	// Attachments are the binary attachments, in order (for
	// PacketBinaryEvent/PacketBinaryAck). Decoded packets own this memory.
	Attachments [][]byte
}

// errParse is wrapped by every error reporting malformed input (packets,
// payloads, placeholders), so callers can tell a misbehaving peer, which
// warrants closing the connection, from a local failure:
// errors.Is(err, errParse). A sentinel is safe here because it is never
// mutated.
var errParse = errors.New("socketio: parse error")

// parseError carries the reason for a parse failure while still matching
// errParse with errors.Is. Reasons are constant strings, never echoes of
// peer input, so logging them cannot be abused to flood or forge logs.
type parseError struct{ reason string }

func (e *parseError) Error() string { return errParse.Error() + ": " + e.reason }
func (e *parseError) Unwrap() error { return errParse }

// Preallocated errors: malformed input is peer-controlled, so rejecting it
// should not cost allocations.
var (
	errEmpty         = &parseError{"empty packet"}
	errType          = &parseError{"unknown packet type"}
	errAttachCount   = &parseError{"invalid attachment count"}
	errTooMany       = &parseError{"too many attachments"}
	errAckID         = &parseError{"invalid ack id"}
	errJSON          = &parseError{"invalid JSON payload"}
	errPayload       = &parseError{"invalid payload for packet type"}
	errMissing       = &parseError{"missing payload"}
	errReserved      = &parseError{"reserved event name"}
	errTextInBinary  = &parseError{"text message while awaiting binary attachments"}
	errUnexpectedBin = &parseError{"binary message while no attachment is awaited"}
	errNotArray      = &parseError{"payload is not a JSON array"}
	errPlaceholder   = &parseError{"invalid attachment placeholder"}
	errEventName     = &parseError{"invalid event name"}
	errTrailing      = &parseError{"trailing data after JSON payload"}
)

// defaultMaxAttachments bounds attachments per packet when
// decoder.MaxAttachments is unset; real clients send a handful at most.
const defaultMaxAttachments = 10

// maxPrealloc caps the attachment slice allocated from a header count, so a
// generous MaxAttachments does not turn a short header into a big allocation:
// beyond this the slice grows as attachments actually arrive.
const maxPrealloc = 16

// appendEncode appends the text form of p (the part sent as one Engine.IO
// text message) to dst; for binary types, each of p.Attachments is then sent
// as its own binary message, in order.
//
// It writes exactly what socket.io-parser's encoder writes: the type; for
// binary types the attachment count len(p.Attachments) and "-" (callers
// should use PacketEvent/PacketAck when there are no attachments: decoders,
// this one included, refuse a count of 0); the
// namespace followed by "," unless it is "/" or "" (the "," is written even
// when nothing follows, e.g. "1/admin,"); the ack id when p.HasID; then
// p.Data verbatim. The namespace must start with "/" and contain no ",", and
// Data must be valid JSON: they are not checked here, as they come from
// trusted code on the hot path.
func appendEncode(dst []byte, p *Packet) []byte {
	dst = strconv.AppendUint(dst, uint64(p.Type), 10)
	if p.Type.isBinary() {
		dst = strconv.AppendInt(dst, int64(len(p.Attachments)), 10)
		dst = append(dst, '-')
	}
	if p.Namespace != "" && p.Namespace != "/" {
		dst = append(dst, p.Namespace...)
		dst = append(dst, ',')
	}
	if p.HasID {
		dst = strconv.AppendUint(dst, p.ID, 10)
	}
	return append(dst, p.Data...)
}

// decoder reassembles packets from Engine.IO messages: one text message,
// then for binary packets exactly N binary messages. Not safe for concurrent
// use (one per connection).
type decoder struct {
	pending *Packet // binary packet awaiting attachments, nil otherwise
	lastNsp string  // last custom namespace, reused to avoid a string allocation per packet

	// MaxAttachments bounds the attachment count a header may announce;
	// more is an error. 0 (or less) means a default of 10. It and want are
	// int32 so that the two share a word: a decoder is kept per connection.
	MaxAttachments int32
	want           int32 // attachments pending needs in total
}

// DecodeText decodes a text message. It returns the complete packet, or nil
// while attachments are awaited. A text message while attachments are
// awaited is an error (the partial packet is dropped). msg is not retained.
func (d *decoder) DecodeText(msg []byte) (*Packet, error) {
	if d.pending != nil {
		d.Reset()
		return nil, errTextInBinary
	}
	if len(msg) == 0 {
		return nil, errEmpty
	}
	t := PacketType(msg[0] - '0')
	if msg[0] < '0' || t > PacketBinaryAck {
		return nil, errType
	}
	p := 1

	attachments := 0
	if t.isBinary() {
		limit := int(d.MaxAttachments)
		if limit <= 0 {
			limit = defaultMaxAttachments
		}
		start := p
		for p < len(msg) && isDigit(msg[p]) {
			attachments = attachments*10 + int(msg[p]-'0')
			if attachments > limit {
				// Checked per digit, so the count can never overflow.
				return nil, errTooMany
			}
			p++
		}
		// Zero is refused like socket.io-parser (since 4.2.5) does: a binary
		// packet without attachments is never produced by its encoder.
		if p == start || attachments == 0 || p == len(msg) || msg[p] != '-' {
			return nil, errAttachCount
		}
		p++
	}

	nsp := "/"
	if p < len(msg) && msg[p] == '/' {
		end := len(msg)
		next := len(msg)
		for i := p; i < len(msg); i++ {
			if msg[i] == ',' {
				end, next = i, i+1
				break
			}
		}
		nsp = d.namespace(msg[p:end])
		p = next
	}

	var id uint64
	hasID := false
	if p < len(msg) && isDigit(msg[p]) {
		hasID = true
		for ; p < len(msg) && isDigit(msg[p]); p++ {
			c := uint64(msg[p] - '0')
			if id > (math.MaxUint64-c)/10 {
				return nil, errAckID
			}
			id = id*10 + c
		}
	}

	var data []byte
	if p < len(msg) {
		data = msg[p:]
	}
	if err := checkPayload(t, data); err != nil {
		return nil, err
	}

	pkt := &Packet{Type: t, Namespace: nsp, ID: id, HasID: hasID}
	if data != nil {
		// Copied: the caller may reuse msg for the next message.
		pkt.Data = slices.Clone(json.RawMessage(data))
	}
	if t.isBinary() {
		pkt.Attachments = make([][]byte, 0, min(attachments, maxPrealloc))
		d.pending, d.want = pkt, int32(attachments) // attachments <= MaxAttachments
		return nil, nil
	}
	return pkt, nil
}

// DecodeBinary adds one attachment; it returns the packet when the last one
// arrives, nil before. A binary message when none is awaited is an error.
// msg is copied, as the caller may reuse the buffer.
func (d *decoder) DecodeBinary(msg []byte) (*Packet, error) {
	if d.pending == nil {
		return nil, errUnexpectedBin
	}
	pkt := d.pending
	// append to an empty non-nil slice, so an empty attachment is []byte{}
	// whether msg is nil or not.
	pkt.Attachments = append(pkt.Attachments, append([]byte{}, msg...))
	if len(pkt.Attachments) < int(d.want) {
		return nil, nil
	}
	d.pending, d.want = nil, 0
	return pkt, nil
}

// Reset drops any partial packet, e.g. when the transport reconnects.
func (d *decoder) Reset() {
	d.pending, d.want = nil, 0
}

// namespace returns b as a string, reusing the previous one when equal:
// connections usually stick to one namespace, so this saves an allocation
// per packet.
func (d *decoder) namespace(b []byte) string {
	if string(b) == "/" {
		return "/"
	}
	if string(b) != d.lastNsp {
		d.lastNsp = string(b)
	}
	return d.lastNsp
}

// checkPayload enforces socket.io-parser's isPayloadValid for t. Unlike
// socket.io-parser, which only validates a payload when one is present, the
// payload is required where the spec says it is mandatory (EVENT, ACK and
// their binary forms) and for CONNECT_ERROR, which is meaningless without
// its reason.
func checkPayload(t PacketType, data []byte) error {
	if data == nil {
		switch t {
		case PacketConnect, PacketDisconnect:
			return nil
		}
		return errMissing
	}
	if t == PacketDisconnect {
		return errPayload
	}
	if !json.Valid(data) {
		return errJSON
	}
	// json.Valid vouched for the structure, so the first non-space byte
	// tells the JSON type of the whole payload.
	i := skipSpace(data, 0)
	switch t {
	case PacketConnect:
		if data[i] != '{' {
			return errPayload
		}
	case PacketConnectError:
		if data[i] != '{' && data[i] != '"' {
			return errPayload
		}
	case PacketAck, PacketBinaryAck:
		if data[i] != '[' {
			return errPayload
		}
	case PacketEvent, PacketBinaryEvent:
		if data[i] != '[' {
			return errPayload
		}
		i = skipSpace(data, i+1)
		switch c := data[i]; {
		case c == '"':
			end, escaped := scanString(data, i)
			reserved := false
			if escaped {
				// Rare: only a peer trying to smuggle a reserved name in would
				// escape plain ASCII, so decoding here is affordable.
				name, err := unquote(data[i:end], true)
				if err != nil {
					return err
				}
				reserved = IsReservedEvent(name)
			} else {
				// Compared in place: no allocation per event.
				reserved = IsReservedEvent(string(data[i+1 : end-1]))
			}
			if reserved {
				return errReserved
			}
		case c == '-' || isDigit(c):
			// A number: already validated by json.Valid.
		default:
			// Empty array, or a name that is neither string nor number.
			return errPayload
		}
	}
	return nil
}

// IsReservedEvent reports names socket.io refuses as event names because its
// own API emits them (see RESERVED_EVENTS in socket.io-parser): the decoder
// refuses them from clients, and no emit sends them.
func IsReservedEvent(name string) bool {
	switch name {
	case "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener":
		return true
	}
	return false
}

// eventName returns the event name of an EVENT/BINARY_EVENT payload (the
// first array element, which may be a string or a number: for a number, its
// JSON text as on the wire) without decoding the rest, and the raw remaining
// args as a JSON array (e.g. `["foo",1,{"a":2}]` -> "foo", `[1,{"a":2}]`).
//
// Only the array brackets and the first element are checked: the rest is
// assumed valid, as it is for any Data that DecodeText returned. rest is a
// new slice that does not alias data.
func eventName(data json.RawMessage) (name string, rest json.RawMessage, err error) {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '[' {
		return "", nil, errNotArray
	}
	i = skipSpace(data, i+1)
	if i == len(data) {
		return "", nil, errNotArray
	}
	var end int
	switch c := data[i]; {
	case c == '"':
		var escaped bool
		end, escaped = scanString(data, i)
		if end < 0 {
			return "", nil, errEventName
		}
		if name, err = unquote(data[i:end], escaped); err != nil {
			return "", nil, err
		}
	case c == '-' || isDigit(c):
		end = jsonw.NumberEnd(data, i)
		if end < 0 {
			return "", nil, errEventName
		}
		name = string(data[i:end])
	default:
		return "", nil, errEventName
	}

	j := skipSpace(data, end)
	if j == len(data) {
		return "", nil, errNotArray
	}
	switch data[j] {
	case ']':
		if skipSpace(data, j+1) != len(data) {
			return "", nil, errTrailing
		}
		return name, json.RawMessage{'[', ']'}, nil
	case ',':
		// Catch `["a",]`, which would otherwise become a valid `[]`.
		if k := skipSpace(data, j+1); k == len(data) || data[k] == ']' {
			return "", nil, errNotArray
		}
		rest = make(json.RawMessage, len(data)-j)
		rest[0] = '['
		copy(rest[1:], data[j+1:])
		return name, rest, nil
	}
	return "", nil, errNotArray
}

// decodeArgs decodes a JSON array payload (EVENT/ACK data) into Go values:
// json.Number for numbers (so large integers survive), map[string]any,
// []any, string, bool, nil, and []byte for each
// {"_placeholder":true,"num":N} replaced by attachments[N] (shared, not
// copied). A placeholder whose num is not an integer in range is an error
// wrapping errParse, as in socket.io-parser; other keys beside
// "_placeholder" and "num" are ignored like there. Returns an error if data
// is not an array.
func decodeArgs(data json.RawMessage, attachments [][]byte) ([]any, error) {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '[' {
		// Checked first: decoding `null` into a slice would succeed.
		return nil, errNotArray
	}
	var args []any
	if err := decodeNumbers(data, &args); err != nil {
		return nil, err
	}
	for k, v := range args {
		r, err := replacePlaceholders(v, attachments)
		if err != nil {
			return nil, err
		}
		args[k] = r
	}
	if args == nil {
		args = []any{}
	}
	return args, nil
}

// decodeNumbers decodes the JSON array data into out with numbers kept as
// json.Number, rejecting anything after the array.
func decodeNumbers(data []byte, out *[]any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return errJSON
	}
	if skipSpace(data, int(dec.InputOffset())) != len(data) {
		return errTrailing
	}
	return nil
}

// replacePlaceholders returns v with every placeholder object swapped for
// its attachment, editing containers in place (they are freshly decoded).
func replacePlaceholders(v any, attachments [][]byte) (any, error) {
	switch x := v.(type) {
	case []any:
		for k, e := range x {
			r, err := replacePlaceholders(e, attachments)
			if err != nil {
				return nil, err
			}
			x[k] = r
		}
	case map[string]any:
		if ph, ok := x["_placeholder"]; ok && ph == true {
			num, ok := x["num"].(json.Number)
			if !ok {
				return nil, errPlaceholder
			}
			n, err := strconv.ParseUint(string(num), 10, 64)
			if err != nil || n >= uint64(len(attachments)) {
				return nil, errPlaceholder
			}
			return attachments[n], nil
		}
		for k, e := range x {
			r, err := replacePlaceholders(e, attachments)
			if err != nil {
				return nil, err
			}
			x[k] = r
		}
	}
	return v, nil
}

// EncodeArgs encodes values as a JSON array. Every []byte found at any depth
// inside []any, map[string]any or as a top-level value is replaced by a
// placeholder and appended to attachments (in the order met; map keys are
// walked in sorted order so output is deterministic). A nil []byte counts as
// an empty attachment: the choice is made by type, like socket.io-parser
// does for Buffers. The rest is written as encoding/json writes it, without
// HTML escaping, except that json.RawMessage values are written as they are
// after json.Valid (nil writes null), and NaN and ±Inf as null, as
// JSON.stringify writes them. Other types than []any, map[string]any and
// scalars go to encoding/json whole (so []byte inside, say, a struct is
// base64 text, not an attachment). Returns attachments == nil when there is
// no binary.
func EncodeArgs(values []any) (data json.RawMessage, attachments [][]byte, err error) {
	placeholder := func(dst, b []byte) []byte {
		dst = append(dst, `{"_placeholder":true,"num":`...)
		dst = strconv.AppendInt(dst, int64(len(attachments)), 10)
		attachments = append(attachments, b)
		return append(dst, '}')
	}
	buf, err := jsonw.AppendArray(make([]byte, 0, 64), values, placeholder)
	if err != nil {
		return nil, nil, fmt.Errorf("socketio: cannot encode arguments: %w", err)
	}
	return buf, attachments, nil
}

// unquote returns the value of the JSON string literal s (quotes included).
// Literals without escapes, the common case for event names, are converted
// directly; the rest goes through encoding/json, which also validates them.
func unquote(s []byte, escaped bool) (string, error) {
	if !escaped && utf8.Valid(s) {
		inner := s[1 : len(s)-1]
		for _, c := range inner {
			if c < 0x20 {
				return "", errEventName
			}
		}
		return string(inner), nil
	}
	var out string
	if err := json.Unmarshal(s, &out); err != nil {
		return "", errEventName
	}
	return out, nil
}

// scanString returns the index just past the closing quote of the string
// literal starting at b[i] == '"' (-1 if unterminated) and whether it
// contains escapes. Contents are not validated.
func scanString(b []byte, i int) (end int, escaped bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j + 1, escaped
		case '\\':
			escaped = true
			j++
		}
	}
	return -1, escaped
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
