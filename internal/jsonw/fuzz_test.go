package jsonw

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"testing"
)

// FuzzJSONWriter builds a value from the input (see builder) and checks Append against
// encoding/json (an Encoder with HTML escaping off), as the package comment describes it:
// once NaN and ±Inf outside structs are replaced by nil, the same bytes when encoding/json
// writes the value (json.Compact of them when the value holds a json.RawMessage, which Append
// does not compact), an error when it fails. It checks both without a Binary hook, where
// []byte is base64 as in encoding/json, and with one, where each []byte outside structs is
// what the hook writes, in the order of a walk with sorted keys.
func FuzzJSONWriter(f *testing.F) {
	f.Add([]byte{opArray, 3, opString, 4, 'a', '<', 0xff, '\n', opFloat64, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, opBytes, 2, 1, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		v := (&builder{in: in}).value(0)

		s := substitution{}
		want, wantErr := reference(s.apply(v))
		got, err := Append(nil, v, nil)
		check(t, v, got, err, want, wantErr, s.raw)

		s = substitution{placeholders: true}
		want, wantErr = reference(s.apply(v))
		var n int
		got, err = Append(nil, v, placeholders(&n))
		check(t, v, got, err, want, wantErr, s.raw)
	})
}

func check(t *testing.T, v any, got []byte, err error, want []byte, wantErr error, raw bool) {
	t.Helper()
	switch {
	case wantErr != nil && err == nil:
		t.Fatalf("%#v: wrote %s; encoding/json: %v", v, got, wantErr)
	case wantErr == nil && err != nil:
		t.Fatalf("%#v: %v; encoding/json wrote %s", v, err, want)
	case err != nil || bytes.Equal(got, want):
	case !raw:
		t.Fatalf("%#v:\njsonw         %s\nencoding/json %s", v, got, want)
	default:
		var compact bytes.Buffer
		if err := json.Compact(&compact, got); err != nil || !bytes.Equal(compact.Bytes(), want) {
			t.Fatalf("%#v:\njsonw compacted %s (%v)\nencoding/json   %s", v, compact.Bytes(), err, want)
		}
	}
}

// reference is what encoding/json writes for v with HTML escaping off.
func reference(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// substitution makes a copy of a value with what Append writes differently from
// encoding/json replaced by what it writes: NaN and ±Inf by nil and, with placeholders, each
// []byte by the placeholder that the placeholders hook writes. It does not look into structs,
// which Append hands to encoding/json whole.
type substitution struct {
	placeholders bool
	n            int  // placeholders written
	raw          bool // whether a json.RawMessage was met
}

func (s *substitution) apply(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil
		}
	case []byte:
		if s.placeholders {
			s.n++
			return json.RawMessage(`{"_placeholder":true,"num":` + strconv.Itoa(s.n-1) + `}`)
		}
	case json.RawMessage:
		s.raw = true
	case []any:
		if x == nil {
			return x
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = s.apply(e)
		}
		return out
	case map[string]any:
		if x == nil {
			return x
		}
		out := make(map[string]any, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			out[k] = s.apply(x[k])
		}
		return out
	}
	return v
}

// The builder's operations: each input byte (mod opCount) picks one, the bytes after it are
// its operands. Input that runs out reads as zeros.
const (
	opNil      = iota
	opBool     // operand: 1 byte, odd for true
	opString   // operands: length (mod 48), then that many bytes, any bytes
	opFloat64  // operands: 8 bytes, the float's bits, little endian
	opFloat32  // operands: 4 bytes
	opInt      // operands: 8 bytes, read as int64, written as one of the signed types
	opUint     // operands: 8 bytes, read as uint64, written as one of the unsigned types
	opArray    // operands: count (mod 8), then the elements
	opObject   // operands: count (mod 8), then key (as opString's operands) and value pairs
	opNumber   // operands: as opString's, made a json.Number
	opRawBytes // operands: as opString's, made a json.RawMessage (mostly invalid)
	opRawValue // operands: a value, written by encoding/json, then spaces put in it
	opBytes    // operands: as opString's, made a []byte (length 255 means nil)
	opStruct   // operands: a string, a float64 and a []byte for a struct's fields
	opCount
)

const maxBuildDepth = 12

type builder struct{ in []byte }

func (b *builder) byte() byte {
	if len(b.in) == 0 {
		return 0
	}
	c := b.in[0]
	b.in = b.in[1:]
	return c
}

func (b *builder) take(n int) []byte {
	n = min(n, len(b.in))
	s := b.in[:n:n]
	b.in = b.in[n:]
	return s
}

func (b *builder) u64() uint64 {
	var w [8]byte
	copy(w[:], b.take(8))
	return binary.LittleEndian.Uint64(w[:])
}

func (b *builder) str() string { return string(b.take(int(b.byte()) % 48)) }

func (b *builder) value(depth int) any {
	op := b.byte()
	switch op % opCount {
	case opBool:
		return b.byte()&1 == 1
	case opString:
		return b.str()
	case opFloat64:
		return math.Float64frombits(b.u64())
	case opFloat32:
		var w [4]byte
		copy(w[:], b.take(4))
		return math.Float32frombits(binary.LittleEndian.Uint32(w[:]))
	case opInt:
		i := int64(b.u64())
		switch op / opCount % 5 {
		case 0:
			return int(i)
		case 1:
			return int8(i)
		case 2:
			return int16(i)
		case 3:
			return int32(i)
		}
		return i
	case opUint:
		u := b.u64()
		switch op / opCount % 5 {
		case 0:
			return uint(u)
		case 1:
			return uint8(u)
		case 2:
			return uint16(u)
		case 3:
			return uint32(u)
		}
		return u
	case opArray:
		if depth >= maxBuildDepth {
			return nil
		}
		n := int(b.byte() % 8)
		if n == 7 {
			return []any(nil)
		}
		a := make([]any, n)
		for i := range a {
			a[i] = b.value(depth + 1)
		}
		return a
	case opObject:
		if depth >= maxBuildDepth {
			return nil
		}
		n := int(b.byte() % 8)
		if n == 7 {
			return map[string]any(nil)
		}
		m := make(map[string]any, n)
		for range n {
			k := b.str()
			m[k] = b.value(depth + 1)
		}
		return m
	case opNumber:
		return json.Number(b.str())
	case opRawBytes:
		if raw := b.take(int(b.byte()) % 48); len(raw) > 0 || op >= opCount {
			return json.RawMessage(raw)
		}
		return json.RawMessage(nil)
	case opRawValue:
		if depth >= maxBuildDepth {
			return nil
		}
		raw, err := json.Marshal(b.value(depth + 1))
		if err != nil {
			return json.RawMessage(`null`)
		}
		// Spaces before the bytes the next input bytes pick, where JSON allows them or not.
		for range b.byte() % 4 {
			i := int(b.byte()) % (len(raw) + 1)
			raw = slices.Insert(raw, i, " \t\n\r"[i%4])
		}
		return json.RawMessage(raw)
	case opBytes:
		s := b.take(int(b.byte()) % 48)
		if len(s) == 0 && op >= opCount {
			return []byte(nil)
		}
		return []byte(string(s))
	case opStruct:
		type fields struct {
			S string
			F float64
			B []byte `json:",omitempty"`
		}
		return fields{S: b.str(), F: math.Float64frombits(b.u64()), B: b.take(int(b.byte()) % 8)}
	}
	return nil
}
