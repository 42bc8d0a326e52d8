package engineio

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// This file holds the wire forms of Engine.IO v3 (socket.io-client 2.x), served beside v4 when
// Options.AllowEIO3 is set: the polling payloads, text ("<len>:<packet>", lengths in UTF-16
// code units) and XHR2 binary, and the type byte of binary packets. A session's protocol is
// fixed at its handshake (Session.Protocol); v4 sessions never reach this code.

// maxLengthDigits bounds the decimal length of one packet in a v3 payload: 10 digits are
// more than any body MaxPayload allows, and what a length may not exceed is checked against
// what is left of the body anyway.
const maxLengthDigits = 10

// utf16Len is the length of s in UTF-16 code units, as a JavaScript string's length counts
// it: a character above U+FFFF counts 2 (a surrogate pair), any other 1. Invalid UTF-8 counts
// 1 per byte that does not start a valid sequence, as Go's conversion to runes replaces each
// such byte by U+FFFD. (A WHATWG decoder, a browser's or Node's, may replace a truncated
// multi-byte sequence by a single U+FFFD: such bytes never come from a conforming client,
// whose strings are UTF-8 encoded whole.)
func utf16Len(s []byte) int {
	n := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			n++
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		i += size
		n++
		if r > 0xFFFF {
			n++
		}
	}
	return n
}

// utf16Prefix returns how many bytes of s make its first units UTF-16 code units, and false
// when s is shorter, or when the last unit would split a character into its surrogates.
func utf16Prefix(s []byte, units int) (int, bool) {
	i := 0
	for units > 0 {
		if i >= len(s) {
			return 0, false
		}
		if s[i] < utf8.RuneSelf {
			i++
			units--
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		w := 1
		if r > 0xFFFF {
			w = 2
		}
		if w > units {
			return 0, false
		}
		i += size
		units -= w
	}
	return i, true
}

// decodeTextPacketV3 decodes one v3 packet in text form: as in v4, or a binary message in
// base64 as "b4<base64>".
func decodeTextPacketV3(frame []byte) (packet, error) {
	if len(frame) > 0 && frame[0] == 'b' {
		if len(frame) < 2 || frame[1] != '0'+byte(packetMessage) {
			return packet{}, fmt.Errorf("%w: base64 packet is not a message", ErrDecode)
		}
		data := make([]byte, base64.StdEncoding.DecodedLen(len(frame)-2))
		m, err := base64.StdEncoding.Decode(data, frame[2:])
		if err != nil {
			return packet{}, fmt.Errorf("%w: bad base64 in binary packet: %v", ErrDecode, err)
		}
		return packet{typ: packetMessage, data: data[:m], binary: true}, nil
	}
	return decodeTextPacket(frame)
}

// decodeBinaryFrameV3 decodes a v3 binary packet (a WebSocket binary frame, or a binary
// packet of an XHR2 payload): the type byte 4, then the message.
func decodeBinaryFrameV3(frame []byte) (packet, error) {
	if len(frame) == 0 || frame[0] != byte(packetMessage) {
		return packet{}, fmt.Errorf("%w: binary packet without the message type byte", ErrDecode)
	}
	return packet{typ: packetMessage, data: frame[1:], binary: true}, nil
}

// decodePayloadV3 splits a v3 text payload: packets as "<len>:<packet>", len in UTF-16 code
// units of the packet, a binary one as "b4<base64>". An empty packet ("0:") is skipped, as
// Node's engine.io skips it. Nothing is returned unless the whole body is valid.
func decodePayloadV3(body []byte) ([]packet, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty payload", ErrDecode)
	}
	var packets []packet
	for len(body) > 0 {
		n, rest, err := readLength(body)
		if err != nil {
			return nil, err
		}
		size, ok := utf16Prefix(rest, n)
		if !ok {
			return nil, fmt.Errorf("%w: packet length %d past the payload's end", ErrDecode, n)
		}
		body = rest[size:]
		if size == 0 {
			continue
		}
		p, err := decodeTextPacketV3(rest[:size])
		if err != nil {
			return nil, err
		}
		packets = append(packets, p)
	}
	return packets, nil
}

