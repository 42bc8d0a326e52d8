package engineio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

// packetType is an Engine.IO packet type, sent on the wire as the digit '0'+type.
type packetType byte

// The Engine.IO v4 packet types.
const (
	packetOpen packetType = iota
	packetClose
	packetPing
	packetPong
	packetMessage
	packetUpgrade
	packetNoop
)

var packetTypeNames = [...]string{"open", "close", "ping", "pong", "message", "upgrade", "noop"}

func (t packetType) String() string {
	if int(t) < len(packetTypeNames) {
		return packetTypeNames[t]
	}
	return fmt.Sprintf("PacketType(%d)", byte(t))
}

// recordSeparator joins packets in one long-polling payload.
const recordSeparator = 0x1e

// ErrDecode is wrapped by every error about a malformed Engine.IO packet or payload.
var ErrDecode = errors.New("engineio: malformed packet")

// packet is one decoded inbound packet.
type packet struct {
	typ    packetType
	data   []byte
	binary bool
}

// decodeTextPacket decodes the text form of one packet: its type digit followed by its data.
func decodeTextPacket(frame []byte) (packet, error) {
	if len(frame) == 0 {
		return packet{}, fmt.Errorf("%w: empty packet", ErrDecode)
	}
	c := frame[0]
	if c < '0' || c > '6' {
		return packet{}, fmt.Errorf("%w: unknown packet type %q", ErrDecode, c)
	}
	return packet{typ: packetType(c - '0'), data: frame[1:]}, nil
}

// decodePayload splits a long-polling request body into its packets. A packet starting with 'b'
// is a binary message in base64. Nothing is returned unless the whole body is valid, so a bad
// payload delivers none of its packets.
func decodePayload(body []byte) ([]packet, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty payload", ErrDecode)
	}
	n := bytes.Count(body, []byte{recordSeparator}) + 1
	packets := make([]packet, 0, n)
	for range n {
		var part []byte
		if i := bytes.IndexByte(body, recordSeparator); i >= 0 {
			part, body = body[:i], body[i+1:]
		} else {
			part, body = body, nil
		}
		if len(part) > 0 && part[0] == 'b' {
			data := make([]byte, base64.StdEncoding.DecodedLen(len(part)-1))
			m, err := base64.StdEncoding.Decode(data, part[1:])
			if err != nil {
				return nil, fmt.Errorf("%w: bad base64 in binary packet: %v", ErrDecode, err)
			}
			packets = append(packets, packet{typ: packetMessage, data: data[:m], binary: true})
			continue
		}
		p, err := decodeTextPacket(part)
		if err != nil {
			return nil, err
		}
		packets = append(packets, p)
	}
	return packets, nil
}
