package redisadapter

// This file holds the messages of socket.io-adapter 2.5's ClusterAdapter, which the sharded
// adapter of @socket.io/redis-adapter 8.3 and @socket.io/redis-streams-adapter speak:
// {uid, nsp, type, data}, as JSON, or as msgpack (notepack.io) for the whole message when a
// type that may carry binary does.

import (
	"bytes"
	"errors"
	"fmt"
)

// ClusterAdapter message types, numbered as on the wire.
const (
	clusterInitialHeartbeat       = 1
	clusterHeartbeat              = 2
	clusterBroadcast              = 3
	clusterSocketsJoin            = 4
	clusterSocketsLeave           = 5
	clusterDisconnectSockets      = 6
	clusterFetchSockets           = 7
	clusterFetchSocketsResponse   = 8
	clusterServerSideEmit         = 9
	clusterServerSideEmitResponse = 10
	clusterBroadcastClientCount   = 11
	clusterBroadcastAck           = 12
	clusterAdapterClose           = 13
)

// maxClusterMessage bounds a message read from Redis; a larger one is dropped undecoded.
const maxClusterMessage = 64 << 20

// clusterMessage is one ClusterAdapter message: the sender's uid, its namespace, the type and
// the type's data (nil for the types that have none).
type clusterMessage struct {
	uid  string
	nsp  string
	typ  int64
	data *object
}

// mayCarryBinary reports whether messages of type typ are sent as msgpack when their data
// holds binary, as the Node.js adapters decide.
func mayCarryBinary(typ int64) bool {
	switch typ {
	case clusterBroadcast, clusterFetchSocketsResponse, clusterServerSideEmit, clusterServerSideEmitResponse, clusterBroadcastAck:
		return true
	}
	return false
}

// encodeClusterMessage writes m as the Node.js adapters do: msgpack when its type may carry
// binary and its data does, JSON otherwise. The uid comes first, so that a node can tell
// its own messages from the first bytes (see clusterAdapter.fromSelf).
func encodeClusterMessage(m clusterMessage) ([]byte, error) {
	o := &object{}
	o.set("uid", m.uid)
	o.set("nsp", m.nsp)
	o.set("type", m.typ)
	if m.data != nil {
		o.set("data", m.data)
	}
	if mayCarryBinary(m.typ) && hasBinary(m.data, 0) {
		return encodeMsgpack(o)
	}
	var atts [][]byte
	b, err := appendJSON(nil, o, &atts, 0)
	if err != nil {
		return nil, err
	}
	if len(atts) > 0 { // binary in a type that may not carry it
		return nil, fmt.Errorf("message of type %d carries binary", m.typ)
	}
	return b, nil
}

// hasBinary reports whether v holds a []byte (a Buffer) anywhere.
func hasBinary(v any, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch x := v.(type) {
	case []byte:
		return true
	case extension:
		return true
	case []any:
		for _, el := range x {
			if hasBinary(el, depth+1) {
				return true
			}
		}
	case *object:
		if x == nil {
			return false
		}
		for _, el := range x.vals {
			if hasBinary(el, depth+1) {
				return true
			}
		}
	}
	return false
}

// decodeClusterMessage reads a message from Redis: JSON when it starts with "{", msgpack
// otherwise, as the Node.js adapters tell them apart. Whatever the bytes, it returns an
// error or a message whose type is one of the thirteen, never panics.
func decodeClusterMessage(b []byte) (clusterMessage, error) {
	if len(b) == 0 {
		return clusterMessage{}, errors.New("empty message")
	}
	if len(b) > maxClusterMessage {
		return clusterMessage{}, fmt.Errorf("message of %d bytes exceeds %d", len(b), maxClusterMessage)
	}
	var v any
	var err error
	if b[0] == '{' {
		v, err = parseArgs(b, nil)
	} else {
		v, err = decodeMsgpack(b)
	}
	if err != nil {
		return clusterMessage{}, err
	}
	o, ok := v.(*object)
	if !ok {
		return clusterMessage{}, errors.New("message is not an object")
	}
	m := clusterMessage{}
	if u := o.get("uid"); u != nil {
		if m.uid, ok = u.(string); !ok {
			return clusterMessage{}, errors.New("message uid is not a string")
		}
	}
	if m.nsp, ok = o.get("nsp").(string); !ok {
		return clusterMessage{}, errors.New("message without a namespace")
	}
	if m.typ, ok = asInt(o.get("type")); !ok || m.typ < clusterInitialHeartbeat || m.typ > clusterAdapterClose {
		return clusterMessage{}, fmt.Errorf("message of unknown type %v", o.get("type"))
	}
	switch d := o.get("data").(type) {
	case *object:
		m.data = d
	case nil, undefined:
	default:
		return clusterMessage{}, errors.New("message data is not an object")
	}
	return m, nil
}

// selfPrefixes are how the messages of the node uid begin, in JSON and in msgpack (after the
// map header), as encodeClusterMessage writes them.
func selfPrefixes(uid string) (jsonPrefix, msgpackPrefix []byte) {
	jsonPrefix = []byte(`{"uid":"` + uid + `"`)
	if len(uid) < 32 {
		msgpackPrefix = append([]byte{0xa3, 'u', 'i', 'd', 0xa0 | byte(len(uid))}, uid...)
	}
	return jsonPrefix, msgpackPrefix
}

// hasSelfPrefix reports whether b begins as a message of the node whose prefixes these are.
func hasSelfPrefix(b, jsonPrefix, msgpackPrefix []byte) bool {
	if bytes.HasPrefix(b, jsonPrefix) {
		return true
	}
	return msgpackPrefix != nil && len(b) > 0 && (b[0] == 0x83 || b[0] == 0x84) && bytes.HasPrefix(b[1:], msgpackPrefix)
}
