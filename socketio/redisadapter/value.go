package redisadapter

// This file converts between the three forms an event's arguments take: the Socket.IO JSON
// text with binary placeholders (socketio.Packet), msgpack as notepack.io (the Node.js
// adapter's encoder) writes and reads it, and an in-between tree of Go values that keeps the
// order of object keys, so that a client sees {"b":1,"a":2} as it was sent, whichever node it is
// on.
//
// The tree's values: nil, undefined, bool, int64, uint64 (above MaxInt64 only), float64,
// string, []byte (a Buffer or ArrayBuffer), *object, []any, time.Time (a Date) and extension.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/siobridge/siobridge/internal/jsonw"
)

// maxDepth bounds nesting in what is decoded from Redis, so a hostile message cannot overflow
// the stack.
const maxDepth = 1000

var errDepth = errors.New("value nested too deeply")

// undefined is JavaScript's undefined, which notepack.io decodes from fixext1 type 0. As
// JSON.stringify does, it becomes null in an array and is left out of an object.
type undefined struct{}

// object is a map with string keys, in the order they came.
type object struct {
	keys []string
	vals []any
}

func (o *object) set(k string, v any) {
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

// get returns the value of key k (the last one, as JavaScript keeps), or nil.
func (o *object) get(k string) any {
	if o == nil {
		return nil
	}
	for i := len(o.keys) - 1; i >= 0; i-- {
		if o.keys[i] == k {
			return o.vals[i]
		}
	}
	return nil
}

func (o *object) has(k string) bool {
	if o == nil {
		return false
	}
	for _, key := range o.keys {
		if key == k {
			return true
		}
	}
	return false
}

// extension is a msgpack extension that notepack.io does not give a meaning to; it decodes
// it as the array [type, Buffer], and so does this package.
type extension struct {
	typ  int8
	data []byte
}

// ---- msgpack ----

// decodeMsgpack decodes one msgpack value, which must fill b.
func decodeMsgpack(b []byte) (any, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	v, err := decodeValue(d, len(b), 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.PeekCode(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing bytes after msgpack value")
	}
	return v, nil
}

// decodeValue reads one value; size is the input's length, which no length in it may exceed.
func decodeValue(d *msgpack.Decoder, size, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case c == msgpcode.Nil:
		return nil, d.DecodeNil()
	case c == msgpcode.True || c == msgpcode.False:
		return d.DecodeBool()
	case msgpcode.IsFixedNum(c), c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32, c == msgpcode.Int64,
		c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32:
		return d.DecodeInt64()
	case c == msgpcode.Uint64:
		u, err := d.DecodeUint64()
		if err != nil {
			return nil, err
		}
		if u <= math.MaxInt64 {
			return int64(u), nil
		}
		return u, nil
	case c == msgpcode.Float:
		f, err := d.DecodeFloat32()
		return float64(f), err
	case c == msgpcode.Double:
		return d.DecodeFloat64()
	case msgpcode.IsString(c):
		return d.DecodeString()
	case msgpcode.IsBin(c):
		// Not DecodeBytes: it would allocate whatever length the message claims.
		n, err := d.DecodeBytesLen()
		if err != nil {
			return nil, err
		}
		if n < 0 || n > size {
			return nil, errors.New("msgpack bin longer than the message")
		}
		b := make([]byte, n)
		return b, d.ReadFull(b)
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		n, err := d.DecodeArrayLen()
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, min(n, 64))
		for range n {
			v, err := decodeValue(d, size, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		n, err := d.DecodeMapLen()
		if err != nil {
			return nil, err
		}
		o := &object{keys: make([]string, 0, min(n, 64)), vals: make([]any, 0, min(n, 64))}
		for range n {
			k, err := decodeValue(d, size, depth+1)
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(d, size, depth+1)
			if err != nil {
				return nil, err
			}
			o.set(propertyKey(k), v)
		}
		return o, nil
	case msgpcode.IsExt(c):
		return decodeExt(d, c, size)
	}
	return nil, fmt.Errorf("unknown msgpack code 0x%02x", c)
}

// decodeExt reads an extension the way notepack.io does: type 0 is undefined as fixext1, an
// ArrayBuffer as ext8/16/32 and a Date (milliseconds) as fixext8; type -1 is msgpack's
// timestamp; the rest are [type, Buffer].
func decodeExt(d *msgpack.Decoder, c byte, size int) (any, error) {
	typ, n, err := d.DecodeExtHeader()
	if err != nil {
		return nil, err
	}
	if n > size {
		return nil, errors.New("msgpack extension longer than the message")
	}
	data := make([]byte, n)
	if err := d.ReadFull(data); err != nil {
		return nil, err
	}
	switch {
	case typ == 0 && c == msgpcode.FixExt1:
		return undefined{}, nil
	case typ == 0 && (c == msgpcode.Ext8 || c == msgpcode.Ext16 || c == msgpcode.Ext32):
		return data, nil
	case typ == 0 && c == msgpcode.FixExt8:
		hi := int64(int32(be32(data[0:4])))
		lo := int64(be32(data[4:8]))
		return time.UnixMilli(hi<<32 | lo).UTC(), nil
	case typ == -1 && n == 4:
		return time.Unix(int64(be32(data)), 0).UTC(), nil
	case typ == -1 && n == 8:
		hi, lo := be32(data[0:4]), be32(data[4:8])
		sec := int64(hi&3)<<32 | int64(lo)
		return time.Unix(sec, int64(hi>>2)).UTC(), nil
	case typ == -1 && n == 12:
		ns := be32(data[0:4])
		sec := int64(be32(data[4:8]))<<32 | int64(be32(data[8:12]))
		return time.Unix(sec, int64(ns)).UTC(), nil
	}
	return extension{typ: typ, data: data}, nil
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// propertyKey is the name JavaScript gives a map key that is not a string.
func propertyKey(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case nil:
		return "null"
	case undefined:
		return "undefined"
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		// String(x): what JSON.stringify writes for a finite number, except that -0 is "0".
		switch {
		case math.IsNaN(x):
			return "NaN"
		case math.IsInf(x, 1):
			return "Infinity"
		case math.IsInf(x, -1):
			return "-Infinity"
		case x == 0:
			return "0"
		}
		return string(jsonw.AppendFloat(nil, x, 64))
	case []byte:
		return string(x)
	}
	return fmt.Sprint(k)
}

// encodeMsgpack encodes v as notepack.io would encode the JavaScript value it stands for.
func encodeMsgpack(v any) ([]byte, error) {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	if err := encodeValue(e, v, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeValue(e *msgpack.Encoder, v any, depth int) error {
	if depth > maxDepth {
		return errDepth
	}
	switch x := v.(type) {
	case nil, undefined:
		return e.EncodeNil()
	case bool:
		return e.EncodeBool(x)
	case int:
		return e.EncodeInt(int64(x))
	case int64:
		return e.EncodeInt(x)
	case uint64:
		return e.EncodeUint(x)
	case float64:
		// notepack writes every integral finite number as an integer.
		if x == math.Trunc(x) && x >= math.MinInt64 && x < math.MaxInt64 {
			return e.EncodeInt(int64(x))
		}
		return e.EncodeFloat64(x)
	case string:
		return e.EncodeString(x)
	case []byte:
		return e.EncodeBytes(x)
	case []string:
		if err := e.EncodeArrayLen(len(x)); err != nil {
			return err
		}
		for _, s := range x {
			if err := e.EncodeString(s); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if err := e.EncodeArrayLen(len(x)); err != nil {
			return err
		}
		for _, el := range x {
			if err := encodeValue(e, el, depth+1); err != nil {
				return err
			}
		}
		return nil
	case *object:
		n := 0
		for _, el := range x.vals {
			if _, skip := el.(undefined); !skip {
				n++
			}
		}
		if err := e.EncodeMapLen(n); err != nil {
			return err
		}
		for i, k := range x.keys {
			if _, skip := x.vals[i].(undefined); skip {
				continue
			}
			if err := e.EncodeString(k); err != nil {
				return err
			}
			if err := encodeValue(e, x.vals[i], depth+1); err != nil {
				return err
			}
		}
		return nil
	case time.Time:
		return e.EncodeTime(x)
	case extension:
		if err := e.EncodeExtHeader(x.typ, len(x.data)); err != nil {
			return err
		}
		_, err := e.Writer().Write(x.data)
		return err
	}
	return fmt.Errorf("cannot encode %T as msgpack", v)
}

// ---- JSON ----

// parseArgs turns a Socket.IO JSON payload and its attachments into a tree, each placeholder
// replaced by its attachment (shared, not copied) when atts is not nil (as socket.io-parser,
// which resolves placeholders in binary packets only). Numbers follow JavaScript: integral values
// become integers, the rest float64.
func parseArgs(data json.RawMessage, attachments [][]byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseJSONValue(dec, attachments, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

func parseJSONValue(dec *json.Decoder, atts [][]byte, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch x := tok.(type) {
	case json.Delim:
		switch x {
		case '[':
			out := []any{}
			for dec.More() {
				v, err := parseJSONValue(dec, atts, depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			_, err := dec.Token() // ']'
			return out, err
		case '{':
			o := &object{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := parseJSONValue(dec, atts, depth+1)
				if err != nil {
					return nil, err
				}
				o.set(k, v)
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			if atts != nil && o.get("_placeholder") == true {
				return placeholder(o, atts)
			}
			return o, nil
		}
		return nil, fmt.Errorf("unexpected JSON delimiter %v", x)
	case json.Number:
		return jsonNumber(x), nil
	default: // string, bool, nil
		return x, nil
	}
}

// placeholder returns the attachment an {"_placeholder":true,"num":N} object stands for.
func placeholder(o *object, atts [][]byte) (any, error) {
	n, ok := o.get("num").(int64)
	if !ok || n < 0 || n >= int64(len(atts)) {
		return nil, errors.New("invalid attachment placeholder")
	}
	return atts[n], nil
}

// jsonNumber gives n the type notepack.io would write it with after JSON.parse: exact
// integers stay exact (beyond JavaScript's 2^53 too, which only helps Go peers), integral
// floats such as 1.0 or 1e3 become integers, the rest float64.
func jsonNumber(n json.Number) any {
	s := string(n)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return u
	}
	f, _ := strconv.ParseFloat(s, 64) // out of range gives ±Inf, as in JavaScript
	if f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 {
		return int64(f)
	}
	return f
}

// appendJSON writes v as JSON.stringify would, in socket.io-parser's deconstructPacket form:
// each []byte becomes {"_placeholder":true,"num":N} and is appended to atts. Strings and
// numbers are jsonw's, as in every other JSON siobridge writes (so -0 is "-0" where
// JSON.stringify writes 0; notepack.io sends -0 as the integer 0, so only a peer of another
// kind can make this node write it).
func appendJSON(buf []byte, v any, atts *[][]byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	switch x := v.(type) {
	case nil, undefined:
		return append(buf, "null"...), nil
	case bool:
		return strconv.AppendBool(buf, x), nil
	case int64:
		return strconv.AppendInt(buf, x, 10), nil
	case uint64:
		return strconv.AppendUint(buf, x, 10), nil
	case float64:
		return jsonw.AppendFloat(buf, x, 64), nil
	case string:
		return jsonw.AppendString(buf, x), nil
	case []byte:
		buf = append(buf, `{"_placeholder":true,"num":`...)
		buf = strconv.AppendInt(buf, int64(len(*atts)), 10)
		*atts = append(*atts, x)
		return append(buf, '}'), nil
	case []any:
		buf = append(buf, '[')
		for i, el := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = appendJSON(buf, el, atts, depth+1); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case *object:
		buf = append(buf, '{')
		first := true
		for i, k := range x.keys {
			if _, skip := x.vals[i].(undefined); skip {
				continue
			}
			if !first {
				buf = append(buf, ',')
			}
			first = false
			buf = jsonw.AppendString(buf, k)
			buf = append(buf, ':')
			var err error
			if buf, err = appendJSON(buf, x.vals[i], atts, depth+1); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	case time.Time:
		return jsonw.AppendString(buf, x.UTC().Format("2006-01-02T15:04:05.000Z")), nil
	case extension:
		return appendJSON(buf, []any{int64(x.typ), x.data}, atts, depth)
	}
	return nil, fmt.Errorf("cannot write %T as JSON", v)
}

// ---- access helpers for decoded messages ----

func asString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	}
	return "", false
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	}
	return 0, false
}

// asRooms reads a list of rooms; JavaScript rooms may be numbers, which name the same room
// as their string form here.
func asRooms(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, el := range list {
		switch x := el.(type) {
		case string:
			out = append(out, x)
		case int64, uint64, float64:
			out = append(out, propertyKey(x))
		}
	}
	return out
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil, undefined:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case uint64:
		return x != 0
	case float64:
		return x != 0 && !math.IsNaN(x)
	case string:
		return x != ""
	}
	return true
}