// readLength reads a v3 text payload's "<digits>:".
func readLength(b []byte) (int, []byte, error) {
	n := 0
	for i, c := range b {
		switch {
		case c == ':' && i > 0:
			return n, b[i+1:], nil
		case c < '0' || c > '9' || i >= maxLengthDigits:
			return 0, nil, fmt.Errorf("%w: bad packet length in payload", ErrDecode)
		}
		n = n*10 + int(c-'0')
	}
	return 0, nil, fmt.Errorf("%w: payload ends in a packet length", ErrDecode)
}

// The markers of XHR2 binary payloads.
const (
	xhr2Text   = 0
	xhr2Binary = 1
	xhr2End    = 0xFF
)

// decodeBinaryPayloadV3 splits a v3 XHR2 binary payload (a POST of application/octet-stream):
// each packet is a marker byte (0 text, 1 binary), its length as one byte per decimal digit,
// 0xFF, and its data; a text packet's length counts its UTF-8 bytes, a binary one's counts
// its type byte 4. Nothing is returned unless the whole body is valid.
func decodeBinaryPayloadV3(body []byte) ([]packet, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty payload", ErrDecode)
	}
	var packets []packet
	for len(body) > 0 {
		marker := body[0]
		if marker != xhr2Text && marker != xhr2Binary {
			return nil, fmt.Errorf("%w: bad packet marker %d in binary payload", ErrDecode, marker)
		}
		n, i := 0, 1
		for ; i < len(body) && body[i] != xhr2End; i++ {
			if body[i] > 9 || i > maxLengthDigits {
				return nil, fmt.Errorf("%w: bad packet length in binary payload", ErrDecode)
			}
			n = n*10 + int(body[i])
		}
		if i == 1 || i == len(body) {
			return nil, fmt.Errorf("%w: bad packet length in binary payload", ErrDecode)
		}
		body = body[i+1:]
		if n > len(body) {
			return nil, fmt.Errorf("%w: packet length %d past the payload's end", ErrDecode, n)
		}
		data := body[:n]
		body = body[n:]
		var p packet
		var err error
		if marker == xhr2Text {
			p, err = decodeTextPacketV3(data)
		} else {
			p, err = decodeBinaryFrameV3(data)
		}
		if err != nil {
			return nil, err
		}
		packets = append(packets, p)
	}
	return packets, nil
}

// hasBinary reports whether the batch holds a binary message.
func hasBinary(batch []*Message) bool {
	for _, m := range batch {
		if m.binary {
			return true
		}
	}
	return false
}

// appendPayloadV3 appends the v3 text payload of batch: each packet as "<len>:<packet>", a
// binary message as "b4<base64>".
func appendPayloadV3(b []byte, batch []*Message) []byte {
	for _, m := range batch {
		if !m.binary {
			b = strconv.AppendInt(b, int64(utf16Len(m.frame)), 10)
			b = append(b, ':')
			b = append(b, m.frame...)
			continue
		}
		b = strconv.AppendInt(b, int64(2+base64.StdEncoding.EncodedLen(len(m.frame))), 10)
		b = append(b, ':', 'b', '0'+byte(packetMessage))
		b = base64.StdEncoding.AppendEncode(b, m.frame)
	}
	return b
}

// appendBinaryPayloadV3 appends the v3 XHR2 binary payload of batch (see
// decodeBinaryPayloadV3).
func appendBinaryPayloadV3(b []byte, batch []*Message) []byte {
	for _, m := range batch {
		n := len(m.frame)
		marker := byte(xhr2Text)
		if m.binary {
			marker, n = xhr2Binary, n+1
		}
		b = append(b, marker)
		start := len(b)
		b = strconv.AppendInt(b, int64(n), 10)
		for i := start; i < len(b); i++ {
			b[i] -= '0'
		}
		b = append(b, xhr2End)
		if m.binary {
			b = append(b, byte(packetMessage))
		}
		b = append(b, m.frame...)
	}
	return b
}

// legacyPayloadCap is a capacity for a v3 payload of batch: its v4 size, and room for each
// packet's length and type.
func legacyPayloadCap(batch []*Message) int {
	return payloadsLen(batch) + len(batch)*(maxLengthDigits+3)
}
