package redisadapter

// This file holds the entries of @socket.io/redis-streams-adapter 0.2's stream: one
// ClusterAdapter message per entry, as the fields uid, nsp, type (the number as a decimal
// string) and, for the types that have some, data: the message's data as JSON, or as base64
// of its msgpack (@msgpack/msgpack) when its type may carry binary and it does. It also holds
// the entries' ids, "<ms>-<seq>", which are the offsets of connection state recovery.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// streamEntryValues are the field-value pairs that XADD writes for m, in the order the
// Node.js adapter writes them.
func streamEntryValues(m clusterMessage) ([]any, error) {
	values := []any{"uid", m.uid, "nsp", m.nsp, "type", strconv.FormatInt(m.typ, 10)}
	if m.data == nil {
		return values, nil
	}
	if mayCarryBinary(m.typ) && hasBinary(m.data, 0) {
		b, err := encodeMsgpack(m.data)
		if err != nil {
			return nil, err
		}
		return append(values, "data", base64.StdEncoding.EncodeToString(b)), nil
	}
	var atts [][]byte
	b, err := appendJSON(nil, m.data, &atts, 0)
	if err != nil {
		return nil, err
	}
	if len(atts) > 0 {
		return nil, fmt.Errorf("message of type %d carries binary", m.typ)
	}
	return append(values, "data", string(b)), nil
}

// decodeStreamEntry reads the fields of one stream entry, as go-redis returns them. Whatever
// they hold, it returns an error or a message whose type is one of the thirteen, never
// panics.
func decodeStreamEntry(values map[string]any) (clusterMessage, error) {
	field := func(k string) (string, bool) {
		s, ok := values[k].(string)
		return s, ok
	}
	var m clusterMessage
	var ok bool
	if m.nsp, ok = field("nsp"); !ok {
		return m, errors.New("entry without a namespace")
	}
	m.uid, _ = field("uid")
	typ, _ := field("type")
	n, err := strconv.ParseInt(typ, 10, 64)
	if err != nil || n < clusterInitialHeartbeat || n > clusterAdapterClose {
		return clusterMessage{}, fmt.Errorf("entry of unknown type %q", typ)
	}
	m.typ = n
	data, _ := field("data")
	if data == "" {
		return m, nil
	}
	if len(data) > maxClusterMessage {
		return clusterMessage{}, fmt.Errorf("entry data of %d bytes exceeds %d", len(data), maxClusterMessage)
	}
	var v any
	if data[0] == '{' {
		v, err = parseArgs([]byte(data), nil)
	} else {
		var b []byte
		if b, err = base64.StdEncoding.DecodeString(data); err == nil {
			v, err = decodeMsgpack(b)
		}
	}
	if err != nil {
		return clusterMessage{}, fmt.Errorf("entry data: %w", err)
	}
	if m.data, ok = v.(*object); !ok || m.data == nil {
		return clusterMessage{}, errors.New("entry data is not an object")
	}
	return m, nil
}

// streamID is a stream entry's id, "<ms>-<seq>".
type streamID struct{ ms, seq uint64 }

// parseStreamID reads an entry id; anything else (such as "$" or an offset of another
// store) is not one.
func parseStreamID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok || a == "" || b == "" || a[0] == '+' || b[0] == '+' {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return streamID{}, false
	}
	return streamID{ms, seq}, true
}

func (id streamID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}

// less reports whether id comes before o in the stream.
func (id streamID) less(o streamID) bool {
	return id.ms < o.ms || (id.ms == o.ms && id.seq < o.seq)
}

// next is the smallest id after id: XRANGE's start for "after id" without the exclusive
// ranges of Redis 6.2.
func (id streamID) next() streamID {
	if id.seq == ^uint64(0) {
		return streamID{id.ms + 1, 0}
	}
	return streamID{id.ms, id.seq + 1}
}
